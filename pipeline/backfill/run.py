"""The backfill: re-score a bounded range of Kafka history exactly as the streaming job scored it.

    seqstream backfill --start-time 2026-11-01T00:00:00Z --end-time 2026-11-02T00:00:00Z
    spark-submit jobs/backfill.py --config seqstream.yaml --starting-offsets earliest

The plan (request, ranges, chunks, output checks) is ``plan``'s; the Spark steps are
``chunks``'s: same parsing, scoring step (``scoring.step``) and sinks as the streaming job, as
batch jobs. The range is cut into chunks (every partition's k-th slice, read in parallel); each
key's state passes from chunk to chunk as the streaming state does.

Progress lives in ``backfill.progress_dir`` (``progress``): the plan, and per finished chunk its
counts and every key's state. A re-run with the same request resumes after the last finished
chunk; a chunk that was cut short is written again and replaces its own Parquet partition
(``batch_id`` = chunk number), so nothing is duplicated there. Kafka output is at least once,
or exactly once with ``kafka.exactly_once``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import re
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from seqstream.model.spec import ModelSpec
from seqstream.pipeline.backfill.chunks import Backfill
from seqstream.pipeline.backfill.plan import (
    BACKFILL_OWNER,
    DEFAULT_PROGRESS_ROOT,
    BackfillPlan,
    Request,
    check_replay,
    check_sinks,
    describe_request,
    plan_backfill,
)
from seqstream.pipeline.backfill.progress import ChunkCounts, Progress, States
from seqstream.pipeline.bootstrap import create_output_topics
from seqstream.pipeline.config import Settings
from seqstream.pipeline.errors import SeqstreamError
from seqstream.pipeline.scoring.model_versions import check_model
from seqstream.pipeline.scoring.step import ScoringStep, scoring_step
from seqstream.pipeline.scoring.worker import ModelRef
from seqstream.pipeline.sinks.outputs import NO_DEAD_LETTER_OUTPUT, claim_folder

log = logging.getLogger("seqstream.backfill")


def backfill_outputs(settings: Settings) -> dict[str, str | None]:
    """Where a backfill writes, as recorded in its plan (folders resolved to absolute paths)."""
    b = settings.backfill
    return {
        "parquet_path": str(Path(b.parquet_path).resolve()) if b.parquet_path else None,
        "output_topic": b.output_topic,
        "dead_letter_path": str(Path(b.dead_letter_path).resolve()) if b.dead_letter_path else None,
        "dead_letter_topic": b.dead_letter_topic,
    }


@dataclass(frozen=True)
class Prepared:
    """A backfill checked and planned: ``plan`` is the stored one to resume (``fresh`` False)
    or a new one, not yet stored; ``step`` the scoring step its model runs."""

    plan: BackfillPlan
    fresh: bool
    progress: Progress
    model: ModelRef
    spec: ModelSpec
    step: ScoringStep


def prepare_backfill(
    settings: Settings, bootstrap: str, request: Request, *, restart: bool = False
) -> Prepared:
    """Every check a backfill makes before it reads a record (outputs, model, the progress
    folder, the ranges against the broker), without Spark and creating nothing: ``--dry-run``
    runs exactly this."""
    check_sinks(settings)
    ref, spec = check_model(settings)
    step = scoring_step(spec, ref, settings.events, settings.stream.max_event_bytes)
    progress = Progress(progress_folder(settings, request))
    outputs = backfill_outputs(settings)
    stored = None if restart else progress.plan()
    if stored is not None:
        check_resumable(stored, progress, request, ref.sha256, outputs)
        return Prepared(stored, False, progress, ref, spec, step)
    planned = plan_backfill(settings, bootstrap, request)
    if step.history is None:
        check_replay(planned, settings.backfill.replay_max_events)
    # The run id names the run's exactly-once transactions (``kafka.transactions``).
    plan = dataclasses.replace(planned, model=ref.sha256, outputs=outputs, run_id=uuid.uuid4().hex)
    return Prepared(plan, True, progress, ref, spec, step)


def check_resumable(
    plan: BackfillPlan,
    progress: Progress,
    request: Request,
    model: str,
    outputs: dict[str, str | None],
) -> None:
    """A stored plan is resumed only by the same request and model, into the same outputs:
    finished chunks were written to the recorded ones."""
    if plan.request != request or plan.model != model:
        raise SeqstreamError(
            f"{progress.folder} holds the progress of another backfill "
            f"({describe_request(plan.request)}, model sha256 {plan.model[:12]}): pass --restart "
            "to discard it, or give this one its own --progress-dir (backfill.progress_dir)"
        )
    if plan.outputs != outputs:
        changed = {
            k: f"{plan.outputs.get(k)} -> {v}"
            for k, v in outputs.items()
            if plan.outputs.get(k) != v
        }
        raise SeqstreamError(
            f"{progress.folder} holds a backfill whose finished chunks were written to other "
            f"outputs ({changed}): resume it with the outputs it had, or pass --restart to "
            "score the whole range into the new ones"
        )


def progress_folder(settings: Settings, request: Request) -> Path:
    """``backfill.progress_dir``; by default a folder of the request's own under
    ``.seqstream/backfill``, so that different backfills do not share one."""
    if settings.backfill.progress_dir is not None:
        return Path(settings.backfill.progress_dir)
    digest = hashlib.sha256(json.dumps(asdict(request), sort_keys=True).encode()).hexdigest()
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", "+".join(request.topics))[:60]
    return DEFAULT_PROGRESS_ROOT / f"{name}-{digest[:12]}"


def run_backfill(
    spark: Any,
    settings: Settings,
    bootstrap: str,
    request: Request,
    *,
    restart: bool = False,
    prepared: Prepared | None = None,
) -> list[ChunkCounts]:
    """Run (or resume) the backfill; returns the counts of every chunk, resumed ones included.
    ``prepared``: ``prepare_backfill``'s result for this request, if the caller made it already
    (the checks, the model load and the broker lookups are then not made twice)."""
    prepared = prepared or prepare_backfill(settings, bootstrap, request, restart=restart)
    progress, plan = prepared.progress, prepared.plan
    if not (settings.backfill.dead_letter_path or settings.backfill.dead_letter_topic):
        log.warning(NO_DEAD_LETTER_OUTPUT.format(section="backfill"))
    job = Backfill(spark, settings, bootstrap, prepared.step, run_id=plan.run_id)
    create_output_topics(settings.model_copy(update={"stream": job.sink_settings()}), bootstrap)
    for name in ("parquet_path", "dead_letter_path"):
        claim_folder(getattr(settings.backfill, name), f"backfill.{name}", BACKFILL_OWNER)
    if prepared.fresh:
        progress.clear()
        progress.start(plan)
    done = progress.finished()
    resumed = len(done)
    states = starting_states(job, progress, plan, resumed)
    started = time.monotonic()
    for index in range(len(done), len(plan.chunks)):
        counts, states = job.run_chunk(
            index,
            list(plan.chunks[index]),
            states,
            (request.start_event_time_ms, request.end_event_time_ms),
        )
        progress.finish_chunk(counts, states)
        done.append(counts)
        log_chunk(plan, counts, resumed, started)
    return done


def starting_states(job: Backfill, progress: Progress, plan: BackfillPlan, done: int) -> States:
    """Every key's state where the run starts: after the last finished chunk, or before the
    range (rebuilt once, then kept in the progress folder)."""
    if done:
        log.info("resuming after chunk %d of %d", done, len(plan.chunks))
        return progress.state(f"chunk-{done - 1:05d}") or {}
    states = progress.state("before")
    if states is None:
        states = job.state_before(list(plan.ranges), plan.lows)
        progress.save_state("before", states)
    return states


def log_chunk(plan: BackfillPlan, counts: ChunkCounts, resumed: int, started: float) -> None:
    """One progress line per chunk: its counts, the run's rate and time left."""
    chunks = plan.chunks
    total = sum(r.events for chunk in chunks for r in chunk)
    before = sum(r.events for chunk in chunks[:resumed] for r in chunk)
    done = sum(r.events for chunk in chunks[: counts.chunk + 1] for r in chunk)
    rate = (done - before) / max(time.monotonic() - started, 1e-9)
    log.info(
        "chunk %d/%d: %d events (%d scored, %d not yet scoreable, %d dead-lettered) in %.1fs; "
        "%d/%d done, %.0f events/s, %.0fs left",
        counts.chunk + 1,
        len(chunks),
        counts.events_in,
        counts.scored,
        counts.not_yet_scoreable,
        counts.dead_lettered,
        counts.seconds,
        done,
        total,
        rate,
        (total - done) / rate if rate else 0.0,
    )
