"""The streaming query: Kafka events -> per-key state and scores -> Parquet and/or Kafka.

One query: ``groupBy(topic, partition, slot).transformWithStateInPandas`` over the Kafka rows
runs the scoring step (``scoring.step``) with each key's state (``state.processor``), the model
cached per worker; or event-time windows (``stream.mode: time``, ``state.time_windows``). Then
``foreachBatch`` writes the outputs (``sinks.outputs``), the model version of each micro-batch
chosen around the writer (``scoring.model_versions``), and a listener keeps the batch metrics
(``sinks.metrics``). ``run_stream`` is the job (``seqstream stream``, ``spark-submit
jobs/stream.py``); ``lifecycle`` waits for it and stops it between micro-batches.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seqstream.model.spec import ModelSpec
from seqstream.pipeline.bootstrap import (
    connector_options,
    create_output_topics,
    describe_kafka,
    kafka_admin,
)
from seqstream.pipeline.config import Settings
from seqstream.pipeline.errors import SeqstreamError
from seqstream.pipeline.kafka import SHORT_NAME, kafka_format
from seqstream.pipeline.records.parsing import parse_events
from seqstream.pipeline.records.rows import (
    SCORED_JSON_HEADERS_SCHEMA,
    headers_as_json,
    headers_from_json,
    kafka_columns,
)
from seqstream.pipeline.scoring.model_versions import ModelVersions, check_model, model_location
from seqstream.pipeline.scoring.step import scoring_step
from seqstream.pipeline.scoring.worker import ModelRef
from seqstream.pipeline.sinks.metrics import MetricsListener, observe_input, observe_output
from seqstream.pipeline.sinks.outputs import (
    NO_DEAD_LETTER_OUTPUT,
    BatchWriter,
    check_delivery,
    check_folder,
    check_owner,
    claim_folder,
    on_local_disk,
)
from seqstream.pipeline.spark import job_spark
from seqstream.pipeline.state.buckets import LEGACY_LAYOUT
from seqstream.pipeline.state.placement import SLOT_COLUMN, slot_column
from seqstream.pipeline.state.processor import KeyStateProcessor
from seqstream.pipeline.state.time_windows import event_time_windows
from seqstream.pipeline.stream.checkpoint import (
    SparkCheckpoint,
    check_checkpoint,
    committed_offsets,
    record_checkpoint,
)
from seqstream.pipeline.stream.lifecycle import register, run_until_stopped, summary_line
from seqstream.pipeline.stream.stop_gate import StopGate

log = logging.getLogger("seqstream.stream")

QUERY_NAME = "seqstream"
AVAILABLE_NOW = "available-now"  # stream.trigger_interval: catch up, then stop (scheduled runs)
ROCKSDB = "org.apache.spark.sql.execution.streaming.state.RocksDBStateStoreProvider"
# Spark's default checkpoint writer (FileContext) took 35-40 ms per small file on a local disk,
# this one 10 ms: each micro-batch writes an offset log entry, a commit and a changelog per
# state partition. Both write a temporary file and rename it; a local rename is atomic.
LOCAL_CHECKPOINT_FILES = (
    "org.apache.spark.sql.execution.streaming.checkpointing.FileSystemBasedCheckpointFileManager"
)


def check_outputs(settings: Settings) -> None:
    stream = settings.stream
    if stream.checkpoint is None:
        raise SeqstreamError(
            "stream.checkpoint is required: a folder where the query keeps its offsets and state"
        )
    if not (stream.parquet_path or stream.output_topic):
        raise SeqstreamError("no output: set stream.parquet_path and/or stream.output_topic")
    for name in ("checkpoint", "parquet_path", "dead_letter_path"):
        path = getattr(stream, name)
        if path is not None:
            check_folder(path, f"stream.{name}")
    owner, resuming = output_owner(settings)
    for name in ("parquet_path", "dead_letter_path"):
        check_owner(getattr(stream, name), f"stream.{name}", owner, adopt=resuming)
    check_delivery(settings, "stream")


def output_owner(settings: Settings) -> tuple[dict[str, str], bool]:
    """How the stream marks its Parquet folders (its checkpoint names it), and whether it is
    resuming (a checkpoint with offsets: folders it wrote before markers are its own)."""
    checkpoint = str(settings.stream.checkpoint)
    local = on_local_disk(checkpoint)
    where = str(Path(checkpoint.removeprefix("file://")).absolute()) if local else checkpoint
    resuming = local and bool(SparkCheckpoint(where).batches("offsets"))
    return {"job": "stream", "checkpoint": where}, resuming


@dataclass(frozen=True)
class StreamChecks:
    """What the checks before Spark found: the model, the checkpoint's state layout, each
    topic's partition count and which Kafka holds them."""

    ref: ModelRef
    spec: ModelSpec
    layout: str
    partitions: dict[str, int]
    kafka_at: str


