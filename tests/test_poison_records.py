"""Records that used to stop the query for good (and again at every restart) now come out as
dead letters, and the query goes on: a value nested 10,000 deep, a key with a lone surrogate, and
a value too large for its dead letter to fit in a Kafka record whole."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pyarrow.parquet as pq

from seqstream.pipeline.kafka import TopicAdmin, open_producer, raise_for_failures, read_range

from helpers import run_until, settings_for

HUGE = b'{"key": "k", "ts": 1, "value": "' + b"x" * 900_000 + b'"}'
POISON = [
    b"[" * 10_000 + b"]" * 10_000,
    b'{"key": "bad\\ud800", "ts": 1700000000000, "value": 1.0}',
    HUGE,
]


def test_poison_records_become_dead_letters_and_the_stream_goes_on(
    spark, bootstrap_servers: str, admin: TopicAdmin, new_topic, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    topic, dead_topic = new_topic(partitions=1), new_topic(partitions=1)
    good = [
        json.dumps({"key": "k", "ts": 1_700_000_000_000 + i, "value": float(i)}).encode()
        for i in range(20)
    ]
    producer = open_producer(bootstrap_servers)
    for value in good[:10] + POISON + good[10:]:
        producer.send(topic, value, key=b"k")
    raise_for_failures(producer.flush(30), topic)
    producer.close()
    settings = settings_for(tmp_path, topic, bootstrap_servers, dead_letter_topic=dead_topic)
    history = run_until(spark, settings, bootstrap_servers, len(good) + len(POISON))
    assert sum(m.events_in for m in history) == 23
    assert sum(m.dead_lettered for m in history) == 3
    assert sum(m.scored + m.not_yet_scoreable for m in history) == 20

    parquet = sorted(pq.read_table(tmp_path / "dead").to_pylist(), key=lambda r: r["offset"])
    assert [r["offset"] for r in parquet] == [10, 11, 12] and [
        r["value"] for r in parquet
    ] == POISON
    assert parquet[0]["reason"] == "not JSON: nested too deeply"
    assert parquet[1]["reason"].startswith("field 'key' is not valid UTF-8 text (a lone surrogate)")
    assert parquet[2]["reason"] == f"oversize: {len(HUGE)} bytes > 65536"

    end = admin.end_offsets(dead_topic)[0]
    records = sorted(
        read_range(bootstrap_servers, dead_topic, {0: (0, end)}), key=lambda r: r.offset
    )
    assert end == 3  # each dead letter once (one micro-batch held them all)
    letters = [json.loads(r.value) for r in records]
    for raw, letter, original in zip(records, letters, POISON, strict=True):
        assert (
            b"\r" not in raw.value and b"\n" not in raw.value
        )  # plain base64, no MIME line breaks
        assert letter["value_length"] == len(original)
        assert (letter["topic"], letter["partition"]) == (topic, 0)
    assert [base64.b64decode(letter["value"]) for letter in letters[:2]] == POISON[:2]
    assert [letter["truncated"] for letter in letters] == [False, False, True]
    assert letters[2]["value_sha256"] == hashlib.sha256(HUGE).hexdigest()
    assert base64.b64decode(letters[2]["value"]) == HUGE[:262_144]
