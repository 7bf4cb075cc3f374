"""The seqstream-kafka Spark data source against the real broker and a real local Spark."""

from __future__ import annotations

import json
import time

import pytest
from pyspark.errors import PySparkException
from pyspark.sql.utils import AnalysisException

from seqstream.pipeline.kafka.admin import TopicAdmin
from seqstream.pipeline.kafka.datasource import SHORT_NAME, KafkaDataSource
from seqstream.pipeline.kafka.producer import open_producer, raise_for_failures
from seqstream.pipeline.kafka.schema import kafka_schema

from helpers import fill

CLIENTS = ["confluent", "kafka-python"]


@pytest.fixture(scope="module")
def kspark(spark):  # type: ignore[no-untyped-def]
    spark.dataSource.register(KafkaDataSource)
    return spark


def reader(kspark, bootstrap: str, **options: str):  # type: ignore[no-untyped-def]
    r = kspark.read.format(SHORT_NAME).option("kafka.bootstrap.servers", bootstrap)
    for name, value in options.items():
        r = r.option(name, value)
    return r.load()


def assert_exact(rows, topic: str, ranges: dict[int, tuple[int, int]]) -> None:  # type: ignore[no-untyped-def]
    got = sorted((r.partition, r.offset, bytes(r.value)) for r in rows)
    expected = sorted(
        (p, o, f"{topic}/{p}/{o}".encode()) for p, (a, b) in ranges.items() for o in range(a, b)
    )
    assert len(got) == len(expected)
    assert got == expected


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("min_partitions", [None, "7"])
def test_batch_read_of_an_exact_offset_range(
    kspark, bootstrap_servers, new_topic, client, min_partitions
) -> None:
    topic = new_topic(partitions=3)
    fill(bootstrap_servers, topic, {0: 600, 1: 300, 2: 5})
    options = {
        "subscribe": topic,
        "seqstream.client": client,
        "startingOffsets": json.dumps({topic: {"0": 120, "1": -2, "2": 1}}),
        "endingOffsets": json.dumps({topic: {"0": 590, "1": 300, "2": -1}}),
    }
    if min_partitions:
        options["minPartitions"] = min_partitions
    df = reader(kspark, bootstrap_servers, **options)
    assert df.schema == kafka_schema()
    if min_partitions:
        assert df.rdd.getNumPartitions() >= 7
    assert_exact(df.collect(), topic, {0: (120, 590), 1: (0, 300), 2: (1, 5)})


def test_headers_keys_and_timestamps_round_trip(kspark, bootstrap_servers, new_topic) -> None:
    topic = new_topic(partitions=1)
    producer = open_producer(bootstrap_servers)
    producer.send(
        topic,
        b"v",
        key=b"k",
        partition=0,
        headers=[("a", b"1"), ("b", b"\x00\xff")],
        timestamp_ms=1_600_000_000_123,
    )
    raise_for_failures(producer.flush(30), topic)
    producer.close()
    (row,) = reader(kspark, bootstrap_servers, subscribe=topic, includeHeaders="true").collect()
    assert (bytes(row.key), bytes(row.value), row.topic, row.partition, row.offset) == (
        b"k",
        b"v",
        topic,
        0,
        0,
    )
    assert int(row.timestamp.timestamp() * 1000) == 1_600_000_000_123 and row.timestampType == 0
    assert [(h.key, bytes(h.value)) for h in row.headers] == [("a", b"1"), ("b", b"\x00\xff")]


def test_timestamps_resolve_to_the_right_offsets(kspark, bootstrap_servers, new_topic) -> None:
    topic = new_topic(partitions=2)
    base = 1_700_000_000_000
    fill(
        bootstrap_servers,
        topic,
        {0: 100, 1: 50},
        {0: [base + 10 * i for i in range(100)], 1: [base + 20 * i for i in range(50)]},
    )
    df = reader(
        kspark,
        bootstrap_servers,
        subscribe=topic,
        startingTimestamp=str(base + 200),
        endingOffsetsByTimestamp=json.dumps({topic: {"0": base + 505, "1": base + 10**9}}),
    )
    assert_exact(df.collect(), topic, {0: (20, 51), 1: (10, 50)})


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize(
    "group", [{"kafka.group.id": "authorized-readers"}, {"groupIdPrefix": "app"}]
)
def test_the_consumer_options_of_sparks_kafka_guide_are_honoured(
    kspark, bootstrap_servers, new_topic, client, group
) -> None:
    """Code written for Spark's connector runs unchanged: a group id (the consumers still assign
    and commit nothing), a poll timeout and the offset-lookup retries."""
    topic = new_topic(partitions=2)
    fill(bootstrap_servers, topic, {0: 40, 1: 25})
    spark_options = {
        "kafkaConsumer.pollTimeoutMs": "20000",
        "fetchOffset.numRetries": "5",
        "fetchOffset.retryIntervalMs": "100",
    }
    options = {"subscribe": topic, "seqstream.client": client, **spark_options, **group}
    assert_exact(
        reader(kspark, bootstrap_servers, **options).collect(), topic, {0: (0, 40), 1: (0, 25)}
    )


