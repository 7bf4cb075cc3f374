"""Read an exact offset range with assign + seek on the chosen client (confluent-kafka or
kafka-python): ``read_range`` and the ``Record`` it yields.

The read half of the data plane, apart from producing (``producer``); the client choice and
shared settings are in ``clients``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import cast

from seqstream.pipeline.errors import KafkaUnavailableError, SeqstreamError
from seqstream.pipeline.kafka.clients import confluent_config, no_broker, resolve_client
from seqstream.pipeline.kafka.properties import kafka_python_options


@dataclass(frozen=True)
class Record:
    """One Kafka record as read back; mirrors the columns of Spark's Kafka source."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int
    timestamp_type: int  # Kafka numbering: 0 CreateTime, 1 LogAppendTime, -1 none
    headers: tuple[tuple[str, bytes], ...] = ()


# librdkafka: 0 not available, 1 create time, 2 log-append time; Kafka and Spark: -1, 0, 1.
_KAFKA_TIMESTAMP_TYPE = {0: -1, 1: 0, 2: 1}


def _confluent_read(
    bootstrap: str,
    topic: str,
    ranges: Mapping[int, tuple[int, int]],
    options: Mapping[str, str],
    timeout_s: float,
    group_id: str | None,
) -> Iterator[Record]:
    from confluent_kafka import Consumer, KafkaException, TopicPartition

    consumer = Consumer(
        {
            "group.id": "seqstream-reader",  # librdkafka wants one, even to assign
            "enable.auto.commit": False,
            # Kafka's and Spark's connector's default (librdkafka's is read_committed): the
            # planned ranges end at the high watermark, which read_committed may never reach.
            "isolation.level": "read_uncommitted",
            **confluent_config(bootstrap, timeout_s, options),
            **({"group.id": group_id} if group_id else {}),
        }
    )
    try:
        try:
            consumer.list_topics(topic, timeout=timeout_s)
        except KafkaException as exc:
            raise no_broker(bootstrap, timeout_s, exc) from None
        consumer.assign([TopicPartition(topic, p, start) for p, (start, _) in ranges.items()])

        def poll() -> list[Record]:
            records = []
            # consume() waits out its whole timeout unless num_messages come: keep it short, or
            # every read of a few records costs the timeout.
            for msg in consumer.consume(num_messages=10_000, timeout=0.01):
                if msg.error() is not None:
                    raise SeqstreamError(f"reading {topic}: {msg.error()}")
                ts_type, ts = msg.timestamp()
                # A consumed record always has a partition, an offset and bytes headers.
                headers = cast(list[tuple[str, bytes]], msg.headers() or [])
                records.append(
                    Record(
                        topic,
                        cast(int, msg.partition()),
                        cast(int, msg.offset()),
                        msg.key(),
                        msg.value(),
                        ts,
                        _KAFKA_TIMESTAMP_TYPE[ts_type],
                        tuple(headers),
                    )
                )
            return records

        def positions() -> dict[int, int]:
            found = consumer.position([TopicPartition(topic, p) for p in ranges])
            return {tp.partition: tp.offset for tp in found}

        yield from _read_until_ends(bootstrap, topic, ranges, poll, positions, timeout_s)
    finally:
        consumer.close()


def _kafka_python_read(
    bootstrap: str,
    topic: str,
    ranges: Mapping[int, tuple[int, int]],
    options: Mapping[str, str],
    timeout_s: float,
    group_id: str | None,
) -> Iterator[Record]:
    from kafka import KafkaConsumer, TopicPartition
    from kafka.errors import KafkaError

    try:
        consumer = KafkaConsumer(
            bootstrap_servers=bootstrap.split(","),
            group_id=group_id,
            enable_auto_commit=False,
            bootstrap_timeout_ms=int(timeout_s * 1000),
            request_timeout_ms=int(timeout_s * 1000),
            max_poll_records=10_000,
            fetch_max_wait_ms=100,
            **kafka_python_options(options),
        )
    except KafkaError as exc:
        raise no_broker(bootstrap, timeout_s, exc) from None
    try:
        consumer.assign([TopicPartition(topic, p) for p in ranges])
        for p, (start, _) in ranges.items():
            consumer.seek(TopicPartition(topic, p), start)

        def poll() -> list[Record]:
            return [
                Record(
                    topic,
                    tp.partition,
                    m.offset,
                    m.key,
                    m.value,
                    m.timestamp,
                    m.timestamp_type,
                    tuple(m.headers or ()),
                )
                for tp, messages in consumer.poll(timeout_ms=200).items()
                for m in messages
            ]

        def positions() -> dict[int, int]:
            return {p: consumer.position(TopicPartition(topic, p)) for p in ranges}

        yield from _read_until_ends(bootstrap, topic, ranges, poll, positions, timeout_s)
    finally:
        consumer.close()


def _read_until_ends(
    bootstrap: str,
    topic: str,
    ranges: Mapping[int, tuple[int, int]],
    poll: Callable[[], list[Record]],
    consumer_positions: Callable[[], dict[int, int]],
    timeout_s: float,
) -> Iterator[Record]:
    """Yield polled records inside the ranges until every partition reached its end offset.
    The consumer's position counts too: the offsets of a transactional topic's commit and abort
    markers (and a read_committed consumer's aborted records) are passed without a record."""
    pending = {p: r for p, r in ranges.items() if r[1] > r[0]}
    positions = {p: start for p, (start, _) in pending.items()}
    last_progress = time.monotonic()
    while pending:
        before = dict(positions)
        records = poll()
        for record in records:
            bounds = pending.get(record.partition)
            if bounds is None or not bounds[0] <= record.offset < bounds[1]:
                continue
            positions[record.partition] = record.offset + 1
            yield record
        if not records:  # nothing new: has the consumer moved past offsets without records?
            for p, offset in consumer_positions().items():
                if p in positions and offset > positions[p]:
                    positions[p] = offset
        if positions != before:
            last_progress = time.monotonic()
        for p in [p for p in pending if positions[p] >= pending[p][1]]:
            del pending[p]
        if pending and time.monotonic() - last_progress > timeout_s:
            raise _stalled(bootstrap, topic, positions, pending, timeout_s)


def _stalled(
    bootstrap: str,
    topic: str,
    positions: Mapping[int, int],
    pending: Mapping[int, tuple[int, int]],
    timeout_s: float,
) -> KafkaUnavailableError:
    where = ", ".join(
        f"partition {p} at {positions[p]} of [{s}, {e})" for p, (s, e) in pending.items()
    )
    return KafkaUnavailableError(
        f"reading {topic} from {bootstrap}: no records for {timeout_s:g}s, stuck at {where}"
    )


def read_range(
    bootstrap: str,
    topic: str,
    ranges: Mapping[int, tuple[int, int]],
    *,
    client: str = "auto",
    options: Mapping[str, str] | None = None,
    timeout_s: float = 10.0,
    group_id: str | None = None,
) -> Iterator[Record]:
    """Records with ``start <= offset < end`` for each ``partition: (start, end)``, per-partition
    in order. The consumer assigns the partitions and commits nothing; ``group_id`` only names it
    to the broker."""
    reader = _confluent_read if resolve_client(client) == "confluent" else _kafka_python_read
    return reader(bootstrap, topic, ranges, options or {}, timeout_s, group_id)
