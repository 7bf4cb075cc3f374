"""Session fixtures: a real Kafka-compatible broker and a real local SparkSession.

The broker is the embedded Tansu unless SEQSTREAM_BOOTSTRAP_SERVERS names a real Kafka, in which
case every test runs against that cluster instead (topics get unique names and are deleted).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pipeline.broker import EmbeddedBroker
from pipeline.config import BOOTSTRAP_ENV
from pipeline.topics import TopicAdmin

REPO = Path(__file__).resolve().parents[1]
SHARED_NAB = REPO.parent / "shared" / "data" / "nab"


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
    from pipeline.spark import local_spark

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
