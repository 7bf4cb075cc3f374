"""Topic administration on kafka-python: create, describe, offsets, delete.

Offsets here are the log's real bounds even on brokers whose ListOffsets answers are off
(Tansu: "latest" is the base offset of the last write batch + 1; times are looked up by batch
append time, not record timestamps; a time past the last record maps to offset 0 with timestamp
-1). See ``end_offsets`` and ``offsets_for_times``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.admin import OffsetSpec
from kafka.errors import KafkaError, TopicAlreadyExistsError, UnknownTopicOrPartitionError

from seqstream.pipeline.errors import KafkaUnavailableError, TopicError
from seqstream.pipeline.kafka.properties import kafka_python_options

# How long to wait for the tail of a partition when checking where it really ends.
_TAIL_POLL_MS = 500


@dataclass(frozen=True)
class TopicInfo:
    name: str
    partitions: int


class TopicAdmin:
    """Admin operations against one cluster; open once, use for many calls, then ``close()``."""

    def __init__(
        self,
        bootstrap_servers: str,
        *,
        timeout_s: float = 10.0,
        options: Mapping[str, str] | None = None,
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self._timeout_ms = int(timeout_s * 1000)
        self._client_options: dict[str, Any] = {
            "bootstrap_servers": bootstrap_servers.split(","),
            "request_timeout_ms": self._timeout_ms,
            "bootstrap_timeout_ms": self._timeout_ms,
            **kafka_python_options(options or {}),
        }
        try:
            self._admin = KafkaAdminClient(
                **{"client_id": "seqstream-admin", **self._client_options}
            )
        except KafkaError as exc:
            raise KafkaUnavailableError(
                f"no Kafka broker answered at {bootstrap_servers} within {timeout_s:g}s "
                f"(kafka.bootstrap_servers / SEQSTREAM_BOOTSTRAP_SERVERS): {exc}"
            ) from None
        self._consumer: KafkaConsumer | None = None

    # --- topics ------------------------------------------------------------------------------

    def list_topics(self) -> set[str]:
        return {t for t in self._admin.list_topics() if not t.startswith("__")}

    def create_topic(
        self, name: str, partitions: int, *, replication_factor: int = 1, exist_ok: bool = False
    ) -> TopicInfo:
        """Create ``name`` and wait until every partition has a leader."""
        try:
            self._admin.create_topics(
                {name: {"num_partitions": partitions, "replication_factor": replication_factor}},
                timeout_ms=self._timeout_ms,
            )
        except TopicAlreadyExistsError:
            if not exist_ok:
                raise TopicError(f"topic {name!r} already exists") from None
            existing = self.describe_topic(name)
            if existing.partitions != partitions:
                raise TopicError(
                    f"topic {name!r} exists with {existing.partitions} partitions, "
                    f"not the {partitions} asked for"
                ) from None
            return existing
        self._admin.wait_for_topics([name], timeout_ms=self._timeout_ms)
        return self.describe_topic(name)

    def describe_topic(self, name: str) -> TopicInfo:
        (described,) = self._admin.describe_topics([name])
        if described.get("error_code", 0) != 0 or not described.get("partitions"):
            raise TopicError(f"topic {name!r} does not exist on {self.bootstrap_servers}")
        return TopicInfo(name, len(described["partitions"]))

    def delete_topic(self, name: str) -> None:
        try:
            self._admin.delete_topics([name], timeout_ms=self._timeout_ms)
        except UnknownTopicOrPartitionError:
            raise TopicError(f"cannot delete topic {name!r}: it does not exist") from None

    def partitions(self, topic: str) -> list[TopicPartition]:
        return [TopicPartition(topic, p) for p in range(self.describe_topic(topic).partitions)]

    # --- offsets -----------------------------------------------------------------------------

    def beginning_offsets(self, topic: str) -> dict[int, int]:
        return self._list_offsets(topic, OffsetSpec.EARLIEST)

    def end_offsets(self, topic: str) -> dict[int, int]:
        """The offset after the last record of each partition (the true high watermark)."""
        partitions = self.partitions(topic)
        reported = self._list_offsets(topic, OffsetSpec.LATEST, partitions)
        return self._true_ends(
            topic, reported, self._list_offsets(topic, OffsetSpec.EARLIEST, partitions)
        )

    def offsets_for_times(self, topic: str, timestamp_ms: int) -> dict[int, int]:
        """Per partition, the first offset whose record timestamp is >= ``timestamp_ms``, or the
        end offset when there is none (Kafka's contract).

        The broker's answer is only a starting point: Tansu indexes whole batches by its own
        append time, which is never earlier than a record's create time, so its answer is at or
        before the true one. Reading forward from it to the first record at or after the time is
        exact there and costs one fetch on Kafka."""
        found = self._list_offsets(topic, timestamp_ms, with_timestamp=True)
        ends = self.end_offsets(topic)
        starts: dict[int, int] = {}
        result: dict[int, int] = {}
        for partition, (offset, index_ts) in found.items():
            if offset < 0 or index_ts < 0:  # Kafka: none; Tansu: offset 0, timestamp -1
                result[partition] = ends[partition]
            else:
                starts[partition] = offset
        if starts:
            result.update(self._first_at_or_after(topic, starts, ends, timestamp_ms))
        return result

    def _first_at_or_after(
        self, topic: str, starts: dict[int, int], ends: dict[int, int], timestamp_ms: int
    ) -> dict[int, int]:
        result = {p: ends[p] for p in starts}
        pending = {TopicPartition(topic, p) for p, start in starts.items() if start < ends[p]}
        consumer = self._tail_consumer()
        consumer.assign(list(pending))
        for tp in pending:
            consumer.seek(tp, starts[tp.partition])
        while pending and (batch := consumer.poll(timeout_ms=_TAIL_POLL_MS)):
            for tp, records in batch.items():
                if tp not in pending:
                    continue
                hit = next((r.offset for r in records if r.timestamp >= timestamp_ms), None)
                if hit is not None or records[-1].offset + 1 >= ends[tp.partition]:
                    result[tp.partition] = ends[tp.partition] if hit is None else hit
                    pending.discard(tp)
                    consumer.pause(tp)
        consumer.assign([])
        return result

    def _list_offsets(
        self,
        topic: str,
        spec: Any,
        partitions: list[TopicPartition] | None = None,
        with_timestamp: bool = False,
    ) -> dict:
        specs = {tp: spec for tp in partitions or self.partitions(topic)}
        answer = self._admin.list_partition_offsets(specs, timeout_ms=self._timeout_ms)
        if with_timestamp:
            return {tp.partition: (info.offset, info.timestamp) for tp, info in answer.items()}
        return {tp.partition: info.offset for tp, info in answer.items()}

    def _true_ends(
        self, topic: str, reported: dict[int, int], starts: dict[int, int]
    ) -> dict[int, int]:
        """One fetch from ``reported - 1`` per non-empty partition. A correct broker returns the
        record at ``reported - 1``; Tansu returns its whole last batch. Either way the fetch
        response's high watermark (right on both) and the records' offsets give the true end."""
        pending = {TopicPartition(topic, p) for p, end in reported.items() if end > starts[p]}
        ends = dict(reported)
        if not pending:
            return ends
        consumer = self._tail_consumer()
        consumer.assign(list(pending))
        for tp in pending:
            consumer.seek(tp, reported[tp.partition] - 1)
        deadline = time.monotonic() + self._timeout_ms / 1000
        while pending and time.monotonic() < deadline:
            for tp, records in consumer.poll(timeout_ms=_TAIL_POLL_MS).items():
                ends[tp.partition] = max(
                    ends[tp.partition], records[-1].offset + 1, consumer.highwater(tp) or 0
                )
                pending.discard(tp)
                consumer.pause(tp)
        consumer.assign([])
        if pending:
            raise KafkaUnavailableError(
                f"{topic}: no answer to a fetch of the log tail of partitions "
                f"{sorted(tp.partition for tp in pending)} from {self.bootstrap_servers}"
            )
        return ends

    def _tail_consumer(self) -> KafkaConsumer:
        if self._consumer is None:
            self._consumer = KafkaConsumer(
                **{
                    "client_id": "seqstream-admin-tail",
                    "enable_auto_commit": False,
                    # One poll must answer every partition: kafka-python's default of 500 records
                    # per poll leaves the others buffered, and pausing a partition loses them.
                    "fetch_max_wait_ms": 100,
                    "max_poll_records": 1_000_000,
                    **self._client_options,
                }
            )
        return self._consumer

    # --- lifecycle ---------------------------------------------------------------------------

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
        self._admin.close()

    def __enter__(self) -> TopicAdmin:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
