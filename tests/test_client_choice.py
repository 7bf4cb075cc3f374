"""``kafka.client`` decides every Kafka call, admin ones included: with ``confluent``, options
only librdkafka knows work from planning to scoring; with ``kafka-python`` they are refused by
name. Both clients give the same topic metadata and the same (true) offsets."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from seqstream.pipeline.cli import main as cli_main
from seqstream.pipeline.config import KafkaSettings
from seqstream.pipeline.errors import SeqstreamError
from seqstream.pipeline.kafka import TopicAdmin, open_producer, raise_for_failures

from helpers import expected_scores, run_until, settings_for

# Properties kafka-python has no name for; harmless on a loopback broker.
LIBRDKAFKA_ONLY = {"broker.address.family": "v4", "socket.keepalive.enable": "true"}
BASE_MS = 1_700_000_000_000


def offsets_seen_by(client: str, bootstrap: str, topic: str) -> dict[str, object]:
    with TopicAdmin(bootstrap, client=client) as admin:
        return {
            "partitions": admin.describe_topic(topic).partitions,
            "listed": topic in admin.list_topics(),
            "beginning": admin.beginning_offsets(topic),
            "end": admin.end_offsets(topic),
            "at 42": admin.offsets_for_times(topic, BASE_MS + 10 * 42),
            "past the end": admin.offsets_for_times(topic, BASE_MS + 10**9),
        }


def test_both_clients_see_the_same_topics_and_true_offsets(bootstrap_servers, new_topic) -> None:  # type: ignore[no-untyped-def]
    topic = new_topic(partitions=3)
    producer = open_producer(bootstrap_servers, client="confluent")
    for i in range(300):  # confluent sends these in batches of many records
        producer.send(topic, b"x", partition=i % 3, timestamp_ms=BASE_MS + 10 * (i // 3))
    raise_for_failures(producer.flush(30), topic)
    producer.close()
    confluent = offsets_seen_by("confluent", bootstrap_servers, topic)
    assert confluent == offsets_seen_by("kafka-python", bootstrap_servers, topic)
    assert confluent["end"] == {0: 100, 1: 100, 2: 100}
    assert confluent["at 42"] == {0: 42, 1: 42, 2: 42}
    assert confluent["past the end"] == confluent["end"]


def test_the_confluent_admin_creates_and_deletes_topics(bootstrap_servers) -> None:  # type: ignore[no-untyped-def]
    with TopicAdmin(bootstrap_servers, client="confluent", options=LIBRDKAFKA_ONLY) as admin:
        admin.create_topic("client-choice", 4)
        assert admin.create_topic("client-choice", 4, exist_ok=True).partitions == 4
        with pytest.raises(SeqstreamError, match="'client-choice' exists with 4 partitions, not"):
            admin.create_topic("client-choice", 2, exist_ok=True)
        admin.delete_topic("client-choice")
        assert "client-choice" not in admin.list_topics()
        with pytest.raises(SeqstreamError, match="cannot delete topic 'client-choice'"):
            admin.delete_topic("client-choice")


def test_kafka_python_refuses_librdkafka_options_by_name(bootstrap_servers) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SeqstreamError) as refused:
        TopicAdmin(bootstrap_servers, client="kafka-python", options=LIBRDKAFKA_ONLY)
    assert str(refused.value).startswith(
        "kafka.options ['broker.address.family', 'socket.keepalive.enable'] have no kafka-python "
        "equivalent"
    )
    assert "use kafka.client=confluent" in str(refused.value)


def test_a_stream_with_librdkafka_options_scores_every_event(
    spark, bootstrap_servers, stream_topic, reference_scorer, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    topic, log = stream_topic
    kafka = KafkaSettings(
        bootstrap_servers=bootstrap_servers, client="confluent", options=LIBRDKAFKA_ONLY
    )
    settings = settings_for(tmp_path, topic, bootstrap_servers).model_copy(update={"kafka": kafka})
    history = run_until(spark, settings, bootstrap_servers, len(log))
    expected = expected_scores(log, reference_scorer)
    assert sum(m.events_in for m in history) == len(log)
    scores = pq.read_table(tmp_path / "scores").to_pylist()
    assert {(r["partition"], r["offset"]): r["score"] for r in scores}.keys() == expected.keys()
    assert max(abs(r["score"] - expected[(r["partition"], r["offset"])]) for r in scores) < 1e-5


def test_a_backfill_plan_with_librdkafka_options(
    bootstrap_servers, stream_topic, tmp_path: Path, capsys
) -> None:  # type: ignore[no-untyped-def]
    topic, log = stream_topic
    options = json.dumps(LIBRDKAFKA_ONLY)
    common = ["--bootstrap-servers", bootstrap_servers, "--topics", topic, "--dry-run"]
    common += ["--parquet-path", str(tmp_path / "scores")]
    code = cli_main(["backfill", *common, "--set", f"kafka.options={options}"])
    assert code == 0
    assert f"{len(log):,} events (offsets) in 1 chunk(s)" in capsys.readouterr().out
    refused = ["--set", "kafka.client=kafka-python", "--set", f"kafka.options={options}"]
    assert cli_main(["backfill", *common, *refused]) == 2
    assert "have no kafka-python equivalent" in capsys.readouterr().err
