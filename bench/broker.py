"""The broker a benchmark runs against: ``SEQSTREAM_BOOTSTRAP_SERVERS`` when set, else an
embedded one for the benchmark's lifetime."""

from __future__ import annotations

import os
from contextlib import ExitStack

from seqstream.pipeline.kafka.admin import TopicAdmin
from seqstream.pipeline.kafka.broker import EmbeddedBroker


def bench_broker(stack: ExitStack) -> tuple[str, TopicAdmin]:
    """Bootstrap servers and an admin on them, both closed with ``stack``."""
    bootstrap = (
        os.environ.get("SEQSTREAM_BOOTSTRAP_SERVERS")
        or stack.enter_context(EmbeddedBroker()).bootstrap_servers
    )
    return bootstrap, stack.enter_context(TopicAdmin(bootstrap))
