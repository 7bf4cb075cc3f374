"""Event streams to produce: CSV time series replayed by time, and a synthetic generator.

CSV replay: each file is one key (the file name without extension), or with a key column many
keys (long format); rows are observations; the keys are merged into one stream ordered by
(event time, key), so per-key order is kept.
Synthetic: K keys x F features of seeded noisy sines, with optional labelled anomalies,
late (out-of-order) events and malformed messages, for tests and benchmarks.
"""

from __future__ import annotations

import heapq
import itertools
import json
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from seqstream.pipeline.config import EventSchema
from seqstream.pipeline.errors import SeqstreamError
from seqstream.pipeline.sources.events import Event, Message, event_message
from seqstream.pipeline.sources.series import expand_csv_paths, read_csv_events


def interleave(series: Iterable[Sequence[Event]]) -> Iterator[Event]:
    """Merge per-key time-ordered series into one stream ordered by (event time, key)."""
    return heapq.merge(*series, key=lambda e: (e.ts_ms, e.key))


def csv_messages(
    paths: Iterable[str | Path],
    schema: EventSchema,
    *,
    time_column: str = "timestamp",
    key_column: str | None = None,
) -> list[Message]:
    """The files' events as one stream ordered by (event time, key); a key comes from one file."""
    series = [
        events
        for p in expand_csv_paths(paths)
        for events in read_csv_events(p, schema, time_column=time_column, key_column=key_column)
    ]
    keys = [s[0].key for s in series if s]
    if len(set(keys)) != len(keys):
        repeated = sorted({k for k in keys if keys.count(k) > 1})
        raise SeqstreamError(f"key(s) {repeated} come from more than one CSV file")
    return [event_message(e, schema) for e in interleave(series)]


# --- synthetic ---------------------------------------------------------------------------------

MALFORMED_KINDS = (
    "not_json",
    "not_object",
    "missing_key",
    "missing_time",
    "missing_feature",
    "wrong_type",
    "non_finite",
    "extra_field",
)


@dataclass(frozen=True)
class SyntheticSpec:
    keys: int = 10
    events_per_key: int = 1_000
    step_ms: int = 60_000
    start_ms: int = 1_700_000_000_000
    anomaly_rate: float = 0.0  # share of events with a spike of 6-10 amplitudes
    late_rate: float = 0.0  # share of events sent after 1..max_lateness newer events of their key
    max_lateness: int = 5
    malformed_rate: float = 0.0  # extra malformed messages, as a share of valid events
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("anomaly_rate", "late_rate", "malformed_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise SeqstreamError(f"{name} must be within [0, 1], got {getattr(self, name)}")
        if self.keys < 1 or self.events_per_key < 1 or self.max_lateness < 1:
            raise SeqstreamError("keys, events_per_key and max_lateness must be at least 1")


@dataclass
class SyntheticStream:
    messages: list[Message]
    anomalies: set[tuple[str, int]] = field(default_factory=set)  # (key, ts_ms) with a spike

    @property
    def events(self) -> list[Event]:
        return [m.event for m in self.messages if m.event is not None]


def _malformed_value(kind: str, event: Event, schema: EventSchema) -> bytes:
    body: dict[str, object] = json.loads(event_message(event, schema).value)
    first = schema.features[0]
    if kind == "not_json":
        return event_message(event, schema).value[:-3]
    if kind == "not_object":
        return b"[1, 2, 3]"
    if kind == "missing_key":
        del body[schema.key_field]
    elif kind == "missing_time":
        del body[schema.time_field]
    elif kind == "missing_feature":
        del body[first]
    elif kind == "wrong_type":
        body[first] = "not-a-number"
    elif kind == "non_finite":
        body[first] = math.nan
    elif kind == "extra_field":
        body["unexpected_field"] = 1
    return json.dumps(body).encode()


def synthetic_stream(spec: SyntheticSpec, schema: EventSchema) -> SyntheticStream:
    """A seeded, reproducible stream; messages are in send order."""
    rng = np.random.default_rng(spec.seed)
    n, f = spec.events_per_key, len(schema.features)
    width = len(str(spec.keys - 1))
    anomalies: set[tuple[str, int]] = set()
    per_key: list[list[tuple[float, Event]]] = []
    for k in range(spec.keys):
        key = f"key-{k:0{width}d}"
        steps = np.arange(n)[:, None]
        period = rng.uniform(20, 200, size=f)
        amplitude = rng.uniform(0.5, 5.0, size=f)
        values = amplitude * np.sin(2 * np.pi * steps / period + rng.uniform(0, 2 * np.pi, f))
        values += rng.uniform(-10, 10, size=f) + rng.normal(0, 0.1, size=(n, f)) * amplitude
        spikes = rng.random(n) < spec.anomaly_rate
        values[spikes] += rng.uniform(6, 10, size=(int(spikes.sum()), f)) * amplitude
        ts = spec.start_ms + np.arange(n) * spec.step_ms
        anomalies.update((key, int(t)) for t in ts[spikes])
        late = rng.random(n) < spec.late_rate
        send_at = np.arange(n) + late * rng.integers(1, spec.max_lateness + 1, size=n) + 0.5 * late
        events = [Event(key, int(ts[i]), tuple(float(v) for v in values[i])) for i in range(n)]
        per_key.append(sorted(zip(send_at.tolist(), events, strict=True), key=lambda p: p[0]))
    ordered = heapq.merge(*per_key, key=lambda p: (p[0], p[1].key))
    messages: list[Message] = []
    malformed_at = iter(rng.random(n * spec.keys) < spec.malformed_rate)
    kinds = itertools.cycle(MALFORMED_KINDS)
    for _, event in ordered:
        messages.append(event_message(event, schema))
        if next(malformed_at):
            kind = next(kinds)
            messages.append(Message(event.key, _malformed_value(kind, event, schema), None, kind))
    return SyntheticStream(messages, anomalies)
