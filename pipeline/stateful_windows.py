"""The streaming job's state adapter: ``groupBy(topic, partition).transformWithStateInPandas``.

Grouping by Kafka partition makes one Python call per partition and micro-batch (not one per
key). The processor keeps each key's last ``length - 1`` events (bounded) in buckets of many
keys (``state_buckets``: two state calls per touched bucket, not per key), idle keys expiring
after ``ttl_ms``, and hands the rows to the shared windowing step (``window_step``) and to
scoring (``scoring``) in the same Python call, so events cross from the JVM to Python once and
window arrays never travel back.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql.streaming.stateful_processor import StatefulProcessor, StatefulProcessorHandle
from pyspark.sql.types import BinaryType, IntegerType, StructField, StructType

from seqstream.pipeline.config import EventSchema
from seqstream.pipeline.scoring import ModelRef, score_windows
from seqstream.pipeline.state_buckets import Carried, bucket_of, decode_bucket, encode_bucket
from seqstream.pipeline.window_step import window_rows

_STATE_KEY = StructType([StructField("bucket", IntegerType())])
_STATE_VALUE = StructType([StructField("entries", BinaryType())])
# Per Kafka partition: each bucket's key count and when it was last written (int32 and int64
# arrays), so the keys held are known without reading every bucket.
_INDEX = StructType([StructField("sizes", BinaryType()), StructField("written_ms", BinaryType())])


class WindowProcessor(StatefulProcessor):
    """Windows and scores them in the same step (``scoring.score_windows``), so the
    window arrays never travel to the JVM and back; output rows follow ``SCORED_SCHEMA``."""

    def __init__(
        self,
        length: int,
        ttl_ms: int | None,
        ref: ModelRef,
        schema: EventSchema,
        max_bytes: int,
        buckets: int,
    ) -> None:
        self.length = length
        self.features = len(schema.features)
        self.ttl_ms = ttl_ms
        self.ref = ref
        self.schema = schema
        self.max_bytes = max_bytes
        self.buckets = buckets

    def init(self, handle: StatefulProcessorHandle) -> None:
        self.state = handle.getMapState("buckets", _STATE_KEY, _STATE_VALUE, self.ttl_ms)
        self.index = handle.getValueState("index", _INDEX, self.ttl_ms)

    def _write(self, loaded: dict[int, dict[str, Carried]], now_ms: int) -> int:
        """Write the buckets read this batch and the index; returns the keys held now."""
        stored = self.index.get()
        sizes = np.zeros(self.buckets, np.int32)
        written = np.zeros(self.buckets, np.int64)
        if stored:
            sizes[:] = np.frombuffer(stored[0], np.int32)
            written[:] = np.frombuffer(stored[1], np.int64)
        for bucket, entries in loaded.items():  # each read for a key of this batch: never empty
            self.state.updateValue((bucket,), (encode_bucket(entries),))
            sizes[bucket], written[bucket] = len(entries), now_ms
        self.index.update((sizes.tobytes(), written.tobytes()))
        live = slice(None) if self.ttl_ms is None else now_ms - written < self.ttl_ms
        return int(sizes[live].sum())

    def handleInputRows(
        self, key: Any, rows: Iterator[pd.DataFrame], timerValues: Any
    ) -> Iterator[pd.DataFrame]:
        batch = pd.concat(list(rows), ignore_index=True).rename(
            columns={"timestamp": "kafka_timestamp"}
        )
        now_ms = int(timerValues.getCurrentProcessingTimeInMs())
        loaded: dict[int, dict[str, Carried]] = {}

        def context_of(event_key: str) -> np.ndarray | None:
            bucket = bucket_of(event_key, self.buckets)
            if bucket not in loaded:
                stored = self.state.getValue((bucket,))
                loaded[bucket] = (
                    decode_bucket(stored[0], self.features, now_ms=now_ms, ttl_ms=self.ttl_ms)
                    if stored
                    else {}
                )
            carried = loaded[bucket].get(event_key)
            return None if carried is None else carried.context

        made = window_rows(batch, context_of, self.length, self.schema, self.max_bytes)
        for event_key, context in made.contexts.items():
            loaded[bucket_of(event_key, self.buckets)][event_key] = Carried(now_ms, context)
        keys_held = self._write(loaded, now_ms)
        if len(made.rows):
            scored = score_windows(made.rows, made.windows, self.ref)
            scored["state_keys"] = keys_held
            yield scored

    def close(self) -> None:
        pass
