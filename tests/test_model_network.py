"""SequenceModel against the LSTM gate equations computed by hand, across nn.LSTM's options."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from seqstream.model.network import SequenceModel
from seqstream.model.spec import HeadSpec, LSTMArgs

from lstm_reference import sigmoid, torch_lstm

GRID = list(
    itertools.product(
        [1, 2],  # num_layers
        [True, False],  # bias
        [True, False],  # batch_first
        [0.0, 0.3],  # dropout
        [False, True],  # bidirectional
        [0, 2],  # proj_size
    )
)


def make(args: LSTMArgs, head: HeadSpec, seed: int) -> SequenceModel:
    torch.manual_seed(seed)
    return SequenceModel(args, head).double().eval()


@pytest.mark.filterwarnings("ignore:dropout option adds dropout")
@pytest.mark.parametrize(
    ("num_layers", "bias", "batch_first", "dropout", "bidirectional", "proj_size"), GRID
)
def test_matches_hand_computed_gates(
    num_layers, bias, batch_first, dropout, bidirectional, proj_size
) -> None:
    args = LSTMArgs(
        input_size=3,
        hidden_size=5,
        num_layers=num_layers,
        bias=bias,
        batch_first=batch_first,
        dropout=dropout,
        bidirectional=bidirectional,
        proj_size=proj_size,
    )
    head = HeadSpec(output_size=2, activation="sigmoid")
    model = make(args, head, seed=len(str(args)))
    assert (
        model.lstm.num_layers,
        model.lstm.bias,
        model.lstm.batch_first,
        model.lstm.dropout,
        model.lstm.bidirectional,
        model.lstm.proj_size,
    ) == (num_layers, bias, batch_first, dropout, bidirectional, proj_size)
    params = {k: v.numpy() for k, v in model.lstm.state_dict().items()}
    rng = np.random.default_rng(7)
    lengths = np.array([7, 3, 1, 7, 5])
    x = rng.normal(size=(5, 7, 3))
    x[np.arange(7)[None, :] >= lengths[:, None]] = 99.0  # padding must not matter

    got_last = model.last_step(torch.from_numpy(x), torch.from_numpy(lengths)).detach().numpy()
    got_head = model(torch.from_numpy(x), torch.from_numpy(lengths)).detach().numpy()
    for row, n in enumerate(lengths):
        reference = torch_lstm(
            params,
            x[row, :n],
            num_layers=num_layers,
            hidden=5,
            bidirectional=bidirectional,
            proj_size=proj_size,
            bias=bias,
        )
        last = reference[n - 1]
        np.testing.assert_allclose(got_last[row], last, atol=1e-6, rtol=0)
        w, b = model.head.weight.detach().numpy(), model.head.bias.detach().numpy()
        np.testing.assert_allclose(got_head[row], sigmoid(w @ last + b), atol=1e-6, rtol=0)


@pytest.mark.parametrize("batch_first", [True, False])
def test_a_rows_result_does_not_depend_on_the_other_rows_of_its_batch(batch_first: bool) -> None:
    """Full rows run unpacked and short ones packed, each on its own: a window scores the same
    in a stream's batch of full windows and in a backfill's batch of a history's first ones.
    (That both paths are right is ``test_matches_hand_computed_gates``: its rows mix lengths.)"""
    args = LSTMArgs(
        input_size=2, hidden_size=4, num_layers=2, batch_first=batch_first, bidirectional=True
    )
    model = make(args, HeadSpec(output_size=3, activation="softmax"), seed=1)
    x = torch.randn(6, 9, 2, dtype=torch.float64)
    mixed = torch.tensor([9, 9, 4, 9, 9, 8])
    together = model(x, mixed)
    full = (mixed == 9).nonzero().ravel()
    short = (mixed < 9).nonzero().ravel()
    torch.testing.assert_close(together[full], model(x[full], mixed[full]), atol=0, rtol=0)
    torch.testing.assert_close(together[short], model(x[short], mixed[short]), atol=0, rtol=0)
    torch.testing.assert_close(together.sum(dim=1), torch.ones(6, dtype=torch.float64))
    # and a full row's result is the packed path's, so where a window runs does not matter
    packed = model._packed_last_step(x[full], mixed[full])
    torch.testing.assert_close(model.last_step(x[full], mixed[full]), packed, atol=1e-12, rtol=0)


def test_dropout_is_active_in_training_and_off_in_eval() -> None:
    args = LSTMArgs(input_size=2, hidden_size=16, num_layers=2, dropout=0.5)
    model = make(args, HeadSpec(output_size=1), seed=2)
    x = torch.randn(4, 6, 2, dtype=torch.float64)
    assert torch.equal(model(x), model(x))
    model.train()
    assert not torch.equal(model(x), model(x))


def test_invalid_lstm_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match=r"proj_size \(4\) must be smaller than hidden_size \(4\)"):
        LSTMArgs(input_size=1, hidden_size=4, proj_size=4)
