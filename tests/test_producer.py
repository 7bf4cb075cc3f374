"""The producer: every event acknowledged, read back complete and in per-key order."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest
from kafka import KafkaConsumer, TopicPartition

from seqstream.pipeline.config import EventSchema
from seqstream.pipeline.errors import DeliveryError, SeqstreamError
from seqstream.pipeline.kafka.admin import TopicAdmin
from seqstream.pipeline.kafka.producer import open_producer, raise_for_failures
from seqstream.pipeline.kafka.reader import read_range
from seqstream.pipeline.sources.events import Message
from seqstream.pipeline.sources.producer import produce_messages
from seqstream.pipeline.sources.replay import (
    MALFORMED_KINDS,
    SyntheticSpec,
    csv_messages,
    synthetic_stream,
)
from seqstream.pipeline.sources.series import demo_series_files

from helpers import REPO

CLIENTS = ["confluent", "kafka-python"]


def read_all_independently(bootstrap: str, topic: str, admin: TopicAdmin) -> list:
    """Plain kafka-python, not seqstream's reader: every record of the topic."""
    ends = admin.end_offsets(topic)
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    tps = [TopicPartition(topic, p) for p in ends]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    records = []
    deadline = time.monotonic() + 60
    while len(records) < sum(ends.values()) and time.monotonic() < deadline:
        for batch in consumer.poll(timeout_ms=500).values():
            records.extend(batch)
    consumer.close()
    return records


def per_key(pairs) -> dict[str, list[bytes]]:
    grouped: dict[str, list[bytes]] = defaultdict(list)
    for key, value in pairs:
        grouped[key].append(value)
    return dict(grouped)


@pytest.mark.parametrize("client", CLIENTS)
def test_synthetic_events_read_back_complete_and_in_key_order(
    client: str, bootstrap_servers: str, admin: TopicAdmin, new_topic
) -> None:
    topic = new_topic(partitions=4)
    spec = SyntheticSpec(keys=7, events_per_key=300, late_rate=0.05, malformed_rate=0.03, seed=3)
    messages = synthetic_stream(spec, EventSchema(features=["a", "b", "c"])).messages
    producer = open_producer(bootstrap_servers, client=client)
    result = produce_messages(messages, producer, topic)
    producer.close()
    assert (result.sent, result.acked, result.failed) == (len(messages), len(messages), 0)
    assert result.malformed == sum(1 for m in messages if m.event is None) > 0

    records = read_all_independently(bootstrap_servers, topic, admin)
    assert len(records) == len(messages)
    assert per_key((r.key.decode(), r.value) for r in records) == per_key(
        (m.key, m.value) for m in messages
    )
    # The key decides the partition: each key lives in exactly one partition.
    partitions = defaultdict(set)
    for r in records:
        partitions[r.key].add(r.partition)
    assert all(len(p) == 1 for p in partitions.values())


@pytest.mark.parametrize("client", CLIENTS)
def test_read_range_returns_exactly_the_range(
    client: str, bootstrap_servers: str, admin: TopicAdmin, new_topic
) -> None:
    topic = new_topic(partitions=2)
    producer = open_producer(bootstrap_servers, client=client)
    for i in range(500):
        producer.send(
            topic, f"v{i}".encode(), key=None, partition=i % 2, headers=[("n", str(i).encode())]
        )
    raise_for_failures(producer.flush(30), topic)
    producer.close()
    got = list(read_range(bootstrap_servers, topic, {0: (10, 20), 1: (245, 250)}, client=client))
    assert [(r.partition, r.offset) for r in got if r.partition == 0] == [
        (0, o) for o in range(10, 20)
    ]
    assert [(r.partition, r.offset) for r in got if r.partition == 1] == [
        (1, o) for o in range(245, 250)
    ]
    assert {r.value for r in got} == {f"v{2 * o}".encode() for o in range(10, 20)} | {
        f"v{2 * o + 1}".encode() for o in range(245, 250)
    }
    assert all(r.headers == (("n", r.value[1:]),) for r in got)


