"""The windowing step shared by the streaming job and the backfill: Kafka rows of one
partition -> parsed events (or dead letters) -> each valid event's window over its key's history.

The key decides the Kafka partition, so a key's events are all in one partition, in log order:
the step takes one partition's rows at a time, parses them (``parsing.parse_values``), and windows
every key in one vectorised pass (``seqstream.model.windows.keyed_windows``), each key's history
preceded by the events carried from before (the streaming state, or the backfill's carried
events). Malformed rows come out as dead letters, so every input row comes out once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from seqstream.model.windows import empty_context, keyed_windows
from seqstream.pipeline.config import EventSchema
from seqstream.pipeline.records.parsing import parse_values
from seqstream.pipeline.records.rows import WINDOW_COLUMNS


@dataclass(frozen=True)
class ParsedRows:
    """One partition's rows parsed: ``rows`` in ``WINDOW_SCHEMA`` (``window`` and
    ``window_length`` still empty), the valid events first in log order, then the dead letters;
    for the valid events (the first ``len(codes)`` rows) their key's index in ``keys`` and their
    features."""

    rows: pd.DataFrame
    codes: np.ndarray
    keys: list[str]
    features: np.ndarray  # [valid events, features] float32


@dataclass(frozen=True)
class WindowedRows:
    """One partition's rows: ``rows`` in ``WINDOW_SCHEMA`` (``window`` left empty), events first
    in log order, then the dead letters; ``windows[i]`` is row i's window (zeros for a dead
    letter); ``contexts`` each key's events to carry to the next batch."""

    rows: pd.DataFrame
    windows: np.ndarray
    contexts: dict[str, np.ndarray]


def parse_rows(kafka_rows: pd.DataFrame, schema: EventSchema, max_bytes: int) -> ParsedRows:
    """Parse the Kafka rows of one partition (columns ``kafka_key, value, topic, partition,
    offset, kafka_timestamp`` and optionally ``headers``, any order); every row comes out once,
    as an event or a dead letter."""
    parsed = parse_values(
        kafka_rows["value"].tolist(), schema, max_bytes, kafka_rows["kafka_key"].tolist()
    )
    dead = np.flatnonzero(pd.notna(parsed.reason))
    valid = np.flatnonzero(pd.isna(parsed.reason))
    valid = valid[np.argsort(kafka_rows["offset"].to_numpy()[valid], kind="stable")]
    codes, keys = pd.factorize(parsed.key[valid])
    ordered = np.concatenate([valid, dead])
    is_dead = np.arange(len(ordered)) >= len(valid)
    rows = kafka_rows.iloc[ordered].reset_index(drop=True)
    rows["key"] = parsed.key[ordered]
    rows["event_time_ms"] = pd.Series(parsed.event_time_ms[ordered], dtype="Int64").mask(is_dead)
    rows["window"] = None
    rows["window_length"] = np.zeros(len(ordered), np.int32)
    if "headers" not in rows:  # a source read without includeHeaders
        rows["headers"] = None
    for column in ("value", "kafka_key", "headers"):  # kept for dead letters only
        rows[column] = rows[column].where(is_dead, None)
    rows["reason"] = parsed.reason[ordered]
    rows["key_mismatch"] = parsed.key_mismatch[ordered]
    return ParsedRows(
        rows[WINDOW_COLUMNS], np.asarray(codes, np.int64), list(keys), parsed.features[valid]
    )


def window_rows(
    kafka_rows: pd.DataFrame,
    context_of: Callable[[str], np.ndarray | None],
    length: int,
    schema: EventSchema,
    max_bytes: int,
) -> WindowedRows:
    """Parse the Kafka rows of one partition (``parse_rows``) and window each valid event.
    ``context_of(key)`` is the key's carried events, if any. Shared by the streaming
    processor and the backfill."""
    width = len(schema.features)
    parsed = parse_rows(kafka_rows, schema, max_bytes)
    stored = [context_of(k) for k in parsed.keys]
    made = keyed_windows(
        [empty_context(width) if c is None else c for c in stored],
        parsed.codes,
        parsed.features,
        length,
    )
    dead = len(parsed.rows) - len(parsed.codes)
    rows = parsed.rows
    rows["window_length"] = np.concatenate([made.lengths, np.zeros(dead, np.int64)]).astype(
        np.int32
    )
    windows = np.concatenate([made.windows, np.zeros((dead, length, width), np.float32)])
    return WindowedRows(rows, windows, dict(zip(parsed.keys, made.contexts, strict=False)))
