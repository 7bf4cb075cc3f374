"""``seqstream model info``: validates an artifact as the jobs do and says what it holds."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from safetensors.torch import load_file

from seqstream.model.artifact import DEMO_MODEL_DIR
from seqstream.pipeline.cli import main


def test_model_info_describes_a_valid_artifact(capsys) -> None:  # type: ignore[no-untyped-def]
    config = json.loads((DEMO_MODEL_DIR / "config.json").read_text())
    tensors = load_file(str(DEMO_MODEL_DIR / "weights.safetensors"))
    assert main(["model", "info", str(DEMO_MODEL_DIR)]) == 0
    text = capsys.readouterr().out
    assert text.startswith(f"model {config['version']} at {DEMO_MODEL_DIR.resolve()}: valid")
    assert f"sha256      {config['weights_sha256']}" in text
    assert f"parameters  {sum(t.numel() for t in tensors.values()):,}" in text
    assert main(["model", "info", str(DEMO_MODEL_DIR), "--json"]) == 0
    described = json.loads(capsys.readouterr().out)
    assert described["config"] == config
    assert described["files"]["weights.safetensors"] == (
        (DEMO_MODEL_DIR / "weights.safetensors").stat().st_size
    )


def test_model_info_refuses_a_damaged_artifact_naming_what_is_wrong(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    copy = tmp_path / "model"
    shutil.copytree(DEMO_MODEL_DIR, copy)
    weights = copy / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:-8])
    assert main(["model", "info", str(copy)]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"seqstream model: error: {weights}: sha256 is ")
    assert "the weights were changed, truncated or belong to another model" in error
