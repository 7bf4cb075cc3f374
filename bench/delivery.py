"""Exactly-once against at-least-once Kafka output, and what a model swap costs, in one run.

    python -m bench.delivery [--rows 60000] [--batches 5] [--out bench/results/delivery.json]

The streaming job's batch writer (``outputs.BatchWriter``) sends the same micro-batches of
scored rows (a cached DataFrame of ``rows`` rows, scores and ~3 % dead letters) to Kafka both
ways: at least once (Spark tasks, an idempotent producer each) and exactly once (one Kafka
transaction per batch from the driver). The swap figures are the driver's look-and-check of a
new artifact (``model_versions``) and a worker's load of it, next to a micro-batch's duration.
Uses SEQSTREAM_BOOTSTRAP_SERVERS when set, else an embedded broker.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import pandas as pd

from seqstream.model.artifact import DEMO_MODEL_DIR
from seqstream.pipeline.bootstrap import connector_options
from seqstream.pipeline.config import load_settings
from seqstream.pipeline.kafka import SHORT_NAME, kafka_format
from seqstream.pipeline.records.rows import SCORED_SCHEMA
from seqstream.pipeline.scoring.model_versions import ModelVersions, check_artifact
from seqstream.pipeline.scoring.worker import scorer_for
from seqstream.pipeline.sinks.outputs import BatchWriter
from seqstream.pipeline.spark import local_spark

from bench.broker import bench_broker


def scored_rows(rows: int, partitions: int) -> pd.DataFrame:
    """Rows as the window step hands them to the writer: scores, and every 33rd a dead letter."""
    rng = np.random.default_rng(0)
    index = np.arange(rows)
    dead = index % 33 == 0
    return pd.DataFrame(
        {
            "key": [f"key-{i % 1000}" for i in index],
            "event_time_ms": 1_700_000_000_000 + index,
            "topic": "events",
            "partition": (index % partitions).astype("int32"),
            "offset": index // partitions,
            "kafka_timestamp": pd.Timestamp("2026-11-24"),
            "window_length": np.int32(32),
            "value": [b'{"bad": true}' if d else None for d in dead],
            "reason": ["no key field" if d else None for d in dead],
            "key_mismatch": False,
            "kafka_key": None,
            "headers": None,
            "score": np.where(dead, np.nan, rng.random(rows)),
            "prediction": [
                None if d else [float(v)] * 8 for d, v in zip(dead, rng.random(rows), strict=True)
            ],
            "model_version": "bench",
            "scoring_s": 0.0,
            "model_batch": np.int32(1024),
            "state_keys": 1000,
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=60_000)
    parser.add_argument("--batches", type=int, default=5)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--out", default="bench/results/delivery.json")
    args = parser.parse_args()
    with ExitStack() as stack:
        bootstrap, admin = bench_broker(stack)
        spark = local_spark("bench-delivery")
        frame = spark.createDataFrame(
            scored_rows(args.rows, args.partitions), SCORED_SCHEMA
        ).cache()
        frame.count()
        stamp = int(time.time())
        rates: dict[str, float] = {}
        for delivery in ("at-least-once", "exactly-once"):
            out = f"bench-delivery-{delivery}-{stamp}"
            admin.create_topic(out, args.partitions)
            admin.create_topic(f"{out}-dead", args.partitions)
            settings = load_settings(
                None,
                {
                    "kafka": {"bootstrap_servers": bootstrap},
                    "stream": {
                        "output_topic": out,
                        "dead_letter_topic": f"{out}-dead",
                        "kafka_delivery": delivery,
                    },
                },
            )
            fmt = kafka_format(spark, settings.kafka.connector)
            writer = BatchWriter(
                settings.stream,
                fmt,
                connector_options(settings, bootstrap, fmt),
                transactional_id=f"bench-{stamp}",
                transaction_options=connector_options(settings, bootstrap, SHORT_NAME),
            )
            # Each exactly-once batch stands for later source offsets: the offsets go on.
            batches = [
                frame.withColumn("offset", frame["offset"] + i * args.rows)
                for i in range(args.batches + 1)
            ]
            writer(batches[0], 0)  # warm-up: clients, the transactional id's first start
            seconds = []
            for i, batch in enumerate(batches[1:], start=1):
                started = time.perf_counter()
                writer(batch, i)
                seconds.append(time.perf_counter() - started)
            rates[delivery] = args.rows / statistics.median(seconds)
            total = sum(admin.end_offsets(out).values()) + sum(
                admin.end_offsets(f"{out}-dead").values()
            )
            # at least once: the rows; exactly once: the rows and a commit marker per partition
            assert total >= args.rows * (args.batches + 1), f"{delivery} lost records"

        swap = measure_swap(spark)
        spark.stop()
    result = {
        "benchmark": "delivery",
        "rows_per_batch": args.rows,
        "batches": args.batches,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "kafka_sink_rows_per_s": rates,
        "exactly_once_over_at_least_once": rates["exactly-once"] / rates["at-least-once"],
        "model_swap": swap,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


def measure_swap(spark) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """The driver's look at a folder with a new version and its checks, then a worker's load."""
    folder = Path(tempfile.mkdtemp(prefix="seqstream-swap-"))
    try:
        shutil.copytree(DEMO_MODEL_DIR, folder / "v1")
        settings = load_settings(None, {"stream": {"model": str(folder)}})
        ref, spec = check_artifact(folder / "v1", settings)
        versions = ModelVersions(settings, ref, spec, folder)
        context = spark.sparkContext
        started = time.perf_counter()
        versions.before_batch(context)  # nothing new: the cost of every batch
        unchanged = time.perf_counter() - started
        shutil.copytree(DEMO_MODEL_DIR, folder / "v2")
        started = time.perf_counter()
        new = versions.before_batch(context)
        driver = time.perf_counter() - started
        assert new.path == str(folder / "v2")
        started = time.perf_counter()
        scorer_for(new)
        worker = time.perf_counter() - started
        context.setLocalProperty("seqstream.model", None)
    finally:
        shutil.rmtree(folder)
    return {"look_per_batch_s": unchanged, "driver_check_s": driver, "worker_load_s": worker}


if __name__ == "__main__":
    main()
