"""The ``seqstream`` command: one entry point, one subcommand per job.

Each subcommand turns its flags into ``Settings`` (config file < environment < ``--set`` < named
flags), finds Kafka (``bootstrap``) and hands over to the library; every deliberate error
(``SeqstreamError``, ``ModelError``) is printed as one line, without a traceback.
"""

from __future__ import annotations

import argparse
import difflib
import json
import logging
import os
import signal
import sys
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from seqstream.model.artifact import (
    CONFIG_FILE,
    DEMO_CARRY_MODEL_DIR,
    load_artifact,
    save_artifact,
    spec_from_file,
)
from seqstream.model.carry import CarryLayout
from seqstream.model.errors import ModelError
from seqstream.model.importers import imported_network
from seqstream.model.train import TrainOptions, train_and_save
from seqstream.pipeline.backfill import plan as backfill_plan
from seqstream.pipeline.backfill import run as backfill
from seqstream.pipeline.bootstrap import kafka_admin, resolve_bootstrap
from seqstream.pipeline.cli import demo, tail
from seqstream.pipeline.cli.flags import BACKFILL_FLAGS, STREAM_FLAGS, add_flags, config_overrides
from seqstream.pipeline.config import Settings, load_settings, parse_assignments
from seqstream.pipeline.errors import SeqstreamError
from seqstream.pipeline.kafka import broker, open_producer
from seqstream.pipeline.sources.producer import produce_messages
from seqstream.pipeline.sources.replay import SyntheticSpec, csv_messages, synthetic_stream
from seqstream.pipeline.sources.series import demo_series_files, load_series
from seqstream.pipeline.spark import job_spark
from seqstream.pipeline.stream import query as streaming

log = logging.getLogger("seqstream")
JOB_FLAGS = {"stream": STREAM_FLAGS, "backfill": BACKFILL_FLAGS}


def _common(parser: argparse.ArgumentParser, *, kafka: bool = True) -> None:
    """The flags every command takes; ``--bootstrap-servers`` only where Kafka is used."""
    parser.add_argument("--config", metavar="FILE", help="YAML config file (or $SEQSTREAM_CONFIG)")
    parser.add_argument(
        "--set",
        metavar="SECTION.FIELD=VALUE",
        action="append",
        default=[],
        help="override any config field, e.g. --set kafka.client=kafka-python",
    )
    if kafka:
        parser.add_argument(
            "--bootstrap-servers",
            help="Kafka to use instead of the embedded broker (kafka.bootstrap_servers)",
        )


def _positive_int(text: str) -> int:
    """argparse type: an integer of at least 1 (0 partitions is not a topic)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _settings(args: argparse.Namespace, **flags: Any) -> Settings:
    """Config file < environment < --set < named flags."""
    overrides = parse_assignments(args.set)
    named = {"kafka": {"bootstrap_servers": getattr(args, "bootstrap_servers", None)}, **flags}
    for section, values in named.items():
        for key, value in values.items():
            if value is not None:
                overrides.setdefault(section, {})[key] = value
    return load_settings(args.config, overrides)


def job_settings(args: argparse.Namespace) -> Settings:
    """The settings a job's command line asks for: its flags (``flags``) over the rest."""
    return _settings(args, **config_overrides(args, JOB_FLAGS.get(args.command, ())))


# --- broker ------------------------------------------------------------------------------------


def _cmd_broker(args: argparse.Namespace) -> int:
    settings = _settings(args, broker={"port": args.port})
    state_dir = settings.broker.state_dir
    if args.action == "start":
        started_info, started = broker.start_detached(
            state_dir, port=settings.broker.port, start_timeout_s=settings.broker.start_timeout_s
        )
        if not started and args.port is not None and started_info.port != args.port:
            raise SeqstreamError(
                f"an embedded broker already runs at {started_info.bootstrap_servers} (pid "
                f"{started_info.pid}), not on port {args.port}: use that address, or `seqstream "
                f"broker stop` first and start again with --port {args.port}"
            )
        verb = "started" if started else "already running"
        print(
            f"embedded broker {verb}: {started_info.bootstrap_servers} "
            f"({started_info.description}, pid {started_info.pid}, storage "
            f"{started_info.storage}, log {started_info.log_file})"
        )
    elif args.action == "status":
        running = broker.detached_status(state_dir)
        if running is None:
            print("embedded broker: not running")
            return 1
        print(
            f"embedded broker running: {running.bootstrap_servers} ({running.description}, "
            f"pid {running.pid})"
        )
    else:
        stopped = broker.stop_detached(state_dir)
        print("embedded broker stopped" if stopped else "embedded broker: was not running")
    return 0


