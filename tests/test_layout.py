"""The project's shape: one direction of dependency, no import cycles, thin jobs, small modules and
functions, and a wheel that installs under one distinctive name."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

from helpers import REPO

CHECK = REPO / "scripts" / "check_imports.py"


def _check(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(CHECK), "--root", str(root)], capture_output=True, text=True
    )


def test_the_project_has_no_import_cycle_and_one_direction_of_dependency() -> None:
    done = _check(REPO)
    assert done.returncode == 0, done.stdout
    assert done.stdout == ""


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)


def test_the_check_names_each_kind_of_violation(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "pipeline/__init__.py": "",
            "pipeline/config.py": "X = 1\n",
            # a cycle held together by an import inside a function, and a relative import
            "pipeline/a.py": "def f():\n    from seqstream.pipeline import b\n",
            "pipeline/b.py": "from . import a\n",
            "pipeline/kafka/__init__.py": "",
            "pipeline/kafka/admin.py": "from seqstream.pipeline.config import X\n",
            "model/__init__.py": "",
            "model/x.py": "def g():\n    import seqstream.pipeline.config\n",
            "pipeline/stream/query.py": "from seqstream.pipeline.backfill.plan import X\n",
            "pipeline/backfill/plan.py": "X = 1\n",
            "pipeline/backfill/run.py": "def h():\n    import seqstream.pipeline.stream.query\n",
            "pipeline/spark.py": "Z = 1\n",
            "pipeline/state/buckets.py": "from seqstream.pipeline.spark import Z\n",
            "pipeline/sinks/outputs.py": "from seqstream.pipeline.scoring.model_versions import Y\n",
            "pipeline/scoring/model_versions.py": "Y = 1\n",
            "jobs/stream.py": "x = 1\n" * 201,
            "tests/test_x.py": "from jobs.stream import x\n",
            "bench/harness.py": "import jobs.stream\n",
            "pipeline/long.py": "def f():\n" + "    x = 1\n" * 80 + "y = 2\n" * 320,
        },
    )
    done = _check(tmp_path)
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert any(
        line.startswith("import cycle among seqstream.pipeline.a, seqstream.pipeline.b:")
        and "pipeline/a.py:2" in line
        and "pipeline/b.py:1" in line
        for line in lines
    ), lines
    assert any(
        line.startswith(
            "model/x.py:2: imports seqstream.pipeline.config: seqstream.model stands alone"
        )
        for line in lines
    )
    assert any(
        line.startswith("pipeline/kafka/admin.py:1: imports seqstream.pipeline.config")
        for line in lines
    )
    assert any(
        line.startswith("tests/test_x.py:1: imports jobs.stream: jobs are entry points")
        for line in lines
    )
    assert any(line.startswith("bench/harness.py:1: imports jobs.stream") for line in lines)
    assert "jobs/ holds 201 lines (at most 200): library code belongs in pipeline/" in lines
    assert "pipeline/long.py holds 401 lines (at most 400)" in lines
    assert "pipeline/long.py:1: f is 81 lines (at most 80)" in lines
    drivers = "the stream and the backfill drivers never import each other"
    assert any(
        line.startswith("pipeline/stream/query.py:1: imports seqstream.pipeline.backfill.plan")
        and drivers in line
        for line in lines
    ), lines
    assert any(
        line.startswith("pipeline/backfill/run.py:2: imports seqstream.pipeline.stream.query")
        and drivers in line
        for line in lines
    ), lines
    assert any(
        line.startswith(
            "pipeline/sinks/outputs.py:1: imports seqstream.pipeline.scoring.model_versions"
        )
        and "a sink never imports the scoring" in line
        for line in lines
    ), lines
    assert any(
        line.startswith("pipeline/state/buckets.py:1: imports seqstream.pipeline.spark")
        and "never make or configure a Spark session" in line
        for line in lines
    ), lines


def test_the_wheel_installs_only_the_seqstream_namespace_and_imports_from_a_zip(
    tmp_path: Path,
) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(REPO),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("seqstream-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/", 1)[0] for name in names}
    assert {t for t in top if not t.endswith(".dist-info")} == {"seqstream"}
    for expected in (
        "seqstream/pipeline/kafka/datasource.py",
        "seqstream/model/demo_model/weights.safetensors",
        "seqstream/pipeline/demo_data/nab/LICENSE.txt",
    ):
        assert expected in names
    assert not any(
        n.startswith(("seqstream/jobs", "seqstream/bench", "seqstream/tests")) for n in names
    )
    # As spark-submit --py-files ships it: the wheel itself on sys.path (a zip import), in an
    # interpreter without this checkout's editable install (-S: no .pth files), the
    # dependencies appended from site-packages.
    probe = (
        "import sys; sys.path.insert(0, sys.argv[1]); sys.path.append(sys.argv[2]); "
        "import seqstream.pipeline.config as c, seqstream.model.spec as s; print(c.__file__); print(s.__file__)"
    )
    site_packages = sysconfig.get_paths()["purelib"]
    done = subprocess.run(
        [sys.executable, "-S", "-c", probe, str(wheel), site_packages],
        capture_output=True,
        text=True,
        check=True,
    )
    files = done.stdout.splitlines()
    assert len(files) == 2 and all(f.startswith(str(wheel)) for f in files), done.stdout
