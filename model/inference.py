"""Scoring windows with a loaded model: normalise, batch, run under ``inference_mode``.

One ``WindowScorer`` per Python worker: it holds the network on its device and scores any
number of windows in model batches of ``batch_size``. Windows come from
``model.windows.extend_windows`` (left-aligned, with lengths).
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass

import numpy as np
import torch

from seqstream.model.artifact import LoadedModel
from seqstream.model.errors import ModelError
from seqstream.model.spec import (
    PER_KEY_STD_FLOOR,
    ClassificationTask,
    ForecastTask,
    ModelSpec,
)
from seqstream.model.windows import empty_state, extend_windows

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Scores:
    score: np.ndarray  # [n] float64: anomaly score, regression value or class probability
    prediction: np.ndarray  # [n, outputs] float64: forecast (original units) or head output


def window_frame(
    windows: np.ndarray, lengths: np.ndarray, spec: ModelSpec
) -> tuple[np.ndarray, np.ndarray]:
    """The mean and std each window is normalised with, [n or 1, 1, features] float64: the
    global ones, or with ``normalization.per_key`` the window's own over its input events (a
    forecast's target, the last event, left out; std floored, see ``PER_KEY_STD_FLOOR``)."""
    norm = spec.normalization
    if not norm.per_key:
        return np.asarray(norm.mean)[None, None], np.asarray(norm.std)[None, None]
    inputs = lengths - 1 if isinstance(spec.task, ForecastTask) else lengths
    real = (np.arange(windows.shape[1])[None, :] < inputs[:, None])[:, :, None]
    count = np.maximum(inputs, 1)[:, None, None]
    values = windows.astype(np.float64)
    mean = np.where(real, values, 0.0).sum(axis=1, keepdims=True) / count
    var = np.where(real, (values - mean) ** 2, 0.0).sum(axis=1, keepdims=True) / count
    return mean, np.maximum(np.sqrt(var), PER_KEY_STD_FLOOR * (np.abs(mean) + 1.0))


def normalize(windows: np.ndarray, lengths: np.ndarray, spec: ModelSpec) -> np.ndarray:
    """(x - mean) / std (``window_frame``) on real positions; padding stays exactly zero."""
    mean, std = window_frame(windows, lengths, spec)
    if spec.normalization.per_key:
        normed = ((windows - mean) / std).astype(np.float32)
    else:
        normed = (windows.astype(np.float32, copy=False) - mean.astype(np.float32)) / std.astype(
            np.float32
        )
    real = np.arange(windows.shape[1])[None, :] < lengths[:, None]
    normed[~real] = 0.0
    return normed


def clip_inputs(inputs: np.ndarray, spec: ModelSpec) -> np.ndarray:
    """What the LSTM reads: the normalised inputs, clipped to ``normalization.clip`` if set."""
    clip = spec.normalization.clip
    return inputs if clip is None else np.clip(inputs, -clip, clip)


def forecast_split(
    normed: np.ndarray, lengths: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A forecast reads each window minus its last event and predicts that event.

    Returns (inputs [n, T-1, F] left-aligned, input lengths [n], targets [n, F])."""
    rows = np.arange(len(lengths))
    targets = normed[rows, lengths - 1].copy()
    inputs = normed[:, :-1].copy()
    short = lengths < normed.shape[1]  # their target sits inside the inputs: make it padding
    inputs[rows[short], lengths[short] - 1] = 0.0
    return inputs, lengths - 1, targets


def forecast_scores(error: np.ndarray, std: np.ndarray, task: ForecastTask) -> np.ndarray:
    """RMS over features of the forecast error (normalised units, [n, F]) over the task's
    ``error_std``, the error first taken back to the event's units (times the ``std`` it was
    normalised with, [n or 1, F]) when ``error_units`` is ``original``."""
    if task.error_units == "original":
        error = error * std
    return np.sqrt(np.mean((error / np.asarray(task.error_std)) ** 2, axis=1))


def resolve_device(requested: str) -> torch.device:
    """``cuda`` (or ``cuda:N``) when available, else the CPU with a warning."""
    if requested.startswith("cuda"):
        if torch.cuda.is_available():
            return torch.device(requested)
        log.warning("device %r requested but CUDA is not available: scoring on the CPU", requested)
        return torch.device("cpu")
    if requested != "cpu":
        raise ModelError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {requested!r}")
    return torch.device("cpu")


class ModelRunner:
    """What every scorer holds: the network on its device, model batches of ``batch_size``.
    ``dtype=torch.bfloat16`` runs the network in bf16 (faster on GPUs, scores differ slightly:
    ``bench/model.py`` reports by how much). ``pin_memory`` (default: on for CUDA) stages each
    call's inputs in page-locked memory once so batches copy to the GPU asynchronously."""

    def __init__(
        self,
        model: LoadedModel,
        *,
        device: str = "cpu",
        batch_size: int = 1024,
        num_threads: int | None = 1,
        dtype: torch.dtype = torch.float32,
        pin_memory: bool | None = None,
    ) -> None:
        self.check_kind(model.spec)
        if batch_size < 1:
            raise ModelError(f"batch_size must be at least 1, got {batch_size}")
        if num_threads is not None:
            torch.set_num_threads(
                num_threads
            )  # one per Spark worker: workers already fill the cores
        self.spec = model.spec
        self.device = resolve_device(device)
        self.batch_size = batch_size
        self.dtype = dtype
        self.pin_memory = (
            self.device.type == "cuda"
            if pin_memory is None
            else pin_memory and self.device.type == "cuda"
        )
        # A copy: moving or casting the caller's module in place would change it under other scorers.
        self.network = copy.deepcopy(model.network).to(self.device, dtype).eval()
        self.network.lstm.flatten_parameters()  # one contiguous weight buffer for cuDNN

    def check_kind(self, spec: ModelSpec) -> None:
        """Refuse a model of a kind this scorer cannot score."""


