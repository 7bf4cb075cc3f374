"""What a ``read_committed`` consumer sees of a topic: a stock confluent-kafka consumer at
``isolation.level=read_committed``, read to the last stable offset of every partition. The broker
applies Kafka's rule (KIP-98): records of aborted or fenced transactions are never delivered, and
nothing past a transaction still open."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition


@dataclass(frozen=True)
class Committed:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()


def read_committed(bootstrap: str, topic: str, timeout_s: float = 30.0) -> list[Committed]:
    """Every committed record of ``topic``, per partition in offset order."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"read-committed-{uuid.uuid4().hex[:8]}",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
            "enable.partition.eof": True,  # reported at the last stable offset
        }
    )
    out: list[Committed] = []
    try:
        partitions = list(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        pending = set(partitions)
        deadline = time.monotonic() + timeout_s
        while pending:
            assert time.monotonic() < deadline, f"{topic} was not read to its end in time"
            message = consumer.poll(0.2)
            if message is None:
                continue
            error = message.error()
            if error is not None and error.code() == KafkaError._PARTITION_EOF:
                pending.discard(message.partition())
            elif error is not None:
                raise AssertionError(f"reading {topic}: {error}")
            else:
                out.append(
                    Committed(
                        message.partition(),
                        message.offset(),
                        message.key(),
                        message.value(),
                        tuple(message.headers() or ()),
                    )
                )
    finally:
        consumer.close()
    return sorted(out, key=lambda c: (c.partition, c.offset))
