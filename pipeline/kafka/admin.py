"""Topic administration on the chosen Kafka client: create, describe, offsets, delete.

``kafka.client`` picks the client for admin calls as for reads and writes, so ``kafka.options``
written for librdkafka work everywhere with ``kafka.client=confluent``. Each client sits behind
five primitives (``_Backend``); what needs care is shared above them.

Offsets here are the log's real bounds even on brokers whose ListOffsets answers are off
(Tansu: "latest" is the base offset of the last write batch + 1; times are looked up by batch
append time, not record timestamps; a time past the last record maps to offset 0 with timestamp
-1). See ``end_offsets`` and ``offsets_for_times``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, Protocol, cast

from seqstream.pipeline.errors import KafkaUnavailableError, TopicError
from seqstream.pipeline.kafka.clients import confluent_config, no_broker, resolve_client
from seqstream.pipeline.kafka.properties import kafka_python_options

# How long one poll waits for the tail of a partition when checking where it really ends.
_TAIL_POLL_S = 0.5

# An offset lookup: the first offset, the end of the log, or the first offset at a time (ms).
Spec = Literal["earliest", "latest"] | int
# What one poll of a partition brought: its partition, the (offset, timestamp) of each record,
# and the high watermark the broker sent with them.
# (partition, [(offset, timestamp ms)], high watermark, the consumer's next offset): a poll can
# pass a transactional topic's commit and abort markers without a record.
Fetched = tuple[int, list[tuple[int, int]], int, int]


@dataclass(frozen=True)
class TopicInfo:
    name: str
    partitions: int


class _Backend(Protocol):
    """What TopicAdmin needs from a client. Errors are the client's own, except where noted."""

    def topics(self, only: str | None = None) -> dict[str, int]:
        """Every topic on the cluster (or just ``only``, if it exists) with its partition count."""
        ...

    def create(self, name: str, partitions: int, replication_factor: int) -> bool:
        """Create ``name`` and wait for its leaders; False if it already existed."""
        ...

    def delete(self, name: str) -> bool:
        """Delete ``name``; False if there was no such topic."""
        ...

    def list_offsets(self, topic: str, partitions: Sequence[int], spec: Spec) -> dict[int, tuple]:
        """The broker's (offset, timestamp) answer to ListOffsets, per partition."""
        ...

    def fetch(self, topic: str, starts: Mapping[int, int], deadline: float) -> Iterator[Fetched]:
        """Records from ``starts`` on, poll after poll, until the caller stops or the
        ``time.monotonic()`` deadline passes."""
        ...

    def close(self) -> None: ...