@pytest.mark.parametrize("client", CLIENTS)
def test_reading_past_the_end_fails_with_where_it_stopped(
    client: str, bootstrap_servers: str, new_topic
) -> None:
    topic = new_topic(partitions=1)
    producer = open_producer(bootstrap_servers, client=client)
    for _i in range(5):
        producer.send(topic, b"x", partition=0)
    raise_for_failures(producer.flush(30), topic)
    producer.close()
    with pytest.raises(
        SeqstreamError,
        match=rf"reading {topic} from {bootstrap_servers}: no records for 1s, stuck at partition 0 at 5 of \[0, 9\)",
    ):
        list(read_range(bootstrap_servers, topic, {0: (0, 9)}, client=client, timeout_s=1))


@pytest.mark.parametrize("client", CLIENTS)
def test_undeliverable_records_fail_loudly(client: str, bootstrap_servers: str, new_topic) -> None:
    topic = new_topic(partitions=1)
    producer = open_producer(bootstrap_servers, client=client, timeout_s=3)
    producer.send(topic, b"fine", partition=0)
    producer.send(topic, b"nowhere", partition=7)  # the topic has one partition
    report = producer.flush(10)
    producer.close()
    assert (report.sent, report.acked, report.failed) == (2, 1, 1)
    with pytest.raises(DeliveryError, match=rf"{topic}: 1 of 2 records acknowledged, 1 failed"):
        raise_for_failures(report, topic)


def test_rate_control_paces_the_stream(bootstrap_servers: str, new_topic) -> None:
    topic = new_topic(partitions=1)
    messages = [Message("k", b"{}")] * 300
    producer = open_producer(bootstrap_servers)
    result = produce_messages(messages, producer, topic, rate=1000)
    producer.close()
    assert result.acked == 300
    assert result.elapsed_s >= 0.29  # 300 events at 1000/s cannot take less than 0.3 s


def test_csv_replay_interleaves_by_time_and_keeps_every_row(nab_dir: Path) -> None:
    files = sorted((nab_dir / "realTweets").glob("*.csv"))[:3]
    messages = csv_messages(files, EventSchema())
    rows = {f.stem: list(csv.DictReader(f.open())) for f in files}
    assert len(messages) == sum(len(r) for r in rows.values())
    times = [m.event.ts_ms for m in messages]
    assert times == sorted(times)
    for key, key_rows in rows.items():
        sent = [json.loads(m.value) for m in messages if m.key == key]
        assert [e["value"] for e in sent] == [float(r["value"]) for r in key_rows]
        assert [e["key"] for e in sent] == [key] * len(key_rows)


def test_csv_errors_name_the_file_and_columns(tmp_path: Path) -> None:
    bad = tmp_path / "series.csv"
    bad.write_text("time,reading\n2020-01-01,1\n")
    with pytest.raises(
        SeqstreamError, match=r"series.csv: missing column\(s\) \['timestamp', 'value'\]"
    ):
        csv_messages([bad], EventSchema())
    bad.write_text("timestamp,value\n2020-01-01,1\nyesterday,2\n")
    with pytest.raises(SeqstreamError, match=r"series.csv: unparseable time 'yesterday' in row 3"):
        csv_messages([bad], EventSchema())
    bad.write_text("timestamp,value\n2020-01-01,1\n2020-01-02,n/a\n")
    with pytest.raises(SeqstreamError) as raised:
        csv_messages([bad], EventSchema())
    assert str(raised.value) == (
        f"{bad}: 'n/a', not a number, in column 'value', row 3 (the header is row 1)"
    )
    bad.write_text("timestamp,value\n2020-01-01,\n")
    with pytest.raises(SeqstreamError, match=r"series.csv: an empty cell in column 'value', row 2"):
        csv_messages([bad], EventSchema())


