"""Events and the messages that carry them.

An event is one observation of one key: ``{"<key_field>": str, "<time_field>": epoch ms,
"<feature>": float, ...}`` as compact JSON, with the event key as the Kafka message key (so the
key decides the partition and per-key order is the partition's log order).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from seqstream.pipeline.config import EventSchema


@dataclass(frozen=True)
class Event:
    key: str
    ts_ms: int
    features: tuple[float, ...]


@dataclass(frozen=True)
class Message:
    """What the producer sends. ``event`` is None for a deliberately malformed message."""

    key: str
    value: bytes
    event: Event | None = None
    malformed_reason: str | None = None


def encode_event(event: Event, schema: EventSchema) -> bytes:
    """The event as compact JSON with the schema's field names, features in schema order."""
    if len(event.features) != len(schema.features):
        raise ValueError(
            f"event for key {event.key!r} has {len(event.features)} features, "
            f"the schema names {len(schema.features)}: {schema.features}"
        )
    body: dict[str, object] = {schema.key_field: event.key, schema.time_field: event.ts_ms}
    body.update(zip(schema.features, event.features, strict=True))
    return json.dumps(body, separators=(",", ":"), allow_nan=False).encode()


def event_message(event: Event, schema: EventSchema) -> Message:
    return Message(event.key, encode_event(event, schema), event)