class TopicAdmin:
    """Admin operations against one cluster; open once, use for many calls, then ``close()``.
    ``client`` is ``kafka.client`` (auto: confluent-kafka when installed)."""

    def __init__(
        self,
        bootstrap_servers: str,
        *,
        client: str = "auto",
        timeout_s: float = 10.0,
        options: Mapping[str, str] | None = None,
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.timeout_s = timeout_s
        self.client = resolve_client(client)
        backend = _ConfluentBackend if self.client == "confluent" else _KafkaPythonBackend
        self._backend: _Backend = backend(bootstrap_servers, timeout_s, options or {})
        # (topic, partition) -> (the broker's "latest" answer, the true end found for it).
        self._ends: dict[tuple[str, int], tuple[int, int]] = {}

    # --- topics ------------------------------------------------------------------------------

    def topic_partitions(self) -> dict[str, int]:
        """Every topic but Kafka's internal ones, with its partition count: one request."""
        return {t: n for t, n in self._backend.topics().items() if not t.startswith("__")}

    def list_topics(self) -> set[str]:
        return set(self.topic_partitions())

    def create_topic(
        self, name: str, partitions: int, *, replication_factor: int = 1, exist_ok: bool = False
    ) -> TopicInfo:
        """Create ``name`` and wait until every partition has a leader."""
        if self._backend.create(name, partitions, replication_factor):
            return self.describe_topic(name)
        if not exist_ok:
            raise TopicError(f"topic {name!r} already exists")
        existing = self.describe_topic(name)
        if existing.partitions != partitions:
            raise TopicError(
                f"topic {name!r} exists with {existing.partitions} partitions, "
                f"not the {partitions} asked for"
            )
        return existing

    def describe_topic(self, name: str) -> TopicInfo:
        partitions = self._backend.topics(only=name).get(name)
        if not partitions:
            raise TopicError(f"topic {name!r} does not exist on {self.bootstrap_servers}")
        return TopicInfo(name, partitions)

    def delete_topic(self, name: str) -> None:
        self._ends = {k: v for k, v in self._ends.items() if k[0] != name}
        if not self._backend.delete(name):
            raise TopicError(f"cannot delete topic {name!r}: it does not exist")

    def _partitions(self, topic: str) -> list[int]:
        return list(range(self.describe_topic(topic).partitions))

    # --- offsets -----------------------------------------------------------------------------

    def beginning_offsets(
        self, topic: str, partitions: Sequence[int] | None = None
    ) -> dict[int, int]:
        """The first offset of each of ``partitions`` (default: all of the topic's)."""
        chosen = list(partitions) if partitions is not None else self._partitions(topic)
        found = self._backend.list_offsets(topic, chosen, "earliest")
        return {p: offset for p, (offset, _) in found.items()}

    def end_offsets(self, topic: str, partitions: Sequence[int] | None = None) -> dict[int, int]:
        """The offset after the last record of each of ``partitions`` (default: all of the
        topic's), the true high watermark.

        One ListOffsets request; the log tail is fetched only for partitions whose answer
        changed since this admin last looked (an unchanged answer means an unchanged last batch,
        so an unchanged true end)."""
        chosen = list(partitions) if partitions is not None else self._partitions(topic)
        found = self._backend.list_offsets(topic, chosen, "latest")
        reported = {p: offset for p, (offset, _) in found.items()}
        ends: dict[int, int] = {}
        changed: dict[int, int] = {}
        for p, offset in reported.items():
            known = self._ends.get((topic, p))
            if known is not None and known[0] == offset:
                ends[p] = known[1]
            else:
                changed[p] = offset
        if changed:
            starts = self.beginning_offsets(topic, list(changed))
            ends.update(self._true_ends(topic, changed, starts))
            self._ends.update({(topic, p): (changed[p], ends[p]) for p in changed})
        return ends

    def offsets_for_times(self, topic: str, timestamp_ms: int) -> dict[int, int]:
        """Per partition, the first offset whose record timestamp is >= ``timestamp_ms``, or the
        end offset when there is none (Kafka's contract).

        The broker's answer is only a starting point: Tansu indexes whole batches by its own
        append time, which is never earlier than a record's create time, so its answer is at or
        before the true one. Reading forward from it to the first record at or after the time is
        exact there and costs one fetch on Kafka."""
        partitions = self._partitions(topic)
        found = self._backend.list_offsets(topic, partitions, timestamp_ms)
        ends = self.end_offsets(topic, partitions)
        result = {p: ends[p] for p in found}
        # Kafka answers -1 when no record is that late; Tansu answers offset 0, timestamp -1.
        starts = {p: o for p, (o, ts) in found.items() if o >= 0 and ts >= 0 and o < ends[p]}
        if not starts:
            return result
        deadline = time.monotonic() + self.timeout_s
        for partition, records, _, position in self._backend.fetch(topic, dict(starts), deadline):
            hit = next((o for o, ts in records if ts >= timestamp_ms), None)
            if partition in starts and (hit is not None or position >= ends[partition]):
                result[partition] = ends[partition] if hit is None else hit
                del starts[partition]
            if not starts:
                break
        if starts:
            raise self._no_answer(topic, starts)
        return result

    def _true_ends(
        self, topic: str, reported: dict[int, int], starts: dict[int, int]
    ) -> dict[int, int]:
        """One fetch from ``reported - 1`` per non-empty partition. A correct broker returns the
        record at ``reported - 1``; Tansu returns its whole last batch. Either way the fetch
        response's high watermark (right on both) and the records' offsets give the true end."""
        pending = {p: end - 1 for p, end in reported.items() if end > starts[p]}
        ends = dict(reported)
        if not pending:
            return ends
        deadline = time.monotonic() + self.timeout_s
        for partition, _, high, position in self._backend.fetch(topic, dict(pending), deadline):
            if partition in pending:
                ends[partition] = max(ends[partition], position, high)
                del pending[partition]
            if not pending:
                break
        if pending:
            raise self._no_answer(topic, pending)
        return ends

    def _no_answer(self, topic: str, pending: Mapping[int, int]) -> KafkaUnavailableError:
        return KafkaUnavailableError(
            f"{topic}: no answer within {self.timeout_s:g}s to a fetch of partitions "
            f"{sorted(pending)} from {self.bootstrap_servers}"
        )

    # --- lifecycle ---------------------------------------------------------------------------

    def close(self) -> None:
        self._backend.close()

    def __enter__(self) -> TopicAdmin:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


# --- confluent-kafka ---------------------------------------------------------------------------


def _succeeded(future: Any, *, unless: int) -> bool:
    """Wait for an admin request: True when done, False when it failed with the error code
    ``unless`` (the topic already there, or already gone); any other error is raised."""
    from confluent_kafka import KafkaException

    try:
        future.result()
    except KafkaException as exc:
        if exc.args[0].code() == unless:
            return False
        raise
    return True


class _ConfluentBackend:
    def __init__(self, bootstrap: str, timeout_s: float, options: Mapping[str, str]) -> None:
        from confluent_kafka import KafkaException
        from confluent_kafka.admin import AdminClient

        self._timeout_s = timeout_s
        self._config = confluent_config(bootstrap, timeout_s, options)
        self._admin = AdminClient({"client.id": "seqstream-admin", **self._config})
        try:
            self.topics()
        except KafkaException as exc:
            raise no_broker(bootstrap, timeout_s, exc.args[0].str()) from None

    def topics(self, only: str | None = None) -> dict[str, int]:
        # Always the whole cluster's metadata, one request: asking for one topic by name makes
        # Tansu create it.
        metadata = self._admin.list_topics(timeout=self._timeout_s)
        return {
            name: len(topic.partitions)
            for name, topic in metadata.topics.items()
            if topic.error is None
        }

    def create(self, name: str, partitions: int, replication_factor: int) -> bool:
        from confluent_kafka import KafkaError
        from confluent_kafka.admin import NewTopic

        futures = self._admin.create_topics(
            [NewTopic(name, partitions, replication_factor)], request_timeout=self._timeout_s
        )
        if not _succeeded(futures[name], unless=KafkaError.TOPIC_ALREADY_EXISTS):
            return False
        deadline = time.monotonic() + self._timeout_s
        while time.monotonic() < deadline:
            topic = self._admin.list_topics(timeout=self._timeout_s).topics.get(name)
            if topic and len(topic.partitions) == partitions:
                if all(p.leader >= 0 for p in topic.partitions.values()):
                    return True
            time.sleep(0.05)
        raise TopicError(
            f"topic {name!r} has no leader for every partition after {self._timeout_s:g}s"
        )

    def delete(self, name: str) -> bool:
        from confluent_kafka import KafkaError

        futures = self._admin.delete_topics([name], request_timeout=self._timeout_s)
        return _succeeded(futures[name], unless=KafkaError.UNKNOWN_TOPIC_OR_PART)

    def list_offsets(self, topic: str, partitions: Sequence[int], spec: Spec) -> dict[int, tuple]:
        from confluent_kafka import TopicPartition
        from confluent_kafka.admin import OffsetSpec

        lookup = (
            OffsetSpec.earliest()
            if spec == "earliest"
            else OffsetSpec.latest()
            if spec == "latest"
            else OffsetSpec.for_timestamp(spec)
        )
        futures = self._admin.list_offsets(
            {TopicPartition(topic, p): lookup for p in partitions}, request_timeout=self._timeout_s
        )
        return {
            tp.partition: (answer.offset, answer.timestamp)
            for tp, future in futures.items()
            for answer in [future.result()]
        }

    def fetch(self, topic: str, starts: Mapping[int, int], deadline: float) -> Iterator[Fetched]:
        from confluent_kafka import Consumer, KafkaException, TopicPartition

        # A consumer per call: librdkafka 2.16 crashes (SIGSEGV) when a consumer outlives the
        # deletion of a topic it read, which an admin's long life makes likely.
        consumer = Consumer(
            {
                "client.id": "seqstream-admin-tail",
                "group.id": "seqstream-admin",
                "enable.auto.commit": False,
                "fetch.wait.max.ms": 100,
                **self._config,
            }
        )
        consumer.assign([TopicPartition(topic, p, offset) for p, offset in starts.items()])
        try:
            while time.monotonic() < deadline:
                # consume() waits out its whole timeout unless num_messages come: keep it short.
                messages = consumer.consume(num_messages=100_000, timeout=0.02)
                polled: dict[int, list[tuple[int, int]]] = {}
                for message in messages:
                    if message.error() is not None:
                        raise KafkaException(message.error())
                    # A consumed message always has a partition and an offset.
                    partition, offset = cast(int, message.partition()), cast(int, message.offset())
                    polled.setdefault(partition, []).append((offset, message.timestamp()[1]))
                for partition, records in polled.items():
                    _, high = consumer.get_watermark_offsets(
                        TopicPartition(topic, partition), cached=True
                    )
                    yield partition, records, max(high, 0), records[-1][0] + 1
                if not messages:  # offsets passed without a record (transaction markers)?
                    wanted = [TopicPartition(topic, p) for p in starts]
                    for tp in consumer.position(wanted):
                        if tp.offset > starts[tp.partition]:
                            _, high = consumer.get_watermark_offsets(tp, cached=True)
                            yield tp.partition, [], max(high, 0), tp.offset
        finally:
            consumer.close()

    def close(self) -> None:
        pass  # AdminClient has no close; it is freed with the object


# --- kafka-python ------------------------------------------------------------------------------


class _KafkaPythonBackend:
    def __init__(self, bootstrap: str, timeout_s: float, options: Mapping[str, str]) -> None:
        from kafka import KafkaAdminClient
        from kafka.errors import KafkaError

        self._timeout_ms = int(timeout_s * 1000)
        self._options: dict[str, Any] = {
            "bootstrap_servers": bootstrap.split(","),
            "request_timeout_ms": self._timeout_ms,
            "bootstrap_timeout_ms": self._timeout_ms,
            **kafka_python_options(options),
        }
        try:
            self._admin = KafkaAdminClient(**{"client_id": "seqstream-admin", **self._options})
        except KafkaError as exc:
            raise no_broker(bootstrap, timeout_s, exc) from None
        self._consumer: Any = None

    def topics(self, only: str | None = None) -> dict[str, int]:
        names = self._admin.list_topics()
        if only is not None:
            names = [only] if only in names else []
        if not names:
            return {}
        return {
            d["name"]: len(d["partitions"])
            for d in self._admin.describe_topics(names)
            if d.get("error_code", 0) == 0 and d.get("partitions")
        }

    def create(self, name: str, partitions: int, replication_factor: int) -> bool:
        from kafka.errors import TopicAlreadyExistsError

        try:
            self._admin.create_topics(
                {name: {"num_partitions": partitions, "replication_factor": replication_factor}},
                timeout_ms=self._timeout_ms,
            )
        except TopicAlreadyExistsError:
            return False
        self._admin.wait_for_topics([name], timeout_ms=self._timeout_ms)
        return True

    def delete(self, name: str) -> bool:
        from kafka.errors import UnknownTopicOrPartitionError

        try:
            self._admin.delete_topics([name], timeout_ms=self._timeout_ms)
        except UnknownTopicOrPartitionError:
            return False
        return True

    def list_offsets(self, topic: str, partitions: Sequence[int], spec: Spec) -> dict[int, tuple]:
        from kafka import TopicPartition
        from kafka.admin import OffsetSpec

        lookup = (
            OffsetSpec.EARLIEST
            if spec == "earliest"
            else OffsetSpec.LATEST
            if spec == "latest"
            else spec
        )
        answer = self._admin.list_partition_offsets(
            {TopicPartition(topic, p): lookup for p in partitions}, timeout_ms=self._timeout_ms
        )
        return {tp.partition: (info.offset, info.timestamp) for tp, info in answer.items()}

    def fetch(self, topic: str, starts: Mapping[int, int], deadline: float) -> Iterator[Fetched]:
        from kafka import KafkaConsumer, TopicPartition

        if self._consumer is None:
            self._consumer = KafkaConsumer(
                **{
                    "client_id": "seqstream-admin-tail",
                    "enable_auto_commit": False,
                    # One poll must answer every partition: kafka-python's default of 500
                    # records per poll leaves the others buffered.
                    "fetch_max_wait_ms": 100,
                    "max_poll_records": 1_000_000,
                    **self._options,
                }
            )
        consumer = self._consumer
        consumer.assign([TopicPartition(topic, p) for p in starts])
        for p, offset in starts.items():
            consumer.seek(TopicPartition(topic, p), offset)
        try:
            while time.monotonic() < deadline:
                polled = consumer.poll(timeout_ms=int(_TAIL_POLL_S * 1000))
                for tp, messages in polled.items():
                    records = [(m.offset, m.timestamp) for m in messages]
                    yield tp.partition, records, consumer.highwater(tp) or 0, records[-1][0] + 1
                if not polled:  # offsets passed without a record (transaction markers)?
                    for p, start in starts.items():
                        tp = TopicPartition(topic, p)
                        if consumer.position(tp) > start:
                            yield p, [], consumer.highwater(tp) or 0, consumer.position(tp)
        finally:
            consumer.assign([])

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
        self._admin.close()
