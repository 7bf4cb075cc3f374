"""Event-time windows, the streaming job's second mode (``stream.mode: time``).

Events are grouped per key into tumbling or sliding windows of event time with Spark's own
``window()`` and a watermark; a window is scored once, when the watermark passes its end, from
its last N events in event-time order (N = the model's window length; ties in Kafka order).
An event whose event time is at or behind the watermark is late: a deduplication step on its Kafka
position (which drops nothing else: a position is unique) drops it there, one row per event, so
Spark's ``numRowsDroppedByWatermark`` of that step counts late events (the window aggregation's
own count would be of late (key, window) groups). That step holds each event only until the
watermark passes its event time.

Rows come out in the per-event mode's schema, so scoring and sinks are shared: a window's row
carries the event time of its end and the Kafka position of its last event, so (key, event_time)
names a window. Malformed events pass through as dead-letter rows, as in the per-event mode.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from seqstream.model.windows import empty_state, extend_windows
from seqstream.pipeline.records.rows import SCORED_SCHEMA, WINDOW_COLUMNS
from seqstream.pipeline.scoring.step import score_windows
from seqstream.pipeline.scoring.worker import ModelRef

# The state this module keeps, recorded in the checkpoint (a change of stateful steps is a new one).
TIME_LAYOUT = "time-v2"
# Each event's own identity, plus the watermarked column so that Spark drops late events here.
LATE_FILTER_KEYS = ["topic", "partition", "offset", "event_time"]


def last_events(
    batches: Iterator[pd.DataFrame], length: int, features: int, ref: ModelRef
) -> Iterator[pd.DataFrame]:
    """Per closed window: its last ``length`` events, oldest first, as one window row, scored."""
    for batch in batches:
        rows, windows = [], np.zeros((len(batch), length, features), np.float32)
        for i, (key, end, events) in enumerate(
            zip(batch["key"], batch["window_end_ms"], batch["events"], strict=False)
        ):
            ordered = sorted(
                events, key=lambda e: (e["event_time_ms"], e["partition"], e["offset"])
            )
            values = np.stack([np.asarray(e["features"], np.float32) for e in ordered[-length:]])
            made = extend_windows(empty_state(features), values, length)
            last = ordered[-1]
            windows[i] = made.windows[-1]
            rows.append(
                (
                    key,
                    int(end),
                    last["topic"],
                    last["partition"],
                    last["offset"],
                    last["timestamp"],
                    int(made.lengths[-1]),
                    None,
                    None,
                    any(bool(e["key_mismatch"]) for e in ordered),
                    None,
                    None,
                )
            )
        yield score_windows(pd.DataFrame(rows, columns=WINDOW_COLUMNS), windows, ref)


def event_time_windows(
    parsed: DataFrame,
    *,
    ref: ModelRef,
    length: int,
    features: int,
    size: str,
    slide: str | None,
    watermark: str,
) -> DataFrame:
    """Scored rows (``SCORED_SCHEMA``) for each closed event-time window, plus the dead letters."""
    valid = (
        parsed.where(F.col("reason").isNull())
        .withColumn("event_time", F.timestamp_millis("event_time_ms"))
        .withWatermark("event_time", watermark)
        .dropDuplicates(LATE_FILTER_KEYS)
    )
    window = F.window("event_time", size, slide) if slide else F.window("event_time", size)
    grouped = valid.groupBy("key", window.alias("w")).agg(
        F.collect_list(
            F.struct(
                "event_time_ms",
                "topic",
                "partition",
                "offset",
                "timestamp",
                "features",
                "key_mismatch",
            )
        ).alias("events")
    )
    shaped = grouped.select(
        "key", (F.unix_millis(F.col("w.end"))).alias("window_end_ms"), "events"
    ).mapInPandas(partial(last_events, length=length, features=features, ref=ref), SCORED_SCHEMA)
    kept = {
        c: F.col(c)
        for c in (
            "key",
            "event_time_ms",
            "topic",
            "partition",
            "offset",
            "value",
            "reason",
            "kafka_key",
            "headers",
        )
    }
    kept.update(kafka_timestamp=F.col("timestamp"), window_length=F.lit(0))
    dead = parsed.where(F.col("reason").isNotNull()).select(
        *[
            kept.get(f.name, F.lit(None).cast(f.dataType)).alias(f.name)
            for f in SCORED_SCHEMA.fields
        ]
    )
    return shaped.unionByName(dead)
