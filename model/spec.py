"""The model's description, as stored in an artifact's ``config.json`` (format version 2).

Everything a PyTorch user needs to rebuild and feed the network without seqstream: the exact
``torch.nn.LSTM`` keyword arguments, the head, the ordered feature names, the normalisation,
the model kind with its window or carry settings, the task, a version string and the weights
file's sha256.

Two kinds: a ``window`` model scores each event from its key's last N events run from a zero
state (N LSTM steps per event, any LSTM); a ``carry`` model keeps each key's LSTM state across
events and runs one step per event (unidirectional only). Version 1 files (window models, no
``kind``) are still read.
"""

from __future__ import annotations

from typing import Annotated, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

FORMAT_VERSION: Final = 2
READABLE_FORMATS: Final = (1, 2)
# Per-key normalisation divides by the key's (or window's) standard deviation, floored so that a
# constant stretch does not divide by zero: max(std, PER_KEY_STD_FLOOR * (|mean| + 1)).
PER_KEY_STD_FLOOR: Final = 1e-3
# A carry model's LSTM reads each normalised event clipped to [-CARRY_INPUT_CLIP, CARRY_INPUT_CLIP]
# (its score compares the unclipped one): one wild event, or a key's first events under per-key
# statistics, cannot push a state that lives for the key's whole history far off its range.
CARRY_INPUT_CLIP: Final = 10.0


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LSTMArgs(_Strict):
    """Exactly the keyword arguments of ``torch.nn.LSTM``."""

    input_size: int = Field(ge=1)
    hidden_size: int = Field(ge=1)
    num_layers: int = Field(1, ge=1)
    bias: bool = True
    batch_first: bool = True
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    bidirectional: bool = False
    proj_size: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _proj_smaller_than_hidden(self) -> LSTMArgs:
        if self.proj_size >= self.hidden_size:
            raise ValueError(
                f"proj_size ({self.proj_size}) must be smaller than hidden_size ({self.hidden_size})"
            )
        return self

    @property
    def output_size(self) -> int:
        """Features of the LSTM output at one time step (what the head reads)."""
        per_direction = self.proj_size or self.hidden_size
        return per_direction * (2 if self.bidirectional else 1)


class HeadSpec(_Strict):
    type: Literal["linear"] = "linear"
    output_size: int = Field(ge=1)
    bias: bool = True
    activation: Literal["sigmoid", "softmax"] | None = None


class Normalization(_Strict):
    """Applied before the model: ``(x - mean) / std`` per feature. With ``per_key`` the mean
    and std are not these global ones but the key's own: for a window model the window's input
    events' (the forecast target left out), for a carry model the key's events before the one
    being read (its running statistics, kept in its state; a key's first event reads as 0).
    The std is then floored at ``PER_KEY_STD_FLOOR * (|mean| + 1)``. ``mean`` and ``std`` stay
    the training data's, for information."""

    mean: list[float]
    std: list[float]
    per_key: bool = False
    # A window model's LSTM reads the normalised events clipped to [-clip, clip] (a forecast's
    # score still compares the unclipped target): under per-key statistics a flat window makes
    # the next small move a huge value the network never saw in training. None: no clip. Carry
    # models always clip, at CARRY_INPUT_CLIP, and leave this None.
    clip: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _positive_std(self) -> Normalization:
        if len(self.mean) != len(self.std):
            raise ValueError(f"mean has {len(self.mean)} values, std {len(self.std)}")
        if any(not s > 0 for s in self.std):
            raise ValueError(f"every std must be > 0, got {self.std}")
        return self


class WindowSpec(_Strict):
    length: int = Field(ge=1, description="events per window, the scored event included")
    min_length: int = Field(
        ge=1, description="shorter windows (a key's first events) are not scored"
    )

    @model_validator(mode="after")
    def _min_within_length(self) -> WindowSpec:
        if self.min_length > self.length:
            raise ValueError(f"min_length ({self.min_length}) exceeds length ({self.length})")
        return self


class CarrySpec(_Strict):
    min_events: int = Field(
        ge=1, description="a key's events before its min_events-th (1-based) are not scored"
    )


class ForecastTask(_Strict):
    """Predict the window's last event from the ones before it. Score: the forecast error,
    divided per feature by its spread on the training data (``error_std``, in the same units),
    RMS over features. ``error_units`` says which units: ``normalized`` (the model's input
    units: with per-key normalisation an error counts relative to the window's or key's own
    spread, so a small move in a flat stretch scores high) or ``original`` (the event's own
    units, the normalised error times the std it was normalised with: a move scores by its size,
    as ``|x_t - x_(t-1)|`` does; measured better on NAB, docs/models.md)."""

    type: Literal["forecast"] = "forecast"
    error_std: list[float]
    error_units: Literal["normalized", "original"] = "normalized"


