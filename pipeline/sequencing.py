"""Per-key rolling windows: the one definition of "the sequence a score is computed from".

For each new event of a key, the window is the last ``length`` events of that key ending at it,
in log order. The streaming job calls ``extend_windows`` once per key and micro-batch with the
key's carried context (its last ``length - 1`` events); training and the offline reference call
it once with an empty context. Same code, same windows.

Windows are left-aligned: row ``i`` holds ``lengths[i]`` events at positions ``0..lengths[i]-1``
and zeros after, which is the layout ``torch.nn.utils.rnn.pack_padded_sequence`` expects.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


@dataclass(frozen=True)
class WindowBatch:
    windows: np.ndarray  # [m, length, features], float32, left-aligned
    lengths: np.ndarray  # [m], int64, 1..length
    context: np.ndarray  # [<= length - 1, features]: what to carry to the next call


def empty_context(features: int) -> np.ndarray:
    return np.zeros((0, features), dtype=np.float32)


def extend_windows(context: np.ndarray, new_events: np.ndarray, length: int) -> WindowBatch:
    """Windows ending at each of ``new_events`` (rows in log order), preceded by ``context``."""
    if length < 1:
        raise ValueError(f"window length must be at least 1, got {length}")
    if new_events.ndim != 2 or context.ndim != 2 or context.shape[1] != new_events.shape[1]:
        raise ValueError(
            f"context {context.shape} and new events {new_events.shape} must be [rows, features] "
            "with the same number of features"
        )
    context = context[max(len(context) - (length - 1), 0) :]
    history = np.concatenate([context, new_events]).astype(np.float32, copy=False)
    m, features = new_events.shape
    start = len(context)
    # Right-aligned windows over a zero-padded front, then shift the short ones left.
    padded = np.concatenate([np.zeros((length - 1, features), np.float32), history])
    windows = sliding_window_view(padded, (length, features))[start : start + m, 0].copy()
    ends = np.arange(start, start + m)  # index in history of each window's last event
    lengths = np.minimum(ends + 1, length).astype(np.int64)
    for i in np.flatnonzero(lengths < length):  # at most length - 1 of them, at a key's start
        n = lengths[i]
        windows[i, :n] = windows[i, length - n :]
        windows[i, n:] = 0.0
    return WindowBatch(windows, lengths, history[max(len(history) - (length - 1), 0) :].copy())
