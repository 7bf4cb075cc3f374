"""The streaming window state of many keys per state value: what keeps its cost per micro-batch.

Python ``transformWithState`` pays one socket round trip per state call, so a state value per
key cost two round trips per key and micro-batch (read, then write), as much as the model on
small micro-batches. Instead each Kafka partition's keys are spread over ``stream.state_buckets``
buckets by a stable hash, and a bucket (its keys' carried events and when each was last seen) is
one state value: a micro-batch reads and writes only the buckets its keys fall in, at most two
calls per bucket whatever the number of keys.

Idle keys still expire after ``stream.state_ttl_s``: a key whose last event is older is dropped
when its bucket is read, and a bucket that no key touches expires whole through Spark's TTL.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

# Recorded with the checkpoint. v2 groups the state by (topic, partition, state_slot)
# (``state_placement``); v1 by (topic, partition), still run as it was made. Per-key state
# (before v1) is refused at start.
STATE_LAYOUT = "buckets-v2"
LEGACY_LAYOUT = "buckets-v1"
READABLE_LAYOUTS = (STATE_LAYOUT, LEGACY_LAYOUT)


@dataclass(frozen=True)
class Carried:
    """One key's state: for a window model the events carried to its next window, for a carry
    model its state vector; and when it was last written (processing time, ms)."""

    seen_ms: int
    context: np.ndarray  # window: (events, features) float32; carry: (1, state size) float64


@dataclass(frozen=True)
class Bucket:
    """A bucket's live keys, and how many it held that had been idle for the TTL (dropped)."""

    entries: dict[str, Carried]
    expired: int


def bucket_of(key: str, buckets: int) -> int:
    """The key's bucket: crc32, stable across processes and Python versions (``hash`` is not)."""
    return zlib.crc32(key.encode("utf-8")) % buckets


def encode_bucket(entries: Mapping[str, Carried]) -> bytes:
    """One Arrow IPC batch: key, seen_ms, context (list of float32 or float64, flat)."""
    keys = list(entries)
    flat = [entries[k].context.reshape(-1) for k in keys]
    offsets = np.zeros(len(keys) + 1, np.int32)
    np.cumsum([len(f) for f in flat], out=offsets[1:])
    # float32 events (window models) or float64 states (carry models): kept as they are
    values = np.concatenate(flat) if flat else np.empty(0, np.float32)
    if values.dtype != np.float64:
        values = values.astype(np.float32, copy=False)
    batch = pa.record_batch(
        [
            pa.array(keys, pa.string()),
            pa.array([entries[k].seen_ms for k in keys], pa.int64()),
            pa.ListArray.from_arrays(pa.array(offsets), pa.array(values)),
        ],
        names=["key", "seen_ms", "context"],
    )
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as writer:
        writer.write_batch(batch)
    return sink.getvalue().to_pybytes()


def decode_bucket(blob: bytes, width: int, *, now_ms: int, ttl_ms: int | None) -> Bucket:
    """The bucket's keys (each context as rows of ``width``), without those idle for ``ttl_ms``
    or more at ``now_ms``."""
    batch = pa.ipc.open_stream(blob).read_next_batch()
    keys = batch.column(0).to_pylist()
    seen = batch.column(1).to_numpy()
    contexts = batch.column(2)
    offsets = contexts.offsets.to_numpy()
    values = contexts.values.to_numpy(zero_copy_only=False)
    live = {
        key: Carried(int(seen[i]), values[offsets[i] : offsets[i + 1]].reshape(-1, width))
        for i, key in enumerate(keys)
        if ttl_ms is None or now_ms - seen[i] < ttl_ms
    }
    return Bucket(live, len(keys) - len(live))
