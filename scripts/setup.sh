#!/usr/bin/env bash
# Create or refresh the project's virtual environment; safe to run again at any time.
# Usage: scripts/setup.sh [VENV_DIR]   (default .venv)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${1:-.venv}
PYTHON=${PYTHON:-python3}
# pip's configured index decides the build: PyPI's Linux wheel is a CUDA build (about 3 GB with
# its NVIDIA libraries) that also runs on CPUs; a CPU-only index gives a smaller one.
TORCH=torch==2.13.0

die() { echo "setup: $*" >&2; exit 1; }

# Everything set-up needs from the machine, checked before anything is installed.
command -v "$PYTHON" >/dev/null || die "$PYTHON not found: install Python 3.10 or newer"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
  || die "Python 3.10+ is required, $PYTHON is $("$PYTHON" --version 2>&1)"
java_major=$(java -version 2>&1 | sed -nE 's/.*version "(1\.)?([0-9]+).*/\2/p' | head -n1 || true)
if [ -z "$java_major" ] || [ "$java_major" -lt 17 ]; then
  die "Java 17+ is required by Spark and Kafka (found: ${java_major:-none}): sudo apt-get install -y openjdk-17-jre-headless (macOS: brew install openjdk@17)"
fi
command -v mvn >/dev/null \
  || die "Maven (mvn) is required to fetch Spark's Kafka connector and Apache Kafka: sudo apt-get install -y maven (macOS: brew install maven)"

if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating $VENV"
  "$PYTHON" -m venv "$VENV" || die "cannot create a venv: sudo apt-get install -y python3-venv"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check -q)
"$VENV/bin/python" -c 'import torch' 2>/dev/null || { echo "setup: installing $TORCH"; "${PIP[@]}" install "$TORCH"; }
echo "setup: installing pinned dependencies (requirements.lock)"
"${PIP[@]}" install -r requirements.lock
"${PIP[@]}" install --no-deps -e .
"$VENV/bin/python" -c 'import torch, pyspark, confluent_kafka, kafka, seqstream.pipeline.cli' \
  || die "the environment in $VENV is incomplete; remove it and run again"
bash scripts/jvm_jars.sh "$VENV"
touch "$VENV/.seqstream-installed"
echo "setup: $VENV ready (torch $("$VENV/bin/python" -c 'import torch; print(torch.__version__)'))"
