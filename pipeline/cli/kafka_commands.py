"""The commands that talk to Kafka directly, without Spark: ``broker``, ``topics``, ``tail`` and
``produce``.

Each one resolves its settings, finds Kafka (``bootstrap``) and prints one line per result; the
jobs (``job_commands``) and the models (``model_commands``) live apart.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from seqstream.pipeline.bootstrap import kafka_admin, resolve_bootstrap
from seqstream.pipeline.cli import tail
from seqstream.pipeline.cli.settings import command_settings
from seqstream.pipeline.errors import SeqstreamError
from seqstream.pipeline.kafka import broker, open_producer
from seqstream.pipeline.sources.producer import produce_messages
from seqstream.pipeline.sources.replay import SyntheticSpec, csv_messages, synthetic_stream
from seqstream.pipeline.sources.series import demo_series_files

# --- broker ------------------------------------------------------------------------------------


def cmd_broker(args: argparse.Namespace) -> int:
    settings = command_settings(args, broker={"port": args.port})
    state_dir = settings.broker.state_dir
    if args.action == "start":
        started_info, started = broker.start_detached(
            state_dir, port=settings.broker.port, start_timeout_s=settings.broker.start_timeout_s
        )
        if not started and args.port is not None and started_info.port != args.port:
            raise SeqstreamError(
                f"an embedded broker already runs at {started_info.bootstrap_servers} (pid "
                f"{started_info.pid}), not on port {args.port}: use that address, or `seqstream "
                f"broker stop` first and start again with --port {args.port}"
            )
        verb = "started" if started else "already running"
        print(
            f"embedded broker {verb}: {started_info.bootstrap_servers} "
            f"({started_info.description}, pid {started_info.pid}, storage "
            f"{started_info.storage}, log {started_info.log_file})"
        )
    elif args.action == "status":
        running = broker.detached_status(state_dir)
        if running is None:
            print("embedded broker: not running")
            return 1
        print(
            f"embedded broker running: {running.bootstrap_servers} ({running.description}, "
            f"pid {running.pid})"
        )
    else:
        stopped = broker.stop_detached(state_dir)
        print("embedded broker stopped" if stopped else "embedded broker: was not running")
    return 0


# --- topics ------------------------------------------------------------------------------------


def cmd_topics(args: argparse.Namespace) -> int:
    if args.action != "list" and not args.topic:
        args.parser.error(
            f"topics {args.action} needs a topic name: seqstream topics {args.action} NAME"
        )
    settings = command_settings(args)
    bootstrap = resolve_bootstrap(settings)
    with kafka_admin(settings, bootstrap) as admin:
        if args.action == "list":
            for name in sorted(admin.list_topics()):
                print(name)
        elif args.action == "create":
            info = admin.create_topic(args.topic, args.partitions or settings.producer.partitions)
            print(f"created {info.name} with {info.partitions} partitions")
        elif args.action == "delete":
            admin.delete_topic(args.topic)
            print(f"deleted {args.topic}")
        else:
            begin, end = admin.beginning_offsets(args.topic), admin.end_offsets(args.topic)
            print(
                f"{args.topic}: {len(end)} partitions, {sum(end[p] - begin[p] for p in end)} records"
            )
            for p in sorted(end):
                print(f"  partition {p}: offsets [{begin[p]}, {end[p]})")
    return 0


def cmd_tail(args: argparse.Namespace) -> int:
    settings = command_settings(args)
    bootstrap = resolve_bootstrap(settings)
    kafka = settings.kafka
    render = tail.as_json if args.json else tail.as_text
    with kafka_admin(settings, bootstrap) as admin:
        records = tail.follow(
            admin,
            bootstrap,
            args.topic,
            from_beginning=args.from_beginning,
            client=kafka.client,
            options=kafka.options,
            timeout_s=kafka.connect_timeout_s,
            idle_timeout_s=args.idle_timeout,
        )
        for count, record in enumerate(records, 1):
            print(render(record), flush=True)
            if args.max is not None and count >= args.max:
                break
    return 0


# --- produce -----------------------------------------------------------------------------------


def cmd_produce(args: argparse.Namespace) -> int:
    events: dict[str, Any] = {}
    if args.synthetic and args.num_features:
        events["features"] = [f"f{i}" for i in range(args.num_features)]
    settings = command_settings(
        args,
        events=events,
        producer={"topic": args.topic, "partitions": args.partitions, "rate": args.rate},
    )
    if args.synthetic:
        spec = SyntheticSpec(
            keys=args.keys,
            events_per_key=args.events_per_key,
            anomaly_rate=args.anomaly_rate,
            late_rate=args.late_rate,
            malformed_rate=args.malformed_rate,
            seed=args.seed,
        )
        messages = synthetic_stream(spec, settings.events).messages
    else:
        paths = args.csv or demo_series_files()
        messages = csv_messages(
            paths, settings.events, time_column=args.time_column, key_column=args.key_column
        )
    bootstrap = resolve_bootstrap(settings, start_if_missing=True)
    kafka = settings.kafka
    with kafka_admin(settings, bootstrap) as admin:
        admin.create_topic(settings.producer.topic, settings.producer.partitions, exist_ok=True)
    producer = open_producer(
        bootstrap, client=kafka.client, options=kafka.options, timeout_s=kafka.connect_timeout_s
    )
    try:
        result = produce_messages(
            messages,
            producer,
            settings.producer.topic,
            rate=settings.producer.rate,
            progress=not args.no_progress and sys.stderr.isatty(),
        )
    finally:
        producer.close()
    keys = len({m.key for m in messages})
    print(
        f"produced {result.sent} events ({keys} key{'s' if keys != 1 else ''}, "
        f"{result.malformed} malformed on purpose) "
        f"to {result.topic} on {bootstrap} with {producer.client}: {result.acked} acknowledged, "
        f"{result.failed} failed, {result.elapsed_s:.1f}s ({result.rate:,.0f} events/s)"
    )
    return 0