def check_stream(settings: Settings, bootstrap: str) -> StreamChecks:
    """Every check of the streaming job that needs no Spark, writing nothing: the outputs, the
    model, the checkpoint's identity and the topics on the broker. Run before Spark starts."""
    check_outputs(settings)
    ref, spec = check_model(settings)
    stream = settings.stream
    if stream.mode == "time" and spec.kind != "window":
        raise SeqstreamError(
            f"model {spec.version} is a carry model, and stream.mode: time scores event-time "
            "windows, which needs a window model: use stream.mode: events with a carry model"
        )
    layout = check_checkpoint(settings, spec)
    partitions, kafka_at = topic_partitions(settings, bootstrap)
    return StreamChecks(ref, spec, layout, partitions, kafka_at)


def topic_partitions(settings: Settings, bootstrap: str) -> tuple[dict[str, int], str]:
    """Each subscribed topic's partition count, and which Kafka holds them (``describe_kafka``)."""
    with kafka_admin(settings, bootstrap) as admin:
        counts = {t: admin.describe_topic(t).partitions for t in settings.stream.topics}
        return counts, describe_kafka(admin)


def state_partitions(spark: Any, settings: Settings, kafka_partitions: int) -> int:
    """The Spark partitions of the window state: the checkpoint's (Spark fixes them at its first
    run), else ``stream.state_partitions``, else one per executor core up to one per Kafka
    partition. Each is a task that opens its state store every micro-batch, so more than the
    cores only adds fixed cost (Spark's default is 200)."""
    checkpoint = settings.stream.checkpoint
    recorded = SparkCheckpoint(checkpoint, spark).state_partitions() if checkpoint else None
    if recorded:
        return recorded
    if settings.stream.state_partitions:
        return settings.stream.state_partitions
    return max(1, min(kafka_partitions, spark.sparkContext.defaultParallelism))


def state_store_conf(checkpoint: Path | str | None) -> dict[str, str]:
    """The session settings of the streaming job's state: RocksDB, committing each micro-batch
    as a small changelog instead of a snapshot of the store (snapshots move to the maintenance
    thread; works on checkpoints made without it), and the faster checkpoint file writer on a
    local disk."""
    conf = {
        "spark.sql.streaming.stateStore.providerClass": ROCKSDB,
        "spark.sql.streaming.stateStore.rocksdb.changelogCheckpointing.enabled": "true",
    }
    if on_local_disk(checkpoint):
        conf["spark.sql.streaming.checkpointFileManagerClass"] = LOCAL_CHECKPOINT_FILES
    return conf


