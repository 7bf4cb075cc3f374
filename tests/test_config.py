from pathlib import Path

import pytest

from seqstream.pipeline.config import load_settings, parse_assignments
from seqstream.pipeline.errors import ConfigError


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(__import__("os").environ):
        if name.startswith("SEQSTREAM_"):
            monkeypatch.delenv(name)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "seqstream.yaml"
    path.write_text(text)
    return path


def test_defaults_use_the_embedded_broker() -> None:
    settings = load_settings()
    assert settings.kafka.bootstrap_servers is None
    assert settings.events.features == ["value"]
    assert settings.producer.partitions == 4


def test_precedence_yaml_then_env_then_overrides(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, "producer:\n  topic: from-yaml\n  partitions: 7\n  rate: 5\n")
    monkeypatch.setenv("SEQSTREAM_PRODUCER__PARTITIONS", "9")
    monkeypatch.setenv("SEQSTREAM_PRODUCER__RATE", "6")
    settings = load_settings(path, {"producer": {"rate": 8}})
    assert settings.producer.topic == "from-yaml"  # only in YAML
    assert settings.producer.partitions == 9  # env beats YAML
    assert settings.producer.rate == 8  # overrides beat env


def test_config_file_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEQSTREAM_CONFIG", str(write(tmp_path, "events:\n  features: [a, b]\n")))
    assert load_settings().events.features == ["a", "b"]


def test_short_bootstrap_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEQSTREAM_BOOTSTRAP_SERVERS", "kafka-1:9092,kafka-2:9092")
    assert load_settings().kafka.bootstrap_servers == "kafka-1:9092,kafka-2:9092"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"producer": {"partitions": 0}},
            "producer.partitions: Input should be greater than or equal to 1",
        ),
        (
            {"kafka": {"bootstrap_servers": "nohost"}},
            "kafka.bootstrap_servers: Value error, expected host:port",
        ),
        (
            {"kafka": {"client": "java"}},
            "kafka.client: Input should be 'auto', 'confluent' or 'kafka-python'",
        ),
        ({"kafka": {"colour": "red"}}, "kafka.colour: Extra inputs are not permitted"),
        (
            {"events": {"key_field": "value"}},
            "events: Value error, field names must be distinct, repeated: ['value']",
        ),
        ({"events": {"features": []}}, "events.features: List should have at least 1 item"),
    ],
)
def test_invalid_config_names_the_field(overrides: dict, message: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        load_settings(None, overrides)
    assert message in str(excinfo.value)


def test_invalid_yaml_value_names_the_file_and_field(tmp_path: Path) -> None:
    path = write(tmp_path, "broker:\n  port: 70000\n")
    with pytest.raises(ConfigError, match=rf"invalid configuration \(from {path}\): broker.port: "):
        load_settings(path)


def test_missing_or_broken_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found: .*nope.yaml"):
        load_settings(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="is not valid YAML"):
        load_settings(write(tmp_path, "kafka: [unclosed\n"))


def test_cli_assignments_become_nested_typed_values() -> None:
    assert parse_assignments(
        ["kafka.client=confluent", "producer.rate=2.5", "events.features=[a, b]"]
    ) == {
        "kafka": {"client": "confluent"},
        "producer": {"rate": 2.5},
        "events": {"features": ["a", "b"]},
    }
    with pytest.raises(ConfigError, match="--set expects section.field=value, got 'oops'"):
        parse_assignments(["oops"])
