"""The streaming query: Kafka events -> per-key windows -> LSTM scores -> Parquet and/or Kafka.

One query: ``groupBy(topic, partition).transformWithStateInPandas`` over the Kafka rows parses
them (dead letters kept), builds windows that carry across micro-batches and scores them in the
same Python step (``stateful_windows``), with the model cached per worker; or event-time windows
(``stream.mode: time``, ``time_windows``). Then ``foreachBatch`` writes the outputs
(``outputs``) and a listener keeps the batch metrics (``metrics``). ``run_stream`` is the job
(``seqstream stream``, ``spark-submit jobs/stream.py``): SIGTERM lets the running micro-batch
finish, then stops.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyspark.errors import StreamingQueryException

from seqstream.model.carry import CarryLayout
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
from seqstream.pipeline.kafka.connector import jvm_no_answer
from seqstream.pipeline.records.parsing import parse_events
from seqstream.pipeline.records.rows import SCORED_SCHEMA, kafka_columns
from seqstream.pipeline.scoring.model_versions import ModelVersions, check_model, model_location
from seqstream.pipeline.scoring.step import ModelRef
from seqstream.pipeline.sinks.metrics import (
    BatchMetrics,
    MetricsListener,
    observe_input,
    observe_output,
)
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
from seqstream.pipeline.state.buckets import LEGACY_LAYOUT, READABLE_LAYOUTS, STATE_LAYOUT
from seqstream.pipeline.state.placement import SLOT_COLUMN, slot_column
from seqstream.pipeline.state.stateful_windows import WindowProcessor
from seqstream.pipeline.state.time_windows import TIME_LAYOUT, event_time_windows
from seqstream.pipeline.stream.stop_gate import StopGate, stopped_by_request

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
CHECKPOINT_IDENTITY = "seqstream.json"  # beside Spark's own files in stream.checkpoint


@dataclass(frozen=True)
class _Running:
    """What the driver keeps of a query it started: the gate its stop goes through, and how a
    failure of Spark's kafka connector on a silent broker is worded (the connector's own error
    names neither the address nor how long it tried)."""

    gate: StopGate
    kafka_silent: str | None


_RUNNING: dict[str, _Running] = {}  # by query id


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
    resuming = local and bool(_batches(Path(where), "offsets"))
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


def query_identity(
    settings: Settings, spec: ModelSpec, layout: str = STATE_LAYOUT
) -> dict[str, Any]:
    """What a checkpoint's offsets and state are only valid for. New weights for the same shape
    are not part of it: a model can be retrained without losing the stream's place."""
    stream = settings.stream
    identity: dict[str, Any] = {
        "topics": sorted(stream.topics),
        "mode": stream.mode,
        "model_kind": spec.kind,
        "features": list(spec.features),
    }
    if spec.kind == "window":
        identity["window"] = spec.window_spec.length
    else:
        identity["carry_state"] = spec.state_shape()
    if stream.mode == "time":
        identity.update(
            state_layout=TIME_LAYOUT, time_window=stream.time_window, time_slide=stream.time_slide
        )
    else:
        identity.update(state_layout=layout, state_buckets=stream.state_buckets)
    return identity


def check_checkpoint(settings: Settings, spec: ModelSpec) -> str:
    """Refuse a checkpoint made for other topics or another model shape (the query would go on
    mixing histories); ``record_checkpoint`` then writes this query's identity, once every check
    has passed. Returns the
    window state layout to run with: the checkpoint's own when it is one this version reads
    (``READABLE_LAYOUTS``); a checkpoint made with per-key state, or event-time state from before
    ``TIME_LAYOUT``, is refused with the offsets to go on from. Not checked on non-local file
    systems (they run ``STATE_LAYOUT``)."""
    checkpoint = settings.stream.checkpoint
    if checkpoint is None or "://" in str(checkpoint):
        return STATE_LAYOUT
    path = Path(checkpoint) / CHECKPOINT_IDENTITY
    recorded = json.loads(path.read_text()) if path.is_file() else None
    layout = (recorded or {}).get("state_layout", STATE_LAYOUT)
    identity = query_identity(
        settings, spec, layout if layout in READABLE_LAYOUTS else STATE_LAYOUT
    )
    # Made before identities were recorded (no seqstream.json), or before state layouts were.
    made_before = (recorded is None and bool(_batches(Path(checkpoint), "offsets"))) or (
        recorded is not None
        and recorded.get("mode") == settings.stream.mode
        and "state_layout" not in recorded
    )
    if made_before:
        offsets = json.dumps(committed_offsets(Path(checkpoint)), separators=(",", ":"))
        if settings.stream.mode == "time":
            kept = (
                f"event-time windows without the late-event step of this one ({TIME_LAYOUT}), "
                "whose state it cannot read"
            )
            then = "Windows open at its stop then start again from their next events"
        else:
            kept = (
                "one window state value per key; this one keeps keys in buckets "
                f"({STATE_LAYOUT}) and cannot read it"
            )
            then = (
                "Each key's history then starts again from its next event; `seqstream backfill` "
                "over the offsets from there scores that stretch with whole histories"
            )
        raise SeqstreamError(
            f"stream.checkpoint {checkpoint} was made by an earlier seqstream, which kept {kept}. "
            "Keep running it with the version that made it, or start a new stream.checkpoint "
            f"that goes on where this one stopped: --starting-offsets '{offsets}'. {then}"
        )
    if recorded is not None:
        differs = {k: (recorded.get(k), v) for k, v in identity.items() if recorded.get(k) != v}
        if differs:
            what = "; ".join(f"{k}: {was} there, {now} now" for k, (was, now) in differs.items())
            raise SeqstreamError(
                f"stream.checkpoint {checkpoint} belongs to another query ({what}): its offsets "
                "and window state only fit the query that made them. Use a new "
                "stream.checkpoint (the query then starts at stream.starting_offsets), or run "
                "with the settings it was made for"
            )
        return str(identity.get("state_layout", STATE_LAYOUT))
    return STATE_LAYOUT