class WindowScorer(ModelRunner):
    """Scores windows (``score``) of a window model; the options are ``ModelRunner``'s."""

    def check_kind(self, spec: ModelSpec) -> None:
        if spec.kind != "window":
            raise ModelError(
                f"model {spec.version} is a {spec.kind} model: score it with CarryScorer"
            )

    def _run(self, inputs: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """The network over ``inputs`` in model batches; [n, outputs] float32."""
        if not len(inputs):
            return np.zeros((0, self.spec.head.output_size), np.float32)
        x_all = torch.from_numpy(np.ascontiguousarray(inputs))
        if self.pin_memory:
            x_all = x_all.pin_memory()
        n_all = torch.from_numpy(lengths)
        outputs = []
        with torch.inference_mode():
            for start in range(0, len(inputs), self.batch_size):
                x = x_all[start : start + self.batch_size].to(
                    self.device, self.dtype, non_blocking=self.pin_memory
                )
                outputs.append(self.network(x, n_all[start : start + self.batch_size]).float())
            return torch.cat(outputs).cpu().numpy()

    def score(self, windows: np.ndarray, lengths: np.ndarray) -> Scores:
        """Score each window; every length must be at least the model's ``window.min_length``."""
        spec = self.spec
        window = spec.window_spec
        lengths = np.asarray(lengths, dtype=np.int64)
        if (
            windows.ndim != 3
            or windows.shape[2] != len(spec.features)
            or windows.shape[1] != window.length
        ):
            raise ModelError(
                f"windows must be [n, {window.length}, {len(spec.features)}] for model "
                f"{spec.version} (features {spec.features}), got {list(windows.shape)}"
            )
        if len(lengths) and (lengths.min() < window.min_length or lengths.max() > window.length):
            raise ModelError(
                f"window lengths must be within [{window.min_length}, {window.length}], "
                f"got [{lengths.min()}, {lengths.max()}]"
            )
        normed = normalize(windows, lengths, spec)
        if isinstance(spec.task, ForecastTask):
            inputs, input_lengths, targets = forecast_split(normed, lengths)
            forecast = self._run(clip_inputs(inputs, spec), input_lengths).astype(np.float64)
            mean, std = window_frame(windows, lengths, spec)
            score = forecast_scores(targets - forecast, std[:, 0], spec.task)
            return Scores(score, forecast * std[:, 0] + mean[:, 0])
        output = self._run(clip_inputs(normed, spec), lengths).astype(np.float64)
        if isinstance(spec.task, ClassificationTask):
            return Scores(output[:, -1], output)
        return Scores(output[:, 0], output)


def score_series(scorer: WindowScorer, events: np.ndarray) -> tuple[np.ndarray, Scores]:
    """One key's whole history at once (rows in log order), windowed by the streaming code.

    Returns the indices of the events that got a score (window long enough) and their scores."""
    window = scorer.spec.window_spec
    batch = extend_windows(empty_state(events.shape[1]), events, window.length)
    scored = np.flatnonzero(batch.lengths >= window.min_length)
    return scored, scorer.score(batch.windows[scored], batch.lengths[scored])
