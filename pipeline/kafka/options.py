"""Options of the ``seqstream-kafka`` Spark data source, with the names and meaning of Spark's own
Kafka connector (spark-sql-kafka-0-10), parsed and checked once at query start.

Offsets specs follow Spark: ``earliest``, ``latest`` or ``{"topic": {"0": 23, "1": -2}}``
(-2 = earliest, -1 = latest); timestamps are epoch milliseconds, globally
(``startingTimestamp``) or per partition (``startingOffsetsByTimestamp``).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from seqstream.pipeline.errors import OptionError
from seqstream.pipeline.kafka.offsets import parse_partition_json

Strategy = Literal["assign", "subscribe", "subscribepattern"]
STRATEGIES: tuple[Strategy, ...] = ("assign", "subscribe", "subscribepattern")

# Every option a read accepts (lower case; Spark passes option names case-insensitively).
_READ_OPTIONS = {
    "kafka.bootstrap.servers",
    "assign",
    "subscribe",
    "subscribepattern",
    "startingoffsets",
    "endingoffsets",
    "startingtimestamp",
    "endingtimestamp",
    "startingoffsetsbytimestamp",
    "endingoffsetsbytimestamp",
    "maxoffsetspertrigger",
    "minoffsetspertrigger",
    "maxtriggerdelay",
    "minpartitions",
    "failondataloss",
    "includeheaders",
    "kafkaconsumer.polltimeoutms",
    "fetchoffset.numretries",
    "fetchoffset.retryintervalms",
    "groupidprefix",
    "startingoffsetsbytimestampstrategy",
    "seqstream.client",
    "seqstream.timeoutseconds",
    "seqstream.retrytimeoutseconds",
}
_WRITE_OPTIONS = {
    "kafka.bootstrap.servers",
    "topic",
    "includeheaders",
    "seqstream.client",
    "seqstream.timeoutseconds",
    "seqstream.retrytimeoutseconds",
}
# Options Spark itself passes to every source or sink; accepted and left to Spark.
_SPARK_GENERIC = {"checkpointlocation", "path"}
# Consumer/producer properties that seqstream sets itself; Spark rejects them too. (Spark's
# ``kafka.group.id`` is an option of its own: the readers' group id, nothing for a writer.)
_RESERVED_KAFKA = {
    "kafka.auto.offset.reset",
    "kafka.enable.auto.commit",
    "kafka.key.deserializer",
    "kafka.value.deserializer",
    "kafka.key.serializer",
    "kafka.value.serializer",
    "kafka.interceptor.classes",
}


@dataclass(frozen=True)
class OffsetSpec:
    """Where a read starts or ends: ``kind`` is earliest/latest/offsets/timestamp/timestamps."""

    kind: Literal["earliest", "latest", "offsets", "timestamp", "timestamps"]
    offsets: dict[str, dict[int, int]] = field(default_factory=dict)  # offsets or timestamps
    timestamp: int | None = None


@dataclass(frozen=True)
class ClientSettings:
    bootstrap: str
    properties: dict[str, str]  # kafka.* passthrough, without the "kafka." prefix
    client: str = "auto"
    timeout_s: float = 30.0  # one request: no answer within it is a failed attempt
    retry_timeout_s: float = 120.0  # how long failed attempts are retried before the query fails


@dataclass(frozen=True)
class SourceOptions:
    kafka: ClientSettings
    strategy: Strategy
    topics: tuple[str, ...] = ()  # subscribe
    pattern: str | None = None  # subscribePattern
    assigned: dict[str, tuple[int, ...]] = field(default_factory=dict)  # assign
    starting: OffsetSpec = OffsetSpec("latest")
    ending: OffsetSpec = OffsetSpec("latest")
    max_offsets_per_trigger: int | None = None
    min_offsets_per_trigger: int | None = None
    max_trigger_delay_ms: int = 15 * 60 * 1000
    min_partitions: int | None = None
    fail_on_data_loss: bool = True
    include_headers: bool = False
    # The consumers' group id (kafka.group.id, else groupIdPrefix plus a unique suffix). The
    # readers assign partitions and never commit, so it only names them to the broker (for
    # group-based authorization or quotas).
    group_id: str | None = None
    poll_timeout_s: float | None = (
        None  # kafkaConsumer.pollTimeoutMs: one read's poll, else timeout_s
    )
    offset_retries: int | None = (
        None  # fetchOffset.numRetries: offset lookups retried at most this often
    )
    offset_retry_interval_s: float | None = None  # fetchOffset.retryIntervalMs
    # startingOffsetsByTimestampStrategy: a start timestamp with no record at or after it in a
    # partition fails the query ("error", Spark's default) or starts that partition at its end.
    timestamp_strategy: Literal["error", "latest"] = "error"

    @property
    def read_timeout_s(self) -> float:
        return self.poll_timeout_s or self.kafka.timeout_s

    def matches(self, topic: str) -> bool:
        if self.strategy == "subscribe":
            return topic in self.topics
        if self.strategy == "subscribepattern":
            return re.fullmatch(self.pattern or "", topic) is not None
        return topic in self.assigned


@dataclass(frozen=True)
class SinkOptions:
    kafka: ClientSettings
    topic: str | None = None
    include_headers: bool = False


def _lower(options: Mapping[str, str]) -> dict[str, str]:
    return {str(k).lower(): str(v) for k, v in options.items()}


def _client(opts: dict[str, str], allowed: set[str]) -> ClientSettings:
    unknown = sorted(
        k for k in opts if k not in allowed | _SPARK_GENERIC and not k.startswith("kafka.")
    )
    if unknown:
        raise OptionError(f"unknown option(s) {unknown}; supported: {sorted(allowed)} and kafka.*")
    reserved = sorted(set(opts) & _RESERVED_KAFKA)
    if reserved:
        raise OptionError(
            f"option(s) {reserved} are set by seqstream-kafka itself and cannot be given"
        )
    bootstrap = opts.get("kafka.bootstrap.servers", "").strip()
    if not bootstrap:
        raise OptionError("option 'kafka.bootstrap.servers' is required")
    properties = {
        k[len("kafka.") :]: v
        for k, v in opts.items()
        if k.startswith("kafka.") and k not in ("kafka.bootstrap.servers", "kafka.group.id")
    }
    client = opts.get("seqstream.client", "auto")
    if client not in ("auto", "confluent", "kafka-python"):
        raise OptionError(
            f"option 'seqstream.client' must be auto, confluent or kafka-python, got {client!r}"
        )
    timeout = _positive_float(opts, "seqstream.timeoutseconds", 30.0)
    retry_timeout = _positive_float(opts, "seqstream.retrytimeoutseconds", 120.0)
    return ClientSettings(bootstrap, properties, client, timeout, retry_timeout)


def _positive_float(opts: dict[str, str], name: str, default: float) -> float:
    raw = opts.get(name)
    try:
        value = default if raw is None else float(raw)
    except ValueError:
        raise OptionError(f"option '{name}' must be a number, got {raw!r}") from None
    if value <= 0:
        raise OptionError(f"option '{name}' must be > 0, got {raw!r}")
    return value


def _positive_int(opts: dict[str, str], name: str) -> int | None:
    raw = opts.get(name)
    if raw is None:
        return None
    if not raw.strip().isdigit() or int(raw) < 1:
        raise OptionError(f"option '{name}' must be a positive integer, got {raw!r}")
    return int(raw)


def _non_negative_int(opts: dict[str, str], name: str) -> int | None:
    raw = opts.get(name)
    if raw is None:
        return None
    if not raw.strip().isdigit():
        raise OptionError(f"option '{name}' must be an integer >= 0, got {raw!r}")
    return int(raw)


def _bool(opts: dict[str, str], name: str, default: bool) -> bool:
    raw = opts.get(name)
    if raw is None:
        return default
    if raw.lower() not in ("true", "false"):
        raise OptionError(f"option '{name}' must be true or false, got {raw!r}")
    return raw.lower() == "true"


def _duration_ms(raw: str, name: str) -> int:
    """Spark's duration strings: '15m', '30s', '500ms', '1h', or plain milliseconds."""
    match = re.fullmatch(r"\s*(\d+)\s*(ms|s|m|min|h|d)?\s*", raw.lower())
    if not match:
        raise OptionError(f"option '{name}' must be a duration like 30s, 15m or 500ms, got {raw!r}")
    scale = {
        None: 1,
        "ms": 1,
        "s": 1000,
        "m": 60_000,
        "min": 60_000,
        "h": 3_600_000,
        "d": 86_400_000,
    }
    return int(match.group(1)) * scale[match.group(2)]


