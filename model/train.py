"""Train a next-step forecaster on event series and write it as an artifact: the members
(``model.fit``, one per seed) averaged into one network (``model.ensemble``), the score's error
spread measured on the training data, on one CPU thread for a reproducible sha256.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from seqstream.model.artifact import save_artifact
from seqstream.model.ensemble import average_network
from seqstream.model.errors import ModelError
from seqstream.model.fit import (
    TrainOptions,
    TrainReport,
    carry_cut,
    carry_inputs,
    carry_residuals,
    fit_carry,
    fit_window,
    window_data,
)
from seqstream.model.network import SequenceModel
from seqstream.model.spec import (
    CARRY_INPUT_CLIP,
    CarrySpec,
    ForecastTask,
    HeadSpec,
    LSTMArgs,
    ModelSpec,
    Normalization,
    WindowSpec,
)


def with_error_spread(spec: ModelSpec, residuals: np.ndarray, std: np.ndarray) -> ModelSpec:
    """The spec with the forecast task's ``error_std``: the training residuals' spread per
    feature ([n, F] in normalised units, times the ``std`` each was normalised with when the
    task's ``error_units`` is ``original``), which scores are divided by."""
    task = spec.task
    assert isinstance(task, ForecastTask)
    if task.error_units == "original":
        residuals = residuals * std
    spread = residuals.std(axis=0)
    error_std = np.where(spread > 0, spread, 1.0).tolist()
    return spec.model_copy(update={"task": task.model_copy(update={"error_std": error_std})})


def train_forecaster(
    series: Mapping[str, np.ndarray],
    features: list[str],
    options: TrainOptions,
    *,
    progress: bool = False,
) -> tuple[SequenceModel, ModelSpec, TrainReport]:
    """Fit with a fixed seed on one CPU thread: torch's reductions round differently with
    another thread count, so only a fixed one makes the same command write the same weights
    (sha256) on any machine of the same CPU kind. Returns the network, its spec (with the error
    spread) and losses."""
    if not series:
        raise ModelError("no training series")
    if options.ensemble < 1 or options.stride < 1:
        raise ModelError(
            f"ensemble and stride must be at least 1, got {options.ensemble} and {options.stride}"
        )
    started = time.monotonic()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        spec = _untrained_spec(series, features, options)
        seeds = [replace(options, seed=options.seed + i) for i in range(options.ensemble)]
        # The data is prepared once: every member and the error spread read the same.
        if options.carry:
            carry_data = carry_inputs(series, spec)
            members = [fit_carry(carry_data, spec, o, progress=progress) for o in seeds]
        else:
            windows = window_data(series, spec, options)
            members = [fit_window(windows, spec, o, progress=progress) for o in seeds]
        if len(members) == 1:
            network = members[0][0]
        else:
            lstm, network = average_network([m for m, _ in members], spec.lstm, spec.head)
            spec = spec.model_copy(update={"lstm": lstm})
        if options.carry:
            z, lengths, std = carry_data
            residuals, _, residual_std = carry_residuals(
                network, torch.from_numpy(z), lengths, carry_cut(lengths, options), std
            )
            spec = with_error_spread(spec, residuals, residual_std)
        else:
            inputs, input_lengths, targets, std = windows["train"]
            with torch.inference_mode():
                forecast = network(torch.from_numpy(inputs), torch.from_numpy(input_lengths))
            spec = with_error_spread(spec, targets - forecast.numpy(), std)
    finally:
        torch.set_num_threads(threads)
    reports = [r for _, r in members]
    report = TrainReport(
        reports[0].train_windows,
        reports[0].validation_windows,
        [float(np.mean(losses)) for losses in zip(*(r.train_loss for r in reports), strict=True)],
        [
            float(np.mean(losses))
            for losses in zip(*(r.validation_loss for r in reports), strict=True)
        ],
        time.monotonic() - started,
        len(members),
    )
    return network, spec, report


def _untrained_spec(
    series: Mapping[str, np.ndarray], features: list[str], options: TrainOptions
) -> ModelSpec:
    """The artifact's spec for one member: normalisation from the data, error_std still 1."""
    all_rows = np.concatenate(list(series.values()))
    std = all_rows.std(axis=0)
    normalization = Normalization(
        mean=all_rows.mean(axis=0).tolist(),
        std=np.where(std > 0, std, 1.0).tolist(),
        per_key=options.per_key,
        clip=None if options.carry else CARRY_INPUT_CLIP,
    )
    lstm = LSTMArgs(
        input_size=len(features),
        hidden_size=options.hidden_size,
        num_layers=options.num_layers,
        batch_first=True,
        dropout=options.dropout,
        bidirectional=options.bidirectional,
        proj_size=options.proj_size,
    )
    return ModelSpec(
        version=options.version,
        kind="carry" if options.carry else "window",
        features=features,
        normalization=normalization,
        window=None
        if options.carry
        else WindowSpec(length=options.window, min_length=options.min_length),
        carry=CarrySpec(min_events=options.min_length) if options.carry else None,
        lstm=lstm,
        head=HeadSpec(output_size=len(features)),
        task=ForecastTask(error_std=[1.0] * len(features), error_units=options.error_units),
    )


def train_and_save(
    series: Mapping[str, np.ndarray],
    features: list[str],
    out: str | Path,
    options: TrainOptions,
    *,
    progress: bool = False,
) -> tuple[ModelSpec, TrainReport]:
    """Train on ``series`` (per key, feature rows in time order) and write the artifact to ``out``."""
    network, spec, report = train_forecaster(series, features, options, progress=progress)
    return save_artifact(network, spec, out), report
