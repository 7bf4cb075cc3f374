"""Per-key windows across micro-batches: ``groupBy(topic, partition).transformWithStateInPandas``.

The key decides the Kafka partition, so all of a key's events are in one partition, in log
order. Grouping by partition makes one Python call per partition and batch (not one per key)
and keeps a map state of key -> its last ``length - 1`` events (bounded), each entry expiring
after ``ttl_ms`` without events. Each new event comes out with the window ending at it, built
by ``pipeline.sequencing.extend_windows``. Malformed rows pass through untouched, so every
input row comes out once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql.streaming.stateful_processor import StatefulProcessor, StatefulProcessorHandle
from pyspark.sql.types import (
    ArrayType, BinaryType, FloatType, IntegerType, LongType, StringType, StructField, StructType,
    TimestampType,
)  # fmt: skip

from pipeline.sequencing import extend_windows

WINDOW_SCHEMA = StructType([
    StructField("key", StringType()), StructField("event_time_ms", LongType()),
    StructField("topic", StringType()), StructField("partition", IntegerType()),
    StructField("offset", LongType()), StructField("kafka_timestamp", TimestampType()),
    StructField("window", ArrayType(FloatType())), StructField("window_length", IntegerType()),
    StructField("value", BinaryType()), StructField("reason", StringType()),
])  # fmt: skip
_STATE_KEY = StructType([StructField("key", StringType())])
_STATE_VALUE = StructType([StructField("context", ArrayType(FloatType()))])
_COLUMNS = [f.name for f in WINDOW_SCHEMA.fields]


def window_rows(
    batch: pd.DataFrame, context_of: Callable[[str], np.ndarray | None], length: int, features: int
) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """The rows of one Kafka partition (any order), each valid event with the window ending at
    it, and each key's new context. ``context_of(key)`` is the key's carried events, if any.
    Shared by the streaming processor and the backfill, so both build the same windows."""
    dead = batch[batch["reason"].notna()].copy()
    dead["window"] = None
    dead["window_length"] = 0
    valid = batch[batch["reason"].isna()].sort_values("offset", kind="stable")
    if valid.empty:
        return dead[_COLUMNS], {}
    windows, lengths, contexts = [], [], {}
    keyed = valid.groupby("key", sort=False)
    for event_key, rows_of_key in keyed:
        stored = context_of(event_key)
        context = np.zeros((0, features), np.float32) if stored is None else stored
        events = np.stack(rows_of_key["features"].to_numpy()).astype(np.float32, copy=False)
        made = extend_windows(context, events, length)
        contexts[event_key] = made.context
        windows.append(made.windows.reshape(len(events), -1))
        lengths.append(made.lengths)
    out = pd.concat([rows for _, rows in keyed], ignore_index=True)
    out["window"] = list(np.concatenate(windows))
    out["window_length"] = np.concatenate(lengths).astype(np.int32)
    out["value"] = None
    return pd.concat([dead[_COLUMNS], out[_COLUMNS]], ignore_index=True) if len(dead) else out[_COLUMNS], contexts


class WindowProcessor(StatefulProcessor):
    """Windows and scores them in the same step (``pipeline.scoring.score_windows``), so the
    window arrays never travel to the JVM and back; output rows follow ``SCORED_SCHEMA``."""

    def __init__(self, length: int, features: int, ttl_ms: int | None, ref: Any) -> None:
        self.length = length
        self.features = features
        self.ttl_ms = ttl_ms
        self.ref = ref

    def init(self, handle: StatefulProcessorHandle) -> None:
        self.contexts = handle.getMapState("contexts", _STATE_KEY, _STATE_VALUE, self.ttl_ms)

    def _context_of(self, event_key: str) -> np.ndarray | None:
        stored = self.contexts.getValue((event_key,))
        return np.asarray(stored[0], np.float32).reshape(-1, self.features) if stored else None

    def handleInputRows(self, key: Any, rows: Iterator[pd.DataFrame], timerValues: Any) -> Iterator[pd.DataFrame]:
        batch = pd.concat(list(rows), ignore_index=True).rename(columns={"timestamp": "kafka_timestamp"})
        from pipeline.scoring import score_windows

        out, contexts = window_rows(batch, self._context_of, self.length, self.features)
        for event_key, context in contexts.items():
            self.contexts.updateValue((event_key,), (context.ravel().tolist(),))
        if len(out):
            yield score_windows(out, self.ref)

    def close(self) -> None:
        pass
