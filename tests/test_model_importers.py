"""Weights from Keras and TF1 cells, converted, reproduce those frameworks' own equations."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from seqstream.model.importers import from_keras_lstm, from_tf1_basic_lstm_cell

from lstm_reference import keras_lstm, tf1_basic_lstm


def run_torch(
    tensors: dict[str, torch.Tensor],
    x: np.ndarray,
    input_size: int,
    hidden: int,
    bidirectional: bool = False,
) -> np.ndarray:
    lstm = torch.nn.LSTM(input_size, hidden, batch_first=True, bidirectional=bidirectional).double()
    lstm.load_state_dict({k: v.double() for k, v in tensors.items()})
    with torch.inference_mode():
        out, _ = lstm(torch.from_numpy(x)[None])
    return out[0].numpy()


@pytest.mark.parametrize(("input_size", "hidden"), [(1, 4), (3, 7)])
def test_keras_lstm(input_size: int, hidden: int) -> None:
    rng = np.random.default_rng(input_size)
    kernel = rng.normal(0, 0.5, (input_size, 4 * hidden))
    recurrent = rng.normal(0, 0.5, (hidden, 4 * hidden))
    bias = rng.normal(0, 0.5, 4 * hidden)
    x = rng.normal(size=(12, input_size))
    np.testing.assert_allclose(
        run_torch(from_keras_lstm(kernel, recurrent, bias), x, input_size, hidden),
        keras_lstm(x, kernel, recurrent, bias),
        atol=1e-6,
        rtol=0,
    )


def test_keras_bidirectional_layer_maps_to_reverse_tensors() -> None:
    rng = np.random.default_rng(0)
    fwd = [rng.normal(0, 0.5, s) for s in [(2, 12), (3, 12), (12,)]]
    bwd = [rng.normal(0, 0.5, s) for s in [(2, 12), (3, 12), (12,)]]
    tensors = {**from_keras_lstm(*fwd), **from_keras_lstm(*bwd, suffix="_reverse")}
    x = rng.normal(size=(9, 2))
    expected = np.concatenate([keras_lstm(x, *fwd), keras_lstm(x[::-1], *bwd)[::-1]], axis=1)
    np.testing.assert_allclose(
        run_torch(tensors, x, 2, 3, bidirectional=True), expected, atol=1e-6, rtol=0
    )


@pytest.mark.parametrize("forget_bias", [1.0, 0.0, 2.5])
def test_tf1_basic_lstm_cell(forget_bias: float) -> None:
    rng = np.random.default_rng(3)
    input_size, hidden = 3, 5
    kernel = rng.normal(0, 0.5, (input_size + hidden, 4 * hidden))
    bias = rng.normal(0, 0.5, 4 * hidden)
    x = rng.normal(size=(10, input_size))
    converted = from_tf1_basic_lstm_cell(
        kernel, bias, input_size=input_size, forget_bias=forget_bias
    )
    np.testing.assert_allclose(
        run_torch(converted, x, input_size, hidden),
        tf1_basic_lstm(x, kernel, bias, forget_bias),
        atol=1e-6,
        rtol=0,
    )


def test_wrong_shapes_are_refused() -> None:
    with pytest.raises(
        ValueError, match=r"kernel must be \[in \+ h, 4h\] = \[8, 20\], got \(7, 20\)"
    ):
        from_tf1_basic_lstm_cell(np.zeros((7, 20)), np.zeros(20), input_size=3)
    with pytest.raises(
        ValueError, match=r"recurrent_kernel must be \[h, 4h\] = \[5, 20\], got \(5, 16\)"
    ):
        from_keras_lstm(np.zeros((3, 20)), np.zeros((5, 16)))
