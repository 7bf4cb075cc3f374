"""Train a next-step forecaster on event series and write it as an artifact.

Window models: windows are built by ``model.windows.extend_windows``, the code the streaming
job uses, so the model is trained on exactly the sequences it will score. Carry models: each
key's whole series, normalised as ``model.carry`` normalises it, with truncated backpropagation
through time (chunks of ``tbptt_steps`` steps, the state carried and detached between chunks,
keys batched).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from seqstream.model.artifact import save_artifact
from seqstream.model.carry import CarryLayout, running_stats
from seqstream.model.errors import ModelError
from seqstream.model.inference import forecast_split, normalize
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
from seqstream.model.windows import empty_context, extend_windows


@dataclass(frozen=True)
class TrainOptions:
    window: int = 32
    min_length: int = 8
    hidden_size: int = 32
    num_layers: int = 2
    bidirectional: bool = False
    proj_size: int = 0
    dropout: float = 0.0
    epochs: int = 6
    batch_size: int = 256
    learning_rate: float = 5e-3
    validation_fraction: float = 0.2
    seed: int = 0
    version: str = "forecast"
    per_key: bool = False  # normalise with each key's (window's) own statistics
    carry: bool = False  # a carry model (``model.carry``), trained with TBPTT
    tbptt_steps: int = 64  # carry: steps per truncated-backpropagation chunk


@dataclass
class TrainReport:
    train_windows: int
    validation_windows: int
    train_loss: list[float] = field(default_factory=list)  # per epoch, MSE in normalised units
    validation_loss: list[float] = field(default_factory=list)
    seconds: float = 0.0


def _windows(
    series: Mapping[str, np.ndarray], length: int, min_length: int, val_fraction: float
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per key: every window (shared sequencing code), the last ``val_fraction`` for validation."""
    parts: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {"train": [], "validation": []}
    for values in series.values():
        batch = extend_windows(empty_context(values.shape[1]), values, length)
        keep = batch.lengths >= min_length
        windows, lengths = batch.windows[keep], batch.lengths[keep]
        cut = int(round(len(windows) * (1 - val_fraction)))
        parts["train"].append((windows[:cut], lengths[:cut]))
        parts["validation"].append((windows[cut:], lengths[cut:]))
    return {
        name: (np.concatenate([w for w, _ in chunks]), np.concatenate([n for _, n in chunks]))
        for name, chunks in parts.items()
    }


def _batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Shuffled batches, full-length windows apart from short ones so most batches need no packing."""
    full = lengths == lengths.max(initial=0)
    groups = [rng.permutation(np.flatnonzero(full)), rng.permutation(np.flatnonzero(~full))]
    batches = [g[i : i + batch_size] for g in groups for i in range(0, len(g), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def _mse(
    network: SequenceModel, inputs: np.ndarray, lengths: np.ndarray, targets: np.ndarray
) -> float:
    if len(inputs) == 0:
        return math.nan
    with torch.inference_mode():
        predicted = network(torch.from_numpy(inputs), torch.from_numpy(lengths))
        return float(((predicted - torch.from_numpy(targets)) ** 2).mean())


def with_error_spread(spec: ModelSpec, residuals: np.ndarray) -> ModelSpec:
    """The spec with the forecast task's ``error_std``: the training residuals' spread per
    feature (normalised units), which scores are divided by."""
    spread = residuals.std(axis=0)
    return spec.model_copy(
        update={"task": ForecastTask(error_std=np.where(spread > 0, spread, 1.0).tolist())}
    )


def train_forecaster(
    series: Mapping[str, np.ndarray],
    features: list[str],
    options: TrainOptions,
    *,
    progress: bool = False,
) -> tuple[SequenceModel, ModelSpec, TrainReport]:
    """Fit with a fixed seed; returns the network, its spec (with the error spread) and losses."""
    if not series:
        raise ModelError("no training series")
    started = time.monotonic()
    torch.manual_seed(options.seed)
    rng = np.random.default_rng(options.seed)
    all_rows = np.concatenate(list(series.values()))
    std = all_rows.std(axis=0)
    normalization = Normalization(
        mean=all_rows.mean(axis=0).tolist(),
        std=np.where(std > 0, std, 1.0).tolist(),
        per_key=options.per_key,
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
    spec = ModelSpec(
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
        task=ForecastTask(error_std=[1.0] * len(features)),
    )
    if options.carry:
        return _train_carry(series, spec, options, started, progress=progress)
    data = _windows(series, options.window, options.min_length, options.validation_fraction)
    prepared = {}
    for name, (windows, lengths) in data.items():
        prepared[name] = forecast_split(normalize(windows, lengths, spec), lengths)
    inputs, input_lengths, targets = prepared["train"]
    if len(inputs) == 0:
        raise ModelError(f"no window of at least {options.min_length} events in the training data")
    report = TrainReport(len(inputs), len(prepared["validation"][0]))

    network = SequenceModel(lstm, spec.head)
    optimiser = torch.optim.Adam(network.parameters(), lr=options.learning_rate)
    loss_fn = nn.MSELoss()
    epochs = tqdm(range(options.epochs), desc="train", unit="epoch", disable=not progress)
    for _ in epochs:
        network.train()
        total, count = 0.0, 0
        for batch in _batches(input_lengths, options.batch_size, rng):
            optimiser.zero_grad()
            x, n = torch.from_numpy(inputs[batch]), torch.from_numpy(input_lengths[batch])
            loss = loss_fn(network(x, n), torch.from_numpy(targets[batch]))
            loss.backward()
            nn.utils.clip_grad_norm_(network.parameters(), 1.0)
            optimiser.step()
            total, count = total + loss.item() * len(batch), count + len(batch)
        network.eval()
        report.train_loss.append(total / count)
        report.validation_loss.append(_mse(network, *prepared["validation"]))
        epochs.set_postfix(
            train=f"{report.train_loss[-1]:.4f}", val=f"{report.validation_loss[-1]:.4f}"
        )

    with torch.inference_mode():
        residuals = (
            targets - network(torch.from_numpy(inputs), torch.from_numpy(input_lengths)).numpy()
        )
    report.seconds = time.monotonic() - started
    return network, with_error_spread(spec, residuals), report


def _carry_inputs(
    series: Mapping[str, np.ndarray], spec: ModelSpec
) -> tuple[np.ndarray, np.ndarray]:
    """Every key's whole series normalised and clipped as ``CarryScorer`` feeds it to the LSTM
    (padded [keys, T, F] float32; also the training targets), and the keys' lengths."""
    layout = CarryLayout.of(spec)
    lengths = np.array([len(v) for v in series.values()], np.int64)
    x = np.zeros((len(series), int(lengths.max()), layout.features), np.float64)
    for i, values in enumerate(series.values()):
        x[i, : len(values)] = values
    if spec.normalization.per_key:
        mean, std, _ = running_stats(x, lengths, np.zeros((len(lengths), layout.size)), layout)
    else:
        mean = np.asarray(spec.normalization.mean)[None, None]
        std = np.asarray(spec.normalization.std)[None, None]
    real = (np.arange(x.shape[1])[None, :] < lengths[:, None])[:, :, None]
    z = np.clip(np.where(real, (x - mean) / std, 0.0), -CARRY_INPUT_CLIP, CARRY_INPUT_CLIP)
    return z.astype(np.float32), lengths


