"""K networks of one shape as one: a ``torch.nn.LSTM`` K times as wide whose weights are
block-diagonal (member j's gates, state and projection in the j-th block of each), and a linear
head that averages the members' heads. Its output is exactly the mean of the members' outputs,
for window and carry models alike, and it stays a plain ``nn.LSTM`` + ``nn.Linear``: the
artifact format, the jobs and the torch-only reference need nothing new.

Why: forecasters trained from different seeds err differently; their mean forecast scores
anomalies more steadily than any one of them (docs/models.md, "Which model kind").
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from seqstream.model.errors import ModelError
from seqstream.model.network import SequenceModel
from seqstream.model.spec import HeadSpec, LSTMArgs


def _blocks(size: int, members: int, member: int, parts: int = 1) -> torch.Tensor:
    """Indices of ``member``'s slice in each of ``parts`` consecutive parts of a merged axis
    (each part ``members * size`` long), e.g. the four gates of an LSTM weight's rows."""
    return torch.cat(
        [torch.arange(size) + part * members * size + member * size for part in range(parts)]
    )


def average_network(
    members: Sequence[SequenceModel], lstm: LSTMArgs, head: HeadSpec
) -> tuple[LSTMArgs, SequenceModel]:
    """One network (and its LSTM arguments) whose output is the mean of ``members``' outputs;
    every member has ``lstm`` and ``head``, a linear head without activation."""
    k = len(members)
    if k < 1:
        raise ModelError("an ensemble needs at least one member")
    if head.activation is not None:
        raise ModelError("only a linear head (no activation) averages exactly")
    h, p = lstm.hidden_size, lstm.proj_size
    r = p or h  # each member's output per direction
    directions = 2 if lstm.bidirectional else 1
    merged_args = lstm.model_copy(update={"hidden_size": k * h, "proj_size": k * p})
    merged = SequenceModel(merged_args, head)
    suffixes = ["", "_reverse"][:directions]
    with torch.no_grad():
        for tensor in merged.parameters():
            tensor.zero_()
        target = dict(merged.named_parameters())
        for j, member in enumerate(members):
            source = dict(member.named_parameters())
            gate_rows = _blocks(h, k, j, parts=4)
            output_cols = _blocks(r, k, j, parts=directions)  # a layer's output, both directions
            for layer in range(lstm.num_layers):
                for suffix in suffixes:
                    key = f"l{layer}{suffix}"
                    w_ih = target[f"lstm.weight_ih_{key}"]
                    if layer == 0:
                        w_ih[gate_rows] = source[f"lstm.weight_ih_{key}"]
                    else:
                        w_ih[gate_rows[:, None], output_cols[None, :]] = source[
                            f"lstm.weight_ih_{key}"
                        ]
                    own = _blocks(r, k, j)
                    target[f"lstm.weight_hh_{key}"][gate_rows[:, None], own[None, :]] = source[
                        f"lstm.weight_hh_{key}"
                    ]
                    if lstm.bias:
                        for bias in ("bias_ih", "bias_hh"):
                            target[f"lstm.{bias}_{key}"][gate_rows] = source[f"lstm.{bias}_{key}"]
                    if p:
                        target[f"lstm.weight_hr_{key}"][
                            _blocks(p, k, j)[:, None], _blocks(h, k, j)[None, :]
                        ] = source[f"lstm.weight_hr_{key}"]
            target["head.weight"][:, output_cols] = source["head.weight"] / k
            if head.bias:
                target["head.bias"].add_(source["head.bias"] / k)
    return merged_args, merged.eval()