def test_produce_with_a_non_numeric_csv_cell_is_an_error_not_a_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "series.csv"
    bad.write_text("timestamp,value\n2020-01-01,1\n2020-01-02,high\n")
    done = subprocess.run(
        [sys.executable, "-m", "seqstream.pipeline.cli", "produce", "--csv", str(bad)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"seqstream produce: error: {bad}: 'high', not a number, in column 'value', row 3 (the "
        "header is row 1)"
    ]


def test_synthetic_stream_is_seeded_labelled_and_disordered() -> None:
    schema = EventSchema(features=["f0", "f1"])
    spec = SyntheticSpec(
        keys=4, events_per_key=500, anomaly_rate=0.02, late_rate=0.1, malformed_rate=0.05, seed=11
    )
    stream = synthetic_stream(spec, schema)
    assert [m.value for m in stream.messages] == [
        m.value for m in synthetic_stream(spec, schema).messages
    ]
    events = stream.events
    assert len(events) == 4 * 500
    assert {(e.key, e.ts_ms) for e in events} == {
        (f"key-{k}", spec.start_ms + i * spec.step_ms) for k in range(4) for i in range(500)
    }
    went_back = 0
    for key in {e.key for e in events}:
        times = [e.ts_ms for e in events if e.key == key]
        went_back += sum(
            1 for earlier, later in zip(times, times[1:], strict=False) if later < earlier
        )
    assert went_back > 0
    malformed = [m for m in stream.messages if m.event is None]
    assert {m.malformed_reason for m in malformed} == set(MALFORMED_KINDS)
    for m in malformed:
        try:
            body = json.loads(m.value)
        except ValueError:
            continue  # not JSON at all: malformed by construction
        valid = (
            isinstance(body, dict)
            and set(body) == {"key", "ts", "f0", "f1"}
            and all(isinstance(body[f], float) and body[f] == body[f] for f in ("f0", "f1"))
        )
        assert not valid, m
    assert 0 < len(stream.anomalies) < 0.05 * len(events)


def test_cli_produce_reports_sent_and_acknowledged(
    bootstrap_servers: str, admin: TopicAdmin
) -> None:
    topic = "cli-produce"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEQSTREAM_")}
    env["SEQSTREAM_BOOTSTRAP_SERVERS"] = bootstrap_servers
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "seqstream.pipeline.cli",
            "produce",
            "--topic",
            topic,
            "--partitions",
            "2",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    try:
        assert done.returncode == 0, done.stderr
        total = sum(len(f.read_text().splitlines()) - 1 for f in demo_series_files())
        assert done.stdout.startswith(
            f"produced {total} events (4 keys, 0 malformed on purpose) to {topic} on {bootstrap_servers}"
        )
        assert f": {total} acknowledged, 0 failed" in done.stdout
        assert sum(admin.end_offsets(topic).values()) == total
    finally:
        admin.delete_topic(topic)


def test_long_format_csv_gives_each_key_its_own_series_in_time_order(tmp_path: Path) -> None:
    long = tmp_path / "fleet.csv"
    long.write_text(
        "timestamp,machine,value\n"
        "2020-01-01 00:02,m2,5\n"
        "2020-01-01 00:00,m1,1\n"
        "2020-01-01 00:01,m2,4\n"
        "2020-01-01 00:01,m1,2\n"
    )
    messages = csv_messages([long], EventSchema(), key_column="machine")
    events = [(m.event.key, m.event.ts_ms, m.event.features) for m in messages if m.event]
    minute = 60_000
    t0 = 1_577_836_800_000  # 2020-01-01T00:00Z
    assert events == [
        ("m1", t0, (1.0,)),
        ("m1", t0 + minute, (2.0,)),
        ("m2", t0 + minute, (4.0,)),
        ("m2", t0 + 2 * minute, (5.0,)),
    ]
    # A key may come from one file only; a row without a key is an error naming it.
    other = tmp_path / "more.csv"
    other.write_text("timestamp,machine,value\n2020-01-02,m2,1\n")
    with pytest.raises(SeqstreamError, match=r"key\(s\) \['m2'\] come from more than one CSV file"):
        csv_messages([long, other], EventSchema(), key_column="machine")
    other.write_text("timestamp,machine,value\n2020-01-02,,1\n")
    with pytest.raises(SeqstreamError, match=r"more.csv: an empty key in column 'machine', row 2"):
        csv_messages([other], EventSchema(), key_column="machine")
    with pytest.raises(SeqstreamError, match=r"missing column\(s\) \['site'\]"):
        csv_messages([long], EventSchema(), key_column="site")
