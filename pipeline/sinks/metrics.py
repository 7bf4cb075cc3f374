"""Per-batch metrics of the streaming job: Spark's observed metrics read by a query listener.

``observe_input`` and ``observe_output`` attach ``Dataset.observe`` aggregates to the Kafka rows and
the scored streams, so the counts are computed in the batch's own Spark jobs (no extra job) and
arrive with the batch's progress report.
``MetricsListener`` turns each report into a ``BatchMetrics``: it logs one JSON line per batch
(logger ``seqstream.metrics``), keeps the history for callers, and optionally serves the running
totals on a Prometheus endpoint.

Event-to-score latency is measured from the source record's Kafka timestamp to the end of the
micro-batch that wrote its score: the listener takes quantiles of the batch's timestamps (p50
latency = batch end - median timestamp; p99 = batch end - 1st percentile).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.streaming import StreamingQueryListener

from seqstream.pipeline.kafka import TopicPartition

log = logging.getLogger("seqstream.metrics")

INPUT, OUTPUT = "seqstream_input", "seqstream_output"
QUANTILE_ACCURACY = 100  # percentile_approx's accuracy: a relative rank error of 1 / 100


def observe_input(kafka_rows: DataFrame) -> DataFrame:
    """Counts what each micro-batch read, before any stateful step can hold rows back."""
    return kafka_rows.observe(INPUT, F.count(F.lit(1)).alias("events_in"))


def observe_output(scored: DataFrame) -> DataFrame:
    """Counts dead letters (every one comes out in the batch that read it), windows and scores,
    the model step's time and batches, and timestamp quantiles."""
    return scored.observe(
        OUTPUT,
        F.count("reason").alias("dead_lettered"),
        F.count(F.when(F.col("reason").isNull(), 1)).alias("windows"),
        F.count("score").alias("scored"),
        F.count(F.when(F.col("key_mismatch"), 1)).alias("key_mismatches"),
        F.coalesce(F.sum("scoring_s"), F.lit(0.0)).alias("scoring_s"),
        F.coalesce(F.sum(1.0 / F.col("model_batch")), F.lit(0.0)).alias("model_batches"),
        F.max("model_batch").alias("model_batch_max"),
        F.collect_set(
            F.when(
                F.col("state_keys").isNotNull(),
                F.struct("topic", "partition", "state_keys", "keys_expired"),
            )
        ).alias("state_keys"),
        # Within 1 % of the batch's scored events in rank (a few ms of latency for a batch
        # read over a second). Spark's default accuracy (0.01 %) cost 5 % of a 15,000-event
        # micro-batch (bench/README.md); dropping the quantiles saved no more than this.
        F.percentile_approx(
            F.when(F.col("score").isNotNull(), F.unix_millis("kafka_timestamp")),
            [0.01, 0.5],
            QUANTILE_ACCURACY,
        ).alias("timestamp_ms_quantiles"),
    )


@dataclass(frozen=True)
class BatchMetrics:
    """Every event read is dead-lettered, late or windowed (it entered a window); every window
    that ends is scored or not yet scoreable. In per-event mode each windowed event ends its own
    window at once; in event-time mode it waits in its windows, which end when the watermark
    passes them, so a batch's windows and its windowed events differ."""

    batch_id: int
    events_in: int
    dead_lettered: int
    late: int  # events at or behind the watermark, dropped (event-time mode only)
    windowed: int  # events that entered a window
    windows: int  # windows ended this batch (per-event mode: one per windowed event)
    scored: int  # windows scored
    not_yet_scoreable: int  # windows shorter than the model's min_length (a key's first events)
    keys_in_state: int | None  # per-event mode: keys whose last events are held
    keys_expired: int  # per-event mode: keys found idle past stream.state_ttl_s, state dropped
    windows_in_state: int | None  # event-time mode: (key, window) pairs still open
    key_mismatches: int  # events.key_mismatch=warn: rows kept although JSON and Kafka keys differ
    scoring_s: float  # time in the model step, summed over workers
    model_batches: int
    model_batch_mean: float
    model_batch_max: int
    latency_p50_ms: float | None
    latency_p99_ms: float | None
    duration_s: float


