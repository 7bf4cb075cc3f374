"""What a ``read_committed`` consumer sees of a topic, decided from the log's own markers.

Kafka's rule (KIP-98): a transactional batch is delivered once its producer's COMMIT marker
follows it in the partition, never when an ABORT marker does, and not while the transaction is
open. A broker normally applies it (the aborted-transaction list of its fetch answer, the last
stable offset); the embedded broker (Tansu 0.6) does not, so its ``read_committed`` consumers see
aborted records too. This reader reads every batch with kafka-python, control batches included,
and applies the rule itself.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from unittest import mock

from kafka import KafkaConsumer, TopicPartition
from kafka.consumer import fetcher


@dataclass(frozen=True)
class Committed:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()


def _batches(records):  # type: ignore[no-untyped-def]
    batch = records.next_batch()
    while batch is not None:
        yield batch
        batch = records.next_batch()


def read_committed(bootstrap: str, topic: str, timeout_s: float = 20.0) -> list[Committed]:
    """Every committed record of ``topic``, per partition in offset order."""
    seen: dict[int, list] = {}  # partition -> [("data", pid, transactional, record) | marker]

    def unpack(self, tp, records, _key_deserializer, _value_deserializer):  # type: ignore[no-untyped-def]
        for batch in _batches(records):
            pid = batch.producer_id if batch.has_producer_id() else None
            for record in batch:
                if record.offset >= self.next_fetch_offset:
                    kind = (
                        ("abort" if record.abort else "commit")
                        if batch.is_control_batch
                        else "data"
                    )
                    seen.setdefault(tp.partition, []).append(
                        (kind, pid, batch.is_transactional, record.offset, record)
                    )
            self.next_fetch_offset = batch.next_offset
        self.drain()
        yield from ()

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, consumer_timeout_ms=1000
    )
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
        consumer.assign(partitions)
        consumer.seek_to_beginning()
        ends = consumer.end_offsets(partitions)
        with mock.patch.object(fetcher.Fetcher.PartitionRecords, "_unpack_records", unpack):
            deadline = time.monotonic() + timeout_s
            while any(consumer.position(tp) < ends[tp] for tp in partitions):
                assert time.monotonic() < deadline, f"{topic} was not read to its end in time"
                consumer.poll(200)
    finally:
        consumer.close()
    out: list[Committed] = []
    for partition in sorted(seen):
        pending: dict[int, list] = {}
        for kind, pid, transactional, offset, record in seen[partition]:
            if kind == "data" and not transactional:
                out.append(
                    Committed(partition, offset, record.key, record.value, tuple(record.headers))
                )
            elif kind == "data":
                pending.setdefault(pid, []).append(
                    Committed(partition, offset, record.key, record.value, tuple(record.headers))
                )
            elif kind == "commit":
                out.extend(pending.pop(pid, []))
            else:
                pending.pop(pid, None)
    return sorted(out, key=lambda c: (c.partition, c.offset))
