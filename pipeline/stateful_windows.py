"""Per-key windows across micro-batches: ``groupBy(topic, partition).transformWithStateInPandas``.

The key decides the Kafka partition, so all of a key's events are in one partition, in log
order. Grouping by partition makes one Python call per partition and batch (not one per key)
and keeps a map state of key -> its last ``length - 1`` events (bounded), each entry expiring
after ``ttl_ms`` without events. The step takes the raw Kafka rows: it parses them
(``pipeline.parsing.parse_values``), builds every key's windows in one pass
(``pipeline.sequencing.keyed_windows``) and scores them, so events cross from the JVM to Python
once. Malformed rows come out as dead letters, so every input row comes out once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql.streaming.stateful_processor import StatefulProcessor, StatefulProcessorHandle
from pyspark.sql.types import (
    ArrayType, BinaryType, FloatType, IntegerType, LongType, StringType, StructField, StructType,
    TimestampType,
)  # fmt: skip

from pipeline.config import EventSchema
from pipeline.parsing import parse_values
from pipeline.sequencing import empty_context, keyed_windows

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


@dataclass(frozen=True)
class WindowedRows:
    """One partition's rows: ``rows`` in ``WINDOW_SCHEMA`` (``window`` left empty), events first
    in log order, then the dead letters; ``windows[i]`` is row i's window (zeros for a dead
    letter); ``contexts`` each key's events to carry to the next batch."""

    rows: pd.DataFrame
    windows: np.ndarray
    contexts: dict[str, np.ndarray]


def window_rows(kafka_rows: pd.DataFrame, context_of: Callable[[str], np.ndarray | None], length: int,
                schema: EventSchema, max_bytes: int) -> WindowedRows:  # fmt: skip
    """Parse the Kafka rows of one partition (columns ``value, topic, partition, offset,
    kafka_timestamp``, any order) and window each valid event. ``context_of(key)`` is the key's
    carried events, if any. Shared by the streaming processor and the backfill."""
    width = len(schema.features)
    parsed = parse_values(kafka_rows["value"].tolist(), schema, max_bytes)
    dead = np.flatnonzero(pd.notna(parsed.reason))
    valid = np.flatnonzero(pd.isna(parsed.reason))
    valid = valid[np.argsort(kafka_rows["offset"].to_numpy()[valid], kind="stable")]
    codes, keys = pd.factorize(parsed.key[valid])
    stored = [context_of(k) for k in keys]
    made = keyed_windows([empty_context(width) if c is None else c for c in stored], codes, parsed.features[valid], length)
    ordered = np.concatenate([valid, dead])
    is_dead = np.arange(len(ordered)) >= len(valid)
    rows = kafka_rows.iloc[ordered].reset_index(drop=True)
    rows["key"] = parsed.key[ordered]
    rows["event_time_ms"] = pd.Series(parsed.event_time_ms[ordered], dtype="Int64").mask(is_dead)
    rows["window"] = None
    rows["window_length"] = np.concatenate([made.lengths, np.zeros(len(dead), np.int64)]).astype(np.int32)
    rows["value"] = rows["value"].where(is_dead, None)  # events' bytes are not sent back
    rows["reason"] = parsed.reason[ordered]
    windows = np.concatenate([made.windows, np.zeros((len(dead), length, width), np.float32)])
    return WindowedRows(rows[_COLUMNS], windows, dict(zip(keys, made.contexts)))


class WindowProcessor(StatefulProcessor):
    """Windows and scores them in the same step (``pipeline.scoring.score_windows``), so the
    window arrays never travel to the JVM and back; output rows follow ``SCORED_SCHEMA``."""

    def __init__(self, length: int, ttl_ms: int | None, ref: Any, schema: EventSchema, max_bytes: int) -> None:
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

    def handleInputRows(self, key: Any, rows: Iterator[pd.DataFrame], timerValues: Any) -> Iterator[pd.DataFrame]:
        batch = pd.concat(list(rows), ignore_index=True).rename(columns={"timestamp": "kafka_timestamp"})
        from pipeline.scoring import score_windows

        made = window_rows(batch, self._context_of, self.length, self.schema, self.max_bytes)
        for event_key, context in made.contexts.items():
            self.contexts.updateValue((event_key,), (context.ravel().tolist(),))
        if len(made.rows):
            yield score_windows(made.rows, made.windows, self.ref)

    def close(self) -> None:
        pass