# --- topics ------------------------------------------------------------------------------------


def _cmd_topics(args: argparse.Namespace) -> int:
    if args.action != "list" and not args.topic:
        args.parser.error(
            f"topics {args.action} needs a topic name: seqstream topics {args.action} NAME"
        )
    settings = _settings(args)
    bootstrap = resolve_bootstrap(settings)
    with kafka_admin(settings, bootstrap) as admin:
        if args.action == "list":
            for name in sorted(admin.list_topics()):
                print(name)
        elif args.action == "create":
            info = admin.create_topic(args.topic, args.partitions or settings.producer.partitions)
            print(f"created {info.name} with {info.partitions} partitions")
        elif args.action == "delete":
            admin.delete_topic(args.topic)
            print(f"deleted {args.topic}")
        else:
            begin, end = admin.beginning_offsets(args.topic), admin.end_offsets(args.topic)
            print(
                f"{args.topic}: {len(end)} partitions, {sum(end[p] - begin[p] for p in end)} records"
            )
            for p in sorted(end):
                print(f"  partition {p}: offsets [{begin[p]}, {end[p]})")
    return 0


def _cmd_tail(args: argparse.Namespace) -> int:
    settings = _settings(args)
    bootstrap = resolve_bootstrap(settings)
    kafka = settings.kafka
    render = tail.as_json if args.json else tail.as_text
    with kafka_admin(settings, bootstrap) as admin:
        records = tail.follow(
            admin,
            bootstrap,
            args.topic,
            from_beginning=args.from_beginning,
            client=kafka.client,
            options=kafka.options,
            timeout_s=kafka.connect_timeout_s,
            idle_timeout_s=args.idle_timeout,
        )
        for count, record in enumerate(records, 1):
            print(render(record), flush=True)
            if args.max is not None and count >= args.max:
                break
    return 0


# --- produce -----------------------------------------------------------------------------------


def _cmd_produce(args: argparse.Namespace) -> int:
    events: dict[str, Any] = {}
    if args.synthetic and args.num_features:
        events["features"] = [f"f{i}" for i in range(args.num_features)]
    settings = _settings(
        args,
        events=events,
        producer={"topic": args.topic, "partitions": args.partitions, "rate": args.rate},
    )
    if args.synthetic:
        spec = SyntheticSpec(
            keys=args.keys,
            events_per_key=args.events_per_key,
            anomaly_rate=args.anomaly_rate,
            late_rate=args.late_rate,
            malformed_rate=args.malformed_rate,
            seed=args.seed,
        )
        messages = synthetic_stream(spec, settings.events).messages
    else:
        paths = args.csv or demo_series_files()
        messages = csv_messages(
            paths, settings.events, time_column=args.time_column, key_column=args.key_column
        )
    bootstrap = resolve_bootstrap(settings, start_if_missing=True)
    kafka = settings.kafka
    with kafka_admin(settings, bootstrap) as admin:
        admin.create_topic(settings.producer.topic, settings.producer.partitions, exist_ok=True)
    producer = open_producer(
        bootstrap, client=kafka.client, options=kafka.options, timeout_s=kafka.connect_timeout_s
    )
    try:
        result = produce_messages(
            messages,
            producer,
            settings.producer.topic,
            rate=settings.producer.rate,
            progress=not args.no_progress and sys.stderr.isatty(),
        )
    finally:
        producer.close()
    keys = len({m.key for m in messages})
    print(
        f"produced {result.sent} events ({keys} key{'s' if keys != 1 else ''}, "
        f"{result.malformed} malformed on purpose) "
        f"to {result.topic} on {bootstrap} with {producer.client}: {result.acked} acknowledged, "
        f"{result.failed} failed, {result.elapsed_s:.1f}s ({result.rate:,.0f} events/s)"
    )
    return 0


def _cmd_model_info(args: argparse.Namespace) -> int:
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


def _cmd_model_import(args: argparse.Namespace) -> int:
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


def _cmd_train(args: argparse.Namespace) -> int:
    settings = _settings(args)
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


def _cmd_stream(args: argparse.Namespace) -> int:
    settings = job_settings(args)
    streaming.check_outputs(settings)  # before looking for a broker: the cheapest mistakes first
    bootstrap = resolve_bootstrap(settings)
    checks = streaming.check_stream(settings, bootstrap)  # all before Spark starts
    streaming.run_stream(settings, bootstrap, checks)
    return 0


