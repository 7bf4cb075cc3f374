"""Kafka I/O benchmark: seqstream-kafka's read and write rates against the raw client's, per
client, all measured in the same run on the same topic.

    python -m bench.kafka_io [--events 200000] [--partitions 4] [--out bench/results/kafka_io.json]

Uses SEQSTREAM_BOOTSTRAP_SERVERS when set, else an embedded broker.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from contextlib import ExitStack
from pathlib import Path

import pyspark

from seqstream.pipeline.kafka.datasource import SHORT_NAME, KafkaDataSource
from seqstream.pipeline.kafka.producer import open_producer, raise_for_failures
from seqstream.pipeline.kafka.reader import read_range
from seqstream.pipeline.spark import local_spark

from bench.broker import bench_broker

CLIENTS = ("confluent", "kafka-python")


def _timed(action) -> float:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def raw_produce(
    bootstrap: str, topic: str, client: str, values: list[bytes], partitions: int
) -> float:
    producer = open_producer(bootstrap, client=client)

    def send() -> None:
        for i, value in enumerate(values):
            producer.send(topic, value, key=f"key-{i % 1000}".encode())
        raise_for_failures(producer.flush(120), topic)

    seconds = _timed(send)
    producer.close()
    return len(values) / seconds


def raw_consume(
    bootstrap: str, topic: str, client: str, ranges: dict[int, tuple[int, int]]
) -> float:
    count = 0

    def read() -> None:
        nonlocal count
        count = sum(1 for _ in read_range(bootstrap, topic, ranges, client=client))

    seconds = _timed(read)
    return count / seconds


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--out", default="bench/results/kafka_io.json")
    args = parser.parse_args()

    values = [
        json.dumps(
            {"key": f"key-{i % 1000}", "ts": 1_700_000_000_000 + i, "value": i * 0.5}
        ).encode()
        for i in range(args.events)
    ]
    figures: dict[str, dict[str, float]] = {}
    with ExitStack() as stack:
        bootstrap, admin = bench_broker(stack)
        spark = local_spark("bench-kafka-io")
        spark.dataSource.register(KafkaDataSource)
        stamp = int(time.time())
        for client in CLIENTS:
            topic = f"bench-io-{client}-{stamp}"
            admin.create_topic(topic, args.partitions)
            produce = raw_produce(bootstrap, topic, client, values, args.partitions)
            ends = admin.end_offsets(topic)
            consume = raw_consume(bootstrap, topic, client, {p: (0, e) for p, e in ends.items()})
            reader = (
                spark.read.format(SHORT_NAME)
                .option("kafka.bootstrap.servers", bootstrap)
                .option("subscribe", topic)
                .option("seqstream.client", client)
            )
            reader.option(
                "endingOffsets", json.dumps({topic: {str(p): min(e, 100) for p, e in ends.items()}})
            ).load().write.format("noop").mode("overwrite").save()  # warm-up
            source = args.events / _timed(
                lambda reader=reader: reader.load().write.format("noop").mode("overwrite").save()
            )
            frame = (
                spark.read.format(SHORT_NAME)
                .option("kafka.bootstrap.servers", bootstrap)
                .option("subscribe", topic)
                .load()
                .select("key", "value")
                .cache()
            )
            frame.count()
            sink_topic = f"{topic}-sink"
            admin.create_topic(sink_topic, args.partitions)
            sink = args.events / _timed(
                lambda frame=frame, sink_topic=sink_topic, client=client: (
                    frame.write.format(SHORT_NAME)
                    .option("kafka.bootstrap.servers", bootstrap)
                    .option("topic", sink_topic)
                    .option("seqstream.client", client)
                    .mode("append")
                    .save()
                )
            )
            assert sum(admin.end_offsets(sink_topic).values()) == args.events, "sink lost records"
            frame.unpersist()
            figures[client] = {
                "raw_produce_per_s": produce,
                "raw_consume_per_s": consume,
                "source_read_per_s": source,
                "sink_write_per_s": sink,
                "source_over_raw_consume": source / consume,
                "sink_over_raw_produce": sink / produce,
            }
            for name in (topic, sink_topic):
                admin.delete_topic(name)
        spark.stop()
    result = {
        "benchmark": "kafka_io",
        "events": args.events,
        "partitions": args.partitions,
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "versions": {"pyspark": pyspark.__version__},
        "broker": "external"
        if os.environ.get("SEQSTREAM_BOOTSTRAP_SERVERS")
        else "embedded Apache Kafka",
        "figures": figures,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"{'client':14} {'produce/s':>11} {'consume/s':>11} {'source/s':>10} {'sink/s':>10} "
        f"{'src/raw':>8} {'sink/raw':>8}"
    )
    for client, f in figures.items():
        print(
            f"{client:14} {f['raw_produce_per_s']:>11,.0f} {f['raw_consume_per_s']:>11,.0f} "
            f"{f['source_read_per_s']:>10,.0f} {f['sink_write_per_s']:>10,.0f} "
            f"{f['source_over_raw_consume']:>8.2f} {f['sink_over_raw_produce']:>8.2f}"
        )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
