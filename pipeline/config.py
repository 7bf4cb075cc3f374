"""One typed configuration shared by every seqstream job.

Values come from, lowest precedence first: defaults, a YAML file, environment variables
(``SEQSTREAM_<SECTION>__<FIELD>``, plus the short alias ``SEQSTREAM_BOOTSTRAP_SERVERS``), and
explicit overrides (CLI flags). Invalid values fail at start with a message naming the field.
"""

from __future__ import annotations

import os
import re
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from seqstream.pipeline.errors import ConfigError
from seqstream.pipeline.kafka.offsets import EARLIEST, parse_positions

ENV_PREFIX = "SEQSTREAM_"
BOOTSTRAP_ENV = "SEQSTREAM_BOOTSTRAP_SERVERS"
CONFIG_FILE_ENV = "SEQSTREAM_CONFIG"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class KafkaSettings(_Section):
    """How to reach Kafka. No ``bootstrap_servers`` means: use the embedded broker."""

    bootstrap_servers: str | None = None
    client: Literal["auto", "confluent", "kafka-python"] = "auto"
    # Spark connector: Spark's JVM "kafka" format, seqstream's Python source, or whichever exists.
    connector: Literal["auto", "jvm", "python"] = "auto"
    connect_timeout_s: float = Field(10.0, gt=0)
    # A broker that does not answer (a restart, a paused host) is retried this long, each retry
    # logged with its address, before the job fails naming it.
    retry_timeout_s: float = Field(120.0, gt=0)
    # Extra client properties with Kafka's own names (security.protocol, sasl.mechanism, ...).
    options: dict[str, str] = Field(default_factory=dict)
    # Exactly-once output (stream.kafka_delivery): transactional ids and their consumer groups
    # start with this (clusters with ACLs grant transactional ids by prefix).
    transactional_id_prefix: str = Field("seqstream", min_length=1)

    @field_validator("bootstrap_servers")
    @classmethod
    def _host_port_list(cls, value: str | None) -> str | None:
        if value is None or value.strip() == "":
            return None
        for server in value.split(","):
            host, sep, port = server.strip().rpartition(":")
            if not sep or not host or not port.isdigit():
                raise ValueError(f"expected host:port[,host:port...], got {server.strip()!r}")
        return value.strip()


class EventSchema(_Section):
    """Field names of the JSON events: one key, one event time (epoch ms), the features.

    ``key_source`` says which key an event belongs to: the JSON ``key_field`` (``json``) or the
    Kafka message key (``kafka``; then the JSON field may be left out). Either way the two must
    agree where both are there: the Kafka key decides the partition, and a key's history is only
    whole when all its events share one. ``key_mismatch`` says what happens when they differ: a
    dead letter naming both (``dead-letter``), or the event kept under ``key_source``'s key and
    counted (``warn``, ``key_mismatches`` in the batch metrics)."""

    key_field: str = "key"
    time_field: str = "ts"
    features: list[str] = Field(default_factory=lambda: ["value"], min_length=1)
    key_source: Literal["json", "kafka"] = "json"
    key_mismatch: Literal["dead-letter", "warn"] = "dead-letter"

    @model_validator(mode="after")
    def _distinct_names(self) -> EventSchema:
        names = [self.key_field, self.time_field, *self.features]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"field names must be distinct, repeated: {duplicates}")
        return self


class ProducerSettings(_Section):
    topic: str = Field("events", min_length=1)
    partitions: int = Field(4, ge=1)
    rate: float | None = Field(None, gt=0, description="events/s; None = as fast as possible")


class BrokerSettings(_Section):
    """The embedded broker started by ``seqstream broker start``."""

    state_dir: Path = Path(".seqstream")
    port: int | None = Field(None, ge=1, le=65535)
    start_timeout_s: float = Field(60.0, gt=0)


