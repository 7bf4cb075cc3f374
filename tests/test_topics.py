"""Topic admin against the real broker, including the true end offset and time lookups."""

from __future__ import annotations

import pytest
from kafka import KafkaProducer

from seqstream.pipeline.errors import TopicError
from seqstream.pipeline.kafka.admin import TopicAdmin


def send_batches(bootstrap: str, topic: str, per_partition: dict[int, list[int]]) -> None:
    """Records with explicit timestamps, flushed in several small batches per partition."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, batch_size=512)
    for partition, timestamps in per_partition.items():
        for i, ts in enumerate(timestamps):
            producer.send(topic, value=b"x" * 40, partition=partition, timestamp_ms=ts)
            if i % 37 == 36:
                producer.flush()
    producer.flush()
    producer.close()


def test_create_describe_delete(admin: TopicAdmin, new_topic) -> None:
    topic = new_topic(partitions=5)
    assert admin.describe_topic(topic).partitions == 5
    assert topic in admin.list_topics()
    assert admin.create_topic(topic, 5, exist_ok=True).partitions == 5
    with pytest.raises(TopicError, match=f"topic '{topic}' already exists"):
        admin.create_topic(topic, 5)
    with pytest.raises(
        TopicError, match=f"topic '{topic}' exists with 5 partitions, not the 2 asked for"
    ):
        admin.create_topic(topic, 2, exist_ok=True)


def test_unknown_topic_errors(admin: TopicAdmin) -> None:
    with pytest.raises(TopicError, match="topic 'no-such-topic' does not exist on "):
        admin.describe_topic("no-such-topic")
    with pytest.raises(TopicError, match="cannot delete topic 'no-such-topic': it does not exist"):
        admin.delete_topic("no-such-topic")


def test_end_offsets_count_every_record(
    admin: TopicAdmin, new_topic, bootstrap_servers: str
) -> None:
    topic = new_topic(partitions=3)
    counts = {0: 0, 1: 1, 2: 1000}  # empty, one record, many batches
    send_batches(
        bootstrap_servers, topic, {p: [1_000 + i for i in range(n)] for p, n in counts.items()}
    )
    assert admin.beginning_offsets(topic) == {0: 0, 1: 0, 2: 0}
    assert admin.end_offsets(topic) == counts


def test_offsets_for_times(admin: TopicAdmin, new_topic, bootstrap_servers: str) -> None:
    topic = new_topic(partitions=2)
    base = 1_700_000_000_000
    send_batches(bootstrap_servers, topic, {0: [base + 10 * i for i in range(100)], 1: [base + 5]})
    assert admin.offsets_for_times(topic, base) == {0: 0, 1: 0}
    assert admin.offsets_for_times(topic, base + 10 * 42) == {0: 42, 1: 1}
    assert admin.offsets_for_times(topic, base + 10 * 41 + 1) == {0: 42, 1: 1}
    # Past the last record: the end of each partition (Kafka answers "none", -1).
    assert admin.offsets_for_times(topic, base + 10**9) == {0: 100, 1: 1}


def test_end_offsets_after_large_batches_on_many_partitions(
    admin: TopicAdmin, new_topic, bootstrap_servers: str
) -> None:
    """confluent-kafka's big batches: the tail of each partition is thousands of records."""
    from seqstream.pipeline.kafka.producer import open_producer, raise_for_failures

    topic = new_topic(partitions=4)
    producer = open_producer(bootstrap_servers, client="confluent")
    for i in range(60_000):
        producer.send(topic, b"x" * 60, key=f"key-{i % 1000}".encode())
    raise_for_failures(producer.flush(60), topic)
    producer.close()
    ends = admin.end_offsets(topic)
    assert sum(ends.values()) == 60_000
    counted = {p: 0 for p in ends}
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap_servers, max_poll_records=100_000)
    consumer.assign([TopicPartition(topic, p) for p in ends])
    consumer.seek_to_beginning()
    while sum(counted.values()) < 60_000:
        for tp, records in consumer.poll(timeout_ms=2000).items():
            counted[tp.partition] += len(records)
    consumer.close()
    assert counted == ends
