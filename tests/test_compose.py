"""The docker-compose stack and its image agree with the repository: the compose files validate,
every path and command they name exists, the image installs what the project depends on, and
Spark, its Kafka connector and the pinned pyspark are the same version."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import tomllib
import yaml

from seqstream.pipeline.cli.parser import build_parser
from seqstream.pipeline.config import load_settings

REPO = Path(__file__).resolve().parents[1]
IMAGE_ROOT = "/opt/seqstream/"  # where the Dockerfile puts the repository
COMPOSE_FILES = [["docker-compose.yml"], ["docker-compose.yml", "docker-compose.gpu.yml"]]


def pinned(name: str) -> str:
    for line in (REPO / "requirements.lock").read_text().splitlines():
        if line.lower().startswith(f"{name}=="):
            return line.split("==")[1].strip()
    raise AssertionError(f"{name} is not pinned in requirements.lock")


def merged_services() -> dict[str, dict]:
    """Services of the base file with the GPU override's keys laid over them."""
    base = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]
    override = yaml.safe_load((REPO / "docker-compose.gpu.yml").read_text())["services"]
    return {**base, **{f"{name} (gpu)": {**base[name], **spec} for name, spec in override.items()}}


def commands() -> dict[str, list[str]]:
    out = {}
    for name, service in merged_services().items():
        command = service.get("command")
        if command is not None:
            out[name] = (
                shlex.split(command) if isinstance(command, str) else [str(c) for c in command]
            )
    return out


def in_repo(image_path: str) -> Path:
    assert image_path.startswith(IMAGE_ROOT), image_path
    return REPO / image_path[len(IMAGE_ROOT) :]


@pytest.mark.parametrize("files", COMPOSE_FILES, ids=lambda f: "+".join(f))
def test_compose_files_validate(files: list[str]) -> None:
    compose = shutil.which("docker-compose")
    if compose is None:
        if os.environ.get("CI"):
            pytest.fail("CI must install docker-compose (.ci/run does, from Debian)")
        pytest.skip("docker-compose is not installed (apt-get install docker-compose)")
    args = [a for f in files for a in ("-f", f)]
    result = subprocess.run(
        [compose, *args, "config", "-q"], cwd=REPO, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def test_spark_image_connector_and_pyspark_are_one_version() -> None:
    version = pinned("pyspark")
    dockerfile = (REPO / "Dockerfile").read_text()
    image = re.search(r"ARG SPARK_IMAGE=apache/spark:(\S+)", dockerfile).group(1)
    assert image == f"{version}-scala2.13-java17-python3-ubuntu"
    packages = [c[c.index("--packages") + 1] for c in commands().values() if "--packages" in c]
    assert packages and set(packages) == {f"org.apache.spark:spark-sql-kafka-0-10_2.13:{version}"}


def test_image_installs_the_pinned_torch_and_every_project_dependency() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    setup_torch = re.search(r"TORCH=(torch==\S+)", (REPO / "scripts/setup.sh").read_text()).group(1)
    assert setup_torch in dockerfile
    assert "grep -v '^pyspark==' requirements.lock" in dockerfile  # the image's own pyspark is used
    locked = {
        line.split("==")[0].lower().replace("_", "-")
        for line in (REPO / "requirements.lock").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    }
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    names = {re.split(r"[<>=!~\[ ]", d)[0].lower().replace("_", "-") for d in project}
    assert names - {"torch", "pyspark"} <= locked


def test_every_path_the_dockerfile_copies_exists() -> None:
    for line in (REPO / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (REPO / source).exists(), (
                    f"Dockerfile copies {source}, which is not in the repository"
                )


def test_compose_commands_name_real_files_and_subcommands() -> None:
    subcommands = set(build_parser()._subparsers._group_actions[0].choices)  # type: ignore[union-attr]
    seen = set()
    for name, command in commands().items():
        if command[0] == "seqstream":
            assert command[1] in subcommands, f"{name}: seqstream has no subcommand {command[1]}"
            seen.add("seqstream")
        elif command[0].endswith("spark-submit"):
            script = next(c for c in command if c.endswith(".py"))
            assert in_repo(script).is_file(), f"{name}: {script} is not in the repository"
            seen.add("spark-submit")
        elif command[0].endswith("spark-class"):
            assert command[1] in {
                "org.apache.spark.deploy.master.Master",
                "org.apache.spark.deploy.worker.Worker",
            }
            seen.add("spark-class")
    assert seen == {"seqstream", "spark-submit", "spark-class"}


def test_compose_configuration_and_environment_load_as_settings(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    ours = {
        name: s
        for name, s in merged_services().items()
        if str(s.get("image", "")).startswith("seqstream:")
    }
    assert {"spark-master", "spark-worker", "producer", "stream", "stream (gpu)"} <= set(ours)
    for name, service in ours.items():
        env = service.get("environment") or {}
        config = env.get("SEQSTREAM_CONFIG")
        assert config, f"{name} sets no SEQSTREAM_CONFIG"
        for key, value in env.items():
            monkeypatch.setenv(key, str(value).replace(IMAGE_ROOT, str(REPO) + "/"))
            for path in re.findall(r"/opt/seqstream/\S+", str(value)):
                assert in_repo(path).exists(), (
                    f"{name}: {key} names {path}, which is not in the repository"
                )
        settings = load_settings(str(in_repo(config)))  # an unknown SEQSTREAM_ variable fails here
        assert (
            settings.kafka.bootstrap_servers == "kafka:9092"
            and settings.stream.checkpoint is not None
        )
        for key in env:
            monkeypatch.delenv(key)
    assert os.access(REPO / "docker/gpu-discovery.sh", os.X_OK)
