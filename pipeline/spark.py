"""Local SparkSession creation with the settings every seqstream job relies on."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from importlib import resources
from pathlib import Path
from subprocess import PIPE
from typing import IO, TYPE_CHECKING, Any

from seqstream.pipeline.config import SparkSettings
from seqstream.pipeline.errors import SeqstreamError
from seqstream.pipeline.kafka.jars import spark_connector_jars

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

MIN_JAVA = 17
# Spark's JVM logging for seqstream jobs: warnings and errors, without per-key state chatter.
LOG4J2_CONFIG = Path(__file__).with_name("log4j2.properties")
SPARK_DEFAULT_LOG4J = "org/apache/spark/log4j2-defaults.properties"  # what spark-submit starts with


def java_version() -> int:
    """Major version of the ``java`` Spark will use (JAVA_HOME first, then PATH)."""
    home = os.environ.get("JAVA_HOME")
    java = os.path.join(home, "bin", "java") if home else shutil.which("java")
    if not java or not os.path.exists(java):
        raise SeqstreamError(
            f"Java {MIN_JAVA}+ is required by PySpark 4 and none was found (JAVA_HOME unset and no "
            "`java` on PATH). Install it, e.g. `sudo apt-get install openjdk-17-jre-headless`."
        )
    output = subprocess.run([java, "-version"], capture_output=True, text=True).stderr
    match = re.search(r'version "(\d+)(?:\.(\d+))?', output)
    if not match:
        raise SeqstreamError(f"cannot read the Java version from `{java} -version`: {output!r}")
    major = int(match.group(1))
    major = int(match.group(2)) if major == 1 else major  # "1.8" style
    if major < MIN_JAVA:
        raise SeqstreamError(
            f"PySpark 4 needs Java {MIN_JAVA}+, but {java} is Java {major}. Install a newer JDK "
            "(e.g. `sudo apt-get install openjdk-17-jre-headless`) and point JAVA_HOME at it."
        )
    return major


def local_spark(
    app_name: str = "seqstream",
    *,
    master: str = "local[2]",
    extra_conf: dict[str, str] | None = None,
) -> SparkSession:
    """A SparkSession whose Python workers use this interpreter and one torch thread each
    (two threads per worker on two cores halved throughput, see ENVIRONMENT.md)."""
    java_version()
    from pyspark import SparkConf, SparkContext
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    if master.startswith("local"):  # else Spark warns twice that the hostname is a loopback one
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    conf = {
        "spark.master": master,
        "spark.app.name": app_name,
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.shuffle.partitions": "4",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.executorEnv.OMP_NUM_THREADS": "1",
        "spark.executorEnv.MKL_NUM_THREADS": "1",
        "spark.driver.extraJavaOptions": f"-Dlog4j2.configurationFile={LOG4J2_CONFIG}",
        **(extra_conf or {}),
    }
    conf.update(connector_jars_conf(conf))
    if SparkContext._active_spark_context is None:
        _start_context(SparkConf().setAll(list(conf.items())))
    builder = SparkSession.builder
    for key, value in conf.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


# What Spark's JVM, and the Python workers whose output it copies, print that no one acts on: the
# JVM's note on its incubator modules, and the four lines Python transformWithState's driver
# worker prints at every query start (one of them a dump of the whole schema), each followed by
# a blank line.
_JVM_NOISE = (
    "WARNING: Using incubator modules:",
    "Starting Streaming TransformWithStateInPandas Python worker",
    "Streaming TransformWithStateInPandas Python worker ",
)


def _start_context(conf: Any) -> None:
    """Start Spark's JVM with its output piped through ``_forward``, then the SparkContext."""
    from pyspark import SparkContext
    from pyspark.java_gateway import launch_gateway

    gateway = launch_gateway(conf, popen_kwargs={"stdout": PIPE, "stderr": PIPE})
    for stream, name in ((gateway.proc.stdout, "stdout"), (gateway.proc.stderr, "stderr")):
        threading.Thread(target=_forward, args=(stream, name), daemon=True).start()
    SparkContext(conf=conf, gateway=gateway)


def _forward(stream: IO[bytes], name: str) -> None:
    """Copy the JVM's ``stdout`` or ``stderr`` to ours line by line, less ``_JVM_NOISE``."""
    skip_blank = False
    for raw in iter(stream.readline, b""):
        line = raw.decode(errors="replace")
        if line.startswith(_JVM_NOISE):
            skip_blank = True
            continue
        if skip_blank and not line.strip():
            skip_blank = False
            continue
        skip_blank = False
        target = getattr(sys, name)  # looked up each time: a test harness may swap it
        target.write(line)
        target.flush()


def connector_jars_conf(conf: dict[str, str]) -> dict[str, str]:
    """``spark.jars`` with Spark's Kafka connector that set-up resolved for this pyspark (Spark's
    own resolver, ``spark.jars.packages``, does not read Maven's settings), unless the user's
    configuration brings a connector itself or none was resolved."""
    import pyspark

    jars = spark_connector_jars(pyspark.__version__)
    named = conf.get("spark.jars", "") + conf.get("spark.jars.packages", "")
    if not jars or "spark-sql-kafka" in named:
        return {}
    given = [conf["spark.jars"]] if conf.get("spark.jars") else []
    return {"spark.jars": ",".join([*given, *(str(jar) for jar in jars)])}


def job_spark(app_name: str, spark: SparkSettings | None = None) -> SparkSession:
    """Under spark-submit, the session it configured (master, resources) with ``spark.conf``
    applied; else a local session on ``spark.master`` (default local[2])."""
    spark = spark or SparkSettings()
    if "PYSPARK_GATEWAY_PORT" in os.environ:  # set by spark-submit for Python applications
        return submitted_spark(app_name, spark.conf)
    conf = {"spark.ui.enabled": str(spark.ui).lower(), **spark.conf}
    return local_spark(app_name, master=spark.master, extra_conf=conf)


def submitted_spark(app_name: str, conf: dict[str, str]) -> SparkSession:
    """The session of a job started by spark-submit, whose driver JVM already runs with Spark's
    INFO-level log defaults. Unless the user chose a log level or a log4j2 configuration, the
    session starts at WARN (``spark.log.level``) and then takes seqstream's configuration, with
    the JVM's lines on stdout: spark-submit sends the Python driver's stderr there, so the job's
    own lines and Spark's read as one stream, in order."""
    from pyspark import SparkConf
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName(app_name)
    if "spark.log.level" not in conf and not SparkConf().contains("spark.log.level"):
        builder = builder.config("spark.log.level", "WARN")
    for key, value in conf.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    jvm = session._jvm
    assert jvm is not None
    context = jvm.org.apache.logging.log4j.LogManager.getContext(False)
    if SPARK_DEFAULT_LOG4J in str(context.getConfigLocation()):  # not the user's own
        jvm.java.lang.System.setProperty("seqstream.log.target", "SYSTEM_OUT")
        jvm.org.apache.logging.log4j.core.config.Configurator.reconfigure(
            jvm.java.io.File(str(log4j2_file())).toURI()
        )
    return session


def log4j2_file() -> Path:
    """seqstream's log4j2 configuration as a file the JVM can read (the package may be imported
    from a wheel given to ``--py-files``, whose files are not on disk)."""
    if LOG4J2_CONFIG.is_file():
        return LOG4J2_CONFIG
    copy = Path(tempfile.gettempdir()) / f"seqstream-log4j2-{os.getuid()}.properties"
    text = resources.files("seqstream.pipeline").joinpath(LOG4J2_CONFIG.name).read_text()
    copy.write_text(text)
    return copy
