"""Kafka values -> typed events, or a dead-letter reason. Nothing is dropped: every input row
comes out, either as an event or with the reason it is not one."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from functools import partial

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame

from pipeline.config import EventSchema

PARSED_COLUMNS = ["key", "event_time_ms", "features", "reason"]
KAFKA_COLUMNS = ["value", "topic", "partition", "offset", "timestamp"]
PARSED_DDL = ("value binary, topic string, partition int, offset long, timestamp timestamp, "
              "key string, event_time_ms long, features array<float>, reason string")  # fmt: skip


def parse_value(value: bytes | None, schema: EventSchema, max_bytes: int) -> tuple[str, int, list[float]] | str:
    """The event in ``value``, or why it is not one (a short, stable reason)."""
    if value is None:
        return "null value"
    if len(value) > max_bytes:
        return f"oversize: {len(value)} bytes > {max_bytes}"
    try:
        body = json.loads(value)
    except (UnicodeDecodeError, ValueError) as exc:
        return f"not JSON: {exc}"
    if not isinstance(body, dict):
        return f"not a JSON object: {type(body).__name__}"
    expected = [schema.key_field, schema.time_field, *schema.features]
    missing = [f for f in expected if f not in body]
    if missing:
        return f"missing field(s) {missing}"
    extra = sorted(set(body) - set(expected))
    if extra:
        return f"unexpected field(s) {extra}"
    key, ts = body[schema.key_field], body[schema.time_field]
    if not isinstance(key, str) or not key:
        return f"field '{schema.key_field}' must be a non-empty string, got {key!r}"
    if not isinstance(ts, int) or isinstance(ts, bool):
        return f"field '{schema.time_field}' must be an integer (epoch ms), got {ts!r}"
    features = []
    for name in schema.features:
        v = body[name]
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return f"feature '{name}' must be a number, got {v!r}"
        if not math.isfinite(v):
            return f"feature '{name}' is not finite: {v!r}"
        features.append(float(v))
    return key, ts, features


def parse_frame(values: pd.Series, schema: EventSchema, max_bytes: int) -> pd.DataFrame:
    """One parsed row per value: key/event_time_ms/features, or the reason it is not an event."""
    rows = []
    for value in values:
        parsed = parse_value(value, schema, max_bytes)
        if isinstance(parsed, str):
            rows.append((None, None, None, parsed))
        else:
            key, ts, features = parsed
            rows.append((key, ts, np.asarray(features, np.float32), None))
    return pd.DataFrame(rows, columns=PARSED_COLUMNS, index=values.index)


def parse_batches(batches: Iterator[pd.DataFrame], schema: EventSchema, max_bytes: int) -> Iterator[pd.DataFrame]:
    """For ``mapInPandas`` over the Kafka columns (value, topic, partition, offset, timestamp)."""
    for batch in batches:
        parsed = parse_frame(batch["value"], schema, max_bytes)
        yield pd.concat([batch[KAFKA_COLUMNS], parsed], axis=1)


def parse_events(kafka_rows: DataFrame, schema: EventSchema, max_bytes: int) -> DataFrame:
    """The Spark step both jobs run: Kafka rows -> ``PARSED_DDL`` rows (events or dead letters)."""
    return kafka_rows.select(*KAFKA_COLUMNS).mapInPandas(
        partial(parse_batches, schema=schema, max_bytes=max_bytes), PARSED_DDL
    )
