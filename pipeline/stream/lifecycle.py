"""A running streaming query's life on the driver: wait, stop between micro-batches, say why it
failed (which micro-batch, which offsets, the first cause) and what it did.

SIGTERM or Ctrl-C lets the running micro-batch finish, then stops the query (``stop_gate``).
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyspark.errors import StreamingQueryException

from seqstream.pipeline.errors import SeqstreamError
from seqstream.pipeline.kafka.connector import jvm_no_answer
from seqstream.pipeline.sinks.metrics import BatchMetrics, MetricsListener
from seqstream.pipeline.sinks.outputs import on_local_disk
from seqstream.pipeline.stream.checkpoint import SparkCheckpoint
from seqstream.pipeline.stream.stop_gate import StopGate, stopped_by_request


@dataclass(frozen=True)
class _Running:
    """What the driver keeps of a query it started: the gate its stop goes through, and how a
    failure of Spark's kafka connector on a silent broker is worded (the connector's own error
    names neither the address nor how long it tried)."""

    gate: StopGate
    kafka_silent: str | None


_RUNNING: dict[str, _Running] = {}  # by query id


def register(query: Any, gate: StopGate, kafka_silent: str | None) -> None:
    """Keep what ``run_until_stopped`` needs of a query just started."""
    _RUNNING[str(query.id)] = _Running(gate, kafka_silent)


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


def _failed_batch(location: Path | None) -> str:
    if location is None or not on_local_disk(location):
        return ""
    checkpoint = SparkCheckpoint(location)
    if not checkpoint.exists("offsets"):
        return ""  # failed before its first micro-batch was planned
    offsets = checkpoint.batches("offsets")
    committed = checkpoint.batches("commits")
    failed = committed[-1] + 1 if committed else 0
    if failed not in offsets:
        after = checkpoint.offsets(failed - 1) if failed else {}
        where = ", ".join(f"{t}-{p} at {o}" for t, ps in after.items() for p, o in ps.items())
        return f" planning micro-batch {failed}" + (f" (after {where})" if where else "")
    ends = checkpoint.offsets(failed)
    starts = checkpoint.offsets(failed - 1) if failed else {}
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
