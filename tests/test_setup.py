"""Set-up's refusals: a machine without Java or Maven, or an artifact Maven cannot resolve, stops
set-up with one line naming what is missing and how to get it, before anything is installed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# What scripts/setup.sh runs besides Python, Java and Maven.
TOOLS = ("bash", "sed", "head", "dirname", "cat", "mkdir", "rm", "mv", "grep", "touch")


def tools_without(tmp_path: Path, *missing: str) -> dict[str, str]:
    """An environment whose PATH holds the tools set-up needs, less ``missing``."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    # The interpreter the venv was made from (a pyenv shim would need pyenv's own PATH).
    python = Path(sys.base_prefix) / "bin" / f"python{sys.version_info[0]}.{sys.version_info[1]}"
    (bin_dir / "python3").symlink_to(python)
    for tool in (*TOOLS, "java", "mvn"):
        found = shutil.which(tool)
        if tool not in missing and found:
            (bin_dir / tool).symlink_to(found)
    env = {k: v for k, v in os.environ.items() if k not in ("JAVA_HOME", "VIRTUAL_ENV")}
    return {**env, "PATH": str(bin_dir)}


@pytest.mark.parametrize(
    ("missing", "line"),
    [
        (
            "java",
            "setup: Java 17+ is required by Spark and Kafka (found: none): sudo apt-get install "
            "-y openjdk-17-jre-headless (macOS: brew install openjdk@17)",
        ),
        (
            "mvn",
            "setup: Maven (mvn) is required to fetch Spark's Kafka connector and Apache Kafka: "
            "sudo apt-get install -y maven (macOS: brew install maven)",
        ),
    ],
)
def test_a_missing_tool_stops_set_up_in_one_line_before_anything_is_installed(
    tmp_path: Path, missing: str, line: str
) -> None:
    venv = tmp_path / "venv"
    done = subprocess.run(
        ["bash", "scripts/setup.sh", str(venv)],
        cwd=REPO,
        env=tools_without(tmp_path, missing),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert done.stderr.splitlines() == [line]
    assert not venv.exists()


def test_an_artifact_maven_cannot_resolve_is_named(tmp_path: Path) -> None:
    """A Spark version with no connector on the registry (as 4.3.0 had none on 2026-12-01)."""
    done = subprocess.run(
        ["bash", "scripts/jvm_jars.sh", str(tmp_path)],
        cwd=REPO,
        env={**os.environ, "SPARK_VERSION": "0.0.1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        "setup: mvn could not resolve org.apache.spark:spark-sql-kafka-0-10_2.13:jar:0.0.1 (mvn "
        f"fetches where ~/.m2/settings.xml says; its log: {tmp_path}/mvn-spark-kafka.log)"
    ]
    assert not (tmp_path / "share" / "seqstream" / "jars" / "spark-kafka").exists()
