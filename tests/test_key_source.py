"""Which key an event belongs to (``events.key_source``) and what happens when its JSON key and
its Kafka message key disagree (``events.key_mismatch``): a key's history is only whole when all
its events share one Kafka partition, which the message key decides."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pandas as pd

from seqstream.pipeline.config import EventSchema
from seqstream.pipeline.kafka import open_producer, raise_for_failures
from seqstream.pipeline.records.parsing import parse_values
from seqstream.pipeline.scoring.step import window_rows

from helpers import run_until, settings_for


def event(key: str | None, ts: int = 1) -> bytes:
    body: dict[str, object] = {"ts": ts, "value": 1.0}
    if key is not None:
        body["key"] = key
    return json.dumps(body).encode()


VALUES = [event("a"), event("a"), event("b"), event("a"), event(None), event("\u00e9")]
KAFKA_KEYS: list[bytes | None] = [b"a", b"x", b"b", None, b"c", b"\xff"]


def test_by_default_a_disagreement_is_a_dead_letter_naming_both_keys() -> None:
    parsed = parse_values(VALUES, EventSchema(), 1_000, KAFKA_KEYS)
    assert list(parsed.key) == ["a", None, "b", None, None, None]
    assert parsed.reason[0] is None and parsed.reason[2] is None
    assert parsed.reason[1] == (
        "key mismatch: the event's 'key' is 'a' but its Kafka message key is 'x'; a key's events "
        "must all be in one Kafka partition (events.key_source, events.key_mismatch)"
    )
    assert "its Kafka message key is None" in parsed.reason[3]
    assert (
        parsed.reason[4] == "missing field(s) ['key']"
    )  # the JSON key is the key: it must be there
    assert "its Kafka message key is b'\\xff'" in parsed.reason[5]
    assert not parsed.key_mismatch.any()


def test_kafka_keys_name_events_and_the_json_key_may_be_left_out() -> None:
    schema = EventSchema(key_source="kafka")
    parsed = parse_values(VALUES, schema, 1_000, KAFKA_KEYS)
    assert list(parsed.key) == ["a", None, "b", None, "c", None]
    assert parsed.reason[1].startswith(
        "key mismatch: the event's 'key' is 'a' but its Kafka message key is 'x'"
    )
    assert parsed.reason[3] == "no Kafka message key (events.key_source: kafka)"
    assert parsed.reason[5] == "the Kafka message key is not UTF-8 text (events.key_source: kafka)"


def test_a_warning_keeps_the_event_under_the_chosen_key_and_flags_it() -> None:
    parsed = parse_values(
        VALUES, EventSchema(key_source="kafka", key_mismatch="warn"), 1_000, KAFKA_KEYS
    )
    assert list(parsed.key) == ["a", "x", "b", None, "c", None]
    assert list(parsed.key_mismatch) == [False, True, False, False, False, False]
    json_first = parse_values(VALUES, EventSchema(key_mismatch="warn"), 1_000, KAFKA_KEYS)
    assert list(json_first.key) == ["a", "a", "b", "a", None, "\u00e9"]
    assert list(json_first.key_mismatch) == [False, True, False, True, False, True]


def test_the_window_step_windows_by_the_settled_key() -> None:
    rows = pd.DataFrame(
        {
            "kafka_key": [b"x", b"x", b"x"],
            "value": [event(None, 1), event(None, 2), event("y", 3)],
            "topic": "t",
            "partition": 0,
            "offset": [0, 1, 2],
            "kafka_timestamp": datetime(2026, 11, 24, tzinfo=timezone.utc),
        }
    )
    made = window_rows(
        rows, lambda key: None, 4, EventSchema(key_source="kafka", key_mismatch="warn"), 1_000
    )
    assert list(made.rows["key"]) == ["x", "x", "x"] and list(made.rows["window_length"]) == [
        1,
        2,
        3,
    ]
    assert list(made.rows["key_mismatch"]) == [False, False, True]


def test_the_stream_dead_letters_mismatches_and_counts_warnings(
    spark, bootstrap_servers: str, new_topic, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    topic = new_topic(partitions=2)
    producer = open_producer(bootstrap_servers)
    for i in range(12):
        producer.send(topic, event("k", i), key=b"k")
    producer.send(topic, event("k", 99), key=b"other")  # lands beside another key's events
    raise_for_failures(producer.flush(30), topic)
    producer.close()
    strict = run_until(
        spark, settings_for(tmp_path / "strict", topic, bootstrap_servers), bootstrap_servers, 13
    )
    assert sum(m.dead_lettered for m in strict) == 1 and sum(m.key_mismatches for m in strict) == 0
    warned = run_until(
        spark,
        settings_for(tmp_path / "warn", topic, bootstrap_servers).model_copy(
            update={"events": EventSchema(key_mismatch="warn")}
        ),
        bootstrap_servers,
        13,
    )
    assert sum(m.dead_lettered for m in warned) == 0 and sum(m.key_mismatches for m in warned) == 1
