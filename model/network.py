"""The network: ``torch.nn.LSTM`` built from its exact keyword arguments, then a head that reads
the LSTM output at each sequence's last real time step (window models) or at every step from a
carried state (carry models)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from seqstream.model.spec import HeadSpec, LSTMArgs


class SequenceModel(nn.Module):
    """Input: ``x`` [batch, time, features] (always batch-major, whatever ``batch_first`` says;
    the LSTM gets the layout it was built for) and ``lengths`` [batch]. Rows are left-aligned;
    positions at or after a row's length are padding and never reach the result."""

    def __init__(self, lstm: LSTMArgs, head: HeadSpec) -> None:
        super().__init__()
        self.lstm = nn.LSTM(**lstm.model_dump())
        self.head = nn.Linear(lstm.output_size, head.output_size, bias=head.bias)
        self.activation = head.activation

    def last_step(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """LSTM output at each row's last real step: [batch, lstm output size]."""
        batch, steps, _ = x.shape
        batch_first = self.lstm.batch_first
        if lengths is None or bool((lengths == steps).all()):
            # Every row is full: no padding to hide, skip packing (the common streaming case).
            out, _ = self.lstm(x if batch_first else x.transpose(0, 1))
            return out[:, -1] if batch_first else out[-1]
        packed = pack_padded_sequence(
            x if batch_first else x.transpose(0, 1),
            lengths.cpu(),
            batch_first=batch_first,
            enforce_sorted=False,
        )
        packed_out, _ = self.lstm(packed)
        out, _ = pad_packed_sequence(packed_out, batch_first=True)  # [batch, max_len, size]
        return out[torch.arange(batch, device=out.device), lengths.to(out.device) - 1]

    def steps(
        self,
        x: torch.Tensor,
        lengths: torch.Tensor,
        state: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """Every real step from ``state`` (``(h_0, c_0)``, each [layers, batch, size]; zeros if
        None), in one packed call: the LSTM outputs [batch, time, output size] (zeros past a row's
        length) and each row's ``(h_n, c_n)`` after its last real step."""
        batch_first = self.lstm.batch_first
        packed = pack_padded_sequence(
            x if batch_first else x.transpose(0, 1),
            lengths.cpu(),
            batch_first=batch_first,
            enforce_sorted=False,
        )
        packed_out, final = self.lstm(packed, state)
        out, _ = pad_packed_sequence(packed_out, batch_first=True, total_length=x.shape[1])
        return out, final

    def head_output(self, features: torch.Tensor) -> torch.Tensor:
        """The head and its activation over LSTM outputs (any leading dimensions)."""
        y = self.head(features)
        if self.activation == "sigmoid":
            return torch.sigmoid(y)
        if self.activation == "softmax":
            return torch.softmax(y, dim=-1)
        return y

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        return self.head_output(self.last_step(x, lengths))
