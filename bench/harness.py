"""The benchmark harness (``make bench``, ``python -m bench.harness``): one workload, everything measured side by side.

    python -m bench.harness [--keys 1000] [--events-per-key 240] [--device cpu|cuda] [--skip-latency]

Workload (issue 8's default): 1,000 keys, 8 features, window 32, an LSTM 64 x 2 with a linear
forecast head (seeded random weights), produced into a 4-partition topic of the embedded broker
(or ``SEQSTREAM_BOOTSTRAP_SERVERS``). In the same run, on the same events:

1. the model alone: ``WindowScorer`` on every scoreable window, model batches 64..4096 (the limit);
2. the streaming job: sustained events/s draining the topic in micro-batches of 60,000 events
   (and of 15,000, over part of it), over the micro-batches after the first, and (unless
   ``--skip-latency``) p50/p99 event-to-score latency at 50 % and 90 % of that rate, open loop
   for ``--latency-seconds``, with ``--latency-trigger`` (default "0 seconds"), from each
   record's Kafka create time to the commit of the micro-batch that wrote its score, beside
   the same events at the same rate through Spark's floor with the model in it (its ceiling,
   ``latency_floor``), and a slow stream's (1 event/s, ``slow_stream``) with the CPU the job
   uses once idle; and the fixed cost of a micro-batch (the median of batches of 1-10
   events in a trickle), beside Spark's floor for the job's shape (``spark_floor``: Spark's
   JVM Kafka source on a trickle of its own, with and without a no-op Python
   transformWithState, and a foreachBatch Parquet write; and the same with the JVM rate source
   in place of Kafka);
3. the backfill over the same offsets, measured on a second run (the first, also reported, starts
   the Python workers of its step: torch imported, the model loaded);
4. peers: a plain confluent-kafka consumer loop with seqstream's parse, windows and model in one
   process (no Spark); and, on the same windows, as a Spark user would build them: ``from_json``,
   a ``collect_list`` over a per-key row window, scored by ``pyspark.ml.functions.
   predict_batch_udf``, and by a naive row-at-a-time Python UDF (on a sample);
5. a breakdown of the job's steps, timed as cumulative batch queries over the same offsets
   (Kafka read; parse + windows + scoring, one Python step, with the model's and parsing's own
   time inside it; sink write), and the Spark phases of the streaming micro-batches;
6. the carry model of the same network (``carry``): alone (``CarryScorer`` over every key's
   events in calls of a micro-batch's events, states carried), streaming in the same
   micro-batches, the backfill, its breakdown, and the state each key keeps.

Writes ``bench/results/harness_<device>.json`` and ``.png``; prints the table.
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
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pyspark
import torch
from pyspark.sql.streaming.stateful_processor import StatefulProcessor

from seqstream.model.artifact import load_artifact, save_artifact
from seqstream.model.carry import CarryLayout, CarryScorer
from seqstream.model.inference import WindowScorer
from seqstream.pipeline.config import EventSchema, Settings, load_settings
from seqstream.pipeline.records.parsing import parse_values
from seqstream.pipeline.scoring.worker import ModelRef
from seqstream.pipeline.sources.events import Event, Message, event_message

from bench.broker import bench_broker
from bench.floor_steps import ModelFloor, NoopWindows
from bench.model import (
    Workload,
    carry_events_per_second,
    scoreable_windows,
    windows_per_second,
    workload_carry_model,
    workload_model,
    workload_series,
)

BATCH_SIZES = (64, 256, 1024, 4096)
MODEL_BATCH = 1024  # the jobs' model batch (stream.model_batch_size) throughout the harness
FUSED = "parse + windows + score"  # one Python step in both jobs


def workload_messages(w: Workload, schema: EventSchema) -> list[Message]:
    """Events in time order across keys, so every partition fills evenly as a live topic would."""
    series = workload_series(w)
    return [
        event_message(
            Event(key, 1_700_000_000_000 + i * 60_000, tuple(float(x) for x in values[i])), schema
        )
        for i in range(w.events_per_key)
        for key, values in series.items()
    ]


def settings_for(
    bootstrap: str,
    topic: str,
    model_dir: Path,
    features: list[str],
    work: Path,
    connector: str = "auto",
    **sections: Any,
) -> Settings:
    stream = {
        "topics": [topic],
        "model": str(model_dir),
        "checkpoint": str(work / "cp"),
        "parquet_path": str(work / "scores"),
        **sections.pop("stream", {}),
    }
    return load_settings(
        None,
        {
            "kafka": {"bootstrap_servers": bootstrap, "connector": connector},
            "events": {"features": features},
            "stream": stream,
            **sections,
        },
    )


# --- 2. streaming ------------------------------------------------------------------------------


def streaming(
    spark: Any, settings: Settings, bootstrap: str, events: int, feed: Any = None
) -> tuple[list, list]:
    from seqstream.pipeline.stream import build_query, run_until_accounted

    query, metrics = build_query(spark, settings, bootstrap)
    if feed is not None:
        threading.Thread(target=feed, daemon=True).start()
    run_until_accounted(query, metrics, events, timeout_s=1800)
    return [p for p in query.recentProgress if p["numInputRows"] > 0], metrics.history


# The first micro-batches of a trickle query run while the JVM compiles its new plan: the job's
# trickle and Spark's floor both leave out as many (the job left out one, the floor five, until
# issue 31's third session).
TRICKLE_WARM_UP = 5


def fixed_cost(spark: Any, settings: Settings, bootstrap: str, topic: str, messages: list) -> dict:
    """Micro-batches of 1-10 events (a trickle of 4 events/s, trigger "0 seconds"): what a batch
    costs beyond its events, the floor under latency."""
    from seqstream.pipeline.kafka.producer import open_producer
    from seqstream.pipeline.sources.producer import produce_messages

    producer = open_producer(bootstrap)
    feed = partial(produce_messages, messages, producer, topic, rate=4.0)
    progress, _ = streaming(spark, settings, bootstrap, len(messages), feed=feed)
    producer.close()
    small = [p for p in progress[TRICKLE_WARM_UP:] if 1 <= p["numInputRows"] <= 10]
    seconds = sorted(p["durationMs"]["triggerExecution"] / 1000 for p in small)
    phases = {
        name: float(np.median([p["durationMs"].get(name, 0) / 1000 for p in small]))
        for name in small[0]["durationMs"]
    }
    return {"median_s": float(np.median(seconds)), "batches": len(small), "phases_s": phases}


def model_floor(b: Bench, kind: str, cap: int) -> dict[str, Any]:
    """``drain_floor`` with the model's work in the stateful step (``ModelFloor``): Spark's
    floor plus the model alone, the ceiling of the streaming job's rate for ``kind``'s model."""
    return drain_floor(b.spark, b.work, b.bootstrap, b.topic, cap, floor_processor(b, kind))


def floor_processor(b: Bench, kind: str) -> ModelFloor:
    """``ModelFloor`` with the job's scorer for ``kind``'s model ("window" or "carry")."""
    model_dir = b.model_dir if kind == "window" else b.carry_dir
    spec = load_artifact(model_dir).spec
    ref = ModelRef(str(model_dir), spec.weights_sha256, b.args.device, MODEL_BATCH)
    min_length = spec.window_spec.min_length if kind == "window" else None
    return ModelFloor(ref, b.w, b.args.partitions, min_length)


def latency_floor(b: Bench, name: str, live: list, rate: float) -> np.ndarray:
    """The latency run's ceiling: ``live`` fed open loop at ``rate`` (``warm_then_feed``, as
    the job's run is) to Spark's floor with the window model's work in it (``ModelFloor``),
    over the latency runs' state partitions and trigger; each event's latency measured as the
    job's is (``readable_latency_ms``). No seqstream job can score these events sooner."""
    from pyspark.sql import functions as F

    topic, out = f"{b.topic}-{name}", b.work / name
    b.admin.create_topic(topic, b.args.partitions)
    rows = (
        spark_kafka_source(b.spark, b.bootstrap, topic)
        .load()
        .select(F.col("partition").alias("k"), "value", F.col("timestamp").alias("kafka_timestamp"))
    )
    query = floor_query(
        b.spark,
        out,
        rows,
        stateful=True,
        processor=floor_processor(b, "window"),
        state_partitions=b.args.latency_state_partitions,
        trigger=b.args.latency_trigger,
    )
    started: list[float] = []
    feed = (live, b.producer, topic, rate, out / "cp", started)
    threading.Thread(target=warm_then_feed, args=feed, daemon=True).start()
    deadline = time.monotonic() + 1800
    while not _committed_through(out / "cp", len(live)):
        if time.monotonic() > deadline or query.exception() is not None:
            query.stop()
            raise RuntimeError(f"the latency floor {name} did not read its {len(live)} events")
        time.sleep(0.2)
    query.stop()
    return readable_latency_ms(out, since_ms=started[0])


