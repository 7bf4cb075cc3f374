"""Train a next-step forecaster on event series and write it as an artifact.

Windows are built by ``model.windows.extend_windows``, the code the streaming job uses,
so the model is trained on exactly the sequences it will score.
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
from seqstream.model.errors import ModelError
from seqstream.model.inference import forecast_split, normalize
from seqstream.model.network import SequenceModel
from seqstream.model.spec import (
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
        mean=all_rows.mean(axis=0).tolist(), std=np.where(std > 0, std, 1.0).tolist()
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
        features=features,
        normalization=normalization,
        window=WindowSpec(length=options.window, min_length=options.min_length),
        lstm=lstm,
        head=HeadSpec(output_size=len(features)),
        task=ForecastTask(error_std=[1.0] * len(features)),
    )
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
    spread = residuals.std(axis=0)
    spec = spec.model_copy(
        update={"task": ForecastTask(error_std=np.where(spread > 0, spread, 1.0).tolist())}
    )
    report.seconds = time.monotonic() - started
    return network, spec, report


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
