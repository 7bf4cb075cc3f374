"""A broker that goes away is ridden out: a paused broker (longer than every client timeout) and
one SIGKILLed and started again on its storage cost the stream nothing, through either Spark
connector, and one gone for good ends the job, after kafka.retry_timeout_s, with a message naming
its address and what was tried. Each test runs its own broker."""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from seqstream.pipeline.config import EventSchema, Settings
from seqstream.pipeline.errors import SeqstreamError
from seqstream.pipeline.kafka import EmbeddedBroker, TopicAdmin, open_producer
from seqstream.pipeline.sources.producer import produce_messages
from seqstream.pipeline.sources.replay import SyntheticSpec, synthetic_stream
from seqstream.pipeline.stream import build_query, run_until_accounted, run_until_stopped

from helpers import CONNECTORS, MIN_LENGTH, settings_for

KEYS, PER_KEY = 4, 100


def _topic_with_events(bootstrap: str) -> str:
    topic = f"outage-{uuid.uuid4().hex[:8]}"
    with TopicAdmin(bootstrap) as admin:
        admin.create_topic(topic, 2)
    producer = open_producer(bootstrap)
    messages = synthetic_stream(
        SyntheticSpec(keys=KEYS, events_per_key=PER_KEY, seed=3), EventSchema()
    ).messages
    produce_messages(messages, producer, topic)
    producer.close()
    return topic


def _settings(
    tmp_path: Path, topic: str, bootstrap: str, retry_timeout_s: float, connector: str = "auto"
) -> Settings:
    settings = settings_for(tmp_path, topic, bootstrap, connector, max_offsets_per_trigger=50)
    kafka = settings.kafka.model_copy(
        update={"connect_timeout_s": 2.0, "retry_timeout_s": retry_timeout_s}
    )
    return settings.model_copy(update={"kafka": kafka})


def _wait_for_commit(checkpoint: Path, batch: int, query) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + 120
    while not (checkpoint / "commits" / str(batch)).exists():
        assert query.isActive and time.monotonic() < deadline
        time.sleep(0.1)


def test_a_paused_broker_is_ridden_out_with_nothing_lost_or_repeated(spark, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with EmbeddedBroker() as broker:
        bootstrap = broker.bootstrap_servers
        topic = _topic_with_events(bootstrap)
        settings = _settings(tmp_path, topic, bootstrap, retry_timeout_s=90)
        query, metrics = build_query(spark, settings, bootstrap)
        _wait_for_commit(tmp_path / "cp", 1, query)
        assert broker.info is not None
        os.kill(broker.info.pid, signal.SIGSTOP)  # no answer at all, for longer than any timeout
        try:
            time.sleep(8)
        finally:
            os.kill(broker.info.pid, signal.SIGCONT)
        run_until_accounted(
            query, metrics, KEYS * PER_KEY, timeout_s=240, checkpoint=tmp_path / "cp"
        )
    assert sum(m.events_in for m in metrics.history) == KEYS * PER_KEY
    rows = pq.read_table(tmp_path / "scores").to_pylist()
    positions = [(r["partition"], r["offset"]) for r in rows]
    assert len(positions) == len(set(positions)) == KEYS * (PER_KEY - (MIN_LENGTH - 1))


@pytest.mark.parametrize("connector", CONNECTORS)
def test_a_broker_killed_and_started_again_is_ridden_out_with_every_event_once(
    spark, tmp_path: Path, connector: str
) -> None:  # type: ignore[no-untyped-def]
    """SIGKILL the broker in the middle of the run (its log as the crash left it), start it
    again on the same storage 3 s later, and send more events once it is back."""
    with EmbeddedBroker(storage=tmp_path / "kafka") as broker:
        bootstrap = broker.bootstrap_servers
        topic = _topic_with_events(bootstrap)
        settings = _settings(tmp_path, topic, bootstrap, retry_timeout_s=90, connector=connector)
        query, metrics = build_query(spark, settings, bootstrap)
        _wait_for_commit(tmp_path / "cp", 1, query)
        broker.kill()
        time.sleep(3)
        broker.start()
        assert broker.bootstrap_servers == bootstrap
        more = synthetic_stream(
            SyntheticSpec(keys=KEYS, events_per_key=PER_KEY, seed=4), EventSchema()
        ).messages
        producer = open_producer(bootstrap)
        produce_messages(more, producer, topic)
        producer.close()
        run_until_accounted(
            query, metrics, 2 * KEYS * PER_KEY, timeout_s=240, checkpoint=tmp_path / "cp"
        )
        with TopicAdmin(bootstrap) as admin:
            assert sum(admin.end_offsets(topic).values()) == 2 * KEYS * PER_KEY
    assert sum(m.events_in for m in metrics.history) == 2 * KEYS * PER_KEY
    rows = pq.read_table(tmp_path / "scores").to_pylist()
    positions = [(r["partition"], r["offset"]) for r in rows]
    assert len(positions) == len(set(positions)) == KEYS * (2 * PER_KEY - (MIN_LENGTH - 1))


def test_a_broker_gone_for_good_fails_the_job_naming_it(spark, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with EmbeddedBroker() as broker:
        bootstrap = broker.bootstrap_servers
        topic = _topic_with_events(bootstrap)
        query, metrics = build_query(
            spark, _settings(tmp_path, topic, bootstrap, retry_timeout_s=6), bootstrap
        )
        _wait_for_commit(tmp_path / "cp", 0, query)
    started = time.monotonic()  # the broker stopped when its block ended
    with pytest.raises(SeqstreamError) as raised:
        run_until_stopped(query, threading.Event(), metrics, checkpoint=tmp_path / "cp")
    message = str(raised.value)
    assert f"Kafka at {bootstrap} did not answer" in message
    # seqstream-kafka counts its attempts; Spark's connector retries inside its clients
    assert "for 6s (" in message and "; kafka.retry_timeout_s)" in message
    assert time.monotonic() - started < 6 + 90  # the retries' time, plus Spark's own reaction