def _partition_json(raw: str, name: str) -> dict[str, dict[int, int]]:
    try:
        return parse_partition_json(raw)
    except ValueError:
        raise OptionError(
            f'option \'{name}\' must be JSON like {{"topic":{{"0":23,"1":-2}}}}, got {raw!r}'
        ) from None


def _offset_spec(opts: dict[str, str], side: str, *, streaming: bool) -> OffsetSpec:
    names = {
        f"{side}offsets": "offsets",
        f"{side}timestamp": "timestamp",
        f"{side}offsetsbytimestamp": "timestamps",
    }
    given = [n for n in names if n in opts]
    if len(given) > 1:
        raise OptionError(f"options {given} contradict each other: give only one {side} position")
    default = OffsetSpec("latest") if (side == "ending" or streaming) else OffsetSpec("earliest")
    if not given:
        return default
    name = given[0]
    raw = opts[name]
    if names[name] == "timestamp":
        if not raw.strip().lstrip("-").isdigit():
            raise OptionError(f"option '{name}' must be epoch milliseconds, got {raw!r}")
        return OffsetSpec("timestamp", timestamp=int(raw))
    if names[name] == "timestamps":
        return OffsetSpec("timestamps", offsets=_partition_json(raw, name))
    if raw.strip().lower() == "earliest":
        return OffsetSpec("earliest")
    if raw.strip().lower() == "latest":
        return OffsetSpec("latest")
    return OffsetSpec("offsets", offsets=_partition_json(raw, name))


