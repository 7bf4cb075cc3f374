"""Per-key rolling windows: the one definition of "the sequence a score is computed from".

For each new event of a key, the window is the last ``length`` events of that key ending at it,
in log order. The streaming job calls ``keyed_windows`` once per Kafka partition and
micro-batch, for all of its keys at once, with each key's carried state (its last
``length - 1`` events); training and the offline reference call ``extend_windows`` (one key)
with an empty state. Same code, same windows.

Windows are left-aligned: row ``i`` holds ``lengths[i]`` events at positions ``0..lengths[i]-1``
and zeros after, which is the layout ``torch.nn.utils.rnn.pack_padded_sequence`` expects.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class WindowBatch:
    windows: np.ndarray  # [m, length, features], float32, left-aligned
    lengths: np.ndarray  # [m], int64, 1..length
    state: np.ndarray  # [<= length - 1, features]: what to carry to the next call


@dataclass(frozen=True)
class KeyedWindows:
    windows: np.ndarray  # [m, length, features], float32, left-aligned, in the events' order
    lengths: np.ndarray  # [m], int64, 1..length
    states: list[np.ndarray]  # per key: its last <= length - 1 events, to carry to the next call


def empty_state(features: int) -> np.ndarray:
    return np.zeros((0, features), dtype=np.float32)


def keyed_windows(
    states: Sequence[np.ndarray], codes: np.ndarray, events: np.ndarray, length: int
) -> KeyedWindows:
    """Windows ending at each of ``events`` (rows of many keys; ``codes[i]`` indexes event i's key
    in ``states``, and each key's events are in log order), each key's history preceded by its
    state. Vectorised over keys: one pass, whatever the number of keys."""
    if length < 1:
        raise ValueError(f"window length must be at least 1, got {length}")
    mismatched = [
        c.shape for c in states if events.ndim != 2 or c.ndim != 2 or c.shape[1] != events.shape[1]
    ]
    if events.ndim != 2 or mismatched:
        raise ValueError(
            f"context {mismatched[0] if mismatched else None} and new events {events.shape} must be "
            "[rows, features] with the same number of features"
        )
    codes = np.asarray(codes, np.int64)
    n, features = events.shape
    states = [c[max(len(c) - (length - 1), 0) :] for c in states]
    carried = np.array([len(c) for c in states], np.int64)
    counts = np.bincount(codes, minlength=len(states))
    sizes = carried + counts
    starts = (
        np.cumsum(sizes) - sizes
    )  # each key's segment of ``history``: its state, then its events
    history = np.zeros((int(sizes.sum()), features), np.float32)
    for start, state in zip(starts, states, strict=False):
        history[start : start + len(state)] = state
    order = np.argsort(codes, kind="stable")  # grouped by key, log order kept within a key
    grouped = codes[order]
    rank = np.arange(n) - (np.cumsum(counts) - counts)[grouped]
    position = np.empty(n, np.int64)
    position[order] = starts[grouped] + carried[grouped] + rank
    history[position] = events
    lengths = np.minimum(position - starts[codes] + 1, length)
    steps = np.arange(length)
    real = steps[None, :] < lengths[:, None]
    windows = history[np.where(real, position[:, None] - lengths[:, None] + 1 + steps[None, :], 0)]
    windows[~real] = 0.0
    ends = starts + sizes
    kept = [
        history[max(start, end - (length - 1)) : end].copy()
        for start, end in zip(starts, ends, strict=False)
    ]
    return KeyedWindows(windows, lengths, kept)


def extend_windows(state: np.ndarray, new_events: np.ndarray, length: int) -> WindowBatch:
    """Windows ending at each of ``new_events`` (one key's rows in log order), preceded by ``state``."""
    made = keyed_windows(
        [state.astype(np.float32, copy=False)],
        np.zeros(len(new_events), np.int64),
        new_events.astype(np.float32, copy=False),
        length,
    )
    return WindowBatch(made.windows, made.lengths, made.states[0])