def test_a_start_timestamp_no_record_reaches_fails_unless_the_strategy_is_latest(
    kspark, bootstrap_servers, new_topic
) -> None:
    topic = new_topic(partitions=2)
    base = 1_700_000_000_000
    fill(
        bootstrap_servers,
        topic,
        {0: 100, 1: 100},
        {0: [base + 10 * i for i in range(100)], 1: [base + 20 * i for i in range(100)]},
    )
    at = base + 1000  # after all of partition 0 (up to base + 990), halfway through partition 1
    with pytest.raises(Exception) as excinfo:
        reader(kspark, bootstrap_servers, subscribe=topic, startingTimestamp=str(at)).collect()
    assert (
        f"startingTimestamp: no record at or after the timestamp in {topic}-0 ({at}); set "
        "startingOffsetsByTimestampStrategy=latest" in str(excinfo.value)
    )
    by_partition = json.dumps({topic: {"0": at, "1": at}})
    rows = reader(
        kspark,
        bootstrap_servers,
        subscribe=topic,
        startingOffsetsByTimestamp=by_partition,
        startingOffsetsByTimestampStrategy="latest",
    ).collect()
    assert_exact(rows, topic, {1: (50, 100)})


def test_offset_lookups_give_up_after_fetch_offset_num_retries(kspark) -> None:
    from seqstream.pipeline.kafka.broker_process import free_port

    address = f"127.0.0.1:{free_port()}"
    options = {
        "seqstream.timeoutSeconds": "1",
        "seqstream.retryTimeoutSeconds": "600",
        "fetchOffset.numRetries": "2",
        "fetchOffset.retryIntervalMs": "10",
    }
    with pytest.raises(Exception) as excinfo:
        reader(kspark, address, subscribe="t", **options).collect()
    assert (
        f"Kafka at {address} did not answer planning a read (3 attempts; "
        "fetchOffset.numRetries=2): " in str(excinfo.value)
    )


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, "exactly one of 'assign', 'subscribe', 'subscribePattern' must be given, got none"),
        ({"subscribe": "a", "subscribePattern": "a.*"}, "got ['subscribe', 'subscribepattern']"),
        ({"subscribe": "a", "colour": "red"}, "unknown option(s) ['colour']"),
        (
            {"subscribe": "a", "kafka.auto.offset.reset": "earliest"},
            "option(s) ['kafka.auto.offset.reset'] are set by seqstream-kafka itself",
        ),
        (
            {"subscribe": "a", "startingOffsets": "latest"},
            "startingOffsets cannot be latest (-1) for a batch read",
        ),
        (
            {"subscribe": "a", "startingOffsets": "earliest", "startingTimestamp": "5"},
            "options ['startingoffsets', 'startingtimestamp'] contradict each other",
        ),
        (
            {"subscribe": "a", "maxOffsetsPerTrigger": "10"},
            "option(s) ['maxoffsetspertrigger'] only apply to streaming reads",
        ),
        (
            {"subscribe": "a", "minPartitions": "zero"},
            "option 'minpartitions' must be a positive integer, got 'zero'",
        ),
        (
            {"subscribe": "a", "endingOffsets": "{bad json"},
            "option 'endingoffsets' must be JSON like",
        ),
        ({"assign": "[0, 1]"}, "option 'assign' must be JSON like"),
    ],
)
def test_bad_options_fail_at_start_naming_them(kspark, bootstrap_servers, options, message) -> None:
    with pytest.raises((AnalysisException, PySparkException, Exception)) as excinfo:
        reader(kspark, bootstrap_servers, **options).collect()
    assert message in str(excinfo.value)


def test_streaming_only_and_batch_only_options(kspark, bootstrap_servers) -> None:
    stream = (
        kspark.readStream.format(SHORT_NAME)
        .option("kafka.bootstrap.servers", bootstrap_servers)
        .option("subscribe", "a")
        .option("endingOffsets", "latest")
        .load()
    )
    with pytest.raises(
        Exception, match=r"option\(s\) \['endingoffsets'\] are not valid for streaming reads"
    ):
        stream.writeStream.format("noop").start().awaitTermination(30)


def test_unreachable_broker_fails_after_the_configured_wait(kspark) -> None:
    from seqstream.pipeline.kafka.broker_process import free_port

    address = f"127.0.0.1:{free_port()}"
    started = time.monotonic()
    with pytest.raises(Exception) as excinfo:
        options = {"seqstream.timeoutSeconds": "2", "seqstream.retryTimeoutSeconds": "5"}
        reader(kspark, address, subscribe="t", **options).collect()
    # each attempt waits 2 s; attempts are retried for 5 s, then the read fails naming the address
    assert f"Kafka at {address} did not answer planning a read for 5s (" in str(excinfo.value)
    assert f"no Kafka broker answered at {address} within 2s" in str(excinfo.value)
    assert time.monotonic() - started < 60


def test_deleted_topic_is_data_loss(kspark, bootstrap_servers, admin: TopicAdmin) -> None:
    topic = "lost-topic"
    admin.create_topic(topic, 1)
    fill(bootstrap_servers, topic, {0: 10})
    assign = json.dumps({topic: [0]})
    admin.delete_topic(topic)
    with pytest.raises(Exception, match=rf"data loss: {topic}-0: partition no longer exists"):
        reader(
            kspark,
            bootstrap_servers,
            assign=assign,
            startingOffsets=json.dumps({topic: {"0": 0}}),
            endingOffsets=json.dumps({topic: {"0": 10}}),
        ).collect()
    rows = reader(
        kspark,
        bootstrap_servers,
        assign=assign,
        failOnDataLoss="false",
        startingOffsets=json.dumps({topic: {"0": 0}}),
        endingOffsets=json.dumps({topic: {"0": 10}}),
    ).collect()
    assert rows == []