def build_query(
    spark: Any, settings: Settings, bootstrap: str, checks: StreamChecks | None = None
) -> tuple[Any, MetricsListener]:
    """Start the streaming query; returns it and its metrics listener (which keeps the counts).
    ``checks``: ``check_stream``'s result, if made already (else made here)."""
    checks = checks or check_stream(settings, bootstrap)
    stream = settings.stream
    if not (stream.dead_letter_path or stream.dead_letter_topic):
        log.warning(NO_DEAD_LETTER_OUTPUT.format(section="stream"))
    create_output_topics(settings, bootstrap)
    partitions = configure_session(spark, settings, sum(checks.partitions.values()))
    fmt = kafka_format(spark, settings.kafka.connector)
    options = connector_options(settings, bootstrap, fmt)
    kafka_rows = observe_input(kafka_columns(kafka_stream(spark, settings, fmt, options)))
    scored = observe_output(scored_rows(spark, settings, checks, kafka_rows, partitions))
    metrics = MetricsListener(QUERY_NAME, stream.metrics_port, stream.metrics_host)
    metrics.attach(spark.streams)
    # Every check has passed: the checkpoint and the output folders are this query's now.
    record_checkpoint(settings, checks.spec, checks.layout)
    owner, resuming = output_owner(settings)
    for name in ("parquet_path", "dead_letter_path"):
        claim_folder(getattr(stream, name), f"stream.{name}", owner, adopt=resuming)
    gate = StopGate()
    models = ModelVersions(
        settings, checks.ref, checks.spec, model_location(settings), metrics.model_change
    )
    writer = BatchWriter(
        stream,
        fmt,
        options,
        transaction_options=connector_options(settings, bootstrap, SHORT_NAME),
        transactional_id_prefix=settings.kafka.transactional_id_prefix,
    )
    try:
        query = (
            scored.writeStream.foreachBatch(gate.around(models.around(writer)))
            .option("checkpointLocation", str(stream.checkpoint))
            .trigger(**trigger(spark, settings))
            .queryName(QUERY_NAME)
            .start()
        )
    except BaseException:
        metrics.close()
        raise
    metrics.query_id = str(query.id)
    silent = None
    if fmt != SHORT_NAME:  # seqstream-kafka words its own giving up
        silent = (
            f"Kafka at {bootstrap} did not answer for {settings.kafka.retry_timeout_s:g}s "
            "(Spark's kafka connector retrying; kafka.retry_timeout_s)"
        )
    register(query, gate, silent)
    context = spark.sparkContext
    where = f"Spark {context.master}" + (f", UI {context.uiWebUrl}" if context.uiWebUrl else "")
    reading = f"{checks.kafka_at} through {connector_name(fmt)}"
    log.info(start_line(settings, checks.spec, str(checks.ref.path), where, reading))
    return query, metrics


def configure_session(spark: Any, settings: Settings, kafka_partitions: int) -> int:
    """Set the session for the stateful query; returns its state partitions."""
    for key, value in state_store_conf(settings.stream.checkpoint).items():
        spark.conf.set(key, value)
    # Spark turns adaptive execution off for a stateful streaming query anyway, with a warning
    # at every start; off here, it has nothing to say.
    spark.conf.set("spark.sql.adaptive.enabled", "false")
    partitions = state_partitions(spark, settings, kafka_partitions)
    spark.conf.set("spark.sql.shuffle.partitions", str(partitions))
    return partitions


def kafka_stream(spark: Any, settings: Settings, fmt: str, options: dict[str, str]) -> Any:
    """The subscribed topics as a streaming DataFrame of Kafka rows."""
    stream = settings.stream
    reader = (
        spark.readStream.format(fmt)
        .options(**options)
        .option("subscribe", ",".join(stream.topics))
        .option("startingOffsets", stream.starting_offsets)
        .option("includeHeaders", "true")  # a dead letter keeps its record's headers
    )
    if stream.max_offsets_per_trigger:
        reader = reader.option("maxOffsetsPerTrigger", stream.max_offsets_per_trigger)
    return reader.load()


def scored_rows(
    spark: Any, settings: Settings, checks: StreamChecks, kafka_rows: Any, partitions: int
) -> Any:
    """The Kafka rows scored (``SCORED_SCHEMA``): per event from each key's state, or per
    event-time window (``stream.mode: time``)."""
    stream, spec = settings.stream, checks.spec
    if stream.mode == "time":
        return event_time_windows(
            parse_events(kafka_rows, settings.events, stream.max_event_bytes),
            ref=checks.ref,
            length=spec.window_spec.length,
            features=len(spec.features),
            size=stream.time_window,
            slide=stream.time_slide,
            watermark=stream.watermark,
        )
    ttl_ms = int(stream.state_ttl_s * 1000) if stream.state_ttl_s else None
    grouping = ["topic", "partition"]
    if checks.layout != LEGACY_LAYOUT:  # Kafka partitions placed evenly over the state partitions
        slots = slot_column(spark, checks.partitions, partitions)
        kafka_rows = kafka_rows.withColumn(SLOT_COLUMN, slots)
        grouping.append(SLOT_COLUMN)
    step = scoring_step(spec, checks.ref, settings.events, stream.max_event_bytes)
    scored = (
        headers_as_json(kafka_rows)
        .groupBy(*grouping)
        .transformWithStateInPandas(
            KeyStateProcessor(step, ttl_ms, stream.state_buckets),
            SCORED_JSON_HEADERS_SCHEMA,
            "Append",
            "ProcessingTime" if ttl_ms else "None",
        )
    )
    return headers_from_json(scored)


