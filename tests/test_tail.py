"""``seqstream tail``: every record of a topic, decoded, in each partition's order, as JSON lines
or text, from the beginning or from now on."""

from __future__ import annotations

import base64
import json
import time

from seqstream.pipeline.cli import main
from seqstream.pipeline.kafka import open_producer, raise_for_failures

SENT = [
    (0, b"k0", b'{"a": 1}', [("trace", b"t0")]),
    (1, b"k1", b"plain text", []),
    (0, None, b"\xff\x00 not utf-8", [("bin", b"\xfe")]),
    (1, b"k1", b"second", []),
    (0, b"k0", b"third", [("trace", b"t3"), ("seqstream.error.reason", b"why")]),
]


def fill(bootstrap: str, topic: str) -> None:
    producer = open_producer(bootstrap)
    for partition, key, value, headers in SENT:
        producer.send(topic, value, key=key, partition=partition, headers=headers or None)
    raise_for_failures(producer.flush(30), topic)
    producer.close()


def test_tail_from_the_beginning_prints_every_record_decoded(
    bootstrap_servers, new_topic, capsys
) -> None:  # type: ignore[no-untyped-def]
    topic = new_topic(partitions=2)
    fill(bootstrap_servers, topic)
    argv = ["tail", topic, "--from-beginning", "--max", "5", "--json"]
    assert main([*argv, "--bootstrap-servers", bootstrap_servers]) == 0
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(printed) == 5
    got = {(r["partition"], r["offset"]): r for r in printed}
    offsets = {0: 0, 1: 0}
    for partition, key, value, headers in SENT:
        record = got[(partition, offsets[partition])]
        offsets[partition] += 1
        assert record["topic"] == topic and record["key"] == (key.decode() if key else None)
        if b"\xff" in value:  # not UTF-8: base64
            assert base64.b64decode(record["value_base64"]) == value and "value" not in record
        else:
            assert record["value"] == value.decode()
        shown = [
            [name, data.decode() if name != "bin" else "base64:/g=="] for name, data in headers
        ]
        assert record["headers"] == shown
        assert record["timestamp"].endswith("Z")
    for partition in (0, 1):  # each partition in offset order
        order = [r["offset"] for r in printed if r["partition"] == partition]
        assert order == sorted(order)


def test_tail_as_text_and_from_now_on(bootstrap_servers, new_topic, capsys) -> None:  # type: ignore[no-untyped-def]
    topic = new_topic(partitions=2)
    fill(bootstrap_servers, topic)
    common = ["--bootstrap-servers", bootstrap_servers]
    assert main(["tail", topic, "--from-beginning", "--max", "1", *common]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"{topic}/") and line.endswith(('{"a": 1}', "plain text"))
    # From now on: what was there before is not printed; the run ends after the idle timeout.
    started = time.monotonic()
    assert main(["tail", topic, "--idle-timeout", "1.5", *common]) == 0
    assert capsys.readouterr().out == "" and time.monotonic() - started < 30
