"""No record can stop the query: whatever bytes a Kafka value holds, the Python step turns it into
exactly one row (a scored or not-yet-scoreable event, or a dead letter with its reason), and that
row converts to Arrow as Spark converts it. Fuzzed with hypothesis over raw bytes and JSON."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyspark.sql.pandas.types import to_arrow_schema

from seqstream.model.artifact import DEMO_MODEL_DIR, load_artifact
from seqstream.pipeline.config import EventSchema
from seqstream.pipeline.records.parsing import parse_value, parse_values
from seqstream.pipeline.records.rows import SCORED_SCHEMA
from seqstream.pipeline.scoring.step import score_windows, window_rows
from seqstream.pipeline.scoring.worker import ModelRef

SCHEMA = EventSchema()  # key, ts, value: the demo model's features
MAX_BYTES = 4_096
SPEC = load_artifact(DEMO_MODEL_DIR).spec
REF = ModelRef(str(DEMO_MODEL_DIR), SPEC.weights_sha256 or "")
ARROW = to_arrow_schema(SCORED_SCHEMA, timezone="UTC")

# Text with lone surrogates too (JSON's "\ud800" escapes decode to them), and JSON of any shape.
texts = st.text(st.characters(codec=None, categories=None), max_size=12)
scalars = st.none() | st.booleans() | st.integers() | st.floats() | texts
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4)
)
near_events = st.fixed_dictionaries(
    {
        "key": texts | scalars,
        "ts": st.integers() | scalars,
        "value": st.floats() | st.integers() | scalars,
    },
    optional={"extra": scalars},
)


def _dump(body: object, ascii_only: bool) -> bytes:
    return json.dumps(body, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


values = st.one_of(
    st.binary(max_size=200),
    st.builds(_dump, json_values, st.booleans()),
    st.builds(_dump, near_events, st.booleans()),
    st.integers(1, 50_000).map(lambda depth: b"[" * depth + b"]" * depth),  # nested too deeply
    st.integers(1, 3_000).map(
        lambda depth: b'{"key":"k","ts":1,"value":' + b"[" * depth + b"]" * depth + b"}"
    ),
    st.integers(300, 4_000).map(
        lambda digits: b'{"key":"k","ts":1,"value":1' + b"0" * digits + b"}"
    ),
    st.just(None),
)


def _kafka_rows(batch: list[bytes | None]) -> pd.DataFrame:
    """As a keyed producer sends them: the event key (where there is one) is the message key."""
    parsed = [parse_value(v, SCHEMA, MAX_BYTES) for v in batch]
    keys = [None if isinstance(p, str) or p[0] is None else p[0].encode() for p in parsed]
    return pd.DataFrame(
        {
            "kafka_key": keys,
            "value": batch,
            "topic": "t",
            "partition": 0,
            "offset": range(len(batch)),
            "kafka_timestamp": datetime(2026, 11, 24, tzinfo=timezone.utc),
        }
    )


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(values, min_size=1, max_size=12))
def test_every_value_comes_out_once_as_an_event_or_a_dead_letter(batch: list[bytes | None]) -> None:
    made = window_rows(_kafka_rows(batch), lambda key: None, SPEC.window.length, SCHEMA, MAX_BYTES)
    scored = score_windows(made.rows, made.windows, REF)
    pa.Table.from_pandas(scored, schema=ARROW, preserve_index=False)  # as Spark sends it back
    assert sorted(scored["offset"]) == list(range(len(batch)))
    expected = [parse_value(v, SCHEMA, MAX_BYTES) for v in batch]
    for row in scored.itertuples():
        answer = expected[row.offset]
        if isinstance(answer, str):
            assert row.reason == answer and row.value == batch[row.offset]
        else:
            assert row.reason is None and (row.key, row.event_time_ms) == answer[:2]
    fast = parse_values(batch, SCHEMA, MAX_BYTES)
    assert [r if r is not None else None for r in fast.reason] == [
        a if isinstance(a, str) else None for a in expected
    ]


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"[" * 10_000 + b"]" * 10_000, "not JSON: nested too deeply"),
        (
            b'{"key": "bad\\ud800", "ts": 1700000000000, "value": 1.0}',
            "field 'key' is not valid UTF-8 text (a lone surrogate): 'bad\\ud800'",
        ),
        (
            b'{"key": "k", "ts": 1, "value": 1' + b"0" * 400 + b"}",
            "feature 'value' is outside the float32 range",
        ),
        (
            b'{"key": "k", "ts": 1, "value": ' + b"[" * 500 + b"]" * 500 + b"}",
            "feature 'value' must be a number",
        ),
    ],
)
def test_records_that_stopped_the_query_are_dead_letters_with_a_reason(
    value: bytes, reason: str
) -> None:
    parsed = parse_value(value, SCHEMA, 1_000_000)
    assert isinstance(parsed, str) and parsed.startswith(reason)
    assert parse_values([value], SCHEMA, 1_000_000).reason[0] == parsed