def record_checkpoint(settings: Settings, spec: ModelSpec, layout: str) -> None:
    """Write this query's identity into its checkpoint (``seqstream.json``), if not there yet."""
    checkpoint = settings.stream.checkpoint
    if checkpoint is None or "://" in str(checkpoint):
        return
    path = Path(checkpoint) / CHECKPOINT_IDENTITY
    if not path.is_file():
        Path(checkpoint).mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(query_identity(settings, spec, layout), indent=1) + "\n")


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
    recorded = recorded_state_partitions(spark, settings.stream.checkpoint)
    if recorded:
        return recorded
    if settings.stream.state_partitions:
        return settings.stream.state_partitions
    return max(1, min(kafka_partitions, spark.sparkContext.defaultParallelism))


def recorded_state_partitions(spark: Any, checkpoint: Path | str | None) -> int | None:
    """``spark.sql.shuffle.partitions`` in the checkpoint's last offset log entry, on any file
    system Spark reads (the slots of the window state depend on it)."""
    if checkpoint is None:
        return None
    jvm = spark._jvm
    folder = jvm.org.apache.hadoop.fs.Path(str(checkpoint), "offsets")
    fs = folder.getFileSystem(spark._jsc.hadoopConfiguration())
    if not fs.exists(folder):
        return None
    batches = [
        int(s.getPath().getName()) for s in fs.listStatus(folder) if s.getPath().getName().isdigit()
    ]
    if not batches:
        return None
    stream = fs.open(jvm.org.apache.hadoop.fs.Path(folder, str(max(batches))))
    try:
        text = jvm.org.apache.commons.io.IOUtils.toString(stream, "UTF-8")
    finally:
        stream.close()
    lines = text.splitlines()
    conf = json.loads(lines[1]).get("conf", {}) if len(lines) > 1 else {}
    value = conf.get("spark.sql.shuffle.partitions")
    return int(value) if value else None


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
    ref, spec, layout, counts = checks.ref, checks.spec, checks.layout, checks.partitions
    stream = settings.stream
    if not (stream.dead_letter_path or stream.dead_letter_topic):
        log.warning(NO_DEAD_LETTER_OUTPUT.format(section="stream"))
    create_output_topics(settings, bootstrap)
    for key, value in state_store_conf(stream.checkpoint).items():
        spark.conf.set(key, value)
    # Spark turns adaptive execution off for a stateful streaming query anyway, with a warning
    # at every start; off here, it has nothing to say.
    spark.conf.set("spark.sql.adaptive.enabled", "false")
    partitions = state_partitions(spark, settings, sum(counts.values()))
    spark.conf.set("spark.sql.shuffle.partitions", str(partitions))
    fmt = kafka_format(spark, settings.kafka.connector)
    options = connector_options(settings, bootstrap, fmt)
    reader = (
        spark.readStream.format(fmt)
        .options(**options)
        .option("subscribe", ",".join(stream.topics))
        .option("startingOffsets", stream.starting_offsets)
        .option("includeHeaders", "true")  # a dead letter keeps its record's headers
    )
    if stream.max_offsets_per_trigger:
        reader = reader.option("maxOffsetsPerTrigger", stream.max_offsets_per_trigger)
    kafka_rows = observe_input(kafka_columns(reader.load()))
    if stream.mode == "time":
        windows = event_time_windows(
            parse_events(kafka_rows, settings.events, stream.max_event_bytes),
            ref=ref,
            length=spec.window_spec.length,
            features=len(spec.features),
            size=stream.time_window,
            slide=stream.time_slide,
            watermark=stream.watermark,
        )
    else:
        ttl_ms = int(stream.state_ttl_s * 1000) if stream.state_ttl_s else None
        grouping = ["topic", "partition"]
        if layout != LEGACY_LAYOUT:  # Kafka partitions placed evenly over the state partitions
            kafka_rows = kafka_rows.withColumn(SLOT_COLUMN, slot_column(spark, counts, partitions))
            grouping.append(SLOT_COLUMN)
        windows = kafka_rows.groupBy(*grouping).transformWithStateInPandas(
            WindowProcessor(
                spec.window_spec.length if spec.kind == "window" else 0,
                ttl_ms,
                ref,
                settings.events,
                stream.max_event_bytes,
                stream.state_buckets,
                carry_state_size=CarryLayout.of(spec).size if spec.kind == "carry" else None,
            ),
            SCORED_SCHEMA,
            "Append",
            "ProcessingTime" if ttl_ms else "None",
        )
    scored = observe_output(windows)
    metrics = MetricsListener(QUERY_NAME, stream.metrics_port, stream.metrics_host)
    metrics.attach(spark.streams)
    trigger: dict[str, Any] = {"processingTime": stream.trigger_interval}
    if stream.trigger_interval == AVAILABLE_NOW:
        trigger = {"availableNow": True}
    # Per-event state expiry by processing time asks for a batch without data after every batch,
    # so an available-now query would never end: it runs data batches only (expiry happens in
    # them). Event-time windows need the batch without data that follows the watermark's last
    # advance: it closes the windows the watermark passed. (Set either way: the session may
    # have run another query.)
    data_batches_only = stream.trigger_interval == AVAILABLE_NOW and stream.mode == "events"
    spark.conf.set(
        "spark.sql.streaming.noDataMicroBatches.enabled", str(not data_batches_only).lower()
    )
    # Every check has passed: the checkpoint and the output folders are this query's now.
    record_checkpoint(settings, spec, layout)
    owner, resuming = output_owner(settings)
    for name in ("parquet_path", "dead_letter_path"):
        claim_folder(getattr(stream, name), f"stream.{name}", owner, adopt=resuming)
    gate = StopGate()
    models = ModelVersions(settings, ref, spec, model_location(settings), metrics.model_change)
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
            .trigger(**trigger)
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
    _RUNNING[str(query.id)] = _Running(gate, silent)
    context = spark.sparkContext
    where = f"Spark {context.master}" + (f", UI {context.uiWebUrl}" if context.uiWebUrl else "")
    reading = f"{checks.kafka_at} through {connector_name(fmt)}"
    log.info(start_line(settings, spec, str(ref.path), where, reading))
    return query, metrics


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
    committed = _batches(checkpoint, "commits") if on_local_disk(checkpoint) else []
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


