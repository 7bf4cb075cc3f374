"""Per-key windows across micro-batches: ``groupBy(key).transformWithStateInPandas``.

State per key is its last ``length - 1`` events (bounded), expiring after ``ttl_ms`` without
events. Each new event comes out with the window ending at it, built by
``pipeline.sequencing.extend_windows`` in log order (partition, offset). Malformed rows arrive
under the dead-letter group and pass through untouched, so every input row comes out once.
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

from pipeline.parsing import DEAD_LETTER_GROUP
from pipeline.sequencing import extend_windows

WINDOW_SCHEMA = StructType([
    StructField("key", StringType()), StructField("event_time_ms", LongType()),
    StructField("topic", StringType()), StructField("partition", IntegerType()),
    StructField("offset", LongType()), StructField("kafka_timestamp", TimestampType()),
    StructField("window", ArrayType(FloatType())), StructField("window_length", IntegerType()),
    StructField("value", BinaryType()), StructField("reason", StringType()),
])  # fmt: skip
_STATE_SCHEMA = StructType([StructField("context", ArrayType(FloatType()))])
_COLUMNS = [f.name for f in WINDOW_SCHEMA.fields]


class WindowProcessor(StatefulProcessor):
    def __init__(self, length: int, features: int, ttl_ms: int | None) -> None:
        self.length = length
        self.features = features
        self.ttl_ms = ttl_ms

    def init(self, handle: StatefulProcessorHandle) -> None:
        self.context = handle.getValueState("context", _STATE_SCHEMA, self.ttl_ms)

    def handleInputRows(self, key: Any, rows: Iterator[pd.DataFrame], timerValues: Any) -> Iterator[pd.DataFrame]:
        batch = pd.concat(list(rows), ignore_index=True)
        batch = batch.rename(columns={"timestamp": "kafka_timestamp"})
        if key[0] == DEAD_LETTER_GROUP:
            batch["window"] = None
            batch["window_length"] = 0
            yield batch[_COLUMNS]
            return
        batch = batch.sort_values(["partition", "offset"], kind="stable", ignore_index=True)
        stored = self.context.get() if self.context.exists() else None
        context = np.asarray(stored[0] if stored else [], np.float32).reshape(-1, self.features)
        events = np.stack(batch["features"].to_numpy()).astype(np.float32, copy=False)
        windows = extend_windows(context, events, self.length)
        self.context.update((windows.context.ravel().tolist(),))
        batch["window"] = list(windows.windows.reshape(len(batch), -1))
        batch["window_length"] = windows.lengths.astype(np.int32)
        batch["value"] = None
        yield batch[_COLUMNS]

    def close(self) -> None:
        pass