def _subscription(
    opts: dict[str, str],
) -> tuple[Strategy, tuple[str, ...], str | None, dict[str, tuple[int, ...]]]:
    """What a read reads: exactly one of assign, subscribe and subscribePattern, checked.
    Returns (strategy, topics, pattern, assigned), those of the other strategies empty."""
    strategies: list[Strategy] = [s for s in STRATEGIES if s in opts]
    if len(strategies) != 1:
        raise OptionError(
            f"exactly one of 'assign', 'subscribe', 'subscribePattern' must be given, got {strategies or 'none'}"
        )
    strategy = strategies[0]
    topics: tuple[str, ...] = ()
    assigned: dict[str, tuple[int, ...]] = {}
    pattern = None
    if strategy == "subscribe":
        topics = tuple(t.strip() for t in opts["subscribe"].split(",") if t.strip())
        if not topics:
            raise OptionError("option 'subscribe' names no topic")
    elif strategy == "subscribepattern":
        pattern = opts["subscribepattern"]
        try:
            re.compile(pattern)
        except re.error as exc:
            raise OptionError(f"option 'subscribePattern' is not a valid regex: {exc}") from None
    else:
        try:
            parsed = json.loads(opts["assign"])
            assigned = {str(t): tuple(int(p) for p in ps) for t, ps in parsed.items()}
        except (ValueError, TypeError, AttributeError):
            raise OptionError(
                f"option 'assign' must be JSON like {{\"topic\":[0,1]}}, got {opts['assign']!r}"
            ) from None
    return strategy, topics, pattern, assigned


