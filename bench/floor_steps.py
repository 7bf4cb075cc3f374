"""The stateful steps of Spark's floors in the harness (``bench.harness``): Spark's own cost of
the job's shape with nothing of seqstream's in it, and with the model's own work added. In a
module of their own so that workers import them (the harness runs as ``__main__``, whose
classes and cached functions would be pickled by value)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
from pyspark.sql.streaming.stateful_processor import StatefulProcessor

from seqstream.pipeline.scoring.worker import scorer_for

from bench.model import Workload, scoreable_windows, workload_series

FLOOR_INPUTS = 4096  # distinct windows or events the model floor cycles through


class NoopWindows(StatefulProcessor):
    """The job's stateful step with nothing in it: one MapState opened, the rows passed on
    (every column but the grouping key ``k``)."""

    def init(self, handle: Any) -> None:
        self.state = handle.getMapState("buckets", "bucket int", "entries binary")

    def handleInputRows(self, key: Any, rows: Any, timerValues: Any) -> Any:
        for frame in rows:
            yield frame.drop(columns="k")

    def close(self) -> None:
        pass


class ModelFloor(NoopWindows):
    """Spark's floor with the model's own work in it and nothing of seqstream's: per group, the
    job's scorer (cached per worker, one torch thread, the job's model batch) on as many of the
    workload's windows (window model) or events (carry model: a Kafka partition's keys, new
    each call) as the group has rows; the rows handed back as ``NoopWindows`` does.
    The inputs are made in the worker: a command this large would be a broadcast, which
    Spark's driver-side transformWithState runner cannot read."""

    def __init__(self, ref: Any, w: Workload, partitions: int, min_length: int | None) -> None:
        self.ref, self.w, self.partitions, self.min_length = ref, w, partitions, min_length

    def handleInputRows(self, key: Any, rows: Any, timerValues: Any) -> Any:
        frames = list(rows)
        inputs, lengths = floor_inputs(self.w, self.min_length)
        pick = np.arange(sum(len(frame) for frame in frames)) % len(inputs)
        scorer = scorer_for(self.ref)
        if lengths is not None:
            scorer.score(inputs[pick], lengths[pick])
        else:
            keys = self.w.keys // self.partitions
            scorer.score([None] * keys, pick % keys, inputs[pick])
        for frame in frames:
            yield frame.drop(columns="k")


@lru_cache(maxsize=2)
def floor_inputs(w: Workload, min_length: int | None) -> tuple[np.ndarray, np.ndarray | None]:
    """``ModelFloor``'s inputs, made once per worker: up to ``FLOOR_INPUTS`` of the workload's
    windows, all lengths (``min_length`` given: a window model), or of its events in time order
    across keys, as the job's partitions see them (a carry model)."""
    series = workload_series(w)
    if min_length is None:
        events = np.stack(list(series.values())).transpose(1, 0, 2).reshape(-1, w.features)
        return events[:FLOOR_INPUTS], None
    per_key = max(w.events_per_key - min_length + 1, 1)  # scoreable windows of a key
    first = dict(list(series.items())[: FLOOR_INPUTS // per_key + 1])
    windows, lengths = scoreable_windows(first, w.window, min_length)
    return windows[:FLOOR_INPUTS], lengths[:FLOOR_INPUTS]
