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
        """LSTM output at each row's last real step: [batch, lstm output size]. Full rows run
        unpacked and only the shorter ones packed: a packed call runs step by step, about half
        as fast on the CPU, and a row's path depends on its own length alone, not its batch's."""
        steps = x.shape[1]
        if lengths is None:
            return self._full_last_step(x)
        full = lengths == steps
        if bool(full.all()):  # the common streaming case
            return self._full_last_step(x)
        if not bool(full.any()):
            return self._packed_last_step(x, lengths)
        full_out = self._full_last_step(x[full])
        out = full_out.new_empty(x.shape[0], full_out.shape[1])
        out[full] = full_out
        out[~full] = self._packed_last_step(x[~full], lengths[~full])
        return out

    def _full_last_step(self, x: torch.Tensor) -> torch.Tensor:
        """``last_step`` of rows with no padding."""
        batch_first = self.lstm.batch_first
        out, _ = self.lstm(x if batch_first else x.transpose(0, 1))
        return out[:, -1] if batch_first else out[-1]

    def _packed_last_step(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """``last_step`` of rows shorter than ``x``'s time axis: packed, so padding never counts."""
        batch_first = self.lstm.batch_first
        packed = pack_padded_sequence(
            x if batch_first else x.transpose(0, 1),
            lengths.cpu(),
            batch_first=batch_first,
            enforce_sorted=False,
        )
        packed_out, _ = self.lstm(packed)
        out, _ = pad_packed_sequence(packed_out, batch_first=True)  # [batch, max_len, size]
        return out[torch.arange(x.shape[0], device=out.device), lengths.to(out.device) - 1]

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
