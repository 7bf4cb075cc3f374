"""Convert LSTM weights trained in Keras/TensorFlow to ``torch.nn.LSTM``'s layout.

PyTorch stores ``weight_ih`` [4h, in], ``weight_hh`` [4h, h] and two biases, gates stacked in
the order i, f, g, o. Each function returns the tensors of one layer and direction, named as in
``nn.LSTM.state_dict()`` (``suffix="_reverse"`` for the backward direction).
"""

from __future__ import annotations

import numpy as np
import torch


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
