"""Produce records with delivery accounting on the chosen client (confluent-kafka or
kafka-python): ``open_producer`` and ``raise_for_failures``.

The write half of the data plane, apart from reading (``reader``); the client choice and shared
settings are in ``clients``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from seqstream.pipeline.errors import DeliveryError
from seqstream.pipeline.kafka.clients import ClientName, confluent_config, no_broker, resolve_client
from seqstream.pipeline.kafka.properties import kafka_python_options

Headers = Sequence[tuple[str, bytes]]


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


def raise_for_failures(report: DeliveryReport, topic: str) -> None:
    if report.failed or report.acked != report.sent:
        raise DeliveryError(
            f"{topic}: {report.acked} of {report.sent} records acknowledged, {report.failed} failed; "
            f"first errors: {report.errors}"
        )