# Spark's interval strings, as Trigger.ProcessingTime and window() read them: "5 seconds",
# "1 minute 30 seconds", "500 milliseconds" (optionally after the word "interval").
_UNITS = "microseconds?|milliseconds?|seconds?|minutes?|hours?|days?|weeks?"
_INTERVAL = re.compile(rf"\s*(interval\s+)?(\d+(\.\d+)?\s*({_UNITS})\s*)+", re.IGNORECASE)
_DEVICE = re.compile(r"cpu|cuda(:\d+)?")


def _interval(value: str, example: str) -> str:
    if not _INTERVAL.fullmatch(value):
        raise ValueError(
            f"must be a duration like {example!r} ({_UNITS.replace('?', '')}), got {value!r}"
        )
    return value


def _starting_offsets(value: str, topics: list[str]) -> str:
    try:
        offsets = parse_positions(value)
        if not isinstance(offsets, str) and any(
            o < EARLIEST for ps in offsets.values() for o in ps.values()
        ):
            raise ValueError(value)
    except ValueError:
        raise ValueError(
            'must be earliest, latest or JSON like {"topic":{"0":23,"1":-2}} (-2 earliest, '
            f"-1 latest), got {value!r}"
        ) from None
    if isinstance(offsets, str):
        return value
    unknown = sorted(set(offsets) - set(topics))
    if unknown:
        raise ValueError(f"names topic(s) {unknown} that stream.topics does not read ({topics})")
    return value


class StreamSettings(_Section):
    """The streaming job (``streaming``); the backfill scores with its model settings."""

    topics: list[str] = Field(default_factory=lambda: ["events"], min_length=1)
    starting_offsets: str = "earliest"
    max_offsets_per_trigger: int | None = Field(None, ge=1)
    trigger_interval: str = "5 seconds"  # or "available-now": process what is there, then stop
    checkpoint: Path | None = None  # required by the job; checked at start
    model: Path | None = None  # None: the bundled demo model
    device: str = "cpu"
    model_batch_size: int = Field(1024, ge=1)
    parquet_path: Path | None = None  # scores, partitioned by date
    output_topic: str | None = None  # scores as JSON, key = event key
    dead_letter_path: Path | None = None
    dead_letter_topic: str | None = None
    # exactly-once: each micro-batch's Kafka records are one transaction, committed once even
    # when a crashed batch is re-run (read them with isolation.level=read_committed); the
    # backfill writes its Kafka output the same way. Needs a broker with transactions.
    kafka_delivery: Literal["at-least-once", "exactly-once"] = "at-least-once"
    # A dead letter's value on Kafka is cut to this many bytes (its length and sha256 kept), so
    # that a huge record cannot make the dead letter too large for the broker.
    dead_letter_max_bytes: int = Field(262_144, ge=1)
    state_ttl_s: float | None = Field(7 * 24 * 3600.0, gt=0)  # idle keys' state expires
    # Keys per Kafka partition share this many state values (state_buckets.py); fixed in the
    # checkpoint at the first run.
    state_buckets: int = Field(16, ge=1, le=65_536)
    max_event_bytes: int = Field(65_536, ge=16)
    # None: the executors' cores, at most the Kafka partitions (a checkpoint keeps its own)
    state_partitions: int | None = Field(None, ge=1)
    metrics_port: int | None = Field(
        None, ge=0, le=65_535
    )  # Prometheus endpoint; 0 picks a free port
    metrics_host: str = "127.0.0.1"  # the address it listens on; "0.0.0.0" for every interface
    mode: Literal["events", "time"] = "events"  # a window per event, or per event-time window
    time_window: str = "10 minutes"  # mode time: the window's length in event time
    time_slide: str | None = None  # mode time: sliding windows start this often (None: tumbling)
    watermark: str = (
        "1 minute"  # mode time: how late an event may be before it is dropped (and counted)
    )

    # "before": a bare number (``--set stream.trigger_interval=5``) gets the duration message,
    # not pydantic's "should be a valid string".
    @field_validator("trigger_interval", mode="before")
    @classmethod
    def _trigger(cls, value: object) -> str:
        text = str(value)
        return text if text == "available-now" else _interval(text, "5 seconds")

    @field_validator("time_window", "watermark", "time_slide", mode="before")
    @classmethod
    def _durations(cls, value: object) -> str | None:
        return None if value is None else _interval(str(value), "10 minutes")

    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        if not _DEVICE.fullmatch(value):
            raise ValueError(f"must be cpu, cuda or cuda:N (a GPU index), got {value!r}")
        return value

    @field_validator("starting_offsets")
    @classmethod
    def _offsets(cls, value: str, info: ValidationInfo) -> str:
        return _starting_offsets(value, info.data.get("topics", []))