# Spark's name for the window aggregation's state operator (event-time mode).
WINDOW_AGGREGATION = "stateStoreSave"


def batch_metrics(
    progress: Any, held: dict[TopicPartition, int] | None = None
) -> BatchMetrics | None:
    """The metrics of one progress report, or None for a batch that read and emitted nothing.
    ``held``: the keys in each Kafka partition's window state as last reported, updated here
    (a partition reports when a batch reads it)."""
    read, out = progress.observedMetrics.get(INPUT), progress.observedMetrics.get(OUTPUT)
    held = {} if held is None else held
    reported = (out.asDict(recursive=True).get("state_keys") or []) if out is not None else []
    if out is not None:
        held.update({TopicPartition(r["topic"], r["partition"]): r["state_keys"] for r in reported})
    if read is None or out is None or not (read["events_in"] or out["windows"]):
        return None
    end_ms = _iso_epoch_ms(progress.timestamp) + progress.batchDuration
    quantiles = out["timestamp_ms_quantiles"] or [None, None]
    model_batches = round(out["model_batches"])
    states = progress.stateOperators
    aggregations = [op for op in states if op.operatorName == WINDOW_AGGREGATION]
    # Event-time mode drops late events one row each, before the window aggregation.
    late = sum(op.numRowsDroppedByWatermark for op in states)
    return BatchMetrics(
        batch_id=progress.batchId,
        events_in=read["events_in"],
        dead_lettered=out["dead_lettered"],
        late=late,
        windowed=read["events_in"] - out["dead_lettered"] - late,
        windows=out["windows"],
        scored=out["scored"],
        not_yet_scoreable=out["windows"] - out["scored"],
        keys_in_state=None if aggregations else sum(held.values()),
        keys_expired=sum(r.get("keys_expired") or 0 for r in reported),
        windows_in_state=sum(op.numRowsTotal for op in aggregations) if aggregations else None,
        key_mismatches=out["key_mismatches"],
        scoring_s=round(out["scoring_s"], 6),
        model_batches=model_batches,
        model_batch_mean=round(out["scored"] / model_batches, 1) if model_batches else 0.0,
        model_batch_max=out["model_batch_max"] or 0,
        latency_p50_ms=None if quantiles[1] is None else end_ms - quantiles[1],
        latency_p99_ms=None if quantiles[0] is None else end_ms - quantiles[0],
        duration_s=progress.batchDuration / 1000,
    )


def _iso_epoch_ms(timestamp: str) -> int:
    return int(datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp() * 1000)


