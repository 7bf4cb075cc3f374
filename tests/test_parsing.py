"""Parsing a batch (the fast, column-wise path) gives exactly what parsing each value gives."""

from __future__ import annotations

import json

import numpy as np
import pytest

from seqstream.pipeline.config import EventSchema
from seqstream.pipeline.records.parsing import parse_frame, parse_value, parse_values
from seqstream.pipeline.sources.events import Event, event_message
from seqstream.pipeline.sources.replay import MALFORMED_KINDS, _malformed_value

SCHEMA = EventSchema(key_field="id", time_field="at", features=["temp", "load avg"])
MAX_BYTES = 200


def body(**fields: object) -> bytes:
    return json.dumps(
        {"id": "k", "at": 1_700_000_000_000, "temp": 1.5, "load avg": 2, **fields}
    ).encode()


EDGE_CASES = [
    body(),
    body(temp=-0.0),
    body(temp=3.4e38),
    body(temp=-3.5e38),
    body(temp=1e308),
    body(temp=1e999),
    body(temp=float("nan")),
    body(temp=float("inf")),
    body(temp=True),
    body(temp=None),
    body(temp="1.5"),
    body(temp=[1.5]),
    body(at=1.5),
    body(at=True),
    body(at="1"),
    body(at=2**63 - 1),
    body(at=2**63),
    body(at=-(2**63)),
    body(id=""),
    body(id=7),
    body(id=None),
    body(extra=1),
    b'{"id":"k","at":1,"temp":1,"load avg":2,"temp":3}',  # a repeated field: the last one counts
    b'{"id":"k","at":1,"temp":1}',
    b"",
    b"null",
    b"[]",
    b'"text"',
    b"\xff\xfe",
    b'{"id":"k\xe9","at":1}',
    b'{"id":"\\ud800","at":1,"temp":1,"load avg":2}',
    b'  {"id":"k","at":1,"temp":1,"load avg":2}  ',
    b'{"id":"k","at":1,"temp":1,"load avg":2} x',
    body(id="x" * (MAX_BYTES + 1)),
    None,
]


def malformed_values() -> list[bytes]:
    event = Event("key-1", 1_700_000_000_000, (21.5, 0.25))
    return [_malformed_value(kind, event, SCHEMA) for kind in MALFORMED_KINDS] + [
        event_message(event, SCHEMA).value
    ]


@pytest.mark.parametrize(
    "values", [EDGE_CASES, malformed_values()], ids=["edge cases", "every malformed kind"]
)
def test_a_batch_parses_to_exactly_what_each_value_parses_to(values: list[bytes | None]) -> None:
    batch = parse_values(values, SCHEMA, MAX_BYTES)
    for i, value in enumerate(values):
        one = parse_value(value, SCHEMA, MAX_BYTES)
        if isinstance(one, str):
            assert (batch.reason[i], batch.key[i]) == (one, None), value
        else:
            assert batch.reason[i] is None, (value, batch.reason[i])
            assert (batch.key[i], batch.event_time_ms[i]) == (one[0], one[1])
            np.testing.assert_array_equal(batch.features[i], np.asarray(one[2], np.float32))


def test_reasons_name_the_field_and_the_rule() -> None:
    reasons = parse_values(
        [body(temp=1e999), body(temp=1e308), body(at=2**63), body(id=""), body(extra=1), None],
        SCHEMA,
        MAX_BYTES,
    ).reason
    assert list(reasons) == [
        "feature 'temp' is not finite: inf",
        "feature 'temp' is outside the float32 range: 1e+308",
        f"field 'at' must be an integer (epoch ms, 64 bits), got {2**63}",
        "field 'id' must be a non-empty string, got ''",
        "unexpected field(s) ['extra']",
        "null value",
    ]


def test_parse_frame_keeps_the_index_and_leaves_dead_letters_empty() -> None:
    import pandas as pd

    frame = parse_frame(pd.Series([body(), b"{"], index=[7, 3]), SCHEMA, MAX_BYTES)
    assert list(frame.index) == [7, 3]
    assert frame.loc[7, "key"] == "k" and frame.loc[7, "event_time_ms"] == 1_700_000_000_000
    assert frame.loc[7, "features"].tolist() == [1.5, 2.0]
    assert frame.loc[3, "reason"].startswith("not JSON") and pd.isna(frame.loc[3, "event_time_ms"])
    assert frame.loc[3, "features"] is None and frame.loc[3, "key"] is None
