"""Where a micro-batch's time goes: ``python -m bench.batch_profile``.

Runs the harness workload through the streaming job twice: a trickle (4 events/s, micro-batches
of 1-10 events: the fixed cost) and a drain in 15,000-event micro-batches. For each, the median
over the batches of Spark's own figures: the progress report's phases, the batch's Spark job and
its stages (read from Spark's UI REST API), and the SQL metrics of the window state step and
the Parquet write. Writes ``bench/results/batch_profile_<device>.json``. One benchmark at a time.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import tempfile
import time
import urllib.request
from collections import defaultdict
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from seqstream.model.artifact import save_artifact
from seqstream.pipeline.config import EventSchema

from bench.harness import Workload, settings_for, streaming, workload_messages, workload_model
from bench.model import workload_carry_model

RESULTS = Path(__file__).resolve().parent / "results"
# SQL metrics worth reading (Spark's names), per node.
METRICS = {
    "TransformWithStateInPySpark": (
        "time to execute Python code",
        "time to commit changes",
        "RocksDB: load - time taken to load the store",
        "RocksDB: commit - changelog commit time",
    ),
    "Execute InsertIntoHadoopFsRelationCommand": ("job commit time",),
    "Exchange": ("shuffle write time",),
}
_UNITS = {"ms": 1.0, "s": 1000.0, "min": 60_000.0}


def metric_ms(text: str) -> dict[str, float]:
    """Spark's SQL metric text ("total (min, med, max ...)\\n40 ms (12 ms, 14 ms, 26 ms ...)",
    or "37 ms") as milliseconds: total and, where given, the largest task's."""
    values = [
        float(n) * _UNITS[u] for n, u in re.findall(r"([\d.]+) (ms|s|min)\b", text.replace(",", ""))
    ]
    if not values:
        return {}
    return {"total_ms": values[0], "max_task_ms": values[3] if len(values) >= 4 else values[0]}


def _epoch_ms(text: str) -> float:
    return datetime.strptime(text.replace("GMT", ""), "%Y-%m-%dT%H:%M:%S.%f").timestamp() * 1000


