"""Exactly-once Kafka output: each micro-batch (or backfill chunk) is one Kafka transaction.

A batch's score and dead-letter records are sent by one transactional producer, and the same
transaction commits, for the consumer group named like the transactional id, the next source
offset of each source partition the batch wrote for: Kafka's consume-transform-produce pattern
(``sendOffsetsToTransaction``). So "the batch's records are committed" and "its source offsets
are committed" are one atomic fact in Kafka, whatever the Spark checkpoint says:

- killed before the commit: the next run's producer starts with the same transactional id,
  which aborts the open transaction (fencing); the replayed batch sends again;
- killed after the commit, before Spark committed the batch: the replayed batch finds its source
  offsets committed and sends nothing.

Consumers with ``isolation.level=read_committed`` then see every record once. The transactional
id must be stable across restarts of one query and unique to it (``streaming``: the prefix and
Spark's query id, kept in the checkpoint; the backfill: the prefix and its plan's run id).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pyarrow as pa

from seqstream.pipeline.errors import DeliveryError, SeqstreamError
from seqstream.pipeline.kafka.clients import confluent_config, no_broker, resolve_client
from seqstream.pipeline.kafka.offsets import TopicPartition
from seqstream.pipeline.kafka.options import ClientSettings
from seqstream.pipeline.kafka.producer import produce_when_queued
from seqstream.pipeline.kafka.retry import retrying

log = logging.getLogger("seqstream.kafka.transactions")

# Columns of the records a transaction sends: the record, then the source event it is for.
RECORD_COLUMNS = ("topic", "key", "value", "headers")
SOURCE_COLUMNS = ("source_topic", "source_partition", "source_offset")

# The fault points of a transaction, a seam for crash tests: each hook is called with the point
# and the batch id ("kafka-sending": half the records sent and flushed; "kafka-sent": all sent,
# not committed; "kafka-committed": committed, the Spark batch not yet) and may kill the process
# there. None are installed in a job; tests/fault_child.py installs one.
FaultHook = Callable[[str, int], None]
fault_hooks: list[FaultHook] = []


def at_fault_point(point: str, batch_id: int) -> None:
    for hook in fault_hooks:
        hook(point, batch_id)


def source_positions(records: pa.Table) -> dict[TopicPartition, int]:
    """(source topic, partition) -> the offset after the last source event with a record."""
    if records.num_rows == 0:
        return {}
    grouped = records.group_by(["source_topic", "source_partition"]).aggregate(
        [("source_offset", "max")]
    )
    return {
        TopicPartition(topic, int(partition)): int(last) + 1
        for topic, partition, last in zip(
            grouped["source_topic"].to_pylist(),
            grouped["source_partition"].to_pylist(),
            grouped["source_offset_max"].to_pylist(),
            strict=True,
        )
    }


class TransactionalSender:
    """One transactional producer (and a consumer only to read its group's offsets), opened at
    the first batch and kept for the query: opening it fences any earlier run of the same id."""

    def __init__(self, client: ClientSettings, transactional_id: str) -> None:
        if resolve_client(client.client) != "confluent":
            raise SeqstreamError(
                "exactly-once Kafka output needs confluent-kafka (kafka.client: confluent or "
                f"auto with confluent-kafka installed), not {client.client}"
            )
        self.client = client
        self.transactional_id = transactional_id
        self._producer: Any = None
        self._consumer: Any = None

    def _open(self) -> None:
        from confluent_kafka import Consumer, KafkaException, Producer

        kafka = self.client
        common = confluent_config(kafka.bootstrap, kafka.timeout_s, kafka.properties)
        self._producer = Producer(
            {
                "partitioner": "murmur2_random",  # as the at-least-once sink and Java clients
                "linger.ms": 20,
                **common,
                "transactional.id": self.transactional_id,
                "enable.idempotence": True,
            }
        )
        try:
            self._producer.init_transactions(kafka.retry_timeout_s)
        except KafkaException as exc:
            raise no_broker(
                kafka.bootstrap,
                kafka.retry_timeout_s,
                f"starting transactional id {self.transactional_id}: {exc.args[0].str()}",
            ) from None
        self._consumer = Consumer(
            {**common, "group.id": self.transactional_id, "enable.auto.commit": False}
        )

    def committed(self, positions: dict[TopicPartition, int]) -> bool:
        """Whether a transaction already committed these positions (a replayed batch)."""
        from confluent_kafka import TopicPartition as ConfluentPartition

        found = retrying(
            lambda: self._consumer.committed(
                [ConfluentPartition(t, p) for t, p in positions], self.client.timeout_s
            ),
            what=f"the committed offsets of group {self.transactional_id}",
            bootstrap=self.client.bootstrap,
            timeout_s=self.client.retry_timeout_s,
        )
        done = [tp.offset >= positions[TopicPartition(tp.topic, tp.partition)] for tp in found]
        if any(done) and not all(done):
            raise SeqstreamError(
                f"consumer group {self.transactional_id} has committed some of this batch's "
                f"source partitions and not others ({found}): its offsets were changed by "
                "something other than this query; give the query a new checkpoint (a new "
                "transactional id)"
            )
        return all(done)

    def send(self, batch_id: int, records: pa.Table) -> int:
        """Send ``records`` (``RECORD_COLUMNS`` + ``SOURCE_COLUMNS``) in one transaction with
        their source positions; returns how many were sent (0 for a batch committed before)."""
        positions = source_positions(records)
        if not positions:
            return 0
        if self._producer is None:
            self._open()
        if self.committed(positions):
            log.info(
                "batch %d: its %d Kafka records were committed by an earlier run (transactional "
                "id %s); not sent again",
                batch_id,
                records.num_rows,
                self.transactional_id,
            )
            return 0
        from confluent_kafka import KafkaException
        from confluent_kafka import TopicPartition as ConfluentPartition

        producer, failures = self._producer, []

        def delivered(err: Any, _msg: Any) -> None:
            if err is not None:
                failures.append(str(err))

        try:
            producer.begin_transaction()
            half = records.num_rows // 2
            for index, (topic, key, value, headers) in enumerate(
                zip(*(records[c].to_pylist() for c in RECORD_COLUMNS), strict=True)
            ):
                if index == half and fault_hooks:
                    producer.flush(self.client.retry_timeout_s)  # half really sent
                    at_fault_point("kafka-sending", batch_id)
                self._produce(topic, key, value, headers, delivered)
            producer.flush(self.client.retry_timeout_s)
            if failures:
                raise DeliveryError(
                    f"batch {batch_id}: {len(failures)} of {records.num_rows} records were not "
                    f"delivered ({failures[:3]}); the transaction is aborted and the batch fails"
                )
            at_fault_point("kafka-sent", batch_id)
            producer.send_offsets_to_transaction(
                [ConfluentPartition(t, p, o) for (t, p), o in sorted(positions.items())],
                self._consumer.consumer_group_metadata(),
                self.client.retry_timeout_s,
            )
            producer.commit_transaction(self.client.retry_timeout_s)
        except KafkaException as exc:
            error = exc.args[0]
            if error.fatal():  # fenced: a newer run of this query owns the transactional id
                raise SeqstreamError(
                    f"transactional id {self.transactional_id} was taken over by another run of "
                    f"this query: {error.str()}; this run stops, the other goes on"
                ) from None
            self._abort()
            raise DeliveryError(
                f"batch {batch_id}: the Kafka transaction failed and was aborted: {error.str()}"
            ) from None
        except BaseException:
            self._abort()
            raise
        at_fault_point("kafka-committed", batch_id)
        return records.num_rows

    def _produce(self, topic: str, key: Any, value: Any, headers: Any, on_delivery: Any) -> None:
        kwargs: dict[str, Any] = {"key": key, "value": value, "on_delivery": on_delivery}
        if headers:
            kwargs["headers"] = [(h["key"], h["value"]) for h in headers]
        produce_when_queued(self._producer, topic, **kwargs)

    def _abort(self) -> None:
        try:
            self._producer.abort_transaction(self.client.timeout_s)
        except Exception as exc:  # the next run's fencing aborts it anyway
            log.warning("aborting the transaction of %s failed: %s", self.transactional_id, exc)
