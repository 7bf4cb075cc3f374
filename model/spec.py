"""The model's description, as stored in an artifact's ``config.json`` (format version 1).

Everything a PyTorch user needs to rebuild and feed the network without seqstream: the exact
``torch.nn.LSTM`` keyword arguments, the head, the ordered feature names, the normalisation,
the window, the task, a version string and the weights file's sha256.
"""

from __future__ import annotations

from typing import Annotated, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

FORMAT_VERSION: Final = 1


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
    """Applied before the model: ``(x - mean) / std`` per feature."""

    mean: list[float]
    std: list[float]

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


class ForecastTask(_Strict):
    """Predict the window's last event from the ones before it. Score: the forecast error in
    normalised units, divided per feature by its spread on the training data, RMS over features."""

    type: Literal["forecast"] = "forecast"
    error_std: list[float]


class RegressionTask(_Strict):
    """Head output is the prediction; the score is its first component."""

    type: Literal["regression"] = "regression"


class ClassificationTask(_Strict):
    """Head output (sigmoid/softmax) are class probabilities; score = P(last class)."""

    type: Literal["classification"] = "classification"
    classes: list[str] = Field(min_length=2)


Task = Annotated[ForecastTask | RegressionTask | ClassificationTask, Field(discriminator="type")]


class ModelSpec(_Strict):
    format_version: Literal[1] = FORMAT_VERSION
    version: str = Field(min_length=1)
    task: Task
    features: list[str] = Field(min_length=1)
    normalization: Normalization
    window: WindowSpec
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
            if self.window.min_length < 2:
                problems.append(
                    "a forecast needs window.min_length >= 2 (one event to read, one to predict)"
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
        if problems:
            raise ValueError("; ".join(problems))
        return self