def _cmd_backfill(args: argparse.Namespace) -> int:
    settings = job_settings(args)
    request = backfill_plan.Request(
        topics=args.topics or list(settings.stream.topics),
        starting_offsets=args.starting_offsets,
        ending_offsets=args.ending_offsets,
        start_time_ms=backfill_plan.parse_time(args.start_time),
        end_time_ms=backfill_plan.parse_time(args.end_time),
        start_event_time_ms=backfill_plan.parse_time(args.start_event_time),
        end_event_time_ms=backfill_plan.parse_time(args.end_event_time),
    )
    bootstrap = resolve_bootstrap(settings)
    # Every check of the real run, before Spark starts or anything is created.
    prepared = backfill.prepare_backfill(settings, bootstrap, request, restart=args.restart)
    if args.dry_run:
        resumed = 0 if prepared.fresh else len(prepared.progress.finished())
        model = (
            f"{prepared.model.path} (version {prepared.spec.version}, "
            f"sha256 {prepared.model.sha256[:12]})"
        )
        print(
            backfill_plan.describe_plan(
                prepared.plan,
                settings,
                progress=prepared.progress.folder,
                model=model,
                resumed=resumed,
                carry=prepared.spec.kind == "carry",
            )
        )
        return 0
    finished, chunks = len(prepared.progress.finished()), len(prepared.plan["chunks"])
    if not prepared.fresh and finished == chunks:
        print(
            f"backfill: already complete ({chunks} chunk(s) written, progress in "
            f"{prepared.progress.folder}); nothing to do. To score the range again, pass "
            "--restart (the outputs' partitions are then written anew)"
        )
        return 0
    spark = job_spark("seqstream-backfill", settings.spark)
    counts = backfill.run_backfill(spark, settings, bootstrap, request, prepared=prepared)
    b = settings.backfill
    nowhere = (
        ""
        if b.dead_letter_path or b.dead_letter_topic
        else " (counted only: no dead-letter output)"
    )
    print(
        f"backfill: {sum(c.events_in for c in counts):,} events in {len(counts)} chunk(s): "
        f"{sum(c.scored for c in counts):,} scored, "
        f"{sum(c.not_yet_scoreable for c in counts):,} not yet scoreable, "
        f"{sum(c.dead_lettered for c in counts):,} dead-lettered{nowhere}"
        + (
            f", {outside:,} outside the event-time range (not written)"
            if (outside := sum(c.outside_event_time for c in counts))
            else ""
        )
    )
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if args.carry:
        stream = settings.stream.model_copy(update={"model": DEMO_CARRY_MODEL_DIR})
        settings = settings.model_copy(update={"stream": stream})
    demo.run_demo(settings)
    return 0


# --- parser ------------------------------------------------------------------------------------


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("seqstream")
    except PackageNotFoundError:  # run from a source tree that was not installed
        return "(not installed)"


TRAIN_HELP = {
    "window": "events per window (the LSTM's sequence length)",
    "min_length": "fewest events a window is scored with (--carry: a key's first scored event)",
    "hidden_size": "LSTM hidden size",
    "num_layers": "LSTM layers",
    "proj_size": "LSTM projection size (0: none)",
    "epochs": "training epochs",
    "batch_size": "windows (--carry: keys) per training batch",
    "seed": "random seed",
    "tbptt_steps": "--carry: steps per truncated-backpropagation chunk",
    "stride": "train on every N-th window of a key (validation reads them all)",
    "ensemble": "LSTMs trained from consecutive seeds and averaged into one nn.LSTM N times "
    "as wide (steadier scores; N=1: one LSTM, the fastest to score)",
    "dropout": "dropout between LSTM layers",
    "learning_rate": "Adam learning rate",
    "validation_fraction": "share of each series held out for validation",
}


