"""How well anomaly scores line up with labelled anomaly windows (NAB-style labels).

Two views: point-level ROC AUC (every event inside a window is a positive), and window-level
AUC, which compares the peak score inside each labelled window with the peaks of equally long
stretches outside any window. NAB labels wide windows around short anomalies and credits a
detector that fires anywhere in the window, so the window-level figure is the meaningful one;
the point-level one is reported alongside it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd


def roc_auc(positives: Sequence[float], negatives: Sequence[float]) -> float:
    """Probability that a random positive outscores a random negative (ties count half)."""
    pos, neg = np.asarray(positives, float), np.asarray(negatives, float)
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    ranks = pd.Series(np.concatenate([pos, neg])).rank().to_numpy()[: len(pos)]
    return float((ranks.sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def window_labels(ts_ms: np.ndarray, windows: Sequence[Sequence[str]]) -> np.ndarray:
    """True for events whose time falls inside any [start, end] window (UTC wall-clock)."""
    inside = np.zeros(len(ts_ms), dtype=bool)
    for start, end in windows:
        lo = pd.Timestamp(start, tz="UTC").value // 1_000_000
        hi = pd.Timestamp(end, tz="UTC").value // 1_000_000
        inside |= (ts_ms >= lo) & (ts_ms <= hi)
    return inside


def load_nab_windows(labels_file: Path, series_file: Path) -> list[list[str]]:
    """The windows of one series from an ``anomaly_windows.json`` keyed by ``group/file.csv``."""
    labels = json.loads(labels_file.read_text())
    return labels[f"{series_file.parent.name}/{series_file.name}"]


def point_auc(scores: np.ndarray, inside: np.ndarray) -> float:
    return roc_auc(scores[inside], scores[~inside])


def window_auc(scores: np.ndarray, inside: np.ndarray) -> float:
    """Peak score per labelled window vs peaks of window-long stretches clear of every window."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], inside.astype(np.int8), [0]])))
    runs = list(zip(edges[::2], edges[1::2], strict=True))
    if not runs:
        return float("nan")
    width = int(np.mean([end - start for start, end in runs]))
    peaks_in = [scores[start:end].max() for start, end in runs]
    peaks_out = [
        scores[i : i + width].max()
        for i in range(0, len(scores) - width + 1, width)
        if not inside[i : i + width].any()
    ]
    return roc_auc(peaks_in, peaks_out)


# --- naive baselines: what a careful user would write before training anything ---------------


def persistence_scores(values: np.ndarray) -> np.ndarray:
    """|x_t - x_(t-1)|, the largest over features ([n, features] -> [n]; the first event 0)."""
    values = np.asarray(values, np.float64).reshape(len(values), -1)
    jumps = np.abs(np.diff(values, axis=0)).max(axis=1) if len(values) > 1 else np.zeros(0)
    return np.concatenate([[0.0], jumps])


def rolling_zscores(values: np.ndarray, window: int) -> np.ndarray:
    """|x_t - mean| / std of the ``window - 1`` events before each one (a window-model's view of
    the key's history), the largest over features; the std floored as per-key normalisation
    floors it (0 until two events came before)."""
    frame = pd.DataFrame(np.asarray(values, np.float64).reshape(len(values), -1))
    before = frame.shift(1).rolling(window - 1, min_periods=2)
    mean, std = before.mean(), before.std(ddof=0)
    floor = 1e-3 * (mean.abs() + 1.0)
    z = (frame - mean).abs() / np.maximum(std, floor)
    return z.max(axis=1).fillna(0.0).to_numpy()
