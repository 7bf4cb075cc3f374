"""The seqstream-kafka options, parsed and checked at query start: pure functions, no Spark."""

from __future__ import annotations

import pytest

from seqstream.pipeline.errors import OptionError
from seqstream.pipeline.kafka.options import OffsetSpec, parse_sink_options, parse_source_options

BOOT = {"kafka.bootstrap.servers": "127.0.0.1:9092"}


def test_a_streaming_read_with_spark_option_names() -> None:
    o = parse_source_options(
        {
            **BOOT,
            "subscribe": "a, b",
            "startingOffsets": '{"a":{"0":23,"1":-2}}',
            "maxOffsetsPerTrigger": "500",
            "kafka.security.protocol": "SSL",
            "seqstream.client": "kafka-python",
            "seqstream.timeoutSeconds": "2.5",
        },
        streaming=True,
    )
    assert o.strategy == "subscribe" and o.topics == ("a", "b")
    assert o.starting == OffsetSpec("offsets", offsets={"a": {0: 23, 1: -2}})
    assert o.ending == OffsetSpec("latest")
    assert o.max_offsets_per_trigger == 500
    assert o.kafka.properties == {"security.protocol": "SSL"}
    assert (o.kafka.client, o.kafka.timeout_s) == ("kafka-python", 2.5)
    assert o.matches("a") and not o.matches("c")


def test_batch_defaults_and_durations() -> None:
    o = parse_source_options({**BOOT, "subscribePattern": "ev.*"}, streaming=False)
    assert (o.starting.kind, o.ending.kind) == ("earliest", "latest")
    assert o.matches("events") and not o.matches("xevents")
    s = parse_source_options(
        {**BOOT, "assign": '{"t":[0,2]}', "minOffsetsPerTrigger": "10", "maxTriggerDelay": "2m"},
        streaming=True,
    )
    assert s.assigned == {"t": (0, 2)} and s.max_trigger_delay_ms == 120_000
    assert parse_source_options(
        {**BOOT, "subscribe": "t", "startingTimestamp": "1700000000000"}, streaming=True
    ).starting == OffsetSpec("timestamp", timestamp=1_700_000_000_000)


@pytest.mark.parametrize(
    ("options", "streaming", "message"),
    [
        ({"subscribe": "t"}, True, "option 'kafka.bootstrap.servers' is required"),
        (
            {**BOOT},
            True,
            "exactly one of 'assign', 'subscribe', 'subscribePattern' must be given, got none",
        ),
        ({**BOOT, "subscribe": "t", "assign": '{"t":[0]}'}, True, "exactly one of"),
        ({**BOOT, "subscribe": " , "}, True, "option 'subscribe' names no topic"),
        ({**BOOT, "subscribePattern": "("}, True, "option 'subscribePattern' is not a valid regex"),
        ({**BOOT, "assign": "[0]"}, True, "option 'assign' must be JSON like"),
        ({**BOOT, "subscribe": "t", "bogus": "1"}, True, "unknown option(s) ['bogus']"),
        (
            {**BOOT, "subscribe": "t", "kafka.enable.auto.commit": "true"},
            True,
            "['kafka.enable.auto.commit'] are set by seqstream-kafka itself",
        ),
        (
            {**BOOT, "subscribe": "t", "endingOffsets": "latest"},
            True,
            "not valid for streaming reads",
        ),
        (
            {**BOOT, "subscribe": "t", "maxOffsetsPerTrigger": "5"},
            False,
            "only apply to streaming reads",
        ),
        (
            {**BOOT, "subscribe": "t", "startingOffsets": "latest"},
            False,
            "startingOffsets cannot be latest",
        ),
        (
            {**BOOT, "subscribe": "t", "endingOffsets": '{"t":{"0":-2}}'},
            False,
            "endingOffsets cannot be earliest",
        ),
        (
            {**BOOT, "subscribe": "t", "startingOffsets": "earliest", "startingTimestamp": "1"},
            True,
            "contradict each other",
        ),
        (
            {**BOOT, "subscribe": "t", "startingTimestamp": "soon"},
            True,
            "must be epoch milliseconds",
        ),
        (
            {**BOOT, "subscribe": "t", "maxOffsetsPerTrigger": "0"},
            True,
            "must be a positive integer",
        ),
        (
            {**BOOT, "subscribe": "t", "minOffsetsPerTrigger": "9", "maxOffsetsPerTrigger": "5"},
            True,
            "minOffsetsPerTrigger (9) is larger than maxOffsetsPerTrigger (5)",
        ),
        (
            {**BOOT, "subscribe": "t", "maxTriggerDelay": "1m"},
            True,
            "'maxTriggerDelay' needs 'minOffsetsPerTrigger'",
        ),
        (
            {**BOOT, "subscribe": "t", "minOffsetsPerTrigger": "1", "maxTriggerDelay": "soon"},
            True,
            "must be a duration like 30s",
        ),
        (
            {**BOOT, "subscribe": "t", "failOnDataLoss": "maybe"},
            True,
            "'failondataloss' must be true or false",
        ),
        (
            {**BOOT, "subscribe": "t", "seqstream.client": "java"},
            True,
            "'seqstream.client' must be auto",
        ),
        ({**BOOT, "subscribe": "t", "seqstream.timeoutSeconds": "-1"}, True, "must be > 0"),
    ],
)
def test_bad_options_are_refused_naming_them(
    options: dict[str, str], streaming: bool, message: str
) -> None:
    with pytest.raises(OptionError) as raised:
        parse_source_options(options, streaming=streaming)
    assert message in str(raised.value)


