"""The job commands: ``stream`` (the streaming job), ``backfill`` (Kafka history re-scored as
the streaming job would) and ``demo`` (the end-to-end demo).

These start Spark; each checks everything it can before it does, then hands over to its driver
(``seqstream.pipeline.stream``, ``seqstream.pipeline.backfill``) or to ``demo``.
"""

from __future__ import annotations

import argparse

from seqstream.model.artifact import DEMO_CARRY_MODEL_DIR
from seqstream.pipeline import stream as streaming
from seqstream.pipeline.backfill import plan as backfill_plan
from seqstream.pipeline.backfill import run as backfill
from seqstream.pipeline.bootstrap import resolve_bootstrap
from seqstream.pipeline.cli import demo
from seqstream.pipeline.cli.settings import command_settings, job_settings
from seqstream.pipeline.spark import job_spark


def cmd_stream(args: argparse.Namespace) -> int:
    settings = job_settings(args)
    streaming.check_outputs(settings)  # before looking for a broker: the cheapest mistakes first
    bootstrap = resolve_bootstrap(settings)
    checks = streaming.check_stream(settings, bootstrap)  # all before Spark starts
    streaming.run_stream(settings, bootstrap, checks)
    return 0


def cmd_backfill(args: argparse.Namespace) -> int:
    settings = job_settings(args)
    request = backfill_plan.Request(
        topics=args.topics or list(settings.stream.topics),
        starting_offsets=args.starting_offsets,
        ending_offsets=args.ending_offsets,
        start_time_ms=backfill_plan.parse_time(args.start_time),
        end_time_ms=backfill_plan.parse_time(args.end_time),
        start_event_time_ms=backfill_plan.parse_time(args.start_event_time),
        end_event_time_ms=backfill_plan.parse_time(args.end_event_time),
    )
    bootstrap = resolve_bootstrap(settings)
    # Every check of the real run, before Spark starts or anything is created.
    prepared = backfill.prepare_backfill(settings, bootstrap, request, restart=args.restart)
    if args.dry_run:
        resumed = 0 if prepared.fresh else len(prepared.progress.finished())
        model = (
            f"{prepared.model.path} (version {prepared.spec.version}, "
            f"sha256 {prepared.model.sha256[:12]})"
        )
        print(
            backfill_plan.describe_plan(
                prepared.plan,
                settings,
                progress=prepared.progress.folder,
                model=model,
                resumed=resumed,
                history=prepared.step.history,
            )
        )
        return 0
    finished, chunks = len(prepared.progress.finished()), len(prepared.plan.chunks)
    if not prepared.fresh and finished == chunks:
        print(
            f"backfill: already complete ({chunks} chunk(s) written, progress in "
            f"{prepared.progress.folder}); nothing to do. To score the range again, pass "
            "--restart (the outputs' partitions are then written anew)"
        )
        return 0
    spark = job_spark("seqstream-backfill", settings.spark)
    counts = backfill.run_backfill(spark, settings, bootstrap, request, prepared=prepared)
    b = settings.backfill
    nowhere = (
        ""
        if b.dead_letter_path or b.dead_letter_topic
        else " (counted only: no dead-letter output)"
    )
    print(
        f"backfill: {sum(c.events_in for c in counts):,} events in {len(counts)} chunk(s): "
        f"{sum(c.scored for c in counts):,} scored, "
        f"{sum(c.not_yet_scoreable for c in counts):,} not yet scoreable, "
        f"{sum(c.dead_lettered for c in counts):,} dead-lettered{nowhere}"
        + (
            f", {outside:,} outside the event-time range (not written)"
            if (outside := sum(c.outside_event_time for c in counts))
            else ""
        )
    )
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    settings = command_settings(args)
    if args.carry:
        stream = settings.stream.model_copy(update={"model": DEMO_CARRY_MODEL_DIR})
        settings = settings.model_copy(update={"stream": stream})
    demo.run_demo(settings)
    return 0
