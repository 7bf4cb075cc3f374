"""A query that fails ends the job with one line saying where (micro-batch, partition, offsets)
and why, instead of Spark's StreamingQueryException traceback."""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from pathlib import Path

import pytest

from seqstream.pipeline.errors import SeqstreamError
from seqstream.pipeline.kafka import TopicAdmin, open_producer, raise_for_failures
from seqstream.pipeline.stream import build_query, describe_failure, run_until_stopped

from helpers import settings_for


def test_a_failed_query_names_the_micro_batch_its_offsets_and_the_cause(
    spark, bootstrap_servers: str, admin: TopicAdmin, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    topic = f"failing-{uuid.uuid4().hex[:8]}"
    admin.create_topic(topic, 1)
    producer = open_producer(bootstrap_servers)
    for i in range(10):
        producer.send(topic, json.dumps({"key": "k", "ts": i, "value": 1.0}).encode(), key=b"k")
    raise_for_failures(producer.flush(30), topic)
    producer.close()
    settings = settings_for(tmp_path, topic, bootstrap_servers)
    query, metrics = build_query(spark, settings, bootstrap_servers)
    deadline = time.monotonic() + 120
    while not (tmp_path / "cp" / "commits" / "0").exists():
        assert time.monotonic() < deadline and query.isActive
        time.sleep(0.1)
    admin.delete_topic(topic)  # the offsets the query stands on are gone: data loss
    with pytest.raises(SeqstreamError) as raised:
        run_until_stopped(query, threading.Event(), metrics, checkpoint=tmp_path / "cp")
    message = str(raised.value)
    # the next micro-batch after the committed ones (a batch without data may have run between)
    assert re.match(
        rf"the streaming query failed planning micro-batch \d+ \(after {topic}-0 at 10\): ", message
    )
    # the cause, as the source met it: the data-loss check, or the broker's answer to a lookup
    assert re.search(
        rf"data loss: {topic}-0: partition no longer exists|UnknownTopicOrPartition(Error|Exception)",
        message,
    )
    assert message.endswith("fix the cause and start the job again to re-run that micro-batch")
    assert "Traceback" not in message and "\tat " not in message


def test_a_failure_inside_a_batch_names_its_offset_ranges(tmp_path: Path) -> None:
    offsets = tmp_path / "offsets"
    offsets.mkdir()
    (tmp_path / "commits").mkdir()
    (tmp_path / "commits" / "0").write_text("v1\n{}\n")
    (offsets / "0").write_text('v1\n{"batchWatermarkMs":0}\n{"t":{"0":150,"1":140}}\n')
    (offsets / "1").write_text('v1\n{"batchWatermarkMs":0}\n{"t":{"0":300,"1":290}}\n')
    error = (
        "[STREAM_FAILED] Query terminated with exception: Job aborted due to stage failure: ...\n"
        "org.apache.spark.api.python.PythonException: Traceback (most recent call last):\n"
        '  File "x.py", line 3, in f\n'
        "ValueError: a value no parser expected\n"
        "\tat org.apache.spark.api.python.BasePythonRunner.handle(PythonRunner.scala:1)\n"
    )
    assert describe_failure(error, tmp_path) == (
        "the streaming query failed in micro-batch 1 (offsets t-0 [150, 300), t-1 [140, 290)): "
        "ValueError: a value no parser expected. The checkpoint keeps its place: fix the cause and "
        "start the job again to re-run that micro-batch"
    )
