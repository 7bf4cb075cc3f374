"""Artifact save/load: bit-exact round trip, precise errors, loadable without seqstream."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from seqstream.model.artifact import ArtifactError, load_artifact, save_artifact
from seqstream.model.inference import WindowScorer
from seqstream.model.network import SequenceModel
from seqstream.model.spec import (
    ForecastTask,
    HeadSpec,
    LSTMArgs,
    ModelSpec,
    Normalization,
    WindowSpec,
)
from seqstream.model.windows import empty_state, extend_windows

from helpers import standalone_loader

REPO = Path(__file__).resolve().parents[1]


def forecast_spec(**lstm: object) -> ModelSpec:
    args = {"input_size": 2, "hidden_size": 6, "num_layers": 2, **lstm}
    return ModelSpec(
        version="test-1",
        features=["cpu", "mem"],
        task=ForecastTask(error_std=[0.5, 2.0]),
        normalization=Normalization(mean=[10.0, -3.0], std=[4.0, 0.5]),
        window=WindowSpec(length=8, min_length=3),
        lstm=LSTMArgs(**args),
        head=HeadSpec(output_size=2),
    )


def saved(tmp_path: Path, **lstm: object) -> tuple[Path, SequenceModel, ModelSpec]:
    spec = forecast_spec(**lstm)
    torch.manual_seed(0)
    network = SequenceModel(spec.lstm, spec.head)
    written = save_artifact(network, spec, tmp_path / "model")
    return tmp_path / "model", network, written


def edit_config(directory: Path, change) -> None:  # type: ignore[no-untyped-def]
    config = json.loads((directory / "config.json").read_text())
    change(config)
    (directory / "config.json").write_text(json.dumps(config))


@pytest.mark.parametrize(
    "lstm", [{}, {"bidirectional": True, "proj_size": 3, "bias": False, "batch_first": False}]
)
def test_round_trip_is_bit_exact(tmp_path: Path, lstm: dict) -> None:
    directory, network, spec = saved(tmp_path, **lstm)
    loaded = load_artifact(directory)
    assert loaded.spec == spec
    assert spec.weights_sha256 and len(spec.weights_sha256) == 64
    original = network.state_dict()
    assert set(loaded.network.state_dict()) == set(original)
    assert all(torch.equal(t, original[k]) for k, t in loaded.network.state_dict().items())
    names = set(original)
    assert "lstm.weight_ih_l0" in names and "head.weight" in names
    if lstm:
        assert {"lstm.weight_hr_l0", "lstm.weight_hh_l1_reverse"} <= names


def test_tampered_weights_are_detected(tmp_path: Path) -> None:
    directory, _, _ = saved(tmp_path)
    weights = directory / "weights.safetensors"
    data = bytearray(weights.read_bytes())
    data[-5] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(
        ArtifactError,
        match=r"weights.safetensors: sha256 is [0-9a-f]{64} but config.json says [0-9a-f]{64}; "
        r"the weights were changed, truncated or belong to another model",
    ):
        load_artifact(directory)


def test_truncated_weights_are_detected_even_with_a_matching_hash(tmp_path: Path) -> None:
    import hashlib

    directory, _, _ = saved(tmp_path)
    weights = directory / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    edit_config(
        directory,
        lambda c: c.update(weights_sha256=hashlib.sha256(weights.read_bytes()).hexdigest()),
    )
    with pytest.raises(
        ArtifactError, match="weights.safetensors is not a readable safetensors file"
    ):
        load_artifact(directory)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused_with_a_correct_hash(tmp_path: Path, bad: float) -> None:
    spec = forecast_spec()
    torch.manual_seed(0)
    network = SequenceModel(spec.lstm, spec.head)
    with torch.no_grad():
        network.lstm.weight_hh_l0[3, 5] = bad
        network.head.bias[0] = bad
    directory = tmp_path / "model"
    save_artifact(network, spec, directory)  # the sha256 in config.json is right
    with pytest.raises(
        ArtifactError,
        match=r"holds NaN or infinite weights in head\.bias \(1 of 2 values\), "
        r"lstm\.weight_hh_l0 \(1 of \d+ values\): the model was saved from a diverged training run",
    ):
        load_artifact(directory)


def test_weights_that_do_not_fit_the_config_are_named(tmp_path: Path) -> None:
    directory, _, spec = saved(tmp_path)
    other, _, _ = saved(tmp_path / "other", hidden_size=7)
    (directory / "weights.safetensors").write_bytes((other / "weights.safetensors").read_bytes())
    edit_config(
        directory,
        lambda c: c.update(
            weights_sha256=json.loads((other / "config.json").read_text())["weights_sha256"]
        ),
    )
    with pytest.raises(ArtifactError) as excinfo:
        load_artifact(directory)
    message = str(excinfo.value)
    assert "weights.safetensors does not fit config.json: " in message
    assert "lstm.weight_ih_l0 has shape [28, 2], the config implies [24, 2]" in message


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda c: c.update(format_version=3),
            "format_version 3 is not supported (this seqstream reads 1, 2)",
        ),
        (lambda c: c["lstm"].update(input_size=3), "lstm.input_size is 3 but there are 2 features"),
        (lambda c: c["lstm"].update(colour="red"), "lstm.colour: Extra inputs are not permitted"),
        (lambda c: c["normalization"].update(std=[1.0, 0.0]), "every std must be > 0"),
        (lambda c: c["window"].update(min_length=9), "min_length (9) exceeds length (8)"),
        (
            lambda c: c["task"].update(type="ranking"),
            "task: Input tag 'ranking' found using 'type' does not match",
        ),
        (lambda c: c.pop("features"), "features: Field required"),
    ],
)
def test_invalid_config_is_named(tmp_path: Path, change, message: str) -> None:  # type: ignore[no-untyped-def]
    directory, _, _ = saved(tmp_path)
    edit_config(directory, change)
    with pytest.raises(ArtifactError, match=re.escape(message)):
        load_artifact(directory)


def test_missing_pieces(tmp_path: Path) -> None:
    with pytest.raises(
        ArtifactError, match="model artifact not found: .*nowhere is not a directory"
    ):
        load_artifact(tmp_path / "nowhere")
    directory, _, _ = saved(tmp_path)
    (directory / "weights.safetensors").unlink()
    with pytest.raises(ArtifactError, match="has no weights.safetensors"):
        load_artifact(directory)
    (directory / "config.json").write_text("{not json")
    with pytest.raises(ArtifactError, match="config.json is not valid JSON"):
        load_artifact(directory)
    (directory / "config.json").unlink()
    with pytest.raises(ArtifactError, match="has no config.json"):
        load_artifact(directory)


@pytest.mark.parametrize(
    "lstm", [{}, {"bidirectional": True, "proj_size": 2, "batch_first": False}]
)
def test_readme_loader_without_seqstream_gives_the_same_scores(tmp_path: Path, lstm: dict) -> None:
    directory, _, _ = saved(tmp_path, **lstm)
    rng = np.random.default_rng(5)
    events = rng.normal([10.0, -3.0], [4.0, 0.5], size=(20, 2)).astype(np.float32)
    batch = extend_windows(empty_state(2), events, 8)
    keep = batch.lengths >= 3
    ours = (
        WindowScorer(load_artifact(directory), num_threads=None)
        .score(batch.windows[keep], batch.lengths[keep])
        .score
    )

    np.save(tmp_path / "events.npy", events)
    script = (
        standalone_loader()
        + f"""
import sys, numpy as np
assert sys.modules.get("pipeline") is None and sys.modules.get("model") is None  # never imported
events = np.load({str(tmp_path / "events.npy")!r})
config, lstm, head = load_seqstream_model({str(directory)!r})
scores = [forecast_score(config, lstm, head, events[max(0, i - 7): i + 1]) for i in range(2, len(events))]
print(" ".join(repr(s) for s in scores))
"""
    )
    blocker = (
        "import sys; sys.modules.update(pipeline=None, model=None)\n"  # importing seqstream fails
    )
    done = subprocess.run(
        [sys.executable, "-I", "-c", blocker + script],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    theirs = np.array([float(s) for s in done.stdout.split()])
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-6)
