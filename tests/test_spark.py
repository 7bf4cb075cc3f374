"""The local SparkSession the jobs and tests share: real Python workers, one torch thread each."""

from __future__ import annotations

import sys

import pandas as pd
import pytest

from seqstream.pipeline.errors import SeqstreamError
from seqstream.pipeline.spark import java_version


def test_python_workers_use_this_interpreter_and_one_torch_thread(spark) -> None:
    from pyspark.sql.functions import pandas_udf

    @pandas_udf("string")
    def worker_facts(ids: pd.Series) -> pd.Series:
        import sys as worker_sys

        import torch

        return pd.Series([f"{worker_sys.executable}|{torch.get_num_threads()}"] * len(ids))

    facts = {
        row[0] for row in spark.range(0, 64, numPartitions=4).select(worker_facts("id")).collect()
    }
    assert facts == {f"{sys.executable}|1"}


def test_java_is_checked_with_a_clear_message(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    assert java_version() >= 17
    monkeypatch.setenv("JAVA_HOME", str(tmp_path))
    with pytest.raises(
        SeqstreamError, match=r"Java 17\+ is required by PySpark 4 and none was found"
    ):
        java_version()
