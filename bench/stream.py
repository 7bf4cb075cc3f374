"""Streaming benchmark: the job's sustained events/s and event-to-score latency, against the
model's own throughput on the same windows, all in one run.

    python -m bench.stream [--keys 200] [--events-per-key 300] [--latency-seconds 20]

1. model alone: ``WindowScorer`` (the demo model) on every window of the workload, 1 and 2 threads;
2. sustained: the streaming job drains the topic (``maxOffsetsPerTrigger`` batches); events/s over
   the micro-batches after the first (start-up), from Spark's progress reports, with the share
   of each stage Spark times;
3. latency: a fresh topic fed at 50 % and 90 % of the sustained rate with a 1 s trigger;
   p50/p99 of ``processing_time - kafka_timestamp`` over the scored events.
Writes bench/results/stream.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pyspark
import torch

from jobs.stream import build_query, run_until_accounted
from model.artifact import DEMO_MODEL_DIR, load_artifact
from model.inference import WindowScorer
from pipeline.broker import EmbeddedBroker
from pipeline.config import EventSchema, Settings, load_settings
from pipeline.kafka_clients import open_producer
from pipeline.producer import produce_messages
from pipeline.replay import SyntheticSpec, synthetic_stream
from pipeline.sequencing import empty_context, extend_windows
from pipeline.spark import local_spark
from pipeline.topics import TopicAdmin


def model_alone(events: dict[str, np.ndarray], threads: int) -> float:
    loaded = load_artifact(DEMO_MODEL_DIR)
    scorer = WindowScorer(loaded, batch_size=1024, num_threads=threads)
    spec = loaded.spec
    batches = [extend_windows(empty_context(1), v, spec.window.length) for v in events.values()]
    windows = np.concatenate([b.windows[b.lengths >= spec.window.min_length] for b in batches])
    lengths = np.concatenate([b.lengths[b.lengths >= spec.window.min_length] for b in batches])
    scorer.score(windows[:2048], lengths[:2048])  # warm-up
    started = time.perf_counter()
    scorer.score(windows, lengths)
    return len(windows) / (time.perf_counter() - started)


def job_settings(bootstrap: str, topic: str, work: Path, **stream: object) -> Settings:
    return load_settings(None, {
        "kafka": {"bootstrap_servers": bootstrap},
        "stream": {"topics": [topic], "checkpoint": str(work / "cp"), "parquet_path": str(work / "scores"), **stream},
    })  # fmt: skip


def run_job(spark, settings: Settings, bootstrap: str, until_events: int, feed=None):  # type: ignore[no-untyped-def]
    query, metrics = build_query(spark, settings, bootstrap)
    if feed is not None:
        threading.Thread(target=feed, daemon=True).start()
    run_until_accounted(query, metrics, until_events, timeout_s=900)
    return [p for p in query.recentProgress if p["numInputRows"] > 0], metrics.history


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keys", type=int, default=200)
    parser.add_argument("--events-per-key", type=int, default=300)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--max-per-trigger", type=int, default=15_000)
    parser.add_argument("--latency-seconds", type=float, default=20.0)
    parser.add_argument("--out", default="bench/results/stream.json")
    args = parser.parse_args()

    schema = EventSchema()
    stream = synthetic_stream(SyntheticSpec(keys=args.keys, events_per_key=args.events_per_key, seed=1), schema)
    per_key: dict[str, list] = {}
    for e in stream.events:
        per_key.setdefault(e.key, []).append(e.features)
    values = {k: np.asarray(v, np.float32) for k, v in per_key.items()}
    model = {threads: model_alone(values, threads) for threads in (1, 2)}
    torch.set_num_threads(os.cpu_count() or 1)

    work = Path(tempfile.mkdtemp(prefix="seqstream-bench-"))
    with ExitStack() as stack:
        stack.callback(shutil.rmtree, work, ignore_errors=True)
        bootstrap = os.environ.get("SEQSTREAM_BOOTSTRAP_SERVERS") or stack.enter_context(EmbeddedBroker()).bootstrap_servers
        admin = stack.enter_context(TopicAdmin(bootstrap))
        stamp = int(time.time())
        topic = f"bench-stream-{stamp}"
        admin.create_topic(topic, args.partitions)
        producer = open_producer(bootstrap)
        produce_messages(stream.messages, producer, topic)
        spark = local_spark("bench-stream")
        progress, _ = run_job(spark, job_settings(bootstrap, topic, work / "drain", max_offsets_per_trigger=args.max_per_trigger,
                                                 trigger_interval="0 seconds"), bootstrap, len(stream.messages))  # fmt: skip
        warm = progress[1:] or progress
        rows = sum(p["numInputRows"] for p in warm)
        seconds = sum(p["durationMs"]["triggerExecution"] for p in warm) / 1000
        sustained = rows / seconds
        stages = {name: sum(p["durationMs"].get(name, 0) for p in warm) / 1000 for name in warm[0]["durationMs"]}
        latency = {}
        for share in (0.5, 0.9):
            rate = sustained * share
            count = int(rate * args.latency_seconds)
            lat_topic = f"{topic}-lat{int(share * 100)}"
            admin.create_topic(lat_topic, args.partitions)
            live = synthetic_stream(SyntheticSpec(keys=args.keys, events_per_key=max(count // args.keys, 1), seed=2), schema).messages
            out = work / f"lat{int(share * 100)}"
            settings = job_settings(bootstrap, lat_topic, out, trigger_interval="1 second", starting_offsets="earliest")
            run_job(spark, settings, bootstrap, len(live), feed=lambda m=live, t=lat_topic, r=rate: produce_messages(m, producer, t, rate=r))
            table = pq.read_table(out / "scores", columns=["kafka_timestamp", "processing_time"]).to_pandas()
            millis = (table["processing_time"] - table["kafka_timestamp"]).dt.total_seconds().to_numpy() * 1000
            latency[f"{int(share * 100)}%"] = {"rate_per_s": rate, "p50_ms": float(np.percentile(millis, 50)),
                                                "p99_ms": float(np.percentile(millis, 99)), "scored": len(millis)}  # fmt: skip
        producer.close()
        spark.stop()
    result = {
        "benchmark": "stream", "events": len(stream.messages), "keys": args.keys, "partitions": args.partitions,
        "model": "bundled demo model (window 32, LSTM 1->32x2)", "max_offsets_per_trigger": args.max_per_trigger,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "versions": {"pyspark": pyspark.__version__, "torch": torch.__version__},
        "model_alone_windows_per_s": {"1 thread": model[1], "2 threads": model[2]},
        "stream_sustained_events_per_s": sustained, "stream_over_model_2_threads": sustained / model[2],
        "warm_batches": len(warm), "stage_seconds": stages, "latency": latency,
    }  # fmt: skip
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("model_alone_windows_per_s", "stream_sustained_events_per_s",
                                              "stream_over_model_2_threads", "stage_seconds", "latency")}, indent=1))  # fmt: skip
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