def _train_carry(
    series: Mapping[str, np.ndarray],
    spec: ModelSpec,
    options: TrainOptions,
    started: float,
    *,
    progress: bool,
) -> tuple[SequenceModel, ModelSpec, TrainReport]:
    """TBPTT over each key's series: f_t forecasts z_{t+1}; the last ``validation_fraction`` of
    each key's steps are validation (read with the state the training part left)."""
    rng = np.random.default_rng(options.seed)
    z_all, lengths = _carry_inputs(series, spec)
    cut = np.maximum(np.round(lengths * (1 - options.validation_fraction)).astype(np.int64), 2)
    cut = np.minimum(cut, lengths)
    report = TrainReport(int((cut - 1).sum()), int((lengths - cut).sum()))
    if report.train_windows < 1:
        raise ModelError("no key has two events to train a carry forecaster on")
    network = SequenceModel(spec.lstm, spec.head)
    optimiser = torch.optim.Adam(network.parameters(), lr=options.learning_rate)
    z = torch.from_numpy(z_all)
    steps = options.tbptt_steps
    epochs = tqdm(range(options.epochs), desc="train", unit="epoch", disable=not progress)
    for _ in epochs:
        network.train()
        total, count = 0.0, 0
        order = rng.permutation(len(lengths))
        for batch in (
            order[i : i + options.batch_size] for i in range(0, len(order), options.batch_size)
        ):
            state = None
            for start in range(0, int(cut[batch].max()) - 1, steps):
                # inputs t in [start, start + steps), targets t + 1, both before the cut
                live = np.flatnonzero(cut[batch] - 1 > start)
                rows = batch[live]
                n = np.minimum(cut[rows] - 1 - start, steps)
                x = z[rows, start : start + steps]
                target = z[rows, start + 1 : start + steps + 1]
                if state is not None:
                    state = (state[0][:, live], state[1][:, live])
                optimiser.zero_grad()
                out, (h, c) = network.steps(x[:, : int(n.max())], torch.from_numpy(n), state)
                forecast = network.head_output(out)
                # targets from the key's min_events-th event on: those are scored
                step = torch.arange(forecast.shape[1])[None, :]
                mask = (step < torch.from_numpy(n)[:, None]) & (
                    step + start + 2 >= spec.carry_spec.min_events
                )
                error = (forecast - target[:, : forecast.shape[1]])[mask]
                loss = (error**2).mean()
                loss.backward()
                nn.utils.clip_grad_norm_(network.parameters(), 1.0)
                optimiser.step()
                total, count = total + float((error**2).sum().detach()), count + error.numel()
                state = (h.detach(), c.detach())
                batch = rows
        network.eval()
        residuals, validation = _carry_residuals(network, z, lengths, cut)
        report.train_loss.append(total / count)
        report.validation_loss.append(
            float(np.mean(validation**2)) if validation.size else math.nan
        )
        epochs.set_postfix(
            train=f"{report.train_loss[-1]:.4f}", val=f"{report.validation_loss[-1]:.4f}"
        )
    residuals, _ = _carry_residuals(network, z, lengths, cut)
    report.seconds = time.monotonic() - started
    return network, with_error_spread(spec, residuals), report


def _carry_residuals(
    network: SequenceModel, z: torch.Tensor, lengths: np.ndarray, cut: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Forecast residuals (normalised units) over each key's whole series from a zero state, one
    call: those of targets before ``cut`` (training) and from it on (validation)."""
    with torch.inference_mode():
        out, _ = network.steps(z, torch.from_numpy(lengths))
        forecast = network.head_output(out)[:, :-1].numpy()
    errors = z[:, 1:].numpy() - forecast
    target = np.arange(1, z.shape[1])[None, :]
    train = target < cut[:, None]
    validation = (target >= cut[:, None]) & (target < lengths[:, None])
    return errors[train], errors[validation]


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
