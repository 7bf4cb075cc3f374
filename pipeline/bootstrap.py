"""Which Kafka a command talks to: the configured servers, else the embedded broker that
``seqstream broker start`` left running, else (where a command may) a new one; an admin client
for it with the configured client settings; and what the stream and the backfill both set up
on it (each connector's options, the output topics)."""

from __future__ import annotations

import logging

from seqstream.pipeline.config import BOOTSTRAP_ENV, Settings
from seqstream.pipeline.errors import BrokerError
from seqstream.pipeline.kafka import SHORT_NAME, kafka_options
from seqstream.pipeline.kafka.admin import TopicAdmin
from seqstream.pipeline.kafka.broker import detached_status, start_detached
from seqstream.pipeline.kafka.broker_process import embedded_broker
from seqstream.pipeline.kafka.connector import jvm_options

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


def connector_options(settings: Settings, bootstrap: str, fmt: str) -> dict[str, str]:
    """A job's Kafka reader and writer options: the client properties, each connector's
    per-request timeout and how long it rides out a silent broker (``kafka.retry_timeout_s``),
    and for seqstream-kafka the chosen client. The user's ``kafka.options`` win."""
    kafka = settings.kafka
    if fmt == SHORT_NAME:
        options = {
            "seqstream.client": kafka.client,
            "seqstream.timeoutSeconds": f"{kafka.connect_timeout_s:g}",
            "seqstream.retryTimeoutSeconds": f"{kafka.retry_timeout_s:g}",
        }
    else:
        options = jvm_options(kafka.connect_timeout_s, kafka.retry_timeout_s)
    return {**options, **kafka_options(bootstrap, kafka.options)}


def create_output_topics(settings: Settings, bootstrap: str) -> None:
    """Kafka clusters often refuse to auto-create topics: make the output topics up front."""
    wanted = [t for t in (settings.stream.output_topic, settings.stream.dead_letter_topic) if t]
    if not wanted:
        return
    with kafka_admin(settings, bootstrap) as admin:
        existing = admin.list_topics()
        for topic in wanted:
            if topic not in existing:
                admin.create_topic(topic, settings.producer.partitions)
