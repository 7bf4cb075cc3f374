"""Fitting one forecaster (one ensemble member) from a seed, and the data it is fitted on.

Window models: windows are built by ``model.windows.extend_windows``, the code the streaming
job uses, so the model is trained on exactly the sequences it will score. Carry models: each
key's whole series, normalised as ``model.carry`` normalises it, with truncated backpropagation
through time (chunks of ``tbptt_steps`` steps, the state carried and detached between chunks,
keys batched). ``model.train`` averages the members and writes the artifact.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from seqstream.model.carry import CarryLayout, running_stats
from seqstream.model.errors import ModelError
from seqstream.model.inference import clip_inputs, forecast_split, normalize, window_frame
from seqstream.model.network import SequenceModel
from seqstream.model.spec import (
    CARRY_INPUT_CLIP,
    ModelSpec,
)
from seqstream.model.windows import empty_state, extend_windows

# Each kind's default epochs and learning rate (None in TrainOptions picks these).
KIND_DEFAULTS: dict[str, tuple[int, float]] = {"window": (6, 5e-3), "carry": (40, 2e-3)}


@dataclass(frozen=True)
class TrainOptions:
    """The defaults are the demo models' (measured against naive baselines on NAB:
    docs/models.md, "Which model kind"): per-key normalisation, errors scored in the events' own
    units, 64-event windows."""

    window: int = 64
    min_length: int = 8
    hidden_size: int = 32
    num_layers: int = 2
    bidirectional: bool = False
    proj_size: int = 0
    dropout: float = 0.0
    epochs: int | None = None  # None: the kind's (KIND_DEFAULTS)
    batch_size: int = 256
    learning_rate: float | None = None  # None: the kind's (KIND_DEFAULTS)
    validation_fraction: float = 0.2
    seed: int = 0
    version: str = "forecast"
    per_key: bool = True  # normalise with each key's (window's) own statistics
    carry: bool = False  # a carry model (``model.carry``), trained with TBPTT
    tbptt_steps: int = 128  # carry: steps per truncated-backpropagation chunk
    error_units: Literal["normalized", "original"] = "original"  # see ForecastTask
    stride: int = 2  # window: train on every stride-th window of a key (validation: all)
    ensemble: int = 3  # members trained from seeds seed..seed+ensemble-1, averaged (model.ensemble)

    @property
    def epochs_to_run(self) -> int:
        return KIND_DEFAULTS[self.kind][0] if self.epochs is None else self.epochs

    @property
    def learning_rate_to_use(self) -> float:
        return KIND_DEFAULTS[self.kind][1] if self.learning_rate is None else self.learning_rate

    @property
    def kind(self) -> str:
        return "carry" if self.carry else "window"


@dataclass
class TrainReport:
    train_windows: int
    validation_windows: int
    train_loss: list[float] = field(default_factory=list)  # per epoch, MSE in normalised units
    validation_loss: list[float] = field(default_factory=list)
    seconds: float = 0.0
    members: int = 1  # networks averaged (losses: their mean per epoch)


def _windows(
    series: Mapping[str, np.ndarray],
    length: int,
    min_length: int,
    val_fraction: float,
    stride: int = 1,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per key: every window (shared sequencing code), the last ``val_fraction`` for validation;
    of the others every ``stride``-th (neighbouring windows share all but one event)."""
    parts: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {"train": [], "validation": []}
    for values in series.values():
        batch = extend_windows(empty_state(values.shape[1]), values, length)
        keep = batch.lengths >= min_length
        windows, lengths = batch.windows[keep], batch.lengths[keep]
        cut = int(round(len(windows) * (1 - val_fraction)))
        parts["train"].append((windows[:cut:stride], lengths[:cut:stride]))
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


WindowData = dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]
CarryData = tuple[np.ndarray, np.ndarray, np.ndarray]


def window_data(
    series: Mapping[str, np.ndarray], spec: ModelSpec, options: TrainOptions
) -> WindowData:
    """Training and validation forecasts: (inputs, input lengths, targets, std) each, inputs and
    targets normalised and clipped (one jump out of a flat window must not dominate the loss),
    std the one each window was normalised with."""
    data = _windows(
        series, options.window, options.min_length, options.validation_fraction, options.stride
    )
    prepared = {}
    for name, (windows, lengths) in data.items():
        inputs, input_lengths, targets = forecast_split(normalize(windows, lengths, spec), lengths)
        std = window_frame(windows, lengths, spec)[1][:, 0]
        prepared[name] = (
            clip_inputs(inputs, spec),
            input_lengths,
            clip_inputs(targets, spec),
            np.broadcast_to(std, targets.shape),
        )
    if len(prepared["train"][0]) == 0:
        raise ModelError(f"no window of at least {options.min_length} events in the training data")
    return prepared


