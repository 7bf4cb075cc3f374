"""Key state, many keys per value: the one codec of a key's state, and the streaming buckets.

A set of keys' states (``Carried``) is encoded as one Arrow IPC batch (``encode_bucket``): the
streaming job keeps one per bucket, the backfill ships one per Kafka partition to its tasks and
keeps them in its progress files.

Python ``transformWithState`` pays one socket round trip per state call, so a state value per
key cost two round trips per key and micro-batch (read, then write), as much as the model on
small micro-batches. Instead each Kafka partition's keys are spread over ``stream.state_buckets``
buckets by a stable hash, and a bucket (its keys' state and when each was last seen) is
one state value: a micro-batch reads and writes only the buckets its keys fall in, at most two
calls per bucket whatever the number of keys.

Idle keys still expire after ``stream.state_ttl_s``: a key whose last event is older is dropped
when its bucket is read, and a bucket that no key touches expires whole through Spark's TTL.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping
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
    state: np.ndarray  # window: (events, features) float32; carry: (1, state size) float64


@dataclass(frozen=True)
class Bucket:
    """A bucket's live keys, and how many it held that had been idle for the TTL (dropped)."""

    entries: dict[str, Carried]
    expired: int


def bucket_of(key: str, buckets: int) -> int:
    """The key's bucket: crc32, stable across processes and Python versions (``hash`` is not)."""
    return zlib.crc32(key.encode("utf-8")) % buckets


def encode_bucket(entries: Mapping[str, Carried]) -> bytes:
    """One Arrow IPC batch: key, seen_ms, state (list of float32 or float64, flat)."""
    keys = list(entries)
    flat = [entries[k].state.reshape(-1) for k in keys]
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
        names=["key", "seen_ms", "state"],  # read by position: v1 buckets named it "context"
    )
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as writer:
        writer.write_batch(batch)
    return sink.getvalue().to_pybytes()


def _columns(blob: bytes) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """An encoded bucket's keys, seen_ms, and its states as flat values with each key's bounds."""
    batch = pa.ipc.open_stream(blob).read_next_batch()
    states = batch.column(2)
    return (
        batch.column(0).to_pylist(),
        batch.column(1).to_numpy(),
        states.offsets.to_numpy(),
        states.values.to_numpy(zero_copy_only=False),
    )


def decode_bucket(blob: bytes, width: int, *, now_ms: int, ttl_ms: int | None) -> Bucket:
    """The bucket's keys (each state as rows of ``width``), without those idle for ``ttl_ms``
    or more at ``now_ms``."""
    keys, seen, offsets, values = _columns(blob)
    live = {
        key: Carried(int(seen[i]), values[offsets[i] : offsets[i + 1]].reshape(-1, width))
        for i, key in enumerate(keys)
        if ttl_ms is None or now_ms - seen[i] < ttl_ms
    }
    return Bucket(live, len(keys) - len(live))


def state_lookup(blob: bytes | None, width: int) -> Callable[[str], np.ndarray | None]:
    """A key's state in an encoded bucket (rows of ``width``; None for a key it does not hold),
    decoded only when asked for: a backfill task looks up a few of a partition's many keys."""
    if blob is None:
        return lambda key: None
    keys, _, offsets, values = _columns(blob)
    index = {key: i for i, key in enumerate(keys)}

    def state_of(key: str) -> np.ndarray | None:
        i = index.get(key)
        return None if i is None else values[offsets[i] : offsets[i + 1]].reshape(-1, width)

    return state_of


def merge_buckets(older: bytes | None, newer: bytes, width: int) -> bytes:
    """``older``'s keys with ``newer``'s in place of theirs (a key ``newer`` holds is replaced,
    one it does not is kept), encoded again."""
    if older is None:
        return newer
    entries = decode_bucket(older, width, now_ms=0, ttl_ms=None).entries
    entries.update(decode_bucket(newer, width, now_ms=0, ttl_ms=None).entries)
    return encode_bucket(entries)
