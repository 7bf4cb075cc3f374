"""Shared fixtures, registered for every test module by ``pytest_plugins`` in conftest.py:
Apache Kafka, a real local SparkSession (with Spark's Kafka connector that set-up resolved), the
shared NAB data, a synthetic topic with its log, and an independent reference scorer.

The broker is the embedded Apache Kafka (one KRaft node for the session) unless
SEQSTREAM_BOOTSTRAP_SERVERS names another Kafka, in which case every test runs against that
cluster instead (topics get unique names and are deleted).
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from seqstream.model.artifact import DEMO_MODEL_DIR
from seqstream.pipeline.config import BOOTSTRAP_ENV, EventSchema
from seqstream.pipeline.kafka import EmbeddedBroker, TopicAdmin, open_producer
from seqstream.pipeline.sources.producer import produce_messages
from seqstream.pipeline.sources.replay import SyntheticSpec, synthetic_stream
from seqstream.pipeline.spark import local_spark

from helpers import SHARED_NAB, log_of, standalone_loader


@pytest.fixture(scope="session")
def bootstrap_servers() -> Iterator[str]:
    external = os.environ.get(BOOTSTRAP_ENV)
    if external:
        yield external
        return
    with EmbeddedBroker() as broker:
        yield broker.bootstrap_servers


@pytest.fixture(scope="session")
def admin(bootstrap_servers: str) -> Iterator[TopicAdmin]:
    with TopicAdmin(bootstrap_servers) as topic_admin:
        yield topic_admin


@pytest.fixture
def new_topic(admin: TopicAdmin) -> Iterator[Callable[..., str]]:
    """Factory: a fresh topic with N partitions, deleted after the test."""
    created: list[str] = []

    def make(partitions: int = 3, prefix: str = "test") -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:10]}"
        admin.create_topic(name, partitions)
        created.append(name)
        return name

    yield make
    for name in created:
        admin.delete_topic(name)


@pytest.fixture(scope="session")
def spark():  # type: ignore[no-untyped-def]
    session = local_spark("seqstream-tests")
    yield session
    session.stop()


@pytest.fixture(scope="session")
def nab_dir() -> Path:
    """The shared NAB data; CI has it beside the clone, so there it must exist."""
    if not SHARED_NAB.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"CI must provide the shared NAB data at {SHARED_NAB}")
        pytest.skip(f"shared NAB data not found at {SHARED_NAB}")
    return SHARED_NAB


@pytest.fixture(scope="session")
def reference_scorer():  # type: ignore[no-untyped-def]
    """docs/models.md's torch-only loader: no seqstream code computes the expected scores."""
    namespace: dict = {}
    exec(standalone_loader(), namespace)  # noqa: S102 - our own docs' snippet
    config, lstm, head = namespace["load_seqstream_model"](str(DEMO_MODEL_DIR))
    return lambda events: namespace["forecast_score"](config, lstm, head, events)


@pytest.fixture(scope="session")
def stream_topic(bootstrap_servers, admin: TopicAdmin):  # type: ignore[no-untyped-def]
    """Synthetic events on the demo model's scale, a few late and ~3% malformed."""
    topic = f"stream-{int(time.time() * 1000)}"
    admin.create_topic(topic, 3)
    spec = SyntheticSpec(keys=6, events_per_key=120, late_rate=0.05, malformed_rate=0.03, seed=5)
    messages = synthetic_stream(spec, EventSchema()).messages
    producer = open_producer(bootstrap_servers)
    produce_messages(messages, producer, topic)
    producer.close()
    yield topic, log_of(bootstrap_servers, topic, admin, messages)
    admin.delete_topic(topic)


class TopicInHalves:
    """A synthetic topic filled in two steps, so that a test can stop a query exactly at the end of
    the first half (no race with the query's pace) and go on with the second."""

    def __init__(self, bootstrap: str, admin: TopicAdmin, topic: str, messages: list) -> None:  # type: ignore[type-arg]
        self.bootstrap, self.admin, self.topic, self.messages = bootstrap, admin, topic, messages
        self.first = len(messages) // 2
        self._send(messages[: self.first])

    def _send(self, messages: list) -> None:  # type: ignore[type-arg]
        producer = open_producer(self.bootstrap)
        produce_messages(messages, producer, self.topic)
        producer.close()

    def produce_rest(self) -> dict[tuple[int, int], object]:
        """Send the second half; return the whole topic's log ((partition, offset) -> Message)."""
        self._send(self.messages[self.first :])
        return log_of(self.bootstrap, self.topic, self.admin, self.messages)


@pytest.fixture
def topic_in_halves(bootstrap_servers, admin: TopicAdmin):  # type: ignore[no-untyped-def]
    """``stream_topic``'s events, of which only the first half is in the topic at first."""
    topic = f"halves-{int(time.time() * 1000)}"
    admin.create_topic(topic, 3)
    spec = SyntheticSpec(keys=6, events_per_key=120, late_rate=0.05, malformed_rate=0.03, seed=5)
    yield TopicInHalves(
        bootstrap_servers, admin, topic, synthetic_stream(spec, EventSchema()).messages
    )
    admin.delete_topic(topic)
