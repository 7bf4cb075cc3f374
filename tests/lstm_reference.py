"""Independent float64 numpy implementations of the recurrent cells seqstream must reproduce."""

from __future__ import annotations

import numpy as np


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def torch_lstm(
    params: dict[str, np.ndarray],
    x: np.ndarray,
    *,
    num_layers: int,
    hidden: int,
    bidirectional: bool,
    proj_size: int,
    bias: bool,
) -> np.ndarray:
    """nn.LSTM's documented equations on one unpadded sequence x [T, in]; returns [T, out].

    i = s(W_ii x + b_ii + W_hi h + b_hi), f = s(...), g = tanh(...), o = s(...)
    c' = f * c + i * g;  h' = o * tanh(c');  h' = W_hr h' when proj_size > 0."""
    layer_input = x
    for layer in range(num_layers):
        outputs = []
        for suffix in ["", "_reverse"] if bidirectional else [""]:
            w_ih, w_hh = (
                params[f"weight_ih_l{layer}{suffix}"],
                params[f"weight_hh_l{layer}{suffix}"],
            )
            b = (
                params[f"bias_ih_l{layer}{suffix}"] + params[f"bias_hh_l{layer}{suffix}"]
                if bias
                else 0.0
            )
            h = np.zeros(proj_size or hidden)
            c = np.zeros(hidden)
            steps = layer_input if suffix == "" else layer_input[::-1]
            hs = []
            for x_t in steps:
                gates = w_ih @ x_t + w_hh @ h + b
                i, f, g, o = np.split(gates, 4)
                c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
                h = sigmoid(o) * np.tanh(c)
                if proj_size:
                    h = params[f"weight_hr_l{layer}{suffix}"] @ h
                hs.append(h)
            outputs.append(np.stack(hs if suffix == "" else hs[::-1]))
        layer_input = np.concatenate(outputs, axis=1)
    return layer_input


def keras_lstm(
    x: np.ndarray, kernel: np.ndarray, recurrent: np.ndarray, bias: np.ndarray
) -> np.ndarray:
    """keras.layers.LSTM (tanh, sigmoid recurrent activation), gates i, f, c, o."""
    hidden = recurrent.shape[0]
    h, c, hs = np.zeros(hidden), np.zeros(hidden), []
    for x_t in x:
        z = x_t @ kernel + h @ recurrent + bias
        i, f, cc, o = np.split(z, 4)
        c = sigmoid(f) * c + sigmoid(i) * np.tanh(cc)
        h = sigmoid(o) * np.tanh(c)
        hs.append(h)
    return np.stack(hs)


def tf1_basic_lstm(
    x: np.ndarray, kernel: np.ndarray, bias: np.ndarray, forget_bias: float
) -> np.ndarray:
    """TF1 BasicLSTMCell: [i, j, f, o] = concat(x, h) @ kernel + bias;
    c = c * s(f + forget_bias) + s(i) * tanh(j);  h = tanh(c) * s(o)."""
    hidden = kernel.shape[1] // 4
    h, c, hs = np.zeros(hidden), np.zeros(hidden), []
    for x_t in x:
        i, j, f, o = np.split(np.concatenate([x_t, h]) @ kernel + bias, 4)
        c = c * sigmoid(f + forget_bias) + sigmoid(i) * np.tanh(j)
        h = np.tanh(c) * sigmoid(o)
        hs.append(h)
    return np.stack(hs)
