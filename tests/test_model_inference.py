"""WindowScorer against plain torch, padding, batching, devices and the other task heads."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from seqstream.model.artifact import LoadedModel
from seqstream.model.errors import ModelError
from seqstream.model.inference import WindowScorer
from seqstream.model.network import SequenceModel
from seqstream.model.spec import (
    ClassificationTask,
    ForecastTask,
    HeadSpec,
    LSTMArgs,
    ModelSpec,
    Normalization,
    RegressionTask,
    WindowSpec,
)
from seqstream.model.windows import empty_state, extend_windows

from helpers import standalone_loader

MEAN, STD, SPREAD = np.array([5.0, -1.0]), np.array([2.0, 0.25]), np.array([0.3, 0.7])


def loaded(task=None, head=None, length: int = 10, min_length: int = 2, **lstm) -> LoadedModel:  # type: ignore[no-untyped-def]
    spec = ModelSpec(
        version="v",
        features=["a", "b"],
        normalization=Normalization(mean=MEAN.tolist(), std=STD.tolist()),
        window=WindowSpec(length=length, min_length=min_length),
        lstm=LSTMArgs(input_size=2, hidden_size=8, num_layers=2, **lstm),
        head=head or HeadSpec(output_size=2),
        task=task or ForecastTask(error_std=SPREAD.tolist()),
    )
    torch.manual_seed(4)
    return LoadedModel(spec, SequenceModel(spec.lstm, spec.head).eval(), Path("."))


def series(n: int = 30, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(MEAN, STD * 3, size=(n, 2)).astype(np.float32)


def test_forecast_scores_equal_plain_torch_on_each_unpadded_window() -> None:
    model = loaded()
    events = series()
    batch = extend_windows(empty_state(2), events, 10)
    keep = batch.lengths >= 2
    got = WindowScorer(model, num_threads=None).score(batch.windows[keep], batch.lengths[keep])
    lstm, head = model.network.lstm, model.network.head
    for row, end in enumerate(np.flatnonzero(keep)):
        window = events[max(0, end - 9) : end + 1]
        x = (torch.from_numpy(window).double() - torch.from_numpy(MEAN)) / torch.from_numpy(STD)
        with torch.inference_mode():
            out, _ = lstm(x[:-1].float()[None])
            forecast = head(out[0, -1]).double()
        expected = float((((x[-1] - forecast) / torch.from_numpy(SPREAD)) ** 2).mean().sqrt())
        assert got.score[row] == pytest.approx(expected, abs=1e-5)
        np.testing.assert_allclose(
            got.prediction[row],
            (forecast * torch.from_numpy(STD) + torch.from_numpy(MEAN)).numpy(),
            atol=1e-4,
        )


def test_padding_content_and_batch_size_never_change_a_score() -> None:
    model = loaded(bidirectional=True)
    batch = extend_windows(empty_state(2), series(25), 10)
    windows, lengths = batch.windows[1:], batch.lengths[1:]
    reference = WindowScorer(model, batch_size=4096, num_threads=None).score(windows, lengths).score
    noisy = windows.copy()
    noisy[np.arange(10)[None, :] >= lengths[:, None]] = 1e6
    np.testing.assert_allclose(
        WindowScorer(model, batch_size=3, num_threads=None).score(noisy, lengths).score,
        reference,
        atol=1e-6,
        rtol=0,
    )


def test_shape_and_length_errors_name_the_model_expectations() -> None:
    scorer = WindowScorer(loaded(min_length=4), num_threads=None)
    with pytest.raises(
        ModelError,
        match=r"windows must be \[n, 10, 2\] for model v \(features \['a', 'b'\]\), got \[3, 10, 3\]",
    ):
        scorer.score(np.zeros((3, 10, 3), np.float32), np.full(3, 10))
    with pytest.raises(ModelError, match=r"window lengths must be within \[4, 10\], got \[3, 10\]"):
        scorer.score(np.zeros((2, 10, 2), np.float32), np.array([3, 10]))
    with pytest.raises(ModelError, match="batch_size must be at least 1, got 0"):
        WindowScorer(loaded(), batch_size=0)


def test_regression_and_classification_heads() -> None:
    windows = extend_windows(empty_state(2), series(12), 10)
    full = windows.lengths == 10
    regression = loaded(task=RegressionTask(), head=HeadSpec(output_size=3))
    got = WindowScorer(regression, num_threads=None).score(
        windows.windows[full], windows.lengths[full]
    )
    np.testing.assert_array_equal(got.score, got.prediction[:, 0])
    classes = loaded(
        task=ClassificationTask(classes=["ok", "warn", "fail"]),
        head=HeadSpec(output_size=3, activation="softmax"),
    )
    got = WindowScorer(classes, num_threads=None).score(
        windows.windows[full], windows.lengths[full]
    )
    np.testing.assert_allclose(got.prediction.sum(axis=1), 1.0, atol=1e-6)
    np.testing.assert_array_equal(got.score, got.prediction[:, 2])


@pytest.mark.skipif(
    torch.cuda.is_available(), reason="checks the fallback on a machine without CUDA"
)
def test_cuda_requested_without_a_gpu_falls_back_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING):
        scorer = WindowScorer(loaded(), device="cuda", num_threads=None)
    assert scorer.device == torch.device("cpu")
    assert "device 'cuda' requested but CUDA is not available: scoring on the CPU" in caplog.text


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("pin_memory", [True, False])
@pytest.mark.parametrize(
    "lstm", [{}, {"bidirectional": True, "proj_size": 3}, {"batch_first": False, "bias": False}]
)
def test_cuda_scores_match_the_cpu(lstm: dict, pin_memory: bool) -> None:
    """Short windows (a key's first events) go through cuDNN's packed path; full ones do not."""
    batch = extend_windows(empty_state(2), series(300), 10)
    keep = batch.lengths >= 2
    model = loaded(**lstm)
    cpu = WindowScorer(model, num_threads=None).score(batch.windows[keep], batch.lengths[keep])
    gpu = WindowScorer(
        model, device="cuda", batch_size=128, num_threads=None, pin_memory=pin_memory
    )
    assert gpu.device.type == "cuda" and gpu.pin_memory is pin_memory
    got = gpu.score(batch.windows[keep], batch.lengths[keep])
    np.testing.assert_allclose(got.score, cpu.score, atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(got.prediction, cpu.prediction, atol=1e-4, rtol=1e-4)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_bf16_on_cuda_stays_close_and_leaves_the_float32_model_alone() -> None:
    batch = extend_windows(empty_state(2), series(300), 10)
    model = loaded()
    exact = WindowScorer(model, device="cuda", num_threads=None).score(
        batch.windows[9:], batch.lengths[9:]
    )
    bf16 = WindowScorer(model, device="cuda", dtype=torch.bfloat16, num_threads=None).score(
        batch.windows[9:], batch.lengths[9:]
    )
    assert next(model.network.parameters()).dtype == torch.float32
    np.testing.assert_allclose(bf16.score, exact.score, atol=0.05, rtol=0.05)


@pytest.mark.parametrize(
    ("per_key", "clip", "units"),
    [(False, None, "original"), (True, None, "normalized"), (True, 1.5, "original")],
    ids=["global-original", "per-key-normalized", "per-key-clipped-original"],
)
def test_forecast_scores_equal_the_documented_torch_reference(per_key, clip, units) -> None:  # type: ignore[no-untyped-def]
    """docs/models.md's torch-only forecast_score, for every normalisation, clip and error unit;
    a wild event (x40 the spread) makes the clip and the units matter."""
    namespace: dict = {}
    exec(standalone_loader(), namespace)  # noqa: S102 - our own docs' snippet
    model = loaded(task=ForecastTask(error_std=SPREAD.tolist(), error_units=units))
    spec = model.spec.model_copy(
        update={
            "normalization": Normalization(
                mean=MEAN.tolist(), std=STD.tolist(), per_key=per_key, clip=clip
            )
        }
    )
    model = LoadedModel(spec, model.network, Path("."))
    events = series(40)
    events[20] = MEAN + 40 * STD
    batch = extend_windows(empty_state(2), events, 10)
    keep = batch.lengths >= 2
    got = WindowScorer(model, num_threads=None).score(batch.windows[keep], batch.lengths[keep])
    config = spec.model_dump(mode="json")
    for row, end in enumerate(np.flatnonzero(keep)):
        window = events[max(0, end - 9) : end + 1]
        want = namespace["forecast_score"](config, model.network.lstm, model.network.head, window)
        assert got.score[row] == pytest.approx(want, rel=1e-5, abs=1e-5)


def test_error_units_original_is_the_normalised_error_times_the_std() -> None:
    """Globally normalised: the same forecast, each feature's error scaled by its std."""
    events = series(30)
    batch = extend_windows(empty_state(2), events, 10)
    full = batch.lengths == 10
    scores = {}
    for units in ("normalized", "original"):
        model = loaded(task=ForecastTask(error_std=[1.0, 1.0], error_units=units))
        scores[units] = WindowScorer(model, num_threads=None).score(
            batch.windows[full], batch.lengths[full]
        )
    np.testing.assert_array_equal(scores["normalized"].prediction, scores["original"].prediction)
    error = (events[np.flatnonzero(full)] - scores["original"].prediction) / STD
    np.testing.assert_allclose(scores["normalized"].score, np.sqrt((error**2).mean(1)), rtol=1e-4)
    np.testing.assert_allclose(
        scores["original"].score, np.sqrt(((error * STD) ** 2).mean(1)), rtol=1e-4
    )
