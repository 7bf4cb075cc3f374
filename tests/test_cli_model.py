"""``seqstream model info`` validates an artifact as the jobs do and says what it holds;
``model import-keras``/``import-tf1`` make artifacts that compute what those frameworks do."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from seqstream.model.artifact import DEMO_MODEL_DIR, load_artifact
from seqstream.pipeline.cli import main

from lstm_reference import keras_lstm, tf1_basic_lstm


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


def _config(tmp_path: Path, **lstm) -> Path:  # type: ignore[no-untyped-def]
    """The demo model's config.json with another LSTM (one feature in, forecast head)."""
    config = json.loads((DEMO_MODEL_DIR / "config.json").read_text())
    config["lstm"] = {**config["lstm"], **lstm}
    config["version"] = "imported"
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    return path


def _head(rng, width: int) -> dict[str, np.ndarray]:  # type: ignore[no-untyped-def]
    return {"head/kernel": rng.normal(0, 0.5, (width, 1)), "head/bias": rng.normal(0, 0.5, 1)}


def _artifact_output(folder: Path, x: np.ndarray) -> np.ndarray:
    network = load_artifact(folder).network
    with torch.inference_mode():
        return network(torch.tensor(x, dtype=torch.float32)[None]).numpy()[0]


def test_import_keras_makes_an_artifact_that_computes_what_keras_does(
    tmp_path: Path, capsys
) -> None:  # type: ignore[no-untyped-def]
    """Two bidirectional keras.layers.LSTM layers and a Dense head on the last step."""
    rng = np.random.default_rng(5)
    hidden = 4
    arrays, shapes = {}, {0: 1, 1: 2 * hidden}
    for layer, width in shapes.items():
        for suffix in ("", "_reverse"):
            arrays[f"layer{layer}{suffix}/kernel"] = rng.normal(0, 0.5, (width, 4 * hidden))
            arrays[f"layer{layer}{suffix}/recurrent_kernel"] = rng.normal(
                0, 0.5, (hidden, 4 * hidden)
            )
            arrays[f"layer{layer}{suffix}/bias"] = rng.normal(0, 0.5, 4 * hidden)
    arrays |= _head(rng, 2 * hidden)
    np.savez(tmp_path / "weights.npz", **arrays)
    config = _config(tmp_path, hidden_size=hidden, num_layers=2, bidirectional=True)
    out = tmp_path / "artifact"
    args = ["model", "import-keras", str(tmp_path / "weights.npz"), "--config", str(config)]
    assert main([*args, "--out", str(out)]) == 0
    assert capsys.readouterr().out.startswith("model imported imported from keras weights ")

    x = rng.normal(size=(10, 1))
    layer_in = x
    for layer in (0, 1):
        w = [arrays[f"layer{layer}/{n}"] for n in ("kernel", "recurrent_kernel", "bias")]
        r = [arrays[f"layer{layer}_reverse/{n}"] for n in ("kernel", "recurrent_kernel", "bias")]
        layer_in = np.concatenate(
            [keras_lstm(layer_in, *w), keras_lstm(layer_in[::-1], *r)[::-1]], axis=1
        )
    expected = layer_in[-1] @ arrays["head/kernel"] + arrays["head/bias"]
    np.testing.assert_allclose(_artifact_output(out, x), expected, rtol=1e-5, atol=1e-6)

    # Weights that do not fit the config: named, nothing written.
    del arrays["layer1_reverse/bias"]
    np.savez(tmp_path / "short.npz", **arrays)
    bad = ["model", "import-keras", str(tmp_path / "short.npz"), "--config", str(config)]
    assert main([*bad, "--out", str(tmp_path / "bad")]) == 2
    assert "missing ['layer1_reverse/bias'], not used nothing" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
    assert main([*args, "--out", str(out)]) == 2  # never over an artifact
    assert "is not empty" in capsys.readouterr().err


def test_import_tf1_folds_the_forget_bias_and_refuses_a_projection(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(6)
    hidden = 5
    arrays = {
        "layer0/kernel": rng.normal(0, 0.5, (1 + hidden, 4 * hidden)),
        "layer0/bias": rng.normal(0, 0.5, 4 * hidden),
        **_head(rng, hidden),
    }
    np.savez(tmp_path / "weights.npz", **arrays)
    config = _config(tmp_path, hidden_size=hidden, num_layers=1, bidirectional=False)
    out = tmp_path / "artifact"
    args = ["model", "import-tf1", str(tmp_path / "weights.npz"), "--config", str(config)]
    assert main([*args, "--forget-bias", "0.7", "--model-version", "tf1-a", "--out", str(out)]) == 0
    assert load_artifact(out).spec.version == "tf1-a"
    x = rng.normal(size=(12, 1))
    last = tf1_basic_lstm(x, arrays["layer0/kernel"], arrays["layer0/bias"], 0.7)[-1]
    expected = last @ arrays["head/kernel"] + arrays["head/bias"]
    np.testing.assert_allclose(_artifact_output(out, x), expected, rtol=1e-5, atol=1e-6)

    projecting = _config(tmp_path, hidden_size=hidden, num_layers=1, proj_size=2)
    args[-1] = str(projecting)
    assert main([*args, "--out", str(tmp_path / "p")]) == 2
    assert "lstm.proj_size is 2: neither keras.layers.LSTM nor TF1's" in capsys.readouterr().err
