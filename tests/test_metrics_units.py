"""Batch metrics from Spark's own progress report (built from its JSON), without running a query."""

from __future__ import annotations

from typing import Any

from pyspark.sql.streaming.listener import StreamingQueryProgress

from seqstream.pipeline.sinks.metrics import INPUT, OUTPUT, batch_metrics


def operator(name: str, rows: int = 0, dropped: int = 0) -> dict[str, Any]:
    return {
        "operatorName": name,
        "numRowsTotal": rows,
        "numRowsUpdated": 0,
        "numRowsRemoved": 0,
        "allUpdatesTimeMs": 0,
        "allRemovalsTimeMs": 0,
        "commitTimeMs": 0,
        "memoryUsedBytes": 0,
        "numRowsDroppedByWatermark": dropped,
        "numShufflePartitions": 4,
        "numStateStoreInstances": 4,
    }


def progress(
    observed: dict[str, dict[str, Any]], state_rows: int = 0, *operators: dict[str, Any]
) -> StreamingQueryProgress:
    states = list(operators) or [operator("transformWithStateInPandasExec", state_rows)]
    return StreamingQueryProgress.fromJson(
        {
            "id": "00000000-0000-0000-0000-000000000001",
            "runId": "00000000-0000-0000-0000-000000000002",
            "name": "seqstream",
            "timestamp": "2026-11-24T10:00:00.000Z",
            "batchId": 7,
            "batchDuration": 2_000,
            "stateOperators": states,
            "sources": [],
            "sink": {"description": "foreachBatch", "numOutputRows": -1},
            "observedMetrics": observed,
        }
    )


def test_a_batch_accounts_for_every_event() -> None:
    start_ms = 1_795_514_400_000  # 2026-11-24T10:00:00Z, the batch's start
    report = progress(
        {
            INPUT: {"events_in": 100},
            OUTPUT: {
                "dead_lettered": 3,
                "windows": 97,
                "scored": 90,
                "key_mismatches": 2,
                "scoring_s": 0.5,
                "model_batches": 2.0,
                "model_batch_max": 64,
                "timestamp_ms_quantiles": [start_ms - 1_000, start_ms],
                "state_keys": [{"topic": "t", "partition": 0, "state_keys": 12}],
            },
        },
        state_rows=3,  # buckets of keys, not keys
    )
    m = batch_metrics(report)
    assert m is not None
    assert (m.batch_id, m.events_in, m.dead_lettered, m.windows, m.scored) == (7, 100, 3, 97, 90)
    assert (
        m.not_yet_scoreable == 7 and m.events_in == m.dead_lettered + m.scored + m.not_yet_scoreable
    )
    assert (m.keys_in_state, m.windows_in_state, m.late, m.key_mismatches) == (12, None, 0, 2)
    assert m.windowed == m.windows == 97
    assert (m.model_batches, m.model_batch_mean, m.model_batch_max) == (2, 45.0, 64)
    # latency: from a record's Kafka time to the end of the batch that wrote its score
    assert (m.latency_p50_ms, m.latency_p99_ms, m.duration_s) == (2_000, 3_000, 2.0)


def test_a_batch_that_read_and_emitted_nothing_has_no_metrics() -> None:
    empty = {
        INPUT: {"events_in": 0},
        OUTPUT: {
            "dead_lettered": 0,
            "windows": 0,
            "scored": 0,
            "key_mismatches": 0,
            "scoring_s": 0.0,
            "model_batches": 0.0,
            "model_batch_max": None,
            "timestamp_ms_quantiles": None,
        },
    }
    assert batch_metrics(progress(empty)) is None
    assert batch_metrics(progress({})) is None


def test_the_prometheus_endpoint_listens_on_loopback_unless_told_otherwise() -> None:
    from seqstream.pipeline.sinks.metrics import MetricsListener

    for host, expected in ((None, "127.0.0.1"), ("0.0.0.0", "0.0.0.0")):
        listener = MetricsListener("q", 0) if host is None else MetricsListener("q", 0, host)
        assert listener.prometheus is not None
        try:
            assert listener.prometheus.server.server_address[0] == expected
        finally:
            listener.close()


def test_keys_in_state_adds_up_each_partitions_last_report() -> None:
    def batch(state_keys: list[dict[str, Any]]) -> StreamingQueryProgress:
        out = {
            "dead_lettered": 0,
            "windows": 5,
            "scored": 5,
            "key_mismatches": 0,
            "scoring_s": 0.1,
            "model_batches": 1.0,
            "model_batch_max": 5,
            "timestamp_ms_quantiles": None,
            "state_keys": state_keys,
        }
        # Spark's state rows are buckets of keys here, not keys: not what is reported.
        return progress({INPUT: {"events_in": 5}, OUTPUT: out}, state_rows=3)

    held: dict[tuple[str, int], int] = {}
    first = batch(
        [
            {"topic": "t", "partition": 0, "state_keys": 40},
            {"topic": "t", "partition": 1, "state_keys": 25},
        ]
    )
    assert batch_metrics(first, held).keys_in_state == 65  # type: ignore[union-attr]
    # A batch that read partition 1 only: partition 0 holds what it last reported.
    second = batch([{"topic": "t", "partition": 1, "state_keys": 30}])
    assert batch_metrics(second, held).keys_in_state == 70  # type: ignore[union-attr]
    assert held == {("t", 0): 40, ("t", 1): 30}


def test_event_time_mode_counts_late_events_and_open_windows_under_their_own_names() -> None:
    """The late-event step drops one row per event; the window aggregation holds windows."""
    out = {
        "dead_lettered": 3,
        "windows": 16,  # windows the watermark closed this batch
        "scored": 15,
        "key_mismatches": 0,
        "scoring_s": 0.1,
        "model_batches": 1.0,
        "model_batch_max": 15,
        "timestamp_ms_quantiles": None,
        "state_keys": [],
    }
    report = progress(
        {INPUT: {"events_in": 500}, OUTPUT: out},
        0,
        operator("dedupe", rows=300, dropped=120),
        operator("stateStoreSave", rows=40),
    )
    m = batch_metrics(report)
    assert m is not None
    assert (m.late, m.windowed, m.windows, m.scored, m.not_yet_scoreable) == (120, 377, 16, 15, 1)
    assert (m.windows_in_state, m.keys_in_state) == (40, None)
