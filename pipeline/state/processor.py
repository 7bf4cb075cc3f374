"""The streaming job's state adapter: ``groupBy(topic, partition).transformWithStateInPandas``.

Grouping by Kafka partition makes one Python call per partition and micro-batch (not one per
key). The processor keeps each key's state (``scoring.step``: a window model's last N - 1
events, a carry model's LSTM state; both bounded) in buckets of many keys (``state_buckets``: two
state calls per touched bucket, not per key), idle keys expiring after ``ttl_ms`` (counted), and
runs the scoring step in the same Python call, so events cross from the JVM to Python once and
window arrays never travel back.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql.streaming.stateful_processor import StatefulProcessor, StatefulProcessorHandle
from pyspark.sql.types import BinaryType, IntegerType, StructField, StructType

from seqstream.pipeline.scoring.step import ScoringStep
from seqstream.pipeline.state.buckets import Carried, bucket_of, decode_bucket, encode_bucket

_STATE_KEY = StructType([StructField("bucket", IntegerType())])
_STATE_VALUE = StructType([StructField("entries", BinaryType())])
# Per Kafka partition: each bucket's key count and when it was last written (int32 and int64
# arrays), so the keys held are known without reading every bucket.
_INDEX = StructType([StructField("sizes", BinaryType()), StructField("written_ms", BinaryType())])
INDEX_TTL_FACTOR = 10


class KeyStateProcessor(StatefulProcessor):
    """Runs the scoring step (``step``) on each Kafka partition's rows of a micro-batch with
    its keys' state, kept in ``buckets`` buckets. Output rows follow ``SCORED_SCHEMA``."""

    def __init__(self, step: ScoringStep, ttl_ms: int | None, buckets: int) -> None:
        self.step = step
        self.width = step.state_width
        self.ttl_ms = ttl_ms
        self.buckets = buckets

    def init(self, handle: StatefulProcessorHandle) -> None:
        self.state = handle.getMapState("buckets", _STATE_KEY, _STATE_VALUE, self.ttl_ms)
        # The index outlives the buckets (it is one small value per Kafka partition), so keys
        # that expire while their whole partition is idle are still found and counted.
        index_ttl = None if self.ttl_ms is None else self.ttl_ms * INDEX_TTL_FACTOR
        self.index = handle.getValueState("index", _INDEX, index_ttl)

    def _read_index(self, now_ms: int) -> tuple[np.ndarray, np.ndarray, int, bool]:
        """Each bucket's key count and last write, and whether the index was there; buckets idle
        past the TTL (which Spark drops whole) are emptied here, their keys counted as expired."""
        stored = self.index.get()
        sizes = np.zeros(self.buckets, np.int32)
        written = np.zeros(self.buckets, np.int64)
        if stored:
            sizes[:] = np.frombuffer(stored[0], np.int32)
            written[:] = np.frombuffer(stored[1], np.int64)
        expired = 0
        if self.ttl_ms is not None:
            idle = (sizes > 0) & (now_ms - written >= self.ttl_ms)
            expired = int(sizes[idle].sum())
            sizes[idle] = 0
        return sizes, written, expired, bool(stored)

    def handleInputRows(
        self, key: Any, rows: Iterator[pd.DataFrame], timerValues: Any
    ) -> Iterator[pd.DataFrame]:
        batch = pd.concat(list(rows), ignore_index=True).rename(
            columns={"timestamp": "kafka_timestamp"}
        )
        now_ms = int(timerValues.getCurrentProcessingTimeInMs())
        sizes, written, expired, indexed = self._read_index(now_ms)
        loaded: dict[int, dict[str, Carried]] = {}

        def state_of(event_key: str) -> np.ndarray | None:
            nonlocal expired
            bucket = bucket_of(event_key, self.buckets)
            if bucket not in loaded:
                # An empty bucket in the index (never written, or expired above) is not read.
                stored = self.state.getValue((bucket,)) if sizes[bucket] or not indexed else None
                found = (
                    decode_bucket(stored[0], self.width, now_ms=now_ms, ttl_ms=self.ttl_ms)
                    if stored
                    else None
                )
                loaded[bucket] = found.entries if found else {}
                expired += found.expired if found else 0
            carried = loaded[bucket].get(event_key)
            return None if carried is None else carried.state

        made = self.step.score(batch, state_of)
        scored = made.rows
        for event_key, state in made.states.items():
            loaded[bucket_of(event_key, self.buckets)][event_key] = Carried(now_ms, state)
        for bucket, entries in loaded.items():  # each read for a key of this batch: never empty
            self.state.updateValue((bucket,), (encode_bucket(entries),))
            sizes[bucket], written[bucket] = len(entries), now_ms
        self.index.update((sizes.tobytes(), written.tobytes()))
        if len(scored):
            scored["state_keys"] = int(sizes.sum())
            scored["keys_expired"] = expired
            yield scored

    def close(self) -> None:
        pass