class SparkSettings(_Section):
    """Where the jobs' Spark runs when started by ``seqstream`` (under spark-submit, its own
    ``--master`` and ``--conf`` decide; ``conf`` is applied to the session too)."""

    master: str = "local[2]"
    conf: dict[str, str] = Field(default_factory=dict)  # any Spark property
    ui: bool = False  # Spark's web UI (off: a streaming job's UI costs memory and a port)


class BackfillSettings(_Section):
    """The backfill job (jobs/backfill.py). Model, device, model batch size, topics and event
    limits are the ``stream`` section's, so a backfill scores exactly as the stream does."""

    parquet_path: Path | None = None  # its own folder: batch_id partitions here are chunk numbers
    output_topic: str | None = None
    dead_letter_path: Path | None = None
    dead_letter_topic: str | None = None
    chunk_events: int = Field(1_000_000, ge=1)  # offsets per chunk, over all partitions
    # Plan, finished chunks, carried windows. None: a folder per request under .seqstream/backfill
    progress_dir: Path | None = None
    # Carry models: a range that starts after the log's first offset replays each partition from
    # its earliest offset to the range start (nothing written) to rebuild every key's state. A
    # replay of more offsets than this in a partition is refused with what it would take.
    replay_max_events: int = Field(50_000_000, ge=0)


_yaml_file: ContextVar[Path | None] = ContextVar("_yaml_file", default=None)


class _BootstrapAlias(PydanticBaseSettingsSource):
    """Maps the documented short variable SEQSTREAM_BOOTSTRAP_SERVERS onto kafka.bootstrap_servers."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        value = os.environ.get(BOOTSTRAP_ENV)
        return {"kafka": {"bootstrap_servers": value}} if value else {}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid", frozen=True
    )

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    events: EventSchema = Field(default_factory=EventSchema)
    producer: ProducerSettings = Field(default_factory=ProducerSettings)
    broker: BrokerSettings = Field(default_factory=BrokerSettings)
    stream: StreamSettings = Field(default_factory=StreamSettings)
    backfill: BackfillSettings = Field(default_factory=BackfillSettings)
    spark: SparkSettings = Field(default_factory=SparkSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [
            init_settings,
            _BootstrapAlias(settings_cls),
            env_settings,
        ]
        path = _yaml_file.get()
        if path is not None:
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=path))
        return tuple(sources)


def parse_assignments(assignments: list[str]) -> dict[str, Any]:
    """Turn CLI ``section.field=value`` strings into a nested dict; values are YAML scalars."""
    nested: dict[str, Any] = {}
    for item in assignments:
        dotted, sep, raw = item.partition("=")
        if not sep or not dotted:
            raise ConfigError(f"--set expects section.field=value, got {item!r}")
        *parents, leaf = dotted.split(".")
        node = nested
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = yaml.safe_load(raw) if raw else None
    return nested


def load_settings(
    config_file: str | Path | None = None, overrides: dict[str, Any] | None = None
) -> Settings:
    """Build the settings from defaults, YAML (argument or $SEQSTREAM_CONFIG), env and overrides."""
    path = config_file or os.environ.get(CONFIG_FILE_ENV)
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        try:
            yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {path} is not valid YAML: {exc}") from exc
    token = _yaml_file.set(path)
    try:
        return Settings(**(overrides or {}))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}"
            for err in exc.errors()
        )
        source = f" (from {path})" if path else ""
        raise ConfigError(f"invalid configuration{source}: {problems}") from None
    finally:
        _yaml_file.reset(token)