DESCRIPTION = (
    "Score keyed Kafka event streams with an LSTM, in Spark Structured Streaming (stream) and "
    "over Kafka history (backfill); with an embedded broker, a producer and a demo for a laptop. "
    "Every command takes --config FILE and --set section.field=value; see README.md."
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="seqstream", description=DESCRIPTION)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--version", action="version", version=f"seqstream {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser(
        "broker", help="start, stop or query the embedded broker (Apache Kafka, one node)"
    )
    p.add_argument("action", choices=["start", "stop", "status"])
    p.add_argument("--port", type=int, help="loopback port (default: the last one, or a free one)")
    _common(p, kafka=False)
    p.set_defaults(func=_cmd_broker)

    p = sub.add_parser("topics", help="list, create, describe or delete topics")
    p.add_argument("action", choices=["list", "create", "describe", "delete"])
    p.add_argument("topic", nargs="?", default=None, help="the topic (all but list need one)")
    p.add_argument(
        "--partitions", type=_positive_int, help="create: partitions (default producer.partitions)"
    )
    _common(p)
    p.set_defaults(func=_cmd_topics, parser=p)

    p = sub.add_parser("tail", help="print a topic's records, decoded (scores, dead letters, any)")
    p.add_argument("topic", help="the topic to read")
    p.add_argument(
        "--from-beginning", action="store_true", help="start at the oldest record, not at the end"
    )
    p.add_argument("--max", type=_positive_int, help="stop after this many records")
    p.add_argument(
        "--idle-timeout",
        type=float,
        metavar="SECONDS",
        help="stop after this long without a new record (default: follow until Ctrl-C)",
    )
    p.add_argument("--json", action="store_true", help="one JSON object per record")
    _common(p)
    p.set_defaults(func=_cmd_tail)

    p = sub.add_parser("produce", help="replay CSV series or synthetic events into a topic")
    source = p.add_mutually_exclusive_group()
    source.add_argument(
        "--csv",
        nargs="+",
        metavar="PATH",
        help="CSV files or folders, one key per file (default: bundled NAB demo)",
    )
    source.add_argument("--synthetic", action="store_true", help="generated keys and features")
    p.add_argument("--time-column", default="timestamp", help="CSV column with the event time")
    p.add_argument(
        "--key-column",
        help="long-format CSV: the column with each row's key, many keys per file "
        "(default: one key per file, named after it)",
    )
    p.add_argument("--topic", help="the topic to write to (default: producer.topic, events)")
    p.add_argument(
        "--partitions",
        type=_positive_int,
        help="partitions if the topic is created (default: producer.partitions, 4)",
    )
    p.add_argument("--rate", type=float, help="events/s (default: as fast as possible)")
    p.add_argument("--keys", type=int, default=10, help="synthetic: number of keys (default: 10)")
    p.add_argument(
        "--events-per-key", type=int, default=1000, help="synthetic: events per key (default: 1000)"
    )
    p.add_argument("--num-features", type=int, help="synthetic: features f0..fN-1")
    p.add_argument("--anomaly-rate", type=float, default=0.0, help="synthetic: share of spikes")
    p.add_argument("--late-rate", type=float, default=0.0, help="synthetic: share sent late")
    p.add_argument(
        "--malformed-rate",
        type=float,
        default=0.0,
        help="synthetic: extra malformed messages per valid event",
    )
    p.add_argument("--seed", type=int, default=0, help="synthetic: random seed (default: 0)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    _common(p)
    p.set_defaults(func=_cmd_produce)

    p = sub.add_parser("train", help="train a next-step forecaster and write a model artifact")
    p.add_argument(
        "--data",
        nargs="+",
        metavar="PATH",
        help="CSV files/folders (one key per file) or Parquet event tables "
        "(default: the bundled NAB series)",
    )
    p.add_argument("--out", required=True, help="artifact directory to write")
    p.add_argument("--time-column", default="timestamp", help="CSV column with the event time")
    p.add_argument(
        "--key-column",
        help="long-format CSV: the column with each row's key (default: one key per file)",
    )
    defaults = TrainOptions()
    per_kind = {  # None in TrainOptions: each kind has its own
        "epochs": TrainOptions(carry=True).epochs_to_run,
        "learning_rate": TrainOptions(carry=True).learning_rate_to_use,
    }
    window_kind = {"epochs": defaults.epochs_to_run, "learning_rate": defaults.learning_rate_to_use}
    for names, parse in (
        (
            (
                "window",
                "min_length",
                "hidden_size",
                "num_layers",
                "proj_size",
                "epochs",
                "batch_size",
                "seed",
                "tbptt_steps",
                "stride",
                "ensemble",
            ),
            int,
        ),
        (("dropout", "learning_rate", "validation_fraction"), float),
    ):
        for name in names:
            default = getattr(defaults, name)
            shown = (
                f"{window_kind[name]}, --carry: {per_kind[name]}" if name in per_kind else default
            )
            p.add_argument(
                f"--{name.replace('_', '-')}",
                type=parse,
                default=default,
                help=f"{TRAIN_HELP[name]} (default: {shown})",
            )
    p.add_argument("--bidirectional", action="store_true", help="a bidirectional LSTM")
    p.add_argument(
        "--carry",
        action="store_true",
        help="a carry model: each key's LSTM state carried from event to event (one step per "
        "event, unbounded history), trained on each key's whole series with truncated "
        "backpropagation through time; --min-length is then the first scored event",
    )
    p.add_argument(
        "--per-key",
        action=argparse.BooleanOptionalAction,
        default=defaults.per_key,
        help="normalise with each key's own statistics (a carry model: its running mean and "
        "std; a window model: the window's), so one model scores keys of any scale; "
        "--no-per-key: the training data's one mean and std (default: per key)",
    )
    p.add_argument(
        "--error-units",
        choices=["normalized", "original"],
        default=defaults.error_units,
        help="a score's forecast error in the model's normalised units or in the event's own "
        f"(original: a move scores by its size; default: {defaults.error_units})",
    )
    p.add_argument(
        "--version",
        default=defaults.version,
        help=f"version string stored in the artifact (default: {defaults.version})",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    _common(p, kafka=False)
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("model", help="describe, validate and import model artifacts")
    actions = p.add_subparsers(dest="action", required=True)
    info = actions.add_parser("info", help="validate an artifact and print what it holds")
    info.add_argument("path", help="the artifact folder (config.json, weights.safetensors)")
    info.add_argument("--json", action="store_true", help="print it as JSON")
    info.set_defaults(func=_cmd_model_info)
    for kind, layers_of in (
        ("keras", "keras.layers.LSTM layers (kernel, recurrent_kernel, bias)"),
        ("tf1", "TF1 BasicLSTMCell layers (kernel, bias)"),
    ):
        imp = actions.add_parser(
            f"import-{kind}",
            help=f"make an artifact from {layers_of} and a Dense head saved in an .npz",
        )
        imp.add_argument(
            "weights",
            help="an .npz with layer{n}/kernel ... and head/kernel, head/bias (see docs/models.md)",
        )
        imp.add_argument(
            "--config",
            required=True,
            help="the artifact's config.json: task, features, normalization, window, lstm, head",
        )
        imp.add_argument("--out", required=True, help="a new folder for the artifact")
        imp.add_argument("--model-version", help="the artifact's version (default: the config's)")
        if kind == "tf1":
            imp.add_argument(
                "--forget-bias",
                type=float,
                default=1.0,
                help="the cells' forget_bias, folded into the bias (default: %(default)s)",
            )
        imp.set_defaults(func=_cmd_model_import, framework=kind, forget_bias=1.0)

    p = sub.add_parser("stream", help="run the streaming job (same as spark-submit jobs/stream.py)")
    add_flags(p, STREAM_FLAGS)
    _common(p)
    p.set_defaults(func=_cmd_stream)

    p = sub.add_parser(
        "backfill",
        help="re-score a range of Kafka history as the streaming job would (jobs/backfill.py)",
    )
    add_flags(p, BACKFILL_FLAGS)
    _common(p)
    p.set_defaults(func=_cmd_backfill)

    p = sub.add_parser("demo", help="the end-to-end demo on the embedded broker and bundled data")
    p.add_argument(
        "--carry",
        action="store_true",
        help="score with the carry demo model (each key's LSTM state carried, per-key "
        "normalisation) instead of the window demo model",
    )
    _common(p)
    p.set_defaults(func=_cmd_demo)
    return parser


def _subcommand_parser(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.ArgumentParser:
    """The parser of the (sub)subcommand ``argv`` names: ``seqstream model info`` -> info's."""
    for word in argv:
        found = next(
            (a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None
        )
        if found is None:
            break
        if word in found.choices:
            parser = found.choices[word]
    return parser


def parse_args(argv: list[str]) -> argparse.Namespace:
    """argparse, except that a flag no command knows is reported by the subcommand that got it,
    with its usage and the closest flag it has (argparse's own report is the top level's)."""
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        owner = _subcommand_parser(parser, argv)
        flags = [flag for action in owner._actions for flag in action.option_strings]
        given = next((u.split("=", 1)[0] for u in unknown if u.startswith("-")), "")
        close = difflib.get_close_matches(given, flags, n=1) if given else []
        hint = f" (did you mean {close[0]}?)" if close else ""
        owner.error(f"unrecognized arguments: {' '.join(unknown)}{hint}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:
        logging.getLogger("seqstream.librdkafka").setLevel(logging.CRITICAL)
        logging.getLogger("kafka").setLevel(logging.CRITICAL)
        # py4j logs every gateway connection it opens and closes at INFO.
        logging.getLogger("py4j").setLevel(logging.WARNING)
    try:
        code = int(args.func(args))
        sys.stdout.flush()  # here, so that a reader gone away is met below, not at exit
        return code
    except (SeqstreamError, ModelError) as exc:  # ConfigError is a SeqstreamError
        print(f"seqstream {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"seqstream {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, as a Unix tool ended by SIGPIPE does,
        # with nothing left for the interpreter to flush into the closed pipe at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE


if __name__ == "__main__":
    sys.exit(main())
