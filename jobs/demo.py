"""The demo: the bundled NAB series through Kafka and back, with every event accounted for.

Runs on ``kafka.bootstrap_servers`` when set, else on an embedded broker started and stopped
here. Later stages (streaming job, scores, plot) extend this same entry point.
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter, defaultdict

from pipeline.broker import EmbeddedBroker
from pipeline.config import Settings, load_settings
from pipeline.kafka_clients import open_producer, read_range
from pipeline.producer import produce_messages
from pipeline.replay import csv_messages, demo_series_files
from pipeline.topics import TopicAdmin


def _replay_and_read_back(settings: Settings, bootstrap: str) -> None:
    kafka = settings.kafka
    topic = f"seqstream-demo-{int(time.time())}"
    messages = csv_messages(demo_series_files(), settings.events)
    print(f"kafka: {bootstrap}; topic {topic}; {len(messages)} events from "
          f"{len(demo_series_files())} bundled NAB series")  # fmt: skip
    with TopicAdmin(bootstrap, timeout_s=kafka.connect_timeout_s, options=kafka.options) as admin:
        admin.create_topic(topic, settings.producer.partitions)
        producer = open_producer(bootstrap, client=kafka.client, options=kafka.options,
                                 timeout_s=kafka.connect_timeout_s)  # fmt: skip
        try:
            result = produce_messages(messages, producer, topic, progress=sys.stderr.isatty())
        finally:
            producer.close()
        begin, end = admin.beginning_offsets(topic), admin.end_offsets(topic)
    ranges = {p: (begin[p], end[p]) for p in end}
    read = defaultdict(list)
    for record in read_range(bootstrap, topic, ranges, client=kafka.client, options=kafka.options,
                             timeout_s=kafka.connect_timeout_s):  # fmt: skip
        event = json.loads(record.value)
        read[event[settings.events.key_field]].append(event[settings.events.time_field])
    sent = defaultdict(list)
    for message in messages:
        sent[message.key].append(message.event.ts_ms)
    print(f"\nproduced {result.sent}, acknowledged {result.acked}, failed {result.failed} "
          f"({result.rate:,.0f} events/s with {producer.client})")  # fmt: skip
    print(f"{'key':32} {'produced':>9} {'read back':>10}  per-key order")
    for key in sorted(sent):
        in_order = "kept" if read[key] == sent[key] else "BROKEN"
        print(f"{key:32} {len(sent[key]):>9} {len(read[key]):>10}  {in_order}")
    total_read = sum(len(v) for v in read.values())
    print(f"{'total':32} {result.sent:>9} {total_read:>10}")
    partitions = Counter({p: e - begin[p] for p, e in end.items()})
    print(f"records per partition: {dict(sorted(partitions.items()))}")
    if total_read != result.sent or any(read[k] != sent[k] for k in sent):
        raise SystemExit("demo: events read back differ from events produced")


def run_demo(settings: Settings) -> None:
    if settings.kafka.bootstrap_servers:
        _replay_and_read_back(settings, settings.kafka.bootstrap_servers)
        return
    with EmbeddedBroker(start_timeout_s=settings.broker.start_timeout_s) as broker:
        print(f"started the embedded broker (Tansu) on {broker.bootstrap_servers}")
        _replay_and_read_back(settings, broker.bootstrap_servers)
    print("stopped the embedded broker")


if __name__ == "__main__":
    run_demo(load_settings())
