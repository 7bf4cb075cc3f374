"""``seqstream tail``: a topic's records, decoded, as text or JSON lines, after the manner of
Kafka's console consumer (scores, dead letters, or any topic).

Reading reuses the exact-range reader: each round asks for the partitions' end offsets and reads
what came since, so it works with either Kafka client and with the connection settings of
``kafka.*``.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

from seqstream.pipeline.kafka import Record, TopicAdmin, read_range


def follow(
    admin: TopicAdmin,
    bootstrap: str,
    topic: str,
    *,
    from_beginning: bool = False,
    client: str = "auto",
    options: dict[str, str] | None = None,
    timeout_s: float = 10.0,
    poll_s: float = 0.5,
    idle_timeout_s: float | None = None,
) -> Iterator[Record]:
    """The topic's records in each partition's order, from its beginning or from now on, until
    ``idle_timeout_s`` passes without a new one (never, when None)."""
    position = admin.beginning_offsets(topic) if from_beginning else admin.end_offsets(topic)
    last_record = time.monotonic()
    while idle_timeout_s is None or time.monotonic() - last_record < idle_timeout_s:
        ends = admin.end_offsets(topic)
        new = {p: (position.get(p, 0), end) for p, end in ends.items() if end > position.get(p, 0)}
        if not new:
            time.sleep(poll_s)
            continue
        for record in read_range(
            bootstrap, topic, new, client=client, options=options, timeout_s=timeout_s
        ):
            position[record.partition] = record.offset + 1
            yield record
        last_record = time.monotonic()


def _decoded(data: bytes | None) -> dict[str, Any]:
    """Text where the bytes are UTF-8, base64 otherwise, null for null."""
    if data is None:
        return {"text": None}
    try:
        return {"text": data.decode("utf-8")}
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(data).decode("ascii")}


def _shown(data: bytes | None) -> str:
    decoded = _decoded(data)
    return str(decoded["text"]) if "text" in decoded else "base64:" + decoded["base64"]


def as_json(record: Record) -> str:
    """One JSON object: position, time, key and value (``key``/``value`` text, or
    ``key_base64``/``value_base64`` for bytes that are not UTF-8) and headers."""
    key, value = _decoded(record.key), _decoded(record.value)
    return json.dumps(
        {
            "topic": record.topic,
            "partition": record.partition,
            "offset": record.offset,
            "timestamp": _time(record.timestamp_ms),
            **{("key" if k == "text" else "key_base64"): v for k, v in key.items()},
            **{("value" if k == "text" else "value_base64"): v for k, v in value.items()},
            "headers": [[name, _shown(data)] for name, data in record.headers],
        },
        ensure_ascii=False,
    )


def as_text(record: Record) -> str:
    """``topic/partition@offset time key=K [h=v ...] value``."""
    headers = "".join(f" {name}={_shown(data)}" for name, data in record.headers)
    return (
        f"{record.topic}/{record.partition}@{record.offset} {_time(record.timestamp_ms)} "
        f"key={_shown(record.key)}{headers} {_shown(record.value)}"
    )


def _time(ms: int) -> str:
    moment = datetime.fromtimestamp(ms / 1000, tz=timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
