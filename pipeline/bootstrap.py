"""Which Kafka a command talks to: the configured servers, else the embedded broker that
``seqstream broker start`` left running, else (where a command may) a new one; and an admin
client for it with the configured client settings."""

from __future__ import annotations

import logging

from seqstream.pipeline.config import BOOTSTRAP_ENV, Settings
from seqstream.pipeline.errors import BrokerError
from seqstream.pipeline.kafka.admin import TopicAdmin
from seqstream.pipeline.kafka.broker import detached_status, embedded_broker, start_detached

log = logging.getLogger(__name__)


def resolve_bootstrap(settings: Settings, *, start_if_missing: bool = False) -> str:
    """Configured servers, else the running embedded broker, else (if allowed) a new one."""
    if settings.kafka.bootstrap_servers:
        return settings.kafka.bootstrap_servers
    state_dir = settings.broker.state_dir
    running = detached_status(state_dir)
    if running is not None:
        return running.bootstrap_servers
    if not start_if_missing:
        raise BrokerError(
            "no Kafka configured and no embedded broker running: run `seqstream broker start`, "
            f"or set {BOOTSTRAP_ENV} (kafka.bootstrap_servers) to your cluster"
        )
    info, _ = start_detached(
        state_dir, port=settings.broker.port, start_timeout_s=settings.broker.start_timeout_s
    )
    log.info(
        "started the embedded broker (%s) on %s (stop it with `seqstream broker stop`)",
        info.description,
        info.bootstrap_servers,
    )
    return info.bootstrap_servers


def kafka_admin(settings: Settings, bootstrap: str) -> TopicAdmin:
    """An admin client for ``bootstrap`` with the configured client, timeout and properties."""
    kafka = settings.kafka
    return TopicAdmin(
        bootstrap, client=kafka.client, timeout_s=kafka.connect_timeout_s, options=kafka.options
    )


def describe_kafka(admin: TopicAdmin) -> str:
    """Which Kafka ``admin`` talks to, for start-up lines: ``Apache Kafka 4.4.0 (embedded) at
    127.0.0.1:9092``, or ``Kafka cluster <id> at <servers>``."""
    cluster = admin.cluster_id()
    embedded = embedded_broker(cluster)
    what = f"{embedded} (embedded)" if embedded else f"Kafka cluster {cluster}"
    return f"{what} at {admin.bootstrap_servers}"
