"""Topic administration on the chosen Kafka client: create, describe, offsets, delete.

``kafka.client`` picks the client for admin calls as for reads and writes, so ``kafka.options``
written for librdkafka work everywhere with ``kafka.client=confluent``. Each client sits behind
five primitives (``_Backend``); what needs care is shared above them.

Offsets are the broker's ListOffsets answers: the log start, the high watermark (the offset after
the last record, a transaction's marker included), and the first record at or after a time.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, Protocol

from seqstream.pipeline.errors import TopicError
from seqstream.pipeline.kafka.clients import confluent_config, no_broker, resolve_client
from seqstream.pipeline.kafka.properties import kafka_python_options

# An offset lookup: the first offset, the end of the log, or the first offset at a time (ms).
Spec = Literal["earliest", "latest"] | int


@dataclass(frozen=True)
class TopicInfo:
    name: str
    partitions: int


class _Backend(Protocol):
    """What TopicAdmin needs from a client. Errors are the client's own, except where noted."""

    def topics(self, only: str | None = None) -> dict[str, int]:
        """Every topic on the cluster (or just ``only``, if it exists) with its partition count."""
        ...

    def cluster_id(self) -> str:
        """The cluster's id (DescribeCluster)."""
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

    # --- topics ------------------------------------------------------------------------------

    def topic_partitions(self) -> dict[str, int]:
        """Every topic but Kafka's internal ones, with its partition count: one request."""
        return {t: n for t, n in self._backend.topics().items() if not t.startswith("__")}

    def list_topics(self) -> set[str]:
        return set(self.topic_partitions())

    def cluster_id(self) -> str:
        return self._backend.cluster_id()

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
        """The high watermark of each of ``partitions`` (default: all of the topic's): the offset
        after its last record, one ListOffsets request."""
        chosen = list(partitions) if partitions is not None else self._partitions(topic)
        found = self._backend.list_offsets(topic, chosen, "latest")
        return {p: offset for p, (offset, _) in found.items()}

    def offsets_for_times(self, topic: str, timestamp_ms: int) -> dict[int, int]:
        """Per partition, the first offset whose record timestamp is >= ``timestamp_ms``, or the
        end offset when there is none (Kafka answers -1 then)."""
        partitions = self._partitions(topic)
        found = self._backend.list_offsets(topic, partitions, timestamp_ms)
        late = [p for p, (offset, _) in found.items() if offset < 0]
        ends = self.end_offsets(topic, late) if late else {}
        return {p: ends[p] if offset < 0 else offset for p, (offset, _) in found.items()}

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
        # The whole cluster's metadata in one request: asking for a topic by name would create
        # it on a broker that auto-creates topics.
        metadata = self._admin.list_topics(timeout=self._timeout_s)
        return {
            name: len(topic.partitions)
            for name, topic in metadata.topics.items()
            if topic.error is None
        }

    def cluster_id(self) -> str:
        described = self._admin.describe_cluster(request_timeout=self._timeout_s)
        return str(described.result().cluster_id)

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

    def cluster_id(self) -> str:
        return str(self._admin.describe_cluster()["cluster_id"])

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

    def close(self) -> None:
        self._admin.close()
