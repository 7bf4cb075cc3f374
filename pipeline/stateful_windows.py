"""The streaming job's state adapter: ``groupBy(topic, partition).transformWithStateInPandas``.

Grouping by Kafka partition makes one Python call per partition and micro-batch (not one per
key). The processor keeps a map state of key -> its last ``length - 1`` events (bounded), each
entry expiring after ``ttl_ms`` without events, and hands the rows to the shared windowing step
(``window_step``) and to scoring (``scoring``) in the same Python call, so events cross from the
JVM to Python once and window arrays never travel back.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql.streaming.stateful_processor import StatefulProcessor, StatefulProcessorHandle
from pyspark.sql.types import ArrayType, FloatType, StringType, StructField, StructType

from seqstream.pipeline.config import EventSchema
from seqstream.pipeline.scoring import ModelRef, score_windows
from seqstream.pipeline.window_step import window_rows

_STATE_KEY = StructType([StructField("key", StringType())])
_STATE_VALUE = StructType([StructField("context", ArrayType(FloatType()))])


class WindowProcessor(StatefulProcessor):
    """Windows and scores them in the same step (``scoring.score_windows``), so the
    window arrays never travel to the JVM and back; output rows follow ``SCORED_SCHEMA``."""

    def __init__(
        self, length: int, ttl_ms: int | None, ref: ModelRef, schema: EventSchema, max_bytes: int
    ) -> None:
        self.length = length
        self.features = len(schema.features)
        self.ttl_ms = ttl_ms
        self.ref = ref
        self.schema = schema
        self.max_bytes = max_bytes

    def init(self, handle: StatefulProcessorHandle) -> None:
        self.contexts = handle.getMapState("contexts", _STATE_KEY, _STATE_VALUE, self.ttl_ms)

    def _context_of(self, event_key: str) -> np.ndarray | None:
        stored = self.contexts.getValue((event_key,))
        return np.asarray(stored[0], np.float32).reshape(-1, self.features) if stored else None

    def handleInputRows(
        self, key: Any, rows: Iterator[pd.DataFrame], timerValues: Any
    ) -> Iterator[pd.DataFrame]:
        batch = pd.concat(list(rows), ignore_index=True).rename(
            columns={"timestamp": "kafka_timestamp"}
        )
        made = window_rows(batch, self._context_of, self.length, self.schema, self.max_bytes)
        for event_key, context in made.contexts.items():
            self.contexts.updateValue((event_key,), (context.ravel().tolist(),))
        if len(made.rows):
            yield score_windows(made.rows, made.windows, self.ref)

    def close(self) -> None:
        pass
