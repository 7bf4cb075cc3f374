"""Per-key windows across micro-batches: ``groupBy(topic, partition).transformWithStateInPandas``.

The key decides the Kafka partition, so all of a key's events are in one partition, in log
order. Grouping by partition makes one Python call per partition and batch (not one per key)
and keeps a map state of key -> its last ``length - 1`` events (bounded), each entry expiring
after ``ttl_ms`` without events. Each new event comes out with the window ending at it, built
by ``pipeline.sequencing.extend_windows``. Malformed rows pass through untouched, so every
input row comes out once.
"""

from __future__ import annotations

from collections.abc import Iterator
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


class WindowProcessor(StatefulProcessor):
    def __init__(self, length: int, features: int, ttl_ms: int | None) -> None:
        self.length = length
        self.features = features
        self.ttl_ms = ttl_ms

    def init(self, handle: StatefulProcessorHandle) -> None:
        self.contexts = handle.getMapState("contexts", _STATE_KEY, _STATE_VALUE, self.ttl_ms)

    def handleInputRows(self, key: Any, rows: Iterator[pd.DataFrame], timerValues: Any) -> Iterator[pd.DataFrame]:
        batch = pd.concat(list(rows), ignore_index=True).rename(columns={"timestamp": "kafka_timestamp"})
        dead = batch[batch["reason"].notna()].copy()
        if len(dead):
            dead["window"] = None
            dead["window_length"] = 0
            yield dead[_COLUMNS]
        valid = batch[batch["reason"].isna()].sort_values("offset", kind="stable")
        if valid.empty:
            return
        windows, lengths = [], []
        keyed = valid.groupby("key", sort=False)
        for event_key, rows_of_key in keyed:
            stored = self.contexts.getValue((event_key,))
            context = np.asarray(stored[0] if stored else [], np.float32).reshape(-1, self.features)
            events = np.stack(rows_of_key["features"].to_numpy()).astype(np.float32, copy=False)
            made = extend_windows(context, events, self.length)
            self.contexts.updateValue((event_key,), (made.context.ravel().tolist(),))
            windows.append(made.windows.reshape(len(events), -1))
            lengths.append(made.lengths)
        out = pd.concat([rows for _, rows in keyed], ignore_index=True)
        out["window"] = list(np.concatenate(windows))
        out["window_length"] = np.concatenate(lengths).astype(np.int32)
        out["value"] = None
        yield out[_COLUMNS]

    def close(self) -> None:
        pass
