"""Records that used to stop the query for good (and again at every restart) now come out as
dead letters, and the query goes on: a value nested 10,000 deep, a key with a lone surrogate, and
a value too large for its dead letter to fit in a Kafka record whole."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
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
    for i, value in enumerate(good[:10] + POISON + good[10:]):
        producer.send(topic, value, key=b"k", headers=[("trace", f"t-{i}".encode())])
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
    assert [(r["kafka_key"], r["headers"]) for r in parquet] == [
        (b"k", [{"key": "trace", "value": f"t-{o}".encode()}]) for o in (10, 11, 12)
    ]
    assert parquet[0]["reason"] == "not JSON: nested too deeply"
    assert parquet[1]["reason"].startswith("field 'key' is not valid UTF-8 text (a lone surrogate)")
    assert parquet[2]["reason"] == f"oversize: {len(HUGE)} bytes > 65536"

    # On Kafka: the original key, value bytes and headers, then where it came from and why.
    end = admin.end_offsets(dead_topic)[0]
    letters = sorted(
        read_range(bootstrap_servers, dead_topic, {0: (0, end)}), key=lambda r: r.offset
    )
    assert end == 3  # each dead letter once (one micro-batch held them all)
    originals = {r.offset: r for r in read_range(bootstrap_servers, topic, {0: (10, 13)})}
    for letter, row, value in zip(letters, parquet, POISON, strict=True):
        source = originals[row["offset"]]
        assert letter.key == b"k"
        assert letter.headers[0] == ("trace", f"t-{row['offset']}".encode())
        headers = {k: v.decode() for k, v in letter.headers[1:]}
        assert headers == {
            "seqstream.error.reason": row["reason"],
            "seqstream.error.topic": topic,
            "seqstream.error.partition": "0",
            "seqstream.error.offset": str(row["offset"]),
            "seqstream.error.timestamp": str(source.timestamp_ms),
            "seqstream.error.value.length": str(len(value)),
            "seqstream.error.processing.time": headers["seqstream.error.processing.time"],
            **(
                {
                    "seqstream.error.value.truncated": "true",
                    "seqstream.error.value.sha256": hashlib.sha256(HUGE).hexdigest(),
                }
                if value is HUGE
                else {}
            ),
        }
        assert datetime.fromisoformat(headers["seqstream.error.processing.time"]).tzinfo
    assert [letter.value for letter in letters] == [*POISON[:2], HUGE[:262_144]]