class RegressionTask(_Strict):
    """Head output is the prediction; the score is its first component."""

    type: Literal["regression"] = "regression"


class ClassificationTask(_Strict):
    """Head output (sigmoid/softmax) are class probabilities; score = P(last class)."""

    type: Literal["classification"] = "classification"
    classes: list[str] = Field(min_length=2)


Task = Annotated[ForecastTask | RegressionTask | ClassificationTask, Field(discriminator="type")]


class ModelSpec(_Strict):
    format_version: Literal[1, 2] = FORMAT_VERSION
    version: str = Field(min_length=1)
    kind: Literal["window", "carry"] = "window"
    task: Task
    features: list[str] = Field(min_length=1)
    normalization: Normalization
    window: WindowSpec | None = None
    carry: CarrySpec | None = None
    lstm: LSTMArgs
    head: HeadSpec
    weights_sha256: str | None = None  # filled in when the artifact is written

    @model_validator(mode="after")
    def _consistent(self) -> ModelSpec:
        n = len(self.features)
        problems = []
        if len(set(self.features)) != n:
            problems.append(f"features repeat a name: {self.features}")
        if self.lstm.input_size != n:
            problems.append(f"lstm.input_size is {self.lstm.input_size} but there are {n} features")
        if len(self.normalization.mean) != n:
            problems.append(
                f"normalization has {len(self.normalization.mean)} values for {n} features"
            )
        task = self.task
        if isinstance(task, ForecastTask):
            if self.head.output_size != n or self.head.activation is not None:
                problems.append("a forecast head must be linear with one output per feature")
            if len(task.error_std) != n or any(not s > 0 for s in task.error_std):
                problems.append(f"task.error_std needs {n} positive values, got {task.error_std}")
            if self.window is not None and self.window.min_length < 2:
                problems.append(
                    "a forecast needs window.min_length >= 2 (one event to read, one to predict)"
                )
            if self.carry is not None and self.carry.min_events < 2:
                problems.append(
                    "a forecast needs carry.min_events >= 2 (one event to read, one to predict)"
                )
        if isinstance(task, ClassificationTask):
            expected = (
                1
                if len(task.classes) == 2 and self.head.activation == "sigmoid"
                else len(task.classes)
            )
            if self.head.activation is None or self.head.output_size != expected:
                problems.append(
                    f"a classification head needs sigmoid (2 classes, 1 output) or softmax "
                    f"({len(task.classes)} outputs), got {self.head.activation} with {self.head.output_size}"
                )
        problems += self._kind_problems()
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def _kind_problems(self) -> list[str]:
        if self.format_version == 1 and (
            self.kind != "window"
            or self.carry is not None
            or self.normalization.per_key
            or self.normalization.clip is not None
            or (isinstance(self.task, ForecastTask) and self.task.error_units != "normalized")
        ):
            return [
                "format_version 1 has window models with global normalisation and "
                "normalised forecast errors only"
            ]
        if self.kind == "carry" and self.normalization.clip is not None:
            return [
                f"a carry model clips its inputs at {CARRY_INPUT_CLIP} always: "
                "normalization.clip must be null"
            ]
        if self.kind == "window":
            if self.window is None or self.carry is not None:
                return ["a window model needs a window section and no carry section"]
            return []
        problems = []
        if self.carry is None or self.window is not None:
            problems.append("a carry model needs a carry section and no window section")
        if self.lstm.bidirectional:
            problems.append(
                "a carry model cannot be bidirectional: it runs one step per event from the "
                "key's carried state, and a reverse direction would need the key's future "
                "events; score a bidirectional LSTM as a window model (kind: window)"
            )
        return problems

    @property
    def window_spec(self) -> WindowSpec:
        """The window of a window model (a carry model has none: a precise error)."""
        if self.window is None:
            raise ValueError(f"model {self.version} is a {self.kind} model: it has no window")
        return self.window

    @property
    def carry_spec(self) -> CarrySpec:
        if self.carry is None:
            raise ValueError(f"model {self.version} is a {self.kind} model, not a carry model")
        return self.carry

    @property
    def min_events(self) -> int:
        """A key's first scored event (1-based), whatever the kind."""
        return self.carry_spec.min_events if self.kind == "carry" else self.window_spec.min_length

    def state_shape(self) -> dict[str, object]:
        """What each key's streaming state depends on: a model swapped in mid-stream must give
        the same (window length, or LSTM state size and what is kept beside it)."""
        if self.kind == "window":
            return {"kind": "window", "window": self.window_spec.length}
        return {
            "kind": "carry",
            "num_layers": self.lstm.num_layers,
            "hidden_size": self.lstm.hidden_size,
            "proj_size": self.lstm.proj_size,
            "per_key_normalization": self.normalization.per_key,
            "carried_forecast": isinstance(self.task, ForecastTask),
        }
