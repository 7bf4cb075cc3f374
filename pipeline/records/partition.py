"""One Kafka partition's rows, parsed for the scoring step: the valid events first in log order,
each with its key's code, then the dead letters. Every input row comes out once."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from seqstream.pipeline.config import EventSchema
from seqstream.pipeline.records.parsing import parse_values
from seqstream.pipeline.records.rows import WINDOW_COLUMNS


@dataclass(frozen=True)
class ParsedRows:
    """One partition's rows parsed: ``rows`` in ``WINDOW_SCHEMA`` (``window_length``
    still empty), the valid events first in log order, then the dead letters;
    for the valid events (the first ``len(codes)`` rows) their key's index in ``keys`` and their
    features."""

    rows: pd.DataFrame
    codes: np.ndarray
    keys: list[str]
    features: np.ndarray  # [valid events, features] float32

    @property
    def dead(self) -> int:
        return len(self.rows) - len(self.codes)


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
