"""Backfill benchmark: events/s of a backfill over a whole topic, against the model's own
throughput on the same windows, in one run.

    python -m bench.backfill [--keys 200] [--events-per-key 300] [--chunk-events 1000000]

Two workloads, each the same events for the model alone and for the job: ``demo`` (the bundled
demo model, 1 feature, LSTM 32 x 2) and ``issue8`` (8 features, LSTM 64 x 2, random weights:
``bench.model``'s shape). The ratio depends on how much work the model is per event.

1. model alone: ``WindowScorer`` on every scoreable window of the workload, 1 and 2 threads;
2. backfill: ``jobs.backfill.run_backfill`` from earliest to latest into Parquet, after a small
   warm-up backfill (Spark's Python workers started); events/s from the call's wall time, with
   each chunk's seconds.
Writes bench/results/backfill.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import pyspark
import torch

from bench.model import Workload, scoreable_windows, windows_per_second, workload_model, workload_series
from bench.stream import model_alone
from jobs.backfill import Request, run_backfill
from model.artifact import save_artifact
from model.inference import WindowScorer
from pipeline.broker import EmbeddedBroker
from pipeline.config import EventSchema, load_settings
from pipeline.events import Event, Message, event_message
from pipeline.kafka_clients import open_producer
from pipeline.producer import produce_messages
from pipeline.replay import SyntheticSpec, synthetic_stream
from pipeline.spark import local_spark
from pipeline.topics import TopicAdmin


def demo_workload(keys: int, events_per_key: int, work: Path) -> tuple[list[Message], dict, dict[int, float]]:
    stream = synthetic_stream(SyntheticSpec(keys=keys, events_per_key=events_per_key, seed=1), EventSchema())
    per_key: dict[str, list] = {}
    for e in stream.events:
        per_key.setdefault(e.key, []).append(e.features)
    values = {k: np.asarray(v, np.float32) for k, v in per_key.items()}
    return stream.messages, {}, {threads: model_alone(values, threads) for threads in (1, 2)}


def issue8_workload(keys: int, events_per_key: int, work: Path) -> tuple[list[Message], dict, dict[int, float]]:
    w = Workload(keys=keys, events_per_key=events_per_key)
    loaded = workload_model(w)
    save_artifact(loaded.network, loaded.spec, work / "issue8-model")
    schema = EventSchema(features=loaded.spec.features)
    series = workload_series(w)
    messages = [event_message(Event(key, 1_700_000_000_000 + i * 60_000, tuple(float(x) for x in row)), schema)
                for i in range(events_per_key) for key, values in series.items() for row in values[i : i + 1]]  # fmt: skip
    windows, lengths = scoreable_windows(series, w.window, 2)
    model = {t: windows_per_second(WindowScorer(loaded, batch_size=1024, num_threads=t), windows, lengths) for t in (1, 2)}
    overrides = {"events": {"features": loaded.spec.features}, "stream": {"model": str(work / "issue8-model")}}
    return messages, overrides, model


def measure(spark, bootstrap: str, admin: TopicAdmin, name: str, messages: list[Message], overrides: dict,
            args: argparse.Namespace, work: Path) -> dict:  # type: ignore[no-untyped-def]  # fmt: skip
    topic = f"bench-backfill-{name}-{int(time.time())}"
    admin.create_topic(topic, args.partitions)
    producer = open_producer(bootstrap)
    produce_messages(messages, producer, topic)
    producer.close()

    def settings(run: str, chunk_events: int):  # type: ignore[no-untyped-def]
        return load_settings(None, {
            **overrides, "kafka": {"bootstrap_servers": bootstrap},
            "stream": {**overrides.get("stream", {}), "topics": [topic]},
            "backfill": {"parquet_path": str(work / name / run / "scores"), "chunk_events": chunk_events,
                         "progress_dir": str(work / name / run / "progress")},
        })  # fmt: skip

    warm_end = json.dumps({topic: {str(p): 500 for p in range(args.partitions)}})
    run_backfill(spark, settings("warm-up", 1_000_000), bootstrap, Request([topic], ending_offsets=warm_end))
    started = time.perf_counter()
    counts = run_backfill(spark, settings("run", args.chunk_events), bootstrap, Request([topic]))
    seconds = time.perf_counter() - started
    events = sum(c.events_in for c in counts)
    return {"events": events, "scored": sum(c.scored for c in counts), "backfill_seconds": seconds,
            "backfill_events_per_s": events / seconds, "chunk_seconds": [c.seconds for c in counts]}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keys", type=int, default=200)
    parser.add_argument("--events-per-key", type=int, default=300)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--chunk-events", type=int, default=1_000_000)
    parser.add_argument("--workloads", default="demo,issue8")
    parser.add_argument("--out", default="bench/results/backfill.json")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="seqstream-bench-"))
    builders = {"demo": demo_workload, "issue8": issue8_workload}
    results = {}
    with ExitStack() as stack:
        stack.callback(shutil.rmtree, work, ignore_errors=True)
        workloads = {name: builders[name](args.keys, args.events_per_key, work) for name in args.workloads.split(",")}
        torch.set_num_threads(os.cpu_count() or 1)
        bootstrap = os.environ.get("SEQSTREAM_BOOTSTRAP_SERVERS") or stack.enter_context(EmbeddedBroker()).bootstrap_servers
        admin = stack.enter_context(TopicAdmin(bootstrap))
        spark = local_spark("bench-backfill")
        for name, (messages, overrides, model) in workloads.items():
            figures = measure(spark, bootstrap, admin, name, messages, overrides, args, work)
            results[name] = {"model_alone_windows_per_s": {"1 thread": model[1], "2 threads": model[2]}, **figures,
                             "backfill_over_model_2_threads": figures["backfill_events_per_s"] / model[2]}  # fmt: skip
        spark.stop()
    result = {
        "benchmark": "backfill", "keys": args.keys, "events_per_key": args.events_per_key,
        "partitions": args.partitions, "chunk_events": args.chunk_events,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "versions": {"pyspark": pyspark.__version__, "torch": torch.__version__}, "workloads": results,
    }  # fmt: skip
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    for name, r in results.items():
        print(f"{name}: model alone {r['model_alone_windows_per_s']['2 threads']:,.0f} windows/s (2 threads), "
              f"backfill {r['backfill_events_per_s']:,.0f} events/s, ratio {r['backfill_over_model_2_threads']:.2f}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
