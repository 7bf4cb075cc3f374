"""The model commands: ``train`` (a next-step forecaster from series) and ``model info`` /
``model import-keras`` / ``model import-tf1`` (describe, validate and import artifacts).

They read and write artifacts with ``seqstream.model``; none of them needs Kafka or Spark.
"""

from __future__ import annotations

import argparse
import json
import sys
import zipfile
from pathlib import Path

import numpy as np

from seqstream.model.artifact import CONFIG_FILE, load_artifact, save_artifact, spec_from_file
from seqstream.model.carry import CarryLayout
from seqstream.model.importers import imported_network
from seqstream.model.train import TrainOptions, train_and_save
from seqstream.pipeline.cli.settings import command_settings
from seqstream.pipeline.errors import SeqstreamError
from seqstream.pipeline.sources.series import demo_series_files, load_series


def cmd_model_info(args: argparse.Namespace) -> int:
    """Load and validate an artifact (config, sha256, every tensor), then describe it."""
    loaded = load_artifact(args.path)
    spec = loaded.spec
    files = {p.name: p.stat().st_size for p in sorted(loaded.path.iterdir()) if p.is_file()}
    parameters = sum(t.numel() for t in loaded.network.state_dict().values())
    if args.json:
        described = {"path": str(loaded.path.resolve()), "files": files, "parameters": parameters}
        config = json.loads((loaded.path / CONFIG_FILE).read_text())  # as written, validated
        print(json.dumps({**described, "config": config}, indent=1))
        return 0
    lstm = spec.lstm.model_dump()
    print(f"model {spec.version} at {loaded.path.resolve()}: valid (format {spec.format_version})")
    print(f"  task        {spec.task.type}")
    print(f"  features    {', '.join(spec.features)}")
    if spec.window is not None:
        print(f"  window      {spec.window.length} events, scored from {spec.window.min_length}")
    else:
        size = CarryLayout.of(spec).size
        print(
            f"  carry       each key's LSTM state carried ({size} float64 values, {size * 8} "
            f"bytes a key), scored from its event {spec.carry_spec.min_events}"
        )
    scale = "per key" if spec.normalization.per_key else "global mean and std"
    print(f"  normalised  {scale}")
    print(f"  lstm        {', '.join(f'{k}={v}' for k, v in lstm.items())}")
    print(
        f"  head        {spec.head.type}, {spec.head.output_size} output(s), activation {spec.head.activation}"
    )
    print(f"  parameters  {parameters:,}")
    print(f"  sha256      {spec.weights_sha256}")
    print("  files       " + ", ".join(f"{name} ({size:,} bytes)" for name, size in files.items()))
    return 0


def _artifact_folder(path: str) -> Path:
    """``--out`` of a command that writes an artifact: a folder, new or existing, never a file."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise SeqstreamError(f"--out {out} is a file: give a folder for the artifact")
    return out


def cmd_model_import(args: argparse.Namespace) -> int:
    """Another framework's LSTM weights (an .npz) and a config.json become an artifact."""
    out = _artifact_folder(args.out)
    if out.exists() and any(out.iterdir()):
        raise SeqstreamError(f"--out {out} is not empty: give a new folder for the artifact")
    spec = spec_from_file(Path(args.config))
    if args.model_version:
        spec = spec.model_copy(update={"version": args.model_version})
    try:
        with np.load(args.weights) as npz:
            arrays = {name: npz[name] for name in npz.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise SeqstreamError(f"cannot read {args.weights} as an .npz of arrays: {exc}") from None
    network = imported_network(args.framework, arrays, spec, forget_bias=args.forget_bias)
    written = save_artifact(network, spec, out)
    load_artifact(out)  # validated as the jobs will load it
    print(
        f"model {written.version} imported from {args.framework} weights {args.weights} to "
        f"{out.resolve()} (sha256 {written.weights_sha256})"
    )
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    settings = command_settings(args)
    options = TrainOptions(
        window=args.window,
        min_length=args.min_length,
        hidden_size=args.hidden_size,
        num_layers=args.num_layers,
        bidirectional=args.bidirectional,
        proj_size=args.proj_size,
        dropout=args.dropout,
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        validation_fraction=args.validation_fraction,
        seed=args.seed,
        version=args.version,
        per_key=args.per_key,
        carry=args.carry,
        tbptt_steps=args.tbptt_steps,
        error_units=args.error_units,
        stride=args.stride,
        ensemble=args.ensemble,
    )
    series = load_series(
        args.data or demo_series_files(),
        settings.events,
        time_column=args.time_column,
        key_column=args.key_column,
    )
    spec, report = train_and_save(
        series,
        list(settings.events.features),
        _artifact_folder(args.out),
        options,
        progress=not args.no_progress and sys.stderr.isatty(),
    )
    for epoch, (train, val) in enumerate(
        zip(report.train_loss, report.validation_loss, strict=True), 1
    ):
        print(f"epoch {epoch}: train loss {train:.4f}, validation loss {val:.4f}")
    members = f" (the mean of {report.members} LSTMs, seeds {args.seed}..{args.seed + report.members - 1})"
    print(
        f"trained {spec.version}{members if report.members > 1 else ''} on "
        f"{report.train_windows} {'forecasts' if args.carry else 'windows'}, "
        f"validated on {report.validation_windows} more, in {report.seconds:.0f}s; wrote "
        f"{args.out} (sha256 {(spec.weights_sha256 or '')[:12]})"
    )
    return 0
