"""Carry models: each key's LSTM state carried from event to event, one LSTM step per event.

A key's state is one float64 vector (``CarryLayout``): its event count, its running statistics
(per-key normalisation only), each layer's ``h`` and ``c``, and the forecast made at its last
event (forecast task only). Scoring a batch of events of many keys is one packed ``nn.LSTM``
call per model batch of keys: each key's new events in log order as one sequence, its carried
``(h, c)`` as the initial state. The outputs give every event's score, the final states are the
keys' new state. Running the same events in one call or in many, from the state left by the
previous call, gives the same scores (to float32 rounding): streaming, backfill, training and
the offline reference all go through ``CarryScorer`` or the same equations.

Per event t of a key (``z`` = normalised event, ``f`` = head output):
    z_t = (x_t - mean_{<t}) / std_{<t}   (global stats, or the key's running ones before t)
    o_t, (h_t, c_t) = LSTM(clip(z_t, +-CARRY_INPUT_CLIP), (h_{t-1}, c_{t-1}));  f_t = head(o_t)
    forecast: score_t = RMS((z_t - f_{t-1}) [* std_{<t}] / error_std) (``* std`` with error_units
    original), prediction_t = f_{t-1} in x's units
    regression / classification: from f_t, as for window models
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch

from seqstream.model.errors import ModelError
from seqstream.model.inference import ModelRunner, forecast_scores
from seqstream.model.spec import (
    CARRY_INPUT_CLIP,
    PER_KEY_STD_FLOOR,
    ClassificationTask,
    ForecastTask,
    ModelSpec,
)


@dataclass(frozen=True)
class CarryLayout:
    """Where each part of a key's state sits in its vector (slices into float64[size])."""

    features: int
    layers: int
    h_size: int  # proj_size when projecting, else hidden_size
    c_size: int
    per_key: bool
    forecast: bool

    @classmethod
    def of(cls, spec: ModelSpec) -> CarryLayout:
        lstm = spec.lstm
        return cls(
            len(spec.features),
            lstm.num_layers,
            lstm.proj_size or lstm.hidden_size,
            lstm.hidden_size,
            spec.normalization.per_key,
            isinstance(spec.task, ForecastTask),
        )

    def _spans(self) -> dict[str, tuple[int, int]]:
        f = self.features
        sizes = {
            "count": 1,
            "shift": f if self.per_key else 0,  # the key's first event: sums are kept from it
            "sum": f if self.per_key else 0,
            "sum_sq": f if self.per_key else 0,
            "h": self.layers * self.h_size,
            "c": self.layers * self.c_size,
            "forecast": f if self.forecast else 0,
        }
        spans, at = {}, 0
        for name, size in sizes.items():
            spans[name] = (at, at + size)
            at += size
        return spans

    @property
    def size(self) -> int:
        return self._spans()["forecast"][1]

    def part(self, states: np.ndarray, name: str) -> np.ndarray:
        """``states[:, part]`` (a view) for states [keys, size]."""
        lo, hi = self._spans()[name]
        return states[:, lo:hi]


@dataclass(frozen=True)
class CarryScores:
    """Per event, in the order given: score (NaN before the key's ``min_events``-th event),
    prediction (forecast in original units, or head output), and the event's 1-based position
    in its key's history."""

    score: np.ndarray  # [n] float64
    prediction: np.ndarray  # [n, outputs] float64
    position: np.ndarray  # [n] int64
    model_batch: np.ndarray  # [n] int64: events in the packed LSTM call that read the event