class _Prometheus:
    """Running totals on ``http://<host>:<port>/metrics`` (own registry, so queries don't collide)."""

    def __init__(self, port: int, host: str) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

        self.registry = CollectorRegistry()
        self.events = Counter(
            "seqstream_events", "Input events by outcome", ["outcome"], registry=self.registry
        )
        self.windows = Counter(
            "seqstream_windows", "Windows ended, by outcome", ["outcome"], registry=self.registry
        )
        self.scoring = Counter(
            "seqstream_scoring_seconds", "Seconds in the model step", registry=self.registry
        )
        self.batches = Counter(
            "seqstream_model_batches", "Model batches run", registry=self.registry
        )
        self.keys = Gauge("seqstream_keys_in_state", "Keys held in state", registry=self.registry)
        self.expired = Counter(
            "seqstream_keys_expired",
            "Keys whose state expired (idle past stream.state_ttl_s): they start again from zeros",
            registry=self.registry,
        )
        self.open_windows = Gauge(
            "seqstream_windows_in_state", "Event-time windows still open", registry=self.registry
        )
        self.latency = Gauge(
            "seqstream_latency_seconds",
            "Event-to-score latency of the last batch",
            ["quantile"],
            registry=self.registry,
        )
        self.model_changes = Counter(
            "seqstream_model_swaps",
            "New model artifacts seen between micro-batches, by outcome (swapped, refused)",
            ["outcome"],
            registry=self.registry,
        )
        self.duration = Gauge(
            "seqstream_batch_duration_seconds",
            "Last micro-batch's duration",
            registry=self.registry,
        )
        self.server, _ = start_http_server(port, addr=host, registry=self.registry)
        self.port = self.server.server_port
        log.info("serving Prometheus metrics on http://%s:%d/metrics", host, self.port)

    def update(self, m: BatchMetrics) -> None:
        for outcome in ("windowed", "dead_lettered", "late"):
            self.events.labels(outcome).inc(getattr(m, outcome))
        for outcome in ("scored", "not_yet_scoreable"):
            self.windows.labels(outcome).inc(getattr(m, outcome))
        self.scoring.inc(m.scoring_s)
        self.batches.inc(m.model_batches)
        if m.keys_in_state is not None:
            self.keys.set(m.keys_in_state)
        self.expired.inc(m.keys_expired)
        if m.windows_in_state is not None:
            self.open_windows.set(m.windows_in_state)
        self.duration.set(m.duration_s)
        for quantile, value in (("0.5", m.latency_p50_ms), ("0.99", m.latency_p99_ms)):
            if value is not None:
                self.latency.labels(quantile).set(value / 1000)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class MetricsListener(StreamingQueryListener):
    """Listens to the queries called ``query_name``; ``history`` is the one with ``query_id``
    (set once the query has started: the listener must exist before its first batch)."""

    def __init__(
        self,
        query_name: str,
        prometheus_port: int | None = None,
        prometheus_host: str = "127.0.0.1",
    ) -> None:
        self.query_name = query_name
        self.query_id: str | None = None
        self._by_query: dict[str, list[BatchMetrics]] = {}
        self._last_batch: dict[str, int] = {}  # per query: the last batch id heard of
        self._held: dict[str, dict[TopicPartition, int]] = {}  # per query: keys per partition
        self.prometheus = (
            _Prometheus(prometheus_port, prometheus_host) if prometheus_port is not None else None
        )
        self._streams: Any = None
        self.model_changes: dict[str, int] = {"swapped": 0, "refused": 0}

    def model_change(self, outcome: str) -> None:
        """A new model was swapped in or refused (``model_versions``)."""
        self.model_changes[outcome] += 1
        if self.prometheus is not None:
            self.prometheus.model_changes.labels(outcome).inc()

    def attach(self, streams: Any) -> None:
        """Register with ``spark.streams`` (before the query starts, to hear its first batch)."""
        streams.addListener(self)
        self._streams = streams

    def onQueryStarted(self, event: Any) -> None:
        pass

    def onQueryProgress(self, event: Any) -> None:
        progress = event.progress
        if progress.name != self.query_name:
            return
        self._last_batch[str(progress.id)] = progress.batchId
        metrics = batch_metrics(progress, self._held.setdefault(str(progress.id), {}))
        if metrics is None:
            return
        log.info(json.dumps({"event": "batch", **asdict(metrics)}))
        self._by_query.setdefault(str(progress.id), []).append(metrics)
        if self.prometheus is not None:
            self.prometheus.update(metrics)

    def onQueryIdle(self, event: Any) -> None:
        pass

    def onQueryTerminated(self, event: Any) -> None:
        pass

    @property
    def history(self) -> list[BatchMetrics]:
        return self._by_query.get(str(self.query_id), [])

    def drain(self, query: Any, timeout_s: float = 30.0) -> None:
        """Wait until the progress report of every batch ``query`` ran has reached the listener:
        Spark delivers them asynchronously, so the last batch's may arrive after the query
        stopped. (A trigger that found nothing to do makes an idle report, which Spark sends to
        ``onQueryIdle``, not here: it is not waited for.)"""
        ran = [p for p in query.recentProgress if "addBatch" in p["durationMs"]]
        last = ran[-1] if ran else None
        deadline = time.monotonic() + timeout_s
        while last is not None and self._last_batch.get(str(query.id), -1) < last["batchId"]:
            if time.monotonic() > deadline:
                log.warning(
                    "the progress report of batch %s never reached the metrics listener",
                    last["batchId"],
                )
                return
            time.sleep(0.05)

    def close(self) -> None:
        """Stop listening and stop the Prometheus endpoint, if any."""
        if self._streams is not None:
            self._streams.removeListener(self)
            self._streams = None
        if self.prometheus is not None:
            self.prometheus.close()