def spark_floor(
    spark: Any,
    work: Path,
    seconds: float,
    *,
    stateful: bool,
    kafka: KafkaFloor | None = None,
    run: str = "",
) -> float:
    """The median micro-batch of the job's shape with no work in it: Spark's JVM rate source at
    4 rows/s, or (``kafka``) Spark's JVM Kafka source reading a trickle of 4 events/s, as the
    job reads; optionally a no-op Python transformWithState over 2 state partitions (grouped by
    Kafka partition, as the job's), and a foreachBatch Parquet write as the job's (dynamic
    partition overwrite per batch), with the job's state store settings, trigger "0 seconds".
    No seqstream job can be faster per micro-batch on this machine."""
    from pyspark.sql import functions as F

    name = ("floor-kafka-" if kafka else "floor-") + ("stateful" if stateful else "stateless")
    name += f"-{run}" if run else ""
    if kafka is None:
        rows = spark.readStream.format("rate").option("rowsPerSecond", 4).load()
        rows = rows.withColumn("k", F.col("value") % 4)
    else:
        rows = kafka.stream(spark, name).select(F.col("partition").alias("k"), "value")
    query = floor_query(spark, work / name, rows, stateful=stateful)
    if kafka is not None:
        kafka.feed(name)
    time.sleep(seconds)
    query.stop()
    batches = [p for p in query.recentProgress if p["numInputRows"] > 0][TRICKLE_WARM_UP:]
    return float(np.median([p["durationMs"]["triggerExecution"] / 1000 for p in batches]))


def drain_floor(
    spark: Any,
    work: Path,
    bootstrap: str,
    topic: str,
    cap: int,
    processor: StatefulProcessor | None = None,
) -> dict[str, Any]:
    """Spark's floor for the job's big micro-batches: ``topic`` read from the start through
    Spark's Kafka source in micro-batches of ``cap`` events, the no-op transformWithState
    (or ``processor``) handing each row's value back (the job hands back a row per event), the
    Parquet write. Median batch seconds and events per second, the first batch left out."""
    from pyspark.sql import functions as F

    rows = (
        spark_kafka_source(spark, bootstrap, topic)
        .option("maxOffsetsPerTrigger", cap)
        .load()
        .select(F.col("partition").alias("k"), "value")
    )
    work.mkdir(parents=True, exist_ok=True)
    out = Path(tempfile.mkdtemp(prefix="floor-drain-", dir=work))  # each drain its own checkpoint
    query = floor_query(spark, out, rows, stateful=True, processor=processor)
    query.processAllAvailable()
    query.stop()
    batches = [p for p in query.recentProgress if p["numInputRows"] > 0][1:]
    seconds = [p["durationMs"]["triggerExecution"] / 1000 for p in batches]
    return {
        "batch_s": float(np.median(seconds)),
        "events_per_s": sum(p["numInputRows"] for p in batches) / sum(seconds),
    }


def floor_query(
    spark: Any,
    out: Path,
    rows: Any,
    *,
    stateful: bool,
    processor: StatefulProcessor | None = None,
    state_partitions: int = 2,
    trigger: str = "0 seconds",
) -> Any:
    """Start the floor's query on ``rows`` (a column ``k`` to group by, and the columns to hand
    back); the stateful step runs ``processor`` (default: ``NoopWindows``) over
    ``state_partitions``; each batch's rows land in ``out / "scores"``, as the job's scores do."""
    from pyspark.sql import functions as F

    from seqstream.pipeline.stream import state_store_conf

    shuffle = {"spark.sql.shuffle.partitions": str(state_partitions)}
    for key, value in {**state_store_conf(out), **shuffle}.items():
        spark.conf.set(key, value)
    if stateful:
        schema = ", ".join(f"{name} {kind}" for name, kind in rows.dtypes if name != "k")
        rows = rows.groupBy("k").transformWithStateInPandas(
            processor or NoopWindows(), schema, "Append", "None"
        )

    def write(batch: Any, batch_id: int) -> None:
        (
            batch.withColumn("batch_id", F.lit(batch_id))
            .write.mode("overwrite")
            .option("partitionOverwriteMode", "dynamic")
            .partitionBy("batch_id")
            .parquet(str(out / "scores"))
        )

    return (
        rows.writeStream.foreachBatch(write)
        .option("checkpointLocation", str(out / "cp"))
        .trigger(processingTime=trigger)
        .start()
    )


def spark_kafka_source(spark: Any, bootstrap: str, topic: str) -> Any:
    """Spark's own Kafka source on ``topic`` from its start, as the floors read it."""
    return (
        spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", bootstrap)
        # Without it a pooled consumer's next fetch waits Kafka's 500 ms on an idle topic
        # (``connector.jvm_options``): the floor takes the setting any Spark user can.
        .option("kafka.fetch.max.wait.ms", "10")
        .option("subscribe", topic)
        .option("startingOffsets", "earliest")
    )


@dataclass(frozen=True)
class KafkaFloor:
    """Spark's own Kafka source on a topic of its own per floor, fed a trickle of 4 events/s."""

    bootstrap: str
    admin: Any
    topic: str
    partitions: int
    messages: list

    def stream(self, spark: Any, name: str) -> Any:
        self.admin.create_topic(f"{self.topic}-{name}", self.partitions)
        return spark_kafka_source(spark, self.bootstrap, f"{self.topic}-{name}").load()

    def feed(self, name: str) -> None:
        from seqstream.pipeline.kafka.producer import open_producer
        from seqstream.pipeline.sources.producer import produce_messages

        def run() -> None:
            producer = open_producer(self.bootstrap)
            produce_messages(self.messages, producer, f"{self.topic}-{name}", rate=4.0)
            producer.close()

        threading.Thread(target=run, daemon=True).start()


def model_share(history: list) -> float:
    """The model's share of the micro-batches' time, after the first."""
    return sum(m.scoring_s for m in history[1:]) / max(sum(m.duration_s for m in history[1:]), 1e-9)


def connector_table(by_connector: dict[str, dict], best: float, carry_best: float) -> dict:
    """Per connector the streaming figures of the issue's table, and jvm / python ratios."""
    table: dict[str, Any] = {
        name: {
            "over_model": f["rate"] / best,
            "events_per_s": f["rate"],
            "small_batches_over_model": f["small_rate"] / best,
            "fixed_cost_s": f["trickle"]["median_s"],
            "carry_streaming_events_per_s": f["carry_rate"],
            "carry_over_carry_model_alone": f["carry_rate"] / carry_best,
            "micro_batch_phases_s": f["phases"],
        }
        for name, f in by_connector.items()
    }
    if {"jvm", "python"} <= set(table):
        jvm, python = table["jvm"], table["python"]
        table["jvm_over_python"] = {
            name: jvm[name] / python[name]
            for name in (
                "over_model",
                "small_batches_over_model",
                "fixed_cost_s",
                "carry_streaming_events_per_s",
            )
        }
    return table


def state_calls_per_batch(progress: list) -> float:
    """Python-to-JVM state calls per micro-batch: each state row the batch updated was read
    first (a get and an update; Spark's ``numRowsUpdated``, summed over state operators)."""
    warm = progress[1:] or progress
    updated = [sum(op["numRowsUpdated"] for op in p["stateOperators"]) for p in warm]
    return 2 * float(np.mean(updated))


