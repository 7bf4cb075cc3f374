#!/usr/bin/env bash
# The JVM parts, resolved from Maven with the machine's own Maven settings (jvm/*/pom.xml) into
# VENV/share/seqstream/jars: Spark's Kafka connector at exactly the venv's pyspark version (or
# $SPARK_VERSION), and Apache Kafka's broker for the embedded one. A folder whose stamp matches
# its pom and versions is kept, so a re-run needs no network.
# Usage: scripts/jvm_jars.sh VENV_DIR   (scripts/setup.sh runs it)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${1:?usage: scripts/jvm_jars.sh VENV_DIR}
die() { echo "setup: $*" >&2; exit 1; }
command -v mvn >/dev/null \
  || die "Maven (mvn) is required to fetch Spark's Kafka connector and Apache Kafka: sudo apt-get install -y maven (macOS: brew install maven)"
SPARK_VERSION=${SPARK_VERSION:-$("$VENV/bin/python" -c 'import pyspark; print(pyspark.__version__)')}
JARS="$VENV/share/seqstream/jars"

resolve() {  # resolve NAME -Dproperty=value...
  local name=$1; shift
  local dest="$JARS/$name" log="$VENV/mvn-$name.log" stamp artifact
  stamp="$(cat "jvm/$name/pom.xml") $*"
  if [ -f "$dest/.stamp" ] && [ "$(cat "$dest/.stamp")" = "$stamp" ]; then return; fi
  echo "setup: resolving jvm/$name/pom.xml with mvn $*"
  mkdir -p "$JARS" && rm -rf "$dest.tmp"
  if ! mvn -B -q -f "jvm/$name/pom.xml" "$@" \
      org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$PWD/$dest.tmp" >"$log" 2>&1; then
    artifact=$(grep -m1 -oE '[A-Za-z0-9_.-]+:[A-Za-z0-9_.-]+:jar:[A-Za-z0-9_.-]+' "$log" || true)
    die "mvn could not resolve ${artifact:-the dependencies of jvm/$name/pom.xml} (mvn fetches where ~/.m2/settings.xml says; its log: $log)"
  fi
  rm -rf "$dest" && mv "$dest.tmp" "$dest" && echo "$stamp" >"$dest/.stamp"
}

resolve spark-kafka "-Dspark.version=$SPARK_VERSION"
resolve kafka-broker
