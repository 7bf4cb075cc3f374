"""Convert LSTM weights trained in Keras/TensorFlow to ``torch.nn.LSTM``'s layout.

PyTorch stores ``weight_ih`` [4h, in], ``weight_hh`` [4h, h] and two biases, gates stacked in
the order i, f, g, o. ``from_keras_lstm`` and ``from_tf1_basic_lstm_cell`` return the tensors of
one layer and direction, named as in ``nn.LSTM.state_dict()`` (``suffix="_reverse"`` for the
backward direction); ``imported_network`` builds a whole artifact's network from them (``seqstream
model import-keras`` / ``import-tf1``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import numpy as np
import torch

from seqstream.model.artifact import ArtifactError
from seqstream.model.network import SequenceModel
from seqstream.model.spec import ModelSpec


def _split4(matrix: np.ndarray, hidden: int) -> list[np.ndarray]:
    if matrix.shape[-1] != 4 * hidden:
        raise ValueError(f"last axis must be 4 * hidden = {4 * hidden}, got shape {matrix.shape}")
    return [matrix[..., k * hidden : (k + 1) * hidden] for k in range(4)]


def _named(
    layer: int, suffix: str, w_ih: np.ndarray, w_hh: np.ndarray, b_ih: np.ndarray | None
) -> dict[str, torch.Tensor]:
    tensors = {
        f"weight_ih_l{layer}{suffix}": torch.tensor(
            np.ascontiguousarray(w_ih), dtype=torch.float32
        ),
        f"weight_hh_l{layer}{suffix}": torch.tensor(
            np.ascontiguousarray(w_hh), dtype=torch.float32
        ),
    }
    if b_ih is not None:  # PyTorch adds two biases; the source has one: put it in b_ih, zero b_hh
        tensors[f"bias_ih_l{layer}{suffix}"] = torch.tensor(b_ih, dtype=torch.float32)
        tensors[f"bias_hh_l{layer}{suffix}"] = torch.zeros(len(b_ih), dtype=torch.float32)
    return tensors


def from_keras_lstm(
    kernel: np.ndarray,
    recurrent_kernel: np.ndarray,
    bias: np.ndarray | None = None,
    *,
    layer: int = 0,
    suffix: str = "",
) -> dict[str, torch.Tensor]:
    """``keras.layers.LSTM`` weights: kernel [in, 4h], recurrent_kernel [h, 4h], bias [4h],
    gates i, f, c, o (Keras' c is PyTorch's g, so the order already matches).

    Valid for Keras' defaults ``activation="tanh"``, ``recurrent_activation="sigmoid"``; old
    Keras 1 models with ``hard_sigmoid`` gates compute something else and cannot be converted."""
    hidden = recurrent_kernel.shape[0]
    _split4(kernel, hidden)  # validates the shape
    if recurrent_kernel.shape != (hidden, 4 * hidden):
        raise ValueError(
            f"recurrent_kernel must be [h, 4h] = [{hidden}, {4 * hidden}], got {recurrent_kernel.shape}"
        )
    return _named(layer, suffix, kernel.T, recurrent_kernel.T, bias)


def from_tf1_basic_lstm_cell(
    kernel: np.ndarray,
    bias: np.ndarray,
    *,
    input_size: int,
    forget_bias: float = 1.0,
    layer: int = 0,
    suffix: str = "",
) -> dict[str, torch.Tensor]:
    """TF1 ``BasicLSTMCell``: one kernel [in + h, 4h] applied to concat(x, h), gates i, j, f, o
    (j is the candidate, PyTorch's g) and ``forget_bias`` added to f inside the sigmoid; it is
    folded into PyTorch's bias."""
    hidden = kernel.shape[1] // 4
    if kernel.shape != (input_size + hidden, 4 * hidden):
        raise ValueError(
            f"kernel must be [in + h, 4h] = [{input_size + hidden}, {4 * hidden}], got {kernel.shape}"
        )
    i, j, f, o = _split4(kernel, hidden)
    bi, bj, bf, bo = _split4(bias, hidden)
    reordered = np.concatenate([i, f, j, o], axis=1)  # -> i, f, g, o
    torch_bias = np.concatenate([bi, bf + forget_bias, bj, bo])
    return _named(layer, suffix, reordered[:input_size].T, reordered[input_size:].T, torch_bias)


def imported_network(
    framework: Literal["keras", "tf1"],
    arrays: Mapping[str, np.ndarray],
    spec: ModelSpec,
    *,
    forget_bias: float = 1.0,
) -> SequenceModel:
    """The network of ``spec`` with the weights of another framework's LSTM and Dense head.

    ``arrays`` names each layer's weights ``layer{n}/kernel``, ``layer{n}/recurrent_kernel``
    (Keras only) and ``layer{n}/bias`` (``layer{n}_reverse/...`` for a bidirectional layer's
    backward direction), and the head's Dense ``head/kernel`` [lstm output, outputs] and
    ``head/bias``, each in the source framework's own layout."""
    lstm = spec.lstm
    if lstm.proj_size:
        raise ArtifactError(
            f"lstm.proj_size is {lstm.proj_size}: neither keras.layers.LSTM nor TF1's "
            "BasicLSTMCell projects its output, so there are no weights to import for it"
        )
    if framework == "tf1" and not lstm.bias:
        raise ArtifactError(
            "lstm.bias is false, but TF1's BasicLSTMCell always has a bias (forget_bias is "
            "added to it): set lstm.bias to true"
        )
    expected = _expected_names(framework, spec)
    missing = [name for name in expected if name not in arrays]
    extra = sorted(set(arrays) - set(expected))
    if missing or extra:
        raise ArtifactError(
            f"the {framework} weights do not fit the config (num_layers={lstm.num_layers}, "
            f"bidirectional={lstm.bidirectional}, bias={lstm.bias}, head bias={spec.head.bias}): "
            f"missing {missing or 'nothing'}, not used {extra or 'nothing'}"
        )
    tensors: dict[str, torch.Tensor] = {}
    for layer, suffix in _directions(spec):
        prefix = f"layer{layer}{suffix}/"
        try:
            if framework == "keras":
                tensors |= from_keras_lstm(
                    arrays[prefix + "kernel"],
                    arrays[prefix + "recurrent_kernel"],
                    arrays.get(prefix + "bias"),
                    layer=layer,
                    suffix=suffix,
                )
            else:
                tensors |= from_tf1_basic_lstm_cell(
                    arrays[prefix + "kernel"],
                    arrays[prefix + "bias"],
                    # a layer above the first reads the one below (no projection: refused above)
                    input_size=lstm.input_size if layer == 0 else lstm.output_size,
                    forget_bias=forget_bias,
                    layer=layer,
                    suffix=suffix,
                )
        except ValueError as exc:
            raise ArtifactError(f"{prefix}: {exc}") from exc
    tensors["head.weight"] = torch.tensor(np.asarray(arrays["head/kernel"]).T, dtype=torch.float32)
    if spec.head.bias:
        tensors["head.bias"] = torch.tensor(arrays["head/bias"], dtype=torch.float32)
    network = SequenceModel(lstm, spec.head)
    try:
        network.load_state_dict(
            {("" if k.startswith("head.") else "lstm.") + k: v for k, v in tensors.items()}
        )
    except RuntimeError as exc:  # shapes that differ from the config's
        raise ArtifactError(f"the {framework} weights do not fit the config: {exc}") from exc
    return network.eval()


def _directions(spec: ModelSpec) -> list[tuple[int, str]]:
    """(layer, state_dict suffix) of each layer and direction, bottom up."""
    suffixes = ("", "_reverse") if spec.lstm.bidirectional else ("",)
    return [(layer, suffix) for layer in range(spec.lstm.num_layers) for suffix in suffixes]


def _expected_names(framework: str, spec: ModelSpec) -> list[str]:
    parts = ["kernel", "recurrent_kernel"] if framework == "keras" else ["kernel"]
    if spec.lstm.bias:
        parts.append("bias")
    names = [
        f"layer{layer}{suffix}/{part}" for layer, suffix in _directions(spec) for part in parts
    ]
    return [*names, "head/kernel", *(["head/bias"] if spec.head.bias else [])]