def plain_loop(
    bootstrap: str, topic: str, partitions: int, model_dir: Path, schema: EventSchema, events: int
) -> float:
    """What a user writes for one machine: a confluent-kafka consumer loop in one process with
    seqstream's own parse + windows step and model, no Spark. Events per second."""
    import pandas as pd
    from confluent_kafka import Consumer, TopicPartition

    from seqstream.pipeline.scoring.step import window_rows

    loaded = load_artifact(model_dir)
    scorer = WindowScorer(loaded, batch_size=1024, num_threads=os.cpu_count() or 1)
    length, min_length = loaded.spec.window.length, loaded.spec.window.min_length
    contexts: dict[str, np.ndarray] = {}
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "plain-loop", "enable.auto.commit": False}
    )
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    seen, started = 0, time.perf_counter()
    while seen < events:
        messages = consumer.consume(num_messages=20_000, timeout=0.5)
        if not messages:
            continue
        rows = pd.DataFrame(
            {
                "kafka_key": [m.key() for m in messages],
                "value": [m.value() for m in messages],
                "topic": topic,
                "partition": [m.partition() for m in messages],
                "offset": [m.offset() for m in messages],
                "kafka_timestamp": pd.to_datetime([m.timestamp()[1] for m in messages], unit="ms"),
            }
        )
        for _, part in rows.groupby("partition"):
            made = window_rows(part, contexts.get, length, schema, 65_536)
            contexts.update(made.states)
            lengths = made.rows["window_length"].to_numpy()
            ready = (lengths >= min_length) & made.rows["reason"].isna().to_numpy()
            scorer.score(made.windows[ready], lengths[ready])
        seen += len(messages)
    consumer.close()
    return seen / (time.perf_counter() - started)


def _committed_through(checkpoint: Path, events: int) -> bool:
    """Has a committed micro-batch read up to ``events`` offsets in all (Spark's offset log)?"""
    commits = checkpoint / "commits"
    for name in (p.name for p in commits.iterdir() if p.name.isdigit()) if commits.is_dir() else []:
        ends = json.loads((checkpoint / "offsets" / name).read_text().splitlines()[2])
        if sum(o for parts in ends.values() for o in parts.values()) >= events:
            return True
    return False


RETAIN_BATCHES = 100_000  # the latency runs' checkpoints keep every batch's commit


def warm_then_feed(
    messages: list, producer: Any, topic: str, rate: float, checkpoint: Path, started: list
) -> None:
    """Open loop after a warm-up: one second's worth of events, then, once the micro-batch
    that read them has committed (the query and its Python workers are up), the rest at
    ``rate``; ``started`` gets the wall-clock ms at which the timed part began."""
    from seqstream.pipeline.sources.producer import produce_messages

    warm = max(int(rate), 1)
    produce_messages(messages[:warm], producer, topic)
    while not _committed_through(checkpoint, warm):
        time.sleep(0.05)
    started.append(time.time() * 1000)
    produce_messages(messages[warm:], producer, topic, rate=rate)


def readable_latency_ms(out: Path, since_ms: float = 0.0) -> np.ndarray:
    """Per scored event: from its Kafka record's create time to the moment its score is
    readable, the commit of the micro-batch that wrote it (the file Spark writes in
    ``checkpoint/commits`` once the batch's Parquet is in place)."""
    import pandas as pd

    table = pq.read_table(out / "scores", columns=["kafka_timestamp", "batch_id"]).to_pandas()
    committed_ms = {
        int(p.name): p.stat().st_mtime * 1000
        for p in (out / "cp" / "commits").iterdir()
        if p.name.isdigit()
    }
    epoch = pd.Timestamp("1970-01-01", tz="UTC")
    created_ms = (
        pd.to_datetime(table["kafka_timestamp"], utc=True) - epoch
    ).to_numpy() / np.timedelta64(1, "ms")
    readable_ms = table["batch_id"].astype(int).map(committed_ms).to_numpy()
    timed = created_ms >= since_ms
    uncommitted = int(np.isnan(readable_ms[timed]).sum())
    if uncommitted:  # Spark purged the commit (``RETAIN_BATCHES``), or the query stopped in a batch
        raise RuntimeError(f"{uncommitted} rows under {out} have no commit of their batch")
    return readable_ms[timed] - created_ms[timed]


def sustained(progress: list) -> tuple[float, dict[str, float]]:
    warm = progress[1:] or progress
    rows = sum(p["numInputRows"] for p in warm)
    seconds = sum(p["durationMs"]["triggerExecution"] for p in warm) / 1000
    phases = {
        name: sum(p["durationMs"].get(name, 0) for p in warm) / 1000
        for name in warm[0]["durationMs"]
    }
    return rows / seconds, phases


# --- 4. peers ----------------------------------------------------------------------------------