def summary_line(history: list[BatchMetrics], seconds: float) -> str:
    """What a run did, in one line, for its end: events by outcome, then the windows they ended."""
    total = {
        name: sum(getattr(m, name) for m in history)
        for name in (
            "events_in",
            "windowed",
            "dead_lettered",
            "late",
            "windows",
            "scored",
            "not_yet_scoreable",
        )
    }
    return (
        f"stream stopped after {len(history)} micro-batch(es) with data in {seconds:.0f}s: "
        f"{total['events_in']:,} events in ({total['windowed']:,} windowed, "
        f"{total['dead_lettered']:,} dead-lettered, {total['late']:,} late); "
        f"{total['windows']:,} windows ended ({total['scored']:,} scored, "
        f"{total['not_yet_scoreable']:,} not yet scoreable)"
    )


def run_until_stopped(
    query: Any,
    stop: threading.Event,
    metrics: MetricsListener | None = None,
    *,
    grace_s: float = 300.0,
    checkpoint: Path | None = None,
) -> None:
    """Wait for the query; on ``stop`` let the running micro-batch finish, then stop it (and
    detach ``metrics`` once its last report is in). A failed query raises a ``SeqstreamError``
    naming the micro-batch and its offsets (read from ``checkpoint``) and the first cause."""
    running = _RUNNING.get(str(query.id), _Running(StopGate(), None))
    try:
        _wait_then_stop(query, stop, grace_s, running.gate)
    finally:
        if metrics is not None:
            metrics.drain(query)
            metrics.close()
    failure = query.exception()
    if failure is not None and not stopped_by_request(str(failure)):
        raise SeqstreamError(describe_failure(str(failure), checkpoint, running.kafka_silent))