def fit_window(
    prepared: WindowData, spec: ModelSpec, options: TrainOptions, *, progress: bool
) -> tuple[SequenceModel, TrainReport]:
    """One window forecaster from ``options.seed`` on ``window_data``'s forecasts: Adam on MSE
    in (clipped) normalised units."""
    torch.manual_seed(options.seed)
    rng = np.random.default_rng(options.seed)
    inputs, input_lengths, targets, _ = prepared["train"]
    report = TrainReport(len(inputs), len(prepared["validation"][0]))
    network = SequenceModel(spec.lstm, spec.head)
    optimiser = torch.optim.Adam(network.parameters(), lr=options.learning_rate_to_use)
    loss_fn = nn.MSELoss()
    epochs = tqdm(range(options.epochs_to_run), desc="train", unit="epoch", disable=not progress)
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
        report.validation_loss.append(_mse(network, *prepared["validation"][:3]))
        epochs.set_postfix(
            train=f"{report.train_loss[-1]:.4f}", val=f"{report.validation_loss[-1]:.4f}"
        )

    return network.eval(), report


def carry_inputs(series: Mapping[str, np.ndarray], spec: ModelSpec) -> CarryData:
    """Every key's whole series normalised and clipped as ``CarryScorer`` feeds it to the LSTM
    (padded [keys, T, F] float32; also the training targets), the keys' lengths, and the std
    each step was normalised with ([keys or 1, T or 1, F])."""
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
    return z.astype(np.float32), lengths, std


def carry_cut(lengths: np.ndarray, options: TrainOptions) -> np.ndarray:
    """Each key's first validation step: the last ``validation_fraction`` of its steps."""
    cut = np.maximum(np.round(lengths * (1 - options.validation_fraction)).astype(np.int64), 2)
    return np.minimum(cut, lengths)


def fit_carry(
    inputs: CarryData, spec: ModelSpec, options: TrainOptions, *, progress: bool
) -> tuple[SequenceModel, TrainReport]:
    """TBPTT over each key's series (``carry_inputs``): f_t forecasts z_{t+1}; the last
    ``validation_fraction`` of each key's steps are validation (read with the state the training
    part left)."""
    torch.manual_seed(options.seed)
    rng = np.random.default_rng(options.seed)
    z_all, lengths, std = inputs
    cut = carry_cut(lengths, options)
    report = TrainReport(int((cut - 1).sum()), int((lengths - cut).sum()))
    if report.train_windows < 1:
        raise ModelError("no key has two events to train a carry forecaster on")
    network = SequenceModel(spec.lstm, spec.head)
    optimiser = torch.optim.Adam(network.parameters(), lr=options.learning_rate_to_use)
    z = torch.from_numpy(z_all)
    steps = options.tbptt_steps
    epochs = tqdm(range(options.epochs_to_run), desc="train", unit="epoch", disable=not progress)
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
        _, validation, _ = carry_residuals(network, z, lengths, cut, std)
        report.train_loss.append(total / count)
        report.validation_loss.append(
            float(np.mean(validation**2)) if validation.size else math.nan
        )
        epochs.set_postfix(
            train=f"{report.train_loss[-1]:.4f}", val=f"{report.validation_loss[-1]:.4f}"
        )
    return network.eval(), report


def carry_residuals(
    network: SequenceModel, z: torch.Tensor, lengths: np.ndarray, cut: np.ndarray, std: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Forecast residuals (normalised units) over each key's whole series from a zero state, one
    call: those of targets before ``cut`` (training) and from it on (validation), and the std
    each training target was normalised with."""
    with torch.inference_mode():
        out, _ = network.steps(z, torch.from_numpy(lengths))
        forecast = network.head_output(out)[:, :-1].numpy()
    errors = z[:, 1:].numpy() - forecast
    target = np.arange(1, z.shape[1])[None, :]
    train = target < cut[:, None]
    validation = (target >= cut[:, None]) & (target < lengths[:, None])
    target_std = np.broadcast_to(std, z.shape)[:, 1:]
    return errors[train], errors[validation], target_std[train]
