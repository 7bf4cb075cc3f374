"""The Kafka data plane behind one small interface: confluent-kafka when installed, else kafka-python.

Two verbs cover what seqstream needs from a client: produce records with delivery accounting
(``open_producer``) and read an exact offset range with assign + seek (``read_range``). Both fail
within ``timeout_s`` with the broker address when nothing answers.
"""

from __future__ import annotations

import importlib.util
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, cast

from seqstream.pipeline.errors import DeliveryError, KafkaUnavailableError, SeqstreamError
from seqstream.pipeline.kafka.properties import kafka_python_options

ClientName = Literal["confluent", "kafka-python"]
Headers = Sequence[tuple[str, bytes]]

# librdkafka's own log lines (connection refused, retries) go to logging, not straight to stderr.
_LIBRDKAFKA_LOG = logging.getLogger("seqstream.librdkafka")


def confluent_config(bootstrap: str, timeout_s: float, options: Mapping[str, str]) -> dict:
    """librdkafka settings every seqstream client shares; ``options`` override them."""
    return {
        "bootstrap.servers": bootstrap,
        "socket.timeout.ms": int(timeout_s * 1000),
        "logger": _LIBRDKAFKA_LOG,
        **options,
    }


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


@dataclass
class DeliveryReport:
    """What the broker acknowledged; ``errors`` keeps the first few failure reasons."""

    sent: int = 0
    acked: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)

    def record_failure(self, reason: str) -> None:
        self.failed += 1
        if len(self.errors) < 5:
            self.errors.append(reason)


class RecordProducer(Protocol):
    client: ClientName
    report: DeliveryReport

    def send(
        self,
        topic: str,
        value: bytes | None,
        *,
        key: bytes | None = None,
        partition: int | None = None,
        headers: Headers | None = None,
        timestamp_ms: int | None = None,
    ) -> None: ...

    def flush(self, timeout_s: float) -> DeliveryReport: ...

    def close(self) -> None: ...


def resolve_client(client: str = "auto") -> ClientName:
    """``auto`` picks confluent-kafka (about 10x faster here) when it is installed."""
    if client == "auto":
        return "confluent" if importlib.util.find_spec("confluent_kafka") else "kafka-python"
    if client == "confluent":
        return "confluent"
    if client == "kafka-python":
        return "kafka-python"
    raise SeqstreamError(f"kafka.client must be auto, confluent or kafka-python, not {client!r}")


def no_broker(bootstrap: str, timeout_s: float, detail: object) -> KafkaUnavailableError:
    """The error for a cluster that did not answer, naming the address and where it is set."""
    return KafkaUnavailableError(
        f"no Kafka broker answered at {bootstrap} within {timeout_s:g}s "
        f"(kafka.bootstrap_servers / SEQSTREAM_BOOTSTRAP_SERVERS): {detail}"
    )


# --- confluent-kafka ---------------------------------------------------------------------------


def produce_when_queued(producer: Any, topic: str, **kwargs: Any) -> None:
    """confluent-kafka ``produce``, waiting while the local queue is full (BufferError) for
    deliveries to drain; a refusal (KafkaException) is raised to the caller."""
    while True:
        try:
            producer.produce(topic, **kwargs)
            return
        except BufferError:
            producer.poll(0.05)