def running_stats(
    x: np.ndarray, lengths: np.ndarray, states: np.ndarray, layout: CarryLayout
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Per-key normalisation: mean and std of each key's events before each step (x [keys, T, F]
    float64, padded), and the running sums after the last step. Sums are kept from the key's
    first event (shifted data: no cancellation for large values)."""
    count = layout.part(states, "count")[:, 0]
    shift = np.where(
        (count == 0)[:, None], x[:, 0], layout.part(states, "shift")
    )  # a new key starts its sums at its first event
    steps = np.arange(x.shape[1])
    real = (steps[None, :] < lengths[:, None])[:, :, None]
    d = np.where(real, x - shift[:, None], 0.0)
    inclusive_1 = np.cumsum(d, axis=1) + layout.part(states, "sum")[:, None]
    inclusive_2 = np.cumsum(d * d, axis=1) + layout.part(states, "sum_sq")[:, None]
    before_1 = np.concatenate([layout.part(states, "sum")[:, None], inclusive_1[:, :-1]], axis=1)
    before_2 = np.concatenate([layout.part(states, "sum_sq")[:, None], inclusive_2[:, :-1]], axis=1)
    n = np.maximum(count[:, None] + steps[None, :], 1)[:, :, None]
    mean_d = before_1 / n
    var = np.maximum(before_2 / n - mean_d**2, 0.0)
    mean = shift[:, None] + mean_d
    std = np.maximum(np.sqrt(var), PER_KEY_STD_FLOOR * (np.abs(mean) + 1.0))
    last = np.maximum(lengths - 1, 0)
    rows = np.arange(len(lengths))
    after = {
        "shift": shift,
        "sum": inclusive_1[rows, last],
        "sum_sq": inclusive_2[rows, last],
    }
    return mean, std, after


class CarryScorer(ModelRunner):
    """Scores events from carried per-key states, ``batch_size`` keys per packed LSTM call.
    One per Python worker; the options are ``ModelRunner``'s, as for ``WindowScorer``."""

    def check_kind(self, spec: ModelSpec) -> None:
        if spec.kind != "carry":
            raise ModelError(f"model {spec.version} is a {spec.kind} model, not a carry model")

    @cached_property
    def layout(self) -> CarryLayout:
        return CarryLayout.of(self.spec)

    @property
    def state_size(self) -> int:
        return self.layout.size

    def score(
        self, states: list[np.ndarray | None], codes: np.ndarray, events: np.ndarray
    ) -> tuple[CarryScores, list[np.ndarray]]:
        """Score ``events`` ([n, features], many keys: ``codes[i]`` indexes event i's key in
        ``states``; each key's events in log order) from each key's state (None: a new key,
        zeros). Returns the scores in the events' order and every key's state after them."""
        spec, layout = self.spec, self.layout
        codes = np.asarray(codes, np.int64)
        n = len(codes)
        if events.ndim != 2 or events.shape[1] != layout.features or len(events) != n:
            raise ModelError(
                f"events must be [{n}, {layout.features}] for model {spec.version} (features "
                f"{spec.features}), got {list(events.shape)}"
            )
        keys = len(states)
        carried = np.zeros((keys, layout.size), np.float64)
        for i, state in enumerate(states):
            if state is not None:
                if state.shape != (layout.size,):
                    raise ModelError(
                        f"a carried state of {state.shape} does not fit model {spec.version} "
                        f"(state size {layout.size})"
                    )
                carried[i] = state
        counts = np.bincount(codes, minlength=keys)
        steps = int(counts.max(initial=0))
        order = np.argsort(codes, kind="stable")
        grouped = codes[order]
        rank = np.arange(n) - (np.cumsum(counts) - counts)[grouped]
        x = np.zeros((keys, max(steps, 1), layout.features), np.float64)
        x[grouped, rank] = events[order]
        z, mean, std, after = self._normalise(x, counts, carried)
        outputs, h_n, c_n = self._run(
            np.clip(z, -CARRY_INPUT_CLIP, CARRY_INPUT_CLIP), counts, carried
        )
        head = outputs.astype(np.float64)  # [keys, T, outputs]
        position = layout.part(carried, "count")[:, 0].astype(np.int64)[grouped] + rank + 1
        score = np.full(n, np.nan)
        if isinstance(spec.task, ForecastTask):
            previous = np.concatenate(
                [layout.part(carried, "forecast")[:, None], head[:, :-1]], axis=1
            )
            std_used = np.broadcast_to(std, z.shape)[grouped, rank]
            all_scores = forecast_scores((z - previous)[grouped, rank], std_used, spec.task)
            prediction = (previous * std + mean)[grouped, rank]
        else:
            pick = -1 if isinstance(spec.task, ClassificationTask) else 0
            all_scores = head[grouped, rank, pick]
            prediction = head[grouped, rank]
        ready = position >= spec.min_events
        score[order[ready]] = all_scores[ready]
        predictions = np.empty((n, prediction.shape[1]), np.float64)
        predictions[order] = prediction
        positions = np.empty(n, np.int64)
        positions[order] = position
        call = np.cumsum(counts > 0) - 1  # keys with events, batch_size to a call
        call = np.where(counts > 0, call // self.batch_size, -1)
        per_call = np.bincount(call[counts > 0], weights=counts[counts > 0]).astype(np.int64)
        model_batch = per_call[call[codes]] if n else np.zeros(0, np.int64)
        new = carried.copy()
        layout.part(new, "count")[:, 0] += counts
        if layout.per_key:
            for name, values in after.items():
                layout.part(new, name)[:] = np.where(
                    (counts > 0)[:, None], values, layout.part(carried, name)
                )
        layout.part(new, "h")[:] = h_n
        layout.part(new, "c")[:] = c_n
        if layout.forecast:
            last = head[np.arange(keys), np.maximum(counts - 1, 0)]
            layout.part(new, "forecast")[:] = np.where(
                (counts > 0)[:, None], last, layout.part(carried, "forecast")
            )
        return CarryScores(score, predictions, positions, model_batch), list(new)

    def _normalise(
        self, x: np.ndarray, counts: np.ndarray, carried: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """z (float64, zeros past each key's events) and the mean and std each step used."""
        norm = self.spec.normalization
        if self.layout.per_key:
            mean, std, after = running_stats(x, counts, carried, self.layout)
        else:
            mean = np.asarray(norm.mean, np.float64)[None, None]
            std = np.asarray(norm.std, np.float64)[None, None]
            after = {}
        real = (np.arange(x.shape[1])[None, :] < counts[:, None])[:, :, None]
        z = np.where(real, (x - mean) / std, 0.0)
        return z, mean, std, after

    def _run(
        self, z: np.ndarray, counts: np.ndarray, carried: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The LSTM and head over every key's steps from its carried (h, c), ``batch_size`` keys
        per packed call: head outputs [keys, T, outputs] and the final h, c (flat per key)."""
        layout = self.layout
        keys = len(counts)
        h0 = layout.part(carried, "h").reshape(keys, layout.layers, layout.h_size)
        c0 = layout.part(carried, "c").reshape(keys, layout.layers, layout.c_size)
        outputs = np.zeros((keys, z.shape[1], self.spec.head.output_size), np.float32)
        h_n = layout.part(carried, "h").copy()
        c_n = layout.part(carried, "c").copy()
        live = np.flatnonzero(counts > 0)  # packing refuses empty sequences
        x_all = torch.from_numpy(z.astype(np.float32))
        if self.pin_memory:
            x_all = x_all.pin_memory()
        with torch.inference_mode():
            for start in range(0, len(live), self.batch_size):
                rows = live[start : start + self.batch_size]
                steps = int(counts[rows].max())
                index = torch.from_numpy(rows)
                x = x_all[index, :steps].to(self.device, self.dtype, non_blocking=self.pin_memory)
                state = tuple(
                    torch.from_numpy(np.ascontiguousarray(s[rows].transpose(1, 0, 2)))
                    .to(self.device, self.dtype)
                    .contiguous()
                    for s in (h0, c0)
                )
                out, (h, c) = self.network.steps(
                    x, torch.from_numpy(counts[rows]), (state[0], state[1])
                )
                outputs[rows, :steps] = self.network.head_output(out).float().cpu().numpy()
                h_n[rows] = h.float().cpu().numpy().transpose(1, 0, 2).reshape(len(rows), -1)
                c_n[rows] = c.float().cpu().numpy().transpose(1, 0, 2).reshape(len(rows), -1)
        return outputs, h_n, c_n


def score_history(scorer: CarryScorer, events: np.ndarray) -> CarryScores:
    """One key's whole history ([n, features], log order) from a zero state."""
    scores, _ = scorer.score([None], np.zeros(len(events), np.int64), events)
    return scores
