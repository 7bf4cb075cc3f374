"""The demo: the bundled NAB series through Kafka, the streaming job and the demo model.

Starts an embedded broker (or uses ``kafka.bootstrap_servers``), replays the four bundled CPU
series as keyed events, runs the streaming job until every event is accounted for, then prints
the accounting and, per series, how the scores line up with NAB's labelled anomaly windows,
and draws ``out/demo/scores.png``.
"""

from __future__ import annotations

import sys
import time
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import pandas as pd

from seqstream.model.evaluate import (
    load_nab_windows,
    persistence_scores,
    point_auc,
    window_auc,
    window_labels,
)
from seqstream.pipeline.bootstrap import kafka_admin
from seqstream.pipeline.config import EventSchema, Settings
from seqstream.pipeline.errors import SeqstreamError
from seqstream.pipeline.kafka import EmbeddedBroker, open_producer
from seqstream.pipeline.sources.producer import produce_messages
from seqstream.pipeline.sources.replay import csv_messages
from seqstream.pipeline.sources.series import DEMO_NAB_DIR, demo_series_files, read_series_csv
from seqstream.pipeline.spark import local_spark
from seqstream.pipeline.stream import build_query, run_until_accounted

OUT = Path("out/demo")


def _produce(settings: Settings, bootstrap: str, topic: str) -> int:
    kafka = settings.kafka
    messages = csv_messages(demo_series_files(), settings.events)
    with kafka_admin(settings, bootstrap) as admin:
        admin.create_topic(topic, settings.producer.partitions)
    producer = open_producer(
        bootstrap, client=kafka.client, options=kafka.options, timeout_s=kafka.connect_timeout_s
    )
    try:
        result = produce_messages(messages, producer, topic, progress=sys.stderr.isatty())
    finally:
        producer.close()
    print(
        f"produced {result.sent} events of {len(demo_series_files())} NAB series to {topic} on {bootstrap}: "
        f"{result.acked} acknowledged, {result.failed} failed ({result.rate:,.0f} events/s)"
    )
    return result.sent


def _stream(
    settings: Settings, bootstrap: str, topic: str, events: int, run_dir: Path
) -> pd.DataFrame:
    settings = settings.model_copy(
        update={
            "stream": settings.stream.model_copy(
                update={
                    "topics": [topic],
                    "checkpoint": run_dir / "checkpoint",
                    "parquet_path": run_dir / "scores",
                    "dead_letter_path": run_dir / "dead_letters",
                    "max_offsets_per_trigger": 6000,
                    "trigger_interval": "0 seconds",
                    "starting_offsets": "earliest",
                }
            )
        }
    )
    spark = local_spark("seqstream-demo")
    started = time.monotonic()
    query, metrics = build_query(spark, settings, bootstrap)
    run_until_accounted(query, metrics, events)
    seconds = time.monotonic() - started
    history = metrics.history
    print(
        f"streaming job: {len(history)} micro-batches in {seconds:.0f}s (start-up included); "
        f"{sum(c.events_in for c in history)} events in: {sum(c.scored for c in history)} scored, "
        f"{sum(c.not_yet_scoreable for c in history)} not yet scoreable (a key's first events), "
        f"{sum(c.dead_lettered for c in history)} dead-lettered"
    )
    scores = (
        spark.read.parquet(str(run_dir / "scores")).select("key", "event_time", "score").toPandas()
    )
    spark.stop()
    return scores


def _report(scores: pd.DataFrame, run_dir: Path) -> Path:
    try:
        import matplotlib
    except ImportError:
        raise SeqstreamError(
            "the demo's plot needs matplotlib: pip install 'seqstream[demo]'"
        ) from None

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = demo_series_files()
    fig, axes = plt.subplots(len(files), 1, figsize=(12, 2.6 * len(files)), sharex=False)
    print(
        f"\n{'series':28} {'scored':>7} {'window AUC':>10} {'point AUC':>9} {'persistence':>11}"
        "  (labelled anomaly windows vs the rest; persistence: |x_t - x_(t-1)|)"
    )
    for ax, path in zip(np.atleast_1d(axes), files, strict=True):
        events = read_series_csv(path, EventSchema())
        values = pd.Series(
            [e.features[0] for e in events],
            index=pd.to_datetime([e.ts_ms for e in events], unit="ms"),
        )
        mine = scores[scores["key"] == path.stem].sort_values("event_time")
        times = pd.to_datetime(mine["event_time"]).dt.tz_localize(None)
        windows = load_nab_windows(DEMO_NAB_DIR / "anomaly_windows.json", path)
        inside = window_labels((times.astype("int64") // 1_000_000).to_numpy(), windows)
        score = mine["score"].to_numpy()
        jumps = pd.Series(persistence_scores(values.to_numpy()), index=values.index)
        baseline = jumps.reindex(times.to_numpy()).to_numpy()  # on the same scored events
        print(
            f"{path.stem:28} {len(mine):>7} {window_auc(score, inside):>10.2f} "
            f"{point_auc(score, inside):>9.2f} {window_auc(baseline, inside):>11.2f}"
        )
        ax.plot(values.index, values.to_numpy(), color="0.55", lw=0.6, label="value")
        twin = ax.twinx()
        twin.plot(times, score, color="tab:red", lw=0.6, label="anomaly score")
        for start, end in windows:
            ax.axvspan(pd.Timestamp(start), pd.Timestamp(end), color="tab:orange", alpha=0.25)
        ax.set_title(
            f"{path.stem}: value (grey), score (red), NAB anomaly windows (orange)", fontsize=9
        )
    fig.tight_layout()
    png = run_dir / "scores.png"
    fig.savefig(png, dpi=90)
    return png


def run_demo(settings: Settings) -> None:
    run_dir = OUT / time.strftime("%Y%m%d-%H%M%S")
    topic = f"seqstream-demo-{int(time.time())}"
    with ExitStack() as stack:
        bootstrap = settings.kafka.bootstrap_servers
        if not bootstrap:
            broker = stack.enter_context(
                EmbeddedBroker(start_timeout_s=settings.broker.start_timeout_s)
            )
            bootstrap = broker.bootstrap_servers
            assert broker.info is not None
            print(f"started the embedded broker ({broker.info.description}) on {bootstrap}")
        events = _produce(settings, bootstrap, topic)
        scores = _stream(settings, bootstrap, topic, events, run_dir)
    png = _report(scores, run_dir)
    print(
        f"\nscores: {run_dir / 'scores'} (Parquet, by date and batch_id); dead letters: {run_dir / 'dead_letters'}"
    )
    print(f"plot: {png}")