def profile(spark: Any, progress: list[dict]) -> dict[str, Any]:
    """Medians over ``progress``'s batches of their phases, job, stages and SQL metrics."""
    ui, app = spark.sparkContext.uiWebUrl, spark.sparkContext.applicationId

    def get(path: str) -> Any:
        with urllib.request.urlopen(f"{ui}/api/v1/applications/{app}/{path}") as answer:
            return json.load(answer)

    batches = {p["batchId"] for p in progress}
    run_ids = {p["runId"] for p in progress}

    def batch_of(description: str | None) -> int | None:
        """The batch a job or SQL execution of these runs belongs to (Spark's description
        names the query's run and the batch)."""
        found = re.search(r"runId = (\S+)\s+batch = (\d+)", description or "")
        return int(found.group(2)) if found and found.group(1) in run_ids else None

    stages = {s["stageId"]: s for s in get("stages?status=complete")}
    figures: dict[str, list[float]] = defaultdict(list)
    for p in progress:
        for phase, ms in p["durationMs"].items():
            figures[f"phase {phase}"].append(ms)
    for job in get("jobs"):
        if batch_of(job.get("description")) not in batches or not job.get("completionTime"):
            continue
        figures["job"].append(_epoch_ms(job["completionTime"]) - _epoch_ms(job["submissionTime"]))
        for k, stage_id in enumerate(sorted(job["stageIds"])):
            stage = stages.get(stage_id)
            if stage and stage.get("completionTime"):
                name = f"stage {k} ({stage['numTasks']} tasks)"
                took = _epoch_ms(stage["completionTime"]) - _epoch_ms(stage["submissionTime"])
                figures[name].append(took)
    for execution in get("sql?details=true&planDescription=false&length=100000"):
        if batch_of(execution.get("description")) not in batches:
            continue
        for node in execution.get("nodes", []):
            wanted = next((v for k, v in METRICS.items() if node["nodeName"].startswith(k)), ())
            for metric in node.get("metrics", []):
                if metric["name"] in wanted:
                    for kind, ms in metric_ms(metric["value"]).items():
                        figures[f"{node['nodeName'][:28]}: {metric['name']} ({kind})"].append(ms)
    return {
        "batches": len(progress),
        "median_ms": {name: float(np.median(v)) for name, v in sorted(figures.items())},
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trickle-seconds", type=float, default=40.0)
    parser.add_argument("--drain-events", type=int, default=90_000)
    parser.add_argument("--max-per-trigger", type=int, default=15_000)
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--carry", action="store_true", help="the carry model of the same network (#17)"
    )
    parser.add_argument(
        "--out", default=None, help="default bench/results/batch_profile_<device>.json"
    )
    args = parser.parse_args(argv)

    from seqstream.pipeline.kafka.admin import TopicAdmin
    from seqstream.pipeline.kafka.broker import EmbeddedBroker
    from seqstream.pipeline.kafka.producer import open_producer
    from seqstream.pipeline.sources.producer import produce_messages
    from seqstream.pipeline.spark import local_spark

    w = Workload(keys=1000, events_per_key=240)
    loaded = workload_model(w)
    if args.carry:
        loaded = workload_carry_model(loaded)
    features = loaded.spec.features
    messages = workload_messages(w, EventSchema(features=features))
    work = Path(tempfile.mkdtemp(prefix="seqstream-profile-"))
    result: dict[str, Any] = {"benchmark": "batch_profile", "device": args.device}
    try:
        save_artifact(loaded.network, loaded.spec, work / "model")
        with EmbeddedBroker() as broker, TopicAdmin(broker.bootstrap_servers) as admin:
            bootstrap = broker.bootstrap_servers
            spark = local_spark(
                "seqstream-profile", extra_conf={"spark.ui.enabled": "true", "spark.ui.port": "0"}
            )
            stream = {"device": args.device, "model_batch_size": 1024}
            producer = open_producer(bootstrap)

            def run(name: str, count: int, rate: float | None, **extra: Any) -> list[dict]:
                admin.create_topic(name, 4)
                settings = settings_for(
                    bootstrap,
                    name,
                    work / "model",
                    features,
                    work / name,
                    stream={**stream, "trigger_interval": "0 seconds", **extra},
                )
                sent = messages[:count]
                if rate is None:
                    produce_messages(sent, producer, name)
                    progress, _ = streaming(spark, settings, bootstrap, count)
                    return progress[1:]  # the first batch carries the query's start-up
                feed = partial(produce_messages, sent, producer, name, rate=rate)
                progress, _ = streaming(spark, settings, bootstrap, count, feed=feed)
                return [p for p in progress[1:] if 1 <= p["numInputRows"] <= 10]

            if args.trickle_seconds:
                trickle = run("trickle", int(4 * args.trickle_seconds), 4.0)
                result["trickle_1_to_10_events"] = profile(spark, trickle)
            drain = run(
                "drain", args.drain_events, None, max_offsets_per_trigger=args.max_per_trigger
            )
            result[f"drain_{args.max_per_trigger}_events"] = profile(spark, drain)
            producer.close()
            spark.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result["measured_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    result["cpus"] = os.cpu_count()
    out = Path(args.out or RESULTS / f"batch_profile_{args.device}.json")
    out.write_text(json.dumps(result, indent=1) + "\n")
    for run_name in ("trickle_1_to_10_events", f"drain_{args.max_per_trigger}_events"):
        if run_name not in result:
            continue
        print(f"{run_name}: {result[run_name]['batches']} batches, medians in ms")
        for name, ms in result[run_name]["median_ms"].items():
            print(f"  {name:75s} {ms:9.1f}")
    print(f"written to {out}")


if __name__ == "__main__":
    main()