def parse_source_options(options: Mapping[str, str], *, streaming: bool) -> SourceOptions:
    """Validate everything a read needs, naming each offending option."""
    opts = _lower(options)
    kafka = _client(opts, _READ_OPTIONS)
    strategy, topics, pattern, assigned = _subscription(opts)
    starting = _offset_spec(opts, "starting", streaming=streaming)
    ending = _offset_spec(opts, "ending", streaming=streaming)
    ending_given = sorted(k for k in opts if k.startswith("ending"))
    trigger_given = sorted(
        k for k in opts if k in ("maxoffsetspertrigger", "minoffsetspertrigger", "maxtriggerdelay")
    )
    if streaming and ending_given:
        raise OptionError(
            f"option(s) {ending_given} are not valid for streaming reads (a stream has no end)"
        )
    if not streaming:
        if trigger_given:
            raise OptionError(f"option(s) {trigger_given} only apply to streaming reads")
        if starting.kind == "latest" or -1 in _values(starting):
            raise OptionError("startingOffsets cannot be latest (-1) for a batch read")
        if ending.kind == "earliest" or -2 in _values(ending):
            raise OptionError("endingOffsets cannot be earliest (-2) for a batch read")

    max_per = _positive_int(opts, "maxoffsetspertrigger")
    min_per = _positive_int(opts, "minoffsetspertrigger")
    if max_per is not None and min_per is not None and min_per > max_per:
        raise OptionError(
            f"minOffsetsPerTrigger ({min_per}) is larger than maxOffsetsPerTrigger ({max_per})"
        )
    if "maxtriggerdelay" in opts and min_per is None:
        raise OptionError("option 'maxTriggerDelay' needs 'minOffsetsPerTrigger'")
    delay = (
        _duration_ms(opts["maxtriggerdelay"], "maxTriggerDelay")
        if "maxtriggerdelay" in opts
        else 15 * 60 * 1000
    )
    return SourceOptions(
        kafka=kafka,
        strategy=strategy,
        topics=topics,
        pattern=pattern,
        assigned=assigned,
        starting=starting,
        ending=ending,
        max_offsets_per_trigger=max_per,
        min_offsets_per_trigger=min_per,
        max_trigger_delay_ms=delay,
        min_partitions=_positive_int(opts, "minpartitions"),
        fail_on_data_loss=_bool(opts, "failondataloss", True),
        include_headers=_bool(opts, "includeheaders", False),
        group_id=_group_id(opts),
        poll_timeout_s=_milliseconds(opts, "kafkaconsumer.polltimeoutms", positive=True),
        offset_retries=_non_negative_int(opts, "fetchoffset.numretries"),
        offset_retry_interval_s=_milliseconds(opts, "fetchoffset.retryintervalms"),
        timestamp_strategy=_timestamp_strategy(opts),
    )


def _group_id(opts: dict[str, str]) -> str | None:
    """Spark's rule: ``kafka.group.id`` if given, else ``groupIdPrefix`` plus a unique suffix."""
    if opts.get("kafka.group.id", "").strip():
        return opts["kafka.group.id"].strip()
    if "kafka.group.id" in opts:
        raise OptionError("option 'kafka.group.id' is empty")
    prefix = opts.get("groupidprefix")
    return None if prefix is None else f"{prefix}-{uuid.uuid4()}"


def _milliseconds(opts: dict[str, str], name: str, *, positive: bool = False) -> float | None:
    value = _non_negative_int(opts, name)
    if positive and value == 0:
        raise OptionError(f"option '{name}' must be > 0, got {opts[name]!r}")
    return None if value is None else value / 1000


def _timestamp_strategy(opts: dict[str, str]) -> Literal["error", "latest"]:
    raw = opts.get("startingoffsetsbytimestampstrategy", "error").strip().lower()
    if raw not in ("error", "latest"):
        raise OptionError(
            "option 'startingOffsetsByTimestampStrategy' must be error or latest, got "
            f"{opts['startingoffsetsbytimestampstrategy']!r}"
        )
    return "latest" if raw == "latest" else "error"


def _values(spec: OffsetSpec) -> set[int]:
    return (
        {v for partitions in spec.offsets.values() for v in partitions.values()}
        if spec.kind == "offsets"
        else set()
    )


def parse_sink_options(options: Mapping[str, str]) -> SinkOptions:
    opts = _lower(options)
    return SinkOptions(
        _client(opts, _WRITE_OPTIONS), opts.get("topic"), _bool(opts, "includeheaders", False)
    )