class _ConfluentProducer:
    client: ClientName = "confluent"

    def __init__(
        self,
        bootstrap: str,
        options: Mapping[str, str],
        timeout_s: float,
        delivery_timeout_s: float,
    ) -> None:
        from confluent_kafka import KafkaException, Producer

        self.report = DeliveryReport()
        self._refused = KafkaException
        self._producer = Producer(
            {
                # murmur2 is what Java and kafka-python clients use: a key lands in the same
                # partition whichever client wrote it.
                "enable.idempotence": True,
                "partitioner": "murmur2_random",
                "linger.ms": 20,
                "message.timeout.ms": max(int(delivery_timeout_s * 1000), 5000),
                **confluent_config(bootstrap, timeout_s, options),
            }
        )
        try:
            self._producer.list_topics(timeout=timeout_s)
        except KafkaException as exc:
            raise no_broker(bootstrap, timeout_s, exc) from None

    def _on_delivery(self, err: object, msg: object) -> None:
        if err is None:
            self.report.acked += 1
        else:
            self.report.record_failure(str(err))

    def send(
        self,
        topic: str,
        value: bytes | None,
        *,
        key: bytes | None = None,
        partition: int | None = None,
        headers: Headers | None = None,
        timestamp_ms: int | None = None,
    ) -> None:
        kwargs: dict[str, Any] = {"key": key, "value": value, "on_delivery": self._on_delivery}
        if partition is not None:
            kwargs["partition"] = partition
        if headers:
            kwargs["headers"] = list(headers)
        if timestamp_ms is not None:
            kwargs["timestamp"] = timestamp_ms
        self.report.sent += 1
        try:
            produce_when_queued(self._producer, topic, **kwargs)
        except self._refused as exc:  # refused before sending, e.g. unknown partition
            self.report.record_failure(f"{topic}: {exc.args[0].str()}")
            return
        self._producer.poll(0)

    def flush(self, timeout_s: float) -> DeliveryReport:
        remaining = self._producer.flush(timeout_s)
        for _ in range(remaining):
            self.report.record_failure(f"not acknowledged within {timeout_s:g}s")
        return self.report

    def close(self) -> None:
        self._producer.flush(0)


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


# --- kafka-python ------------------------------------------------------------------------------


class _KafkaPythonProducer:
    client: ClientName = "kafka-python"

    def __init__(self, bootstrap: str, options: Mapping[str, str], timeout_s: float) -> None:
        from kafka import KafkaProducer
        from kafka.errors import KafkaError

        self.report = DeliveryReport()
        self._refused = (KafkaError, ValueError)
        try:
            self._producer = KafkaProducer(
                bootstrap_servers=bootstrap.split(","),
                enable_idempotence=True,
                linger_ms=20,
                bootstrap_timeout_ms=int(timeout_s * 1000),
                request_timeout_ms=int(timeout_s * 1000),
                **kafka_python_options(options),
            )
        except KafkaError as exc:
            raise no_broker(bootstrap, timeout_s, exc) from None

    def _on_success(self, _metadata: object) -> None:
        self.report.acked += 1

    def _on_error(self, exc: BaseException) -> None:
        self.report.record_failure(repr(exc))

    def send(
        self,
        topic: str,
        value: bytes | None,
        *,
        key: bytes | None = None,
        partition: int | None = None,
        headers: Headers | None = None,
        timestamp_ms: int | None = None,
    ) -> None:
        self.report.sent += 1
        try:
            future = self._producer.send(
                topic,
                value=value,
                key=key,
                partition=partition,
                headers=list(headers) if headers else None,
                timestamp_ms=timestamp_ms,
            )
        except self._refused as exc:  # refused before sending, e.g. unknown partition
            self.report.record_failure(f"{topic}: {exc}")
            return
        future.add_callback(self._on_success).add_errback(self._on_error)

    def flush(self, timeout_s: float) -> DeliveryReport:
        from kafka.errors import KafkaTimeoutError

        try:
            self._producer.flush(timeout=timeout_s)
        except KafkaTimeoutError:
            unanswered = self.report.sent - self.report.acked - self.report.failed
            for _ in range(unanswered):
                self.report.record_failure(f"not acknowledged within {timeout_s:g}s")
        return self.report

    def close(self) -> None:
        self._producer.close(timeout=1)


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


# --- public entry points -----------------------------------------------------------------------


def open_producer(
    bootstrap: str,
    *,
    client: str = "auto",
    options: Mapping[str, str] | None = None,
    timeout_s: float = 10.0,
    delivery_timeout_s: float | None = None,
) -> RecordProducer:
    """An idempotent producer; raises KafkaUnavailableError if no broker answers in time.
    ``delivery_timeout_s`` (default: ``timeout_s``) is how long a record may wait for its
    acknowledgement, the client retrying meanwhile (confluent-kafka's ``message.timeout.ms``)."""
    chosen = resolve_client(client)
    if chosen == "confluent":
        return _ConfluentProducer(
            bootstrap, options or {}, timeout_s, delivery_timeout_s or timeout_s
        )
    return _KafkaPythonProducer(bootstrap, options or {}, timeout_s)


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


def raise_for_failures(report: DeliveryReport, topic: str) -> None:
    if report.failed or report.acked != report.sent:
        raise DeliveryError(
            f"{topic}: {report.acked} of {report.sent} records acknowledged, {report.failed} failed; "
            f"first errors: {report.errors}"
        )