def trigger(spark: Any, settings: Settings) -> dict[str, Any]:
    """The query's trigger, and whether it runs micro-batches without data."""
    stream = settings.stream
    # Event-time windows need the batch without data that follows the watermark's last advance:
    # it closes the windows the watermark passed. Per-event mode runs data batches only: its
    # state expiry by processing time would have Spark run a batch without data after every
    # batch (transformWithState in ProcessingTime mode always asks for one), so with trigger
    # "0 seconds" an idle job kept two cores busy and a slow stream's events waited for them
    # (p99 at 1 event/s 1.0-1.1 s against 0.64-0.68 s, bench/README.md). Idle keys still
    # expire, in the next batch with data. (Set either way: the session may have run another
    # query.)
    spark.conf.set(
        "spark.sql.streaming.noDataMicroBatches.enabled", str(stream.mode == "time").lower()
    )
    if stream.trigger_interval == AVAILABLE_NOW:
        return {"availableNow": True}
    return {"processingTime": stream.trigger_interval}


def connector_name(fmt: str) -> str:
    """The Spark connector a ``format`` name stands for, as start-up lines name it."""
    return "seqstream-kafka (Python connector)" if fmt == SHORT_NAME else "Spark's kafka connector"


def start_line(
    settings: Settings, spec: ModelSpec, model_path: str, spark_at: str, reading: str
) -> str:
    """What the job is about to do, in one line: topics and where it starts, the Kafka and the
    connector it reads through, model, outputs, where Spark runs."""
    stream = settings.stream
    checkpoint = Path(str(stream.checkpoint))
    committed = SparkCheckpoint(checkpoint).batches("commits") if on_local_disk(checkpoint) else []
    if committed:
        offsets = committed_offsets(checkpoint)
        where = ", ".join(f"{t}-{p} at {o}" for t, ps in offsets.items() for p, o in ps.items())
        position = f"going on where the last run stopped ({where})"
    else:
        position = f"from {stream.starting_offsets}"
    outputs = [
        f"{name} -> {value}"
        for name, value in (
            ("scores", stream.parquet_path),
            ("scores", stream.output_topic),
            ("dead letters", stream.dead_letter_path),
            ("dead letters", stream.dead_letter_topic),
        )
        if value
    ]
    return (
        f"streaming {', '.join(stream.topics)} of {reading} {position}, {stream.mode} mode, trigger "
        f"{stream.trigger_interval}; model {spec.version} ({model_path}) on {stream.device}; "
        f"{'; '.join(outputs)}; checkpoint {checkpoint}; {spark_at}"
    )


def run_stream(settings: Settings, bootstrap: str, checks: StreamChecks | None = None) -> None:
    """The streaming job: start the query (``build_query`` checks the outputs and the model
    first), run until SIGTERM or Ctrl-C, or with ``stream.trigger_interval: available-now``
    until it has caught up."""
    stop, starting = threading.Event(), threading.Event()
    starting.set()

    def on_signal(signum: int, _frame: Any) -> None:
        if not starting.is_set():
            stop.set()  # the running micro-batch finishes, then the query stops
            return
        # While Spark starts, a KeyboardInterrupt would surface inside py4j calls as a page of
        # tracebacks: end at once instead (nothing is written before the query has started;
        # Spark's JVM ends with this process). No logging here: a handler must not re-enter it.
        os.write(2, b"seqstream stream: interrupted while starting\n")
        os._exit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    spark = job_spark("seqstream-stream", settings.spark)
    # A new SparkContext puts in its own Ctrl-C handler (cancel every job, raise KeyboardInterrupt
    # wherever the main thread is: a page of py4j tracebacks and no summary); this job stops
    # between micro-batches instead.
    signal.signal(signal.SIGINT, on_signal)
    started = time.monotonic()
    query, metrics = build_query(spark, settings, bootstrap, checks)
    starting.clear()
    try:
        run_until_stopped(query, stop, metrics, checkpoint=settings.stream.checkpoint)
    finally:
        log.info(summary_line(metrics.history, time.monotonic() - started))