def describe_failure(error: str, checkpoint: Path | None, kafka_silent: str | None = None) -> str:
    """One paragraph for a failed query: where (micro-batch, partitions, offsets) and why (the
    innermost error line, not Spark's page of stack traces). ``kafka_silent`` is what to say
    first when Spark's kafka connector gave up on a silent broker."""
    causes = re.findall(
        r"^\s*((?:[\w.]+\.)?\w*(?:Error|Exception): .+)$", error, flags=re.MULTILINE
    )
    plain = [c for c in causes if not c.lstrip().startswith(("org.apache", "py4j", "java."))]
    cause = (plain or causes or [error.strip().splitlines()[0] if error.strip() else "unknown"])[-1]
    if kafka_silent and jvm_no_answer(error):
        cause = f"{kafka_silent}: {cause.strip()}"
    return (
        f"the streaming query failed{_failed_batch(checkpoint)}: {cause.strip()[:1000].rstrip('.')}. The "
        "checkpoint keeps its place: fix the cause and start the job again to re-run that "
        "micro-batch"
    )


def _batches(checkpoint: Path, folder: str) -> list[int]:
    """The micro-batch numbers Spark recorded in ``folder`` (``offsets`` or ``commits``)."""
    path = Path(checkpoint) / folder
    return sorted(int(p.name) for p in path.iterdir() if p.name.isdigit()) if path.is_dir() else []


def _source_offsets(checkpoint: Path, batch: int) -> dict[str, dict[str, int]]:
    """The Kafka offsets micro-batch ``batch`` ends at (the third line of Spark's offset log)."""
    lines = (Path(checkpoint) / "offsets" / str(batch)).read_text().splitlines()
    return json.loads(lines[2]) if len(lines) > 2 else {}


def committed_offsets(checkpoint: Path) -> dict[str, dict[str, int]]:
    """Where the query will go on from: the end offsets of its last committed micro-batch."""
    committed = _batches(checkpoint, "commits")
    return _source_offsets(checkpoint, committed[-1]) if committed else {}


def _failed_batch(checkpoint: Path | None) -> str:
    if checkpoint is None or not (Path(checkpoint) / "offsets").is_dir():
        return ""
    committed = _batches(checkpoint, "commits")
    failed = committed[-1] + 1 if committed else 0
    if failed not in _batches(checkpoint, "offsets"):
        after = _source_offsets(checkpoint, failed - 1) if failed else {}
        where = ", ".join(f"{t}-{p} at {o}" for t, ps in after.items() for p, o in ps.items())
        return f" planning micro-batch {failed}" + (f" (after {where})" if where else "")
    ends = _source_offsets(checkpoint, failed)
    starts = _source_offsets(checkpoint, failed - 1) if failed else {}
    ranges = ", ".join(
        f"{t}-{p} [{starts.get(t, {}).get(p, '?')}, {end})"
        for t, ps in ends.items()
        for p, end in ps.items()
    )
    return f" in micro-batch {failed} (offsets {ranges})"


def _wait_then_stop(query: Any, stop: threading.Event, grace_s: float, gate: StopGate) -> None:
    while query.isActive and not stop.is_set():
        try:
            query.awaitTermination(1)
        except StreamingQueryException:  # the query failed: run_until_stopped says why
            return
    if query.isActive:
        # The micro-batch running now finishes (up to grace_s); one that starts after it ends
        # the query at once (stop_gate).
        gate.close(grace_s)
        query.stop()


def run_until_accounted(
    query: Any,
    metrics: MetricsListener,
    events: int,
    *,
    timeout_s: float | None = None,
    checkpoint: Path | None = None,
) -> None:
    """Run until ``metrics`` has accounted for ``events`` input events (or the query ends, or
    ``timeout_s`` passes), then stop gracefully. For demos, benchmarks and tests."""
    stop = threading.Event()

    def watch() -> None:
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while (
            sum(c.events_in for c in metrics.history) < events
            and query.isActive
            and (deadline is None or time.monotonic() < deadline)
        ):
            time.sleep(0.2)
        stop.set()

    threading.Thread(target=watch, daemon=True).start()
    run_until_stopped(query, stop, metrics, checkpoint=checkpoint)


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
    started = time.monotonic()
    query, metrics = build_query(spark, settings, bootstrap, checks)
    starting.clear()
    try:
        run_until_stopped(query, stop, metrics, checkpoint=settings.stream.checkpoint)
    finally:
        log.info(summary_line(metrics.history, time.monotonic() - started))