def peer_windows(
    spark: Any, bootstrap: str, topic: str, features: list[str], length: int, min_length: int
) -> Any:
    """Windows the way a Spark user builds them without seqstream: JSON in the JVM, then the last
    ``length`` events per key from a row window in Kafka order, padded to a fixed shape."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F
    from pyspark.sql.types import DoubleType, LongType, StringType, StructField, StructType

    from seqstream.pipeline.kafka.connector import kafka_format

    schema = StructType(
        [
            StructField("key", StringType()),
            StructField("ts", LongType()),
            *[StructField(f, DoubleType()) for f in features],
        ]
    )
    raw = (
        spark.read.format(kafka_format(spark, "auto"))
        .option("kafka.bootstrap.servers", bootstrap)
        .option("subscribe", topic)
        .load()
    )
    events = raw.select(
        "partition", "offset", F.from_json(F.col("value").cast("string"), schema).alias("e")
    ).select(
        "partition",
        "offset",
        "e.key",
        F.array(*[F.col(f"e.{f}").cast("float") for f in features]).alias("x"),
    )
    rows = Window.partitionBy("key").orderBy("partition", "offset").rowsBetween(-(length - 1), 0)
    windows = events.withColumn("w", F.collect_list("x").over(rows)).withColumn("n", F.size("w"))
    padding = F.array_repeat(
        F.array_repeat(F.lit(0.0).cast("float"), len(features)), F.lit(length) - F.col("n")
    )
    return windows.where(F.col("n") >= min_length).select(
        "partition", "offset", F.flatten(F.concat("w", padding)).alias("window"), "n"
    )


def make_predict_fn(model_dir: str, batch_size: int, device: str):  # type: ignore[no-untyped-def]
    def make():  # type: ignore[no-untyped-def]
        scorer = WindowScorer(load_artifact(model_dir), batch_size=batch_size, device=device)

        def predict(windows: np.ndarray, lengths: np.ndarray) -> np.ndarray:
            return scorer.score(windows.astype(np.float32), lengths.astype(np.int64)).score

        return predict

    return make


_NAIVE: dict[str, WindowScorer] = {}


def naive_score(window: list, n: int, model_dir: str) -> float:
    """Row at a time: one window per call, the model cached in the worker as a careful user would."""
    if model_dir not in _NAIVE:
        _NAIVE[model_dir] = WindowScorer(load_artifact(model_dir), batch_size=1)
    scorer = _NAIVE[model_dir]
    shaped = np.asarray(window, np.float32).reshape(
        1, scorer.spec.window.length, len(scorer.spec.features)
    )
    return float(scorer.score(shaped, np.asarray([n])).score[0])


def noop(frame: Any) -> float:
    """Seconds to compute ``frame`` in full, writing nothing."""
    started = time.perf_counter()
    frame.write.format("noop").mode("overwrite").save()
    return time.perf_counter() - started


def timed_count(frame: Any) -> tuple[int, float]:
    seconds = noop(frame)
    return frame.count(), seconds


# --- 5. breakdown ------------------------------------------------------------------------------


def breakdown(spark: Any, settings: Settings, bootstrap: str, ranges: list) -> dict[str, float]:
    """Seconds each step adds, as cumulative batch queries over the same offsets (warm)."""
    from pyspark.sql import functions as F

    from seqstream.pipeline.backfill.chunks import Backfill
    from seqstream.pipeline.scoring.model_versions import check_model
    from seqstream.pipeline.scoring.step import scoring_step
    from seqstream.pipeline.sinks.outputs import BatchWriter

    ref, spec = check_model(settings)
    step = scoring_step(spec, ref, settings.events, settings.stream.max_event_bytes)
    job = Backfill(spark, settings, bootstrap, step, run_id="breakdown")
    raw = job.read_kafka(ranges)
    scored = (
        job.scores(ranges, {}, {}).where(~F.col("is_state")).drop("is_state", "state")
    )  # parsed, windowed, scored

    for frame in (raw, scored):  # warm-up: Python workers, model, code generation
        noop(frame)
    cumulative = {
        name: min(noop(frame) for _ in range(2)) for name, frame in (("read", raw), (FUSED, scored))
    }
    model_s = scored.agg(F.sum("scoring_s")).first()[0]
    values = raw.select("value").toPandas()["value"].tolist()
    started = time.perf_counter()
    parse_values(values, settings.events, settings.stream.max_event_bytes)
    parse_s = time.perf_counter() - started
    sink = settings.stream.model_copy(
        update={"parquet_path": Path(str(settings.stream.parquet_path) + "-breakdown")}
    )

    def write() -> float:
        started = time.perf_counter()
        BatchWriter(sink, job.format, job.options)(
            scored, 0
        )  # the same partition each time: replaced
        return time.perf_counter() - started

    cumulative["sink"] = min(write() for _ in range(2))
    steps, before = {}, 0.0
    for name, seconds in cumulative.items():
        steps[name] = max(seconds - before, 0.0)
        before = seconds
    workers = int(spark.sparkContext.defaultParallelism)
    # Inside the one Python step, side by side on the workers: the model, and parsing (timed alone).
    steps[f"model (in {FUSED})"] = model_s / workers
    steps[f"parse (in {FUSED})"] = parse_s / workers
    return steps


def state_bytes_per_key(window: Any, carry: Any, keys: int) -> dict[str, float]:
    """Each key's streaming state: its values, and as stored (an Arrow IPC bucket of all the
    keys, with their names and last-seen times), per key; a window model keeps its last N-1
    events."""
    from seqstream.pipeline.state.buckets import Carried, encode_bucket

    features = len(window.spec.features)
    events = np.zeros((window.spec.window_spec.length - 1, features), np.float32)
    size = CarryLayout.of(carry.spec).size
    names = [f"key-{k:05d}" for k in range(keys)]
    stored = {
        "window": encode_bucket({n: Carried(0, events) for n in names}),
        "carry": encode_bucket({n: Carried(0, np.zeros((1, size))) for n in names}),
    }
    return {
        "window_values": float(events.nbytes),
        "carry_values": float(size * 8),
        "window_stored": len(stored["window"]) / keys,
        "carry_stored": len(stored["carry"]) / keys,
    }


# --- the run -----------------------------------------------------------------------------------


def chart(result: dict[str, Any], path: Path) -> None:
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = ["model alone", "streaming", "backfill", "predict_batch_udf", "naive UDF"]
    values = [
        result["model_alone"]["best_windows_per_s"],
        result["streaming"]["events_per_s"],
        result["backfill"]["events_per_s"],
        result["peers"]["predict_batch_udf_windows_per_s"],
        result["peers"]["naive_udf_windows_per_s"],
    ]
    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4))
    left.barh(names[::-1], values[::-1], color="#4a7ab5")
    left.set_xscale("log")
    left.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    for name, value in zip(names[::-1], values[::-1], strict=False):
        left.annotate(
            f"{value:,.0f}",
            (value, name),
            xytext=(4, 0),
            textcoords="offset points",
            va="center",
            fontsize=8,
        )
    left.set_xlabel("events (windows) per second, log scale")
    left.set_title(
        f"{result['workload']['keys']:,} keys x {result['workload']['events_per_key']} events, {result['device']}"
    )
    steps = result["breakdown_s"]
    right.barh(list(steps)[::-1], list(steps.values())[::-1], color="#b5764a")
    right.set_xlabel(f"seconds for {result['events']:,} events (batch, warm)")
    right.set_title("where the time goes")
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.harness",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--keys", type=int, default=1_000)
    parser.add_argument(
        "--events-per-key", type=int, default=240, help="enough that the JVM is warm when measured"
    )
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--device", default="cpu", help="cpu or cuda (executors score on it)")
    parser.add_argument(
        "--max-per-trigger",
        type=int,
        default=60_000,
        help="micro-batch size of the sustained run (a quarter of it for the small-batch figure)",
    )
    parser.add_argument("--latency-seconds", type=float, default=60.0)
    parser.add_argument(
        "--latency-trigger",
        default="0 seconds",
        help="stream.trigger_interval of the latency runs (0 seconds: the low-latency setting)",
    )
    parser.add_argument(
        "--latency-state-partitions",
        type=int,
        default=os.cpu_count() or 1,
        help="stream.state_partitions of the latency runs (the low-latency setting: the cores)",
    )
    parser.add_argument(
        "--trickle-seconds", type=float, default=30.0, help="how long the fixed-cost run lasts"
    )
    parser.add_argument(
        "--slow-seconds", type=float, default=40.0, help="how long the slow stream is fed"
    )
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument(
        "--connectors",
        type=lambda text: text.split(","),
        default=["jvm", "python"],
        help="Spark Kafka connectors to stream with, the first for the headline figures",
    )
    parser.add_argument(
        "--naive-sample", type=int, default=3_000, help="windows the naive UDF scores"
    )
    parser.add_argument("--out", default=None, help="default bench/results/harness_<device>.json")
    return parser.parse_args(argv)


@dataclass
class Bench:
    """What the measured sections share: the flags, the workload and its two models, and, once
    ``set_up`` has run, the saved models, the broker, the topic, the producer and Spark."""

    args: argparse.Namespace
    w: Workload
    loaded: Any
    carry_loaded: Any
    schema: EventSchema
    messages: list[Message]
    work: Path
    bootstrap: str = ""
    admin: Any = None
    topic: str = ""
    producer: Any = None
    spark: Any = None

    @property
    def features(self) -> list[str]:
        return self.loaded.spec.features

    @property
    def model_dir(self) -> Path:
        return self.work / "model"

    @property
    def carry_dir(self) -> Path:
        return self.work / "carry-model"

    @property
    def stream_section(self) -> dict[str, Any]:
        return {"device": self.args.device, "model_batch_size": MODEL_BATCH}


# --- 1. the model alone ------------------------------------------------------------------------


def model_alone(args: argparse.Namespace, w: Workload, loaded: Any, series: Any) -> dict[str, Any]:
    """The window model on every scoreable window and the carry model of the same network (in
    calls of a micro-batch's events), at each model batch size, on all the cores."""
    windows, lengths = scoreable_windows(series, w.window, loaded.spec.window_spec.min_length)
    threads = os.cpu_count() or 1
    model = {
        b: windows_per_second(
            WindowScorer(loaded, batch_size=b, num_threads=threads, device=args.device),
            windows,
            lengths,
        )
        for b in BATCH_SIZES
    }
    best = max(model.values())
    # the carry model of the same network, in calls of a micro-batch's events
    carry_loaded = workload_carry_model(loaded)
    carry_model = {
        b: carry_events_per_second(
            CarryScorer(carry_loaded, batch_size=b, num_threads=threads, device=args.device),
            series,
            args.max_per_trigger,
        )
        for b in BATCH_SIZES
    }
    carry_best = max(carry_model.values())
    torch.set_num_threads(threads)
    return {
        "scoreable_windows": len(windows),
        "threads": threads,
        "model": model,
        "best": best,
        "carry_loaded": carry_loaded,
        "carry_model": carry_model,
        "carry_best": carry_best,
    }


def set_up(stack: ExitStack, b: Bench) -> None:
    """The two models saved, the broker started, the workload produced into a new topic, Spark."""
    from seqstream.pipeline.kafka.producer import open_producer
    from seqstream.pipeline.sources.producer import produce_messages
    from seqstream.pipeline.spark import local_spark

    save_artifact(b.loaded.network, b.loaded.spec, b.model_dir)
    save_artifact(b.carry_loaded.network, b.carry_loaded.spec, b.carry_dir)
    b.bootstrap, b.admin = bench_broker(stack)
    b.topic = f"bench-{int(time.time())}"
    b.admin.create_topic(b.topic, b.args.partitions)
    b.producer = open_producer(b.bootstrap)
    produce_messages(b.messages, b.producer, b.topic)
    b.spark = local_spark("seqstream-bench")


# --- 2. streaming, the run ---------------------------------------------------------------------
# Sustained: small micro-batches first (over part of the topic), then the headline over all of
# it (its first batch, with the JVM's start-up, is left out); the window and carry models, and a
# trickle for the fixed cost of a micro-batch; with each Spark Kafka connector, on the same topic.


def drain(
    b: Bench, cap: int, events: int, name: str, connector: str, model: Path
) -> tuple[list, list]:
    settings = settings_for(
        b.bootstrap,
        b.topic,
        model,
        b.features,
        b.work / name,
        connector,
        stream={
            **b.stream_section,
            "max_offsets_per_trigger": cap,
            "trigger_interval": "0 seconds",
        },
    )
    return streaming(b.spark, settings, b.bootstrap, events)


def trickle(b: Bench, name: str, connector: str = "auto", **stream: Any) -> dict:
    b.admin.create_topic(f"{b.topic}-{name}", b.args.partitions)
    settings = settings_for(
        b.bootstrap,
        f"{b.topic}-{name}",
        b.model_dir,
        b.features,
        b.work / name,
        connector,
        stream={**b.stream_section, "trigger_interval": "0 seconds", **stream},
    )
    trickled = b.messages[: int(4 * b.args.trickle_seconds)]
    return fixed_cost(b.spark, settings, b.bootstrap, f"{b.topic}-{name}", trickled)


def stream_figures(b: Bench, connector: str) -> dict[str, Any]:
    cap, events = b.args.max_per_trigger, len(b.messages)
    # The session's first stream runs while the JVM and the workers warm up (for minutes: the
    # same trickle took 0.77 s a batch in a session's first minute, 0.42 s after five); the
    # 15,000-event drain that counts runs again after the floors (``small_drain``).
    small_first = small_drain(b, "small-first", connector)
    progress, history = drain(b, cap, events, f"drain-{connector}", connector, b.model_dir)
    carry_progress, carry_history = drain(
        b, cap, events, f"carry-{connector}", connector, b.carry_dir
    )
    rate, phases = sustained(progress)
    carry_rate, carry_phases = sustained(carry_progress)
    return {
        "small_first_rate": small_first,
        "rate": rate,
        "phases": phases,
        "calls": state_calls_per_batch(progress),
        "scoring_share": model_share(history),
        "carry_rate": carry_rate,
        "carry_phases": carry_phases,
        "carry_scoring_share": model_share(carry_history),
        "trickle": trickle(b, f"trickle-{connector}", connector),
    }


def small_drain(b: Bench, run: str, connector: str) -> float:
    """Events/s draining the topic's first 90,000 events in 15,000-event micro-batches."""
    cap = b.args.max_per_trigger // 4
    progress, _ = drain(
        b, cap, min(len(b.messages), 6 * cap), f"{run}-{connector}", connector, b.model_dir
    )
    return sustained(progress)[0]


def streaming_section(b: Bench) -> dict[str, Any]:
    """Each connector's figures, the plain loop, and (2a.) the fixed cost of a micro-batch with
    the low-latency setting (as many state partitions as cores) beside Spark's own floor for
    the job's shape."""
    args = b.args
    by_connector = {c: stream_figures(b, c) for c in args.connectors}
    plain_rate = plain_loop(
        b.bootstrap, b.topic, args.partitions, b.model_dir, b.schema, len(b.messages)
    )
    trickle_lean = trickle(b, "trickle-lean", state_partitions=args.latency_state_partitions)
    # Spark's floor for the job's shape: with its JVM Kafka source, as the job reads (the bar of
    # issue 31), and with the rate source (no Kafka at all), each with and without the stateful
    # step. The bar and the job's trickle run back to back, A B B A (the job's trickle, the
    # floor, the floor, the job's trickle): on 2 cores either moves by up to 0.1 s with what ran
    # before it (the job's trickle right after the 60,000-event drains took 0.56-0.79 s in four
    # runs, 0.44-0.52 s after the floors), and the JVM warms through the run, so both are
    # measured after the same kind of query and the ratio takes the means of both pairs.
    kafka = KafkaFloor(
        b.bootstrap, b.admin, b.topic, args.partitions, b.messages[: int(4 * args.trickle_seconds)]
    )
    first = trickle(b, "trickle-first", args.connectors[0])
    floors = {
        name: spark_floor(
            b.spark, b.work, args.trickle_seconds, stateful=True, kafka=kafka, run=run
        )
        for name, run in (("stateful", ""), ("stateful_again", "again"))
    }
    again = trickle(b, "trickle-again", args.connectors[0])
    floors["stateless"] = spark_floor(
        b.spark, b.work, args.trickle_seconds, stateful=False, kafka=kafka
    )
    floors.update(
        {
            f"{kind}_rate_source": spark_floor(
                b.spark, b.work, args.trickle_seconds, stateful=kind == "stateful"
            )
            for kind in ("stateless", "stateful")
        }
    )
    floors["drain"] = drain_floor(b.spark, b.work, b.bootstrap, b.topic, args.max_per_trigger)
    # The same with the model's own work in it: the ceiling of each streaming rate.
    floors["drain_window_model"] = model_floor(b, "window", args.max_per_trigger)
    floors["drain_window_model_small"] = model_floor(b, "window", args.max_per_trigger // 4)
    floors["drain_carry_model"] = model_floor(b, "carry", args.max_per_trigger)
    # The 15,000-event drain that counts, as warm as the floors: the same drain after a few
    # minutes of this run went from 10,200 to 12,400-12,800 events/s (whether over the topic's
    # first 90,000 events or all of it), and its ceiling just ran.
    for connector, figures in by_connector.items():
        figures["small_rate"] = small_drain(b, "small", connector)
    return {
        "by_connector": by_connector,
        "plain_rate": plain_rate,
        "trickle_lean": trickle_lean,
        "trickle_first": first,
        "trickle_again": again,
        "floors": floors,
    }


def latency_settings(b: Bench, topic: str, out: Path) -> Settings:
    """The job's settings for a latency run on ``topic``: the low-latency setting
    (--latency-trigger, --latency-state-partitions), its files under ``out``."""
    stream = {
        **b.stream_section,
        "trigger_interval": b.args.latency_trigger,
        "state_partitions": b.args.latency_state_partitions,
    }
    return settings_for(b.bootstrap, topic, b.model_dir, b.features, out, stream=stream)


def latency_section(b: Bench, rate: float) -> dict[str, Any]:
    """2b. latency at 50 % and 90 % of the sustained rate (none with --skip-latency)."""
    args = b.args
    latency: dict[str, Any] = {}
    # Each batch's commit file dates its rows (``readable_latency_ms``); Spark keeps only the
    # last 100 by default, fewer than a latency run's minute of sub-second batches.
    b.spark.conf.set("spark.sql.streaming.minBatchesToRetain", str(RETAIN_BATCHES))
    if not args.skip_latency:
        for share in (0.5, 0.9):
            lat_topic = f"{b.topic}-lat{int(share * 100)}"
            b.admin.create_topic(lat_topic, args.partitions)
            count = int(rate * share * args.latency_seconds)
            live = workload_messages(
                Workload(keys=args.keys, events_per_key=max(count // args.keys, 2), seed=2),
                b.schema,
            )
            out = b.work / f"lat{int(share * 100)}"
            lat_settings = latency_settings(b, lat_topic, out)
            started: list[float] = []
            feed = partial(
                warm_then_feed, live, b.producer, lat_topic, rate * share, out / "cp", started
            )
            streaming(b.spark, lat_settings, b.bootstrap, len(live), feed=feed)
            millis = readable_latency_ms(out, since_ms=started[0])
            ceiling = latency_floor(b, f"lat{int(share * 100)}-floor", live, rate * share)
            latency[f"{int(share * 100)}%"] = {
                "rate_per_s": rate * share,
                "p50_ms": float(np.percentile(millis, 50)),
                "p99_ms": float(np.percentile(millis, 99)),
                "scored": len(millis),
                # The same events at the same rate through Spark's floor with the model in it.
                "ceiling": {
                    "p50_ms": float(np.percentile(ceiling, 50)),
                    "p99_ms": float(np.percentile(ceiling, 99)),
                    "events": len(ceiling),
                },
            }
        latency["slow"] = slow_stream(b)
    return latency


SLOW_RATE = 1.0  # events/s of the slow stream: most micro-batches hold one event
SLOW_KEYS = 4
IDLE_SECONDS = 10.0


def slow_stream(b: Bench) -> dict[str, Any]:
    """A slow stream's event-to-score latency (``SLOW_RATE`` open loop for --slow-seconds, the
    low-latency setting; each key's first window of events is in the topic before, so every
    timed event is scored), then the CPU the whole run (Spark, its workers, the broker) uses
    per second once the stream is idle: what a job waiting for events costs its machine."""
    from seqstream.pipeline.sources.producer import produce_messages
    from seqstream.pipeline.stream import build_query

    args, name = b.args, "lat-slow"
    topic, out = f"{b.topic}-{name}", b.work / name
    b.admin.create_topic(topic, args.partitions)
    timed = int(SLOW_RATE * args.slow_seconds)
    w = Workload(keys=SLOW_KEYS, events_per_key=b.w.window + timed // SLOW_KEYS + 2, seed=3)
    messages = workload_messages(w, b.schema)
    history = SLOW_KEYS * b.w.window
    produce_messages(messages[:history], b.producer, topic)
    live = messages[history : history + timed]
    query, metrics = build_query(b.spark, latency_settings(b, topic, out), b.bootstrap)
    started: list[float] = []
    feed = (live, b.producer, topic, SLOW_RATE, out / "cp", started)
    threading.Thread(target=warm_then_feed, args=feed, daemon=True).start()
    deadline = time.monotonic() + args.slow_seconds + 600
    while sum(m.events_in for m in metrics.history) < history + len(live):
        if time.monotonic() > deadline or not query.isActive:
            query.stop()
            metrics.close()
            raise RuntimeError(f"the slow stream did not account for its {len(live)} events")
        time.sleep(0.2)
    before = process_tree_cpu_s()
    time.sleep(IDLE_SECONDS)
    idle_cores = (process_tree_cpu_s() - before) / IDLE_SECONDS
    query.stop()
    metrics.close()
    millis = readable_latency_ms(out, since_ms=started[0])
    return {
        "rate_per_s": SLOW_RATE,
        "p50_ms": float(np.percentile(millis, 50)),
        "p99_ms": float(np.percentile(millis, 99)),
        "scored": len(millis),
        "idle_cpu_cores": idle_cores,
    }


def process_tree_cpu_s() -> float:
    """CPU seconds (user + system) of this process and its descendants, from /proc."""
    stats = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # ended meanwhile
            continue
        stats[int(pid)] = (int(fields[1]), int(fields[11]) + int(fields[12]))
    tree, grew = {os.getpid()}, True
    while grew:
        found = {pid for pid, (parent, _) in stats.items() if parent in tree} - tree
        tree |= found
        grew = bool(found)
    return sum(stats[pid][1] for pid in tree if pid in stats) / os.sysconf("SC_CLK_TCK")


# --- 3. backfill, the run ----------------------------------------------------------------------
# Over the same offsets, twice: the first run starts this step's Python workers (torch imported,
# model loaded), the second is measured warm, as the model and the peers are.


def backfill(b: Bench, name: str, model: Path) -> tuple[Settings, float]:
    from seqstream.pipeline.backfill.plan import Request
    from seqstream.pipeline.backfill.run import run_backfill

    settings = settings_for(
        b.bootstrap,
        b.topic,
        model,
        b.features,
        b.work / name,
        stream=b.stream_section,
        backfill={
            "parquet_path": str(b.work / name / "backfill"),
            "progress_dir": str(b.work / name / "progress"),
        },
    )
    started = time.perf_counter()
    counts = run_backfill(b.spark, settings, b.bootstrap, Request([b.topic]))
    return settings, sum(c.events_in for c in counts) / (time.perf_counter() - started)


def backfill_section(b: Bench) -> dict[str, Any]:
    first_backfill_rate = backfill(b, "bf-first", b.model_dir)[1]
    bf_settings, backfill_rate = backfill(b, "bf", b.model_dir)
    first_carry_backfill_rate = backfill(b, "carry-bf-first", b.carry_dir)[1]
    carry_bf_settings, carry_backfill_rate = backfill(b, "carry-bf", b.carry_dir)
    return {
        "first_rate": first_backfill_rate,
        "settings": bf_settings,
        "rate": backfill_rate,
        "carry_first_rate": first_carry_backfill_rate,
        "carry_settings": carry_bf_settings,
        "carry_rate": carry_backfill_rate,
    }


# --- 4. peers, the run -------------------------------------------------------------------------


def peers_section(b: Bench) -> dict[str, Any]:
    """predict_batch_udf over the peer's windows (timed warm, its scores joined to the
    backfill's), and the naive UDF on a sample."""
    w, model_dir = b.w, b.model_dir
    peers = peer_windows(
        b.spark, b.bootstrap, b.topic, b.features, w.window, b.loaded.spec.window.min_length
    )
    from pyspark.ml.functions import predict_batch_udf
    from pyspark.sql import functions as F
    from pyspark.sql.types import DoubleType

    predict = predict_batch_udf(
        make_predict_fn(str(model_dir), 1024, b.args.device),
        return_type=DoubleType(),
        batch_size=1024,
        input_tensor_shapes=[[w.window, w.features], None],
    )
    timed_count(peers.select(predict("window", "n").alias("score")))  # warm-up
    n_peer, peer_s = timed_count(
        peers.select("partition", "offset", predict("window", "n").alias("score"))
    )
    peer_scores = peers.select(
        "partition", "offset", predict("window", "n").alias("score")
    ).toPandas()
    ours = pq.read_table(
        b.work / "bf" / "backfill", columns=["partition", "offset", "score"]
    ).to_pandas()
    joined = ours.merge(peer_scores, on=["partition", "offset"], suffixes=("", "_peer"))
    naive = F.udf(partial(naive_score, model_dir=str(model_dir)), DoubleType())
    sample = (
        peers.where(F.col("partition") == 0).orderBy("offset").limit(b.args.naive_sample).cache()
    )
    sample.count()
    n_naive, naive_s = timed_count(sample.select(naive("window", "n").alias("score")))
    return {
        "n_peer": n_peer,
        "peer_s": peer_s,
        "joined": joined,
        "n_naive": n_naive,
        "naive_s": naive_s,
    }


# --- 5. breakdown, the run ---------------------------------------------------------------------


def breakdown_section(b: Bench, backfills: dict[str, Any]) -> dict[str, Any]:
    from seqstream.pipeline.backfill.plan import resolve_ranges
    from seqstream.pipeline.kafka.admin import TopicAdmin

    with TopicAdmin(b.bootstrap) as a:
        ranges = resolve_ranges(a, [b.topic])
    steps = breakdown(b.spark, backfills["settings"], b.bootstrap, ranges)
    carry_steps = breakdown(b.spark, backfills["carry_settings"], b.bootstrap, ranges)
    return {"steps": steps, "carry_steps": carry_steps}


def measure(b: Bench) -> dict[str, Any]:
    """Sections 2 to 5, in order, on the topic ``set_up`` filled; Spark stopped after."""
    streamed = streaming_section(b)
    main_figures = streamed["by_connector"][b.args.connectors[0]]
    latency = latency_section(b, main_figures["rate"])
    b.producer.close()
    backfills = backfill_section(b)
    peers = peers_section(b)
    steps = breakdown_section(b, backfills)
    b.spark.stop()
    return {
        **streamed,
        "main": main_figures,
        "latency": latency,
        "backfills": backfills,
        "peers": peers,
        **steps,
    }


# --- the results -------------------------------------------------------------------------------


def result_head(args: argparse.Namespace, b: Bench, alone: dict[str, Any]) -> dict[str, Any]:
    """The run's setting: workload, machine, versions; and the model alone."""
    w = b.w
    return {
        "benchmark": "harness",
        "device": args.device,
        "events": len(b.messages),
        "partitions": args.partitions,
        "workload": {
            "keys": w.keys,
            "events_per_key": w.events_per_key,
            "features": w.features,
            "window": w.window,
            "hidden": w.hidden,
            "layers": w.layers,
            "scoreable_windows": alone["scoreable_windows"],
        },
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "gpu": torch.cuda.get_device_name()
            if args.device.startswith("cuda") and torch.cuda.is_available()
            else None,
        },
        "versions": {"pyspark": pyspark.__version__, "torch": torch.__version__},
        "model_alone": {
            "threads": alone["threads"],
            "windows_per_s_by_batch": alone["model"],
            "best_windows_per_s": alone["best"],
        },
    }


def streaming_result(
    args: argparse.Namespace, alone: dict[str, Any], m: dict[str, Any]
) -> dict[str, Any]:
    best, carry_best, f = alone["best"], alone["carry_best"], m["main"]
    rate, small_rate, trickle_default = f["rate"], f["small_rate"], f["trickle"]
    trickle_lean, floors = m["trickle_lean"], m["floors"]
    first, again = m["trickle_first"], m["trickle_again"]
    fixed_cost = float(np.mean([first["median_s"], again["median_s"]]))
    floor = float(np.mean([floors["stateful"], floors["stateful_again"]]))
    return {
        "events_per_s": rate,
        "over_model": rate / best,
        "max_offsets_per_trigger": args.max_per_trigger,
        "small_batches": {
            "max_offsets_per_trigger": args.max_per_trigger // 4,
            "events_per_s": small_rate,
            "over_model": small_rate / best,
            "first_run": {  # the session's first stream, warming up (``stream_figures``)
                "events_per_s": f["small_first_rate"],
                "over_model": f["small_first_rate"] / best,
            },
        },
        "micro_batch_phases_s": f["phases"],
        "fixed_cost_s": fixed_cost,
        "fixed_cost": first,
        "fixed_cost_again": again,
        # The job's trickle right after the 60,000-event drains (``stream_figures``), as the
        # ratio took it until issue 31's sixth session.
        "fixed_cost_after_drains_s": trickle_default["median_s"],
        "fixed_cost_low_latency_s": trickle_lean["median_s"],
        "fixed_cost_low_latency": {
            **trickle_lean,
            "state_partitions": args.latency_state_partitions,
        },
        "spark_floor_s": {**floors, "stateful_mean": floor},
        # Spark's drain floor with the model's work in it and nothing of seqstream's
        # (``model_floor``): what over_model could be at best on this machine.
        "ceiling": {
            "over_model": floors["drain_window_model"]["events_per_s"] / best,
            "small_batches_over_model": floors["drain_window_model_small"]["events_per_s"] / best,
        },
        # Each a mean of two runs, A B B A (``streaming_section``).
        "fixed_cost_over_spark_floor": fixed_cost / floor,
        "connector": args.connectors[0],
        "by_connector": connector_table(m["by_connector"], best, carry_best),
        "state_calls_per_batch": f["calls"],
        "over_plain_loop": rate / m["plain_rate"],
        "model_share_of_batch_time": f["scoring_share"],
        "latency": m["latency"],
    }


def backfill_and_peers_result(alone: dict[str, Any], m: dict[str, Any]) -> dict[str, Any]:
    best, rate, bf, p = alone["best"], m["main"]["rate"], m["backfills"], m["peers"]
    backfill_rate, first_backfill_rate, plain_rate = bf["rate"], bf["first_rate"], m["plain_rate"]
    n_peer, peer_s, n_naive, naive_s, joined = (
        p[k] for k in ("n_peer", "peer_s", "n_naive", "naive_s", "joined")
    )
    return {
        "backfill": {
            "events_per_s": backfill_rate,
            "over_model": backfill_rate / best,
            "first_run": {
                "events_per_s": first_backfill_rate,
                "over_model": first_backfill_rate / best,
            },
        },
        "peers": {
            "plain_loop_events_per_s": plain_rate,
            "plain_loop_over_model": plain_rate / best,
            "predict_batch_udf_windows_per_s": n_peer / peer_s,
            "naive_udf_windows_per_s": n_naive / naive_s,
            "naive_sample": n_naive,
            "backfill_over_predict_batch_udf": backfill_rate / (n_peer / peer_s),
            "streaming_over_predict_batch_udf": rate / (n_peer / peer_s),
            "predict_batch_udf_max_score_diff": float(
                (joined["score"] - joined["score_peer"]).abs().max()
            ),
            "predict_batch_udf_windows_compared": len(joined),
        },
    }


def carry_result(b: Bench, alone: dict[str, Any], m: dict[str, Any]) -> dict[str, Any]:
    best, carry_best, f, bf = alone["best"], alone["carry_best"], m["main"], m["backfills"]
    carry_rate, carry_backfill_rate = f["carry_rate"], bf["carry_rate"]
    return {
        "model": "the same network, features and task; each key's (h, c) carried",
        "model_alone_events_per_s_by_batch": alone["carry_model"],
        "model_alone_events_per_s": carry_best,
        "model_alone_over_window_model_alone": carry_best / best,
        "streaming_events_per_s": carry_rate,
        "streaming_over_window_streaming": carry_rate / f["rate"],
        "streaming_over_carry_model_alone": carry_rate / carry_best,
        # Spark's own floor for these micro-batches (Kafka source, no-op transformWithState,
        # Parquet): no stream on this machine drains faster, whatever its model costs.
        "streaming_over_drain_floor": carry_rate / m["floors"]["drain"]["events_per_s"],
        "window_streaming_at_3x_over_drain_floor": 3
        * f["rate"]
        / m["floors"]["drain"]["events_per_s"],
        # The drain floor with each model's work in it (``model_floor``): the carry stream's
        # ceiling over the window stream as measured, and over the window stream's ceiling.
        "ceiling_over_window_streaming": m["floors"]["drain_carry_model"]["events_per_s"]
        / f["rate"],
        "ceiling_over_window_ceiling": m["floors"]["drain_carry_model"]["events_per_s"]
        / m["floors"]["drain_window_model"]["events_per_s"],
        "micro_batch_phases_s": f["carry_phases"],
        "model_share_of_batch_time": f["carry_scoring_share"],
        "backfill_events_per_s": carry_backfill_rate,
        "backfill_over_window_backfill": carry_backfill_rate / bf["rate"],
        "backfill_first_run_events_per_s": bf["carry_first_rate"],
        "breakdown_s": m["carry_steps"],
        "state_bytes_per_key": state_bytes_per_key(b.loaded, b.carry_loaded, b.w.keys),
    }


def write_results(args: argparse.Namespace, result: dict[str, Any]) -> None:
    out = Path(args.out or f"bench/results/harness_{args.device.split(':')[0]}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    chart(result, out.with_suffix(".png"))
    print(summary_table(result))
    print(f"wrote {out} and {out.with_suffix('.png')}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    w = Workload(keys=args.keys, events_per_key=args.events_per_key)
    loaded = workload_model(w)
    schema = EventSchema(features=loaded.spec.features)
    messages = workload_messages(w, schema)
    alone = model_alone(args, w, loaded, workload_series(w))
    work = Path(tempfile.mkdtemp(prefix="seqstream-bench-"))
    b = Bench(args, w, loaded, alone["carry_loaded"], schema, messages, work)
    with ExitStack() as stack:
        stack.callback(shutil.rmtree, work, ignore_errors=True)
        set_up(stack, b)
        m = measure(b)
    steps = m["steps"]
    result = {
        **result_head(args, b, alone),
        "streaming": streaming_result(args, alone, m),
        **backfill_and_peers_result(alone, m),
        "breakdown_s": steps,
        "largest_step": max((k for k in steps if "(in " not in k), key=steps.get),
        "carry": carry_result(b, alone, m),
    }
    write_results(args, result)
    return 0


def summary_rows(r: dict[str, Any]) -> list[tuple[str, str]]:
    """The table's rows for the window model: the model, streaming, backfill, peers, latency."""
    lat = r["streaming"]["latency"].get("90%", {})
    lat50 = r["streaming"]["latency"].get("50%", {})
    slow = r["streaming"]["latency"].get("slow", {})
    small = r["streaming"]["small_batches"]
    first = r["backfill"]["first_run"]
    return [
        ("model alone, best batch", f"{r['model_alone']['best_windows_per_s']:,.0f} windows/s"),
        (
            f"streaming, sustained ({r['streaming']['max_offsets_per_trigger']:,}-event micro-batches)",
            f"{r['streaming']['events_per_s']:,.0f} events/s",
        ),
        ("**streaming / model**", f"**{r['streaming']['over_model']:.2f}**"),
        (
            "ceiling: Spark's drain floor with the model in it (/ model), 60k / 15k batches",
            f"{r['streaming']['ceiling']['over_model']:.2f} / "
            f"{r['streaming']['ceiling']['small_batches_over_model']:.2f}",
        ),
        (
            "plain confluent-kafka loop, no Spark (/ model)",
            f"{r['peers']['plain_loop_events_per_s']:,.0f} events/s "
            f"({r['peers']['plain_loop_over_model']:.2f})",
        ),
        ("**micro-batch fixed cost (1-10 events)**", f"**{r['streaming']['fixed_cost_s']:.2f} s**"),
        (
            "micro-batch fixed cost, low-latency setting",
            f"{r['streaming']['fixed_cost_low_latency_s']:.2f} s",
        ),
        (
            "Spark's floor: JVM Kafka source, (no-op Python transformWithState), foreachBatch Parquet",
            f"{r['streaming']['spark_floor_s']['stateless']:.2f} s "
            f"({r['streaming']['spark_floor_s']['stateful']:.2f} s)",
        ),
        (
            "Spark's floor with the rate source in place of Kafka",
            f"{r['streaming']['spark_floor_s']['stateless_rate_source']:.2f} s "
            f"({r['streaming']['spark_floor_s']['stateful_rate_source']:.2f} s)",
        ),
        ("state calls per micro-batch", f"{r['streaming']['state_calls_per_batch']:,.0f}"),
        (
            f"streaming, {small['max_offsets_per_trigger']:,}-event micro-batches (/ model)",
            f"{small['events_per_s']:,.0f} events/s ({small['over_model']:.2f})",
        ),
        ("backfill", f"{r['backfill']['events_per_s']:,.0f} events/s"),
        ("**backfill / model**", f"**{r['backfill']['over_model']:.2f}**"),
        (
            "backfill, first run (Python workers starting; / model)",
            f"{first['events_per_s']:,.0f} events/s ({first['over_model']:.2f})",
        ),
        (
            "predict_batch_udf peer",
            f"{r['peers']['predict_batch_udf_windows_per_s']:,.0f} windows/s",
        ),
        (
            "**backfill / predict_batch_udf**",
            f"**{r['peers']['backfill_over_predict_batch_udf']:.2f}**",
        ),
        ("naive row-at-a-time UDF", f"{r['peers']['naive_udf_windows_per_s']:,.0f} windows/s"),
        (
            "**p99 latency at 50 %**",
            f"**{lat50['p99_ms'] / 1000:.1f} s**" if lat50 else "not measured",
        ),
        ("**p99 latency at 90 %**", f"**{lat['p99_ms'] / 1000:.1f} s**" if lat else "not measured"),
        (
            "ceiling: p99 of Spark's floor with the model in it, same events and rate, 50 % / 90 %",
            f"{lat50['ceiling']['p99_ms'] / 1000:.1f} s / {lat['ceiling']['p99_ms'] / 1000:.1f} s"
            if lat and lat50
            else "not measured",
        ),
        (
            "slow stream (1 event/s): p50 / p99 latency; idle, CPU cores used",
            f"{slow['p50_ms'] / 1000:.2f} s / {slow['p99_ms'] / 1000:.2f} s; "
            f"{slow['idle_cpu_cores']:.2f}"
            if slow
            else "not measured",
        ),
        (
            "**largest step**",
            f"**{r['largest_step']}** {r['breakdown_s'][r['largest_step']]:.1f} s of "
            f"{sum(v for k, v in r['breakdown_s'].items() if '(in ' not in k):.1f} s",
        ),
    ]


def carry_rows(carry: dict[str, Any]) -> list[tuple[str, str]]:
    """The table's rows for the carry model, beside the window model."""
    return [
        (
            "**carry model alone (/ window model alone)**",
            f"**{carry['model_alone_events_per_s']:,.0f} events/s "
            f"({carry['model_alone_over_window_model_alone']:.1f})**",
        ),
        (
            "**carry streaming (/ window streaming), same micro-batches**",
            f"**{carry['streaming_events_per_s']:,.0f} events/s "
            f"({carry['streaming_over_window_streaming']:.1f})**",
        ),
        (
            "ceiling: carry drain floor with its model / window stream (/ window ceiling)",
            f"{carry['ceiling_over_window_streaming']:.1f} "
            f"({carry['ceiling_over_window_ceiling']:.1f})",
        ),
        (
            "carry streaming: model's share of batch time",
            f"{carry['model_share_of_batch_time']:.0%}",
        ),
        (
            "carry backfill (/ window backfill)",
            f"{carry['backfill_events_per_s']:,.0f} events/s "
            f"({carry['backfill_over_window_backfill']:.1f})",
        ),
        (
            "state per key, stored: window / carry",
            f"{carry['state_bytes_per_key']['window_stored']:,.0f} / "
            f"{carry['state_bytes_per_key']['carry_stored']:,.0f} bytes",
        ),
    ]


def summary_table(r: dict[str, Any]) -> str:
    rows = summary_rows(r)
    carry = r.get("carry")
    if carry:
        rows += carry_rows(carry)
    table = "\n".join(["| figure | value |", "|---|---:|", *[f"| {a} | {b} |" for a, b in rows]])
    return table + "\n\n" + connector_summary(r["streaming"].get("by_connector", {}))


def connector_summary(table: dict[str, Any]) -> str:
    """The streaming figures per Spark Kafka connector, and their ratio."""
    names = [n for n in table if n != "jvm_over_python"]
    if not names:
        return ""
    columns = [
        ("streaming / model", "over_model", "{:.2f}"),
        ("15k-event batches / model", "small_batches_over_model", "{:.2f}"),
        ("fixed cost (s)", "fixed_cost_s", "{:.2f}"),
        ("carry streaming (events/s)", "carry_streaming_events_per_s", "{:,.0f}"),
    ]
    lines = [
        "| connector | " + " | ".join(c[0] for c in columns) + " |",
        "|---|" + "---:|" * len(columns),
    ]
    for name in [*names, "jvm_over_python"] if "jvm_over_python" in table else names:
        row = table[name]
        ratio = name == "jvm_over_python"
        cells = [("{:.2f}" if ratio else fmt).format(row[key]) for _, key, fmt in columns]
        lines.append(f"| {'jvm / python' if ratio else name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