def test_the_options_of_sparks_kafka_guide() -> None:
    o = parse_source_options(
        {
            **BOOT,
            "subscribe": "t",
            "kafka.group.id": "authorized",
            "groupIdPrefix": "ignored-when-a-group-id-is-given",
            "kafkaConsumer.pollTimeoutMs": "5000",
            "fetchOffset.numRetries": "0",
            "fetchOffset.retryIntervalMs": "250",
            "startingOffsetsByTimestampStrategy": "LATEST",
        },
        streaming=True,
    )
    assert o.group_id == "authorized" and o.kafka.properties == {}  # not a client property
    assert (o.read_timeout_s, o.offset_retries, o.offset_retry_interval_s) == (5.0, 0, 0.25)
    assert o.timestamp_strategy == "latest"
    default = parse_source_options({**BOOT, "subscribe": "t"}, streaming=True)
    assert (default.group_id, default.read_timeout_s, default.offset_retries) == (None, 30.0, None)
    assert default.timestamp_strategy == "error"
    # groupIdPrefix: a unique group per query, as Spark makes them
    prefixed = [
        parse_source_options({**BOOT, "subscribe": "t", "groupIdPrefix": "app"}, streaming=True)
        for _ in range(2)
    ]
    assert all(p.group_id and p.group_id.startswith("app-") for p in prefixed)
    assert prefixed[0].group_id != prefixed[1].group_id


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("startingOffsetsByTimestampStrategy", "newest", "must be error or latest, got 'newest'"),
        ("kafkaConsumer.pollTimeoutMs", "0", "'kafkaconsumer.polltimeoutms' must be > 0"),
        ("fetchOffset.numRetries", "-1", "'fetchoffset.numretries' must be an integer >= 0"),
        ("fetchOffset.retryIntervalMs", "soon", "must be an integer >= 0, got 'soon'"),
        ("kafka.group.id", " ", "option 'kafka.group.id' is empty"),
    ],
)
def test_bad_values_of_sparks_options_are_refused(name: str, value: str, message: str) -> None:
    with pytest.raises(OptionError) as raised:
        parse_source_options({**BOOT, "subscribe": "t", name: value}, streaming=True)
    assert message in str(raised.value)


def test_sink_options() -> None:
    sink = parse_sink_options(
        {**BOOT, "topic": "out", "includeHeaders": "true", "checkpointLocation": "/x"}
    )
    assert (sink.topic, sink.include_headers, sink.kafka.bootstrap) == (
        "out",
        True,
        "127.0.0.1:9092",
    )
    # A writer has no consumer group: Spark's kafka.group.id is accepted and means nothing there.
    assert parse_sink_options({**BOOT, "kafka.group.id": "g"}).kafka.properties == {}
    with pytest.raises(OptionError, match=r"unknown option\(s\) \['subscribe'\]"):
        parse_sink_options({**BOOT, "subscribe": "t"})
