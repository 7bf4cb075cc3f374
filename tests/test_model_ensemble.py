"""An ensemble is one wider nn.LSTM whose output is exactly the mean of its members' outputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from seqstream.model.ensemble import average_network
from seqstream.model.errors import ModelError
from seqstream.model.network import SequenceModel
from seqstream.model.spec import HeadSpec, LSTMArgs
from seqstream.model.train import TrainOptions, train_forecaster


@pytest.mark.parametrize(
    "options",
    [
        {"num_layers": 2},
        {"num_layers": 3, "bidirectional": True, "proj_size": 3},
        {"num_layers": 2, "bias": False, "batch_first": False},
        {"num_layers": 1, "proj_size": 2},
    ],
    ids=["two-layers", "bidirectional-projected", "no-bias-time-major", "projected"],
)
def test_the_merged_network_outputs_the_members_mean(options) -> None:  # type: ignore[no-untyped-def]
    lstm, head = LSTMArgs(input_size=2, hidden_size=5, **options), HeadSpec(output_size=2)
    torch.manual_seed(0)
    members = [SequenceModel(lstm, head).eval() for _ in range(3)]
    merged_args, merged = average_network(members, lstm, head)
    assert merged_args.hidden_size == 15 and merged_args.proj_size == 3 * lstm.proj_size
    x = torch.randn(6, 9, 2)
    lengths = torch.tensor([9, 3, 7, 1, 9, 5])
    with torch.inference_mode():
        want = torch.stack([m(x, lengths) for m in members]).mean(0)
        torch.testing.assert_close(merged(x, lengths), want, atol=1e-6, rtol=1e-5)
        if not lstm.bidirectional:  # carry models: every step's head output
            outs = [m.head_output(m.steps(x, lengths)[0]) for m in members]
            got = merged.head_output(merged.steps(x, lengths)[0])
            real = torch.arange(9)[None, :] < lengths[:, None]
            torch.testing.assert_close(
                got[real], torch.stack(outs).mean(0)[real], atol=1e-6, rtol=1e-5
            )


def test_a_head_with_an_activation_is_refused() -> None:
    lstm, head = (
        LSTMArgs(input_size=1, hidden_size=4),
        HeadSpec(output_size=1, activation="sigmoid"),
    )
    with pytest.raises(ModelError, match="only a linear head"):
        average_network([SequenceModel(lstm, head)], lstm, head)


@pytest.mark.parametrize("carry", [False, True], ids=["window", "carry"])
def test_training_an_ensemble_writes_one_lstm_k_times_as_wide(carry: bool) -> None:
    series = {
        k: np.sin(np.arange(120, dtype=np.float32) / (3 + k))[:, None] * (k + 1) for k in range(3)
    }
    options = TrainOptions(
        window=12, min_length=4, hidden_size=4, num_layers=1, epochs=1, carry=carry, ensemble=3
    )
    network, spec, report = train_forecaster(series, ["value"], options)
    assert spec.lstm.hidden_size == 12 and report.members == 3
    members = [
        train_forecaster(
            series, ["value"], TrainOptions(**{**options.__dict__, "ensemble": 1, "seed": i})
        )[0]
        for i in range(3)
    ]
    x = torch.from_numpy(np.stack([v[:12] for v in series.values()]))
    with torch.inference_mode():
        want = torch.stack([m(x) for m in members]).mean(0)
        torch.testing.assert_close(network(x), want, atol=1e-6, rtol=1e-5)
