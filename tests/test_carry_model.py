"""Carry models without Spark: scoring in pieces from carried states equals docs/models.md's one-call
torch reference for every ``nn.LSTM`` option; a bidirectional carry model is refused; per-key
normalisation makes scores independent of a key's scale; ``train --carry`` is seeded."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from seqstream.model.artifact import (
    DEMO_CARRY_MODEL_DIR,
    DEMO_MODEL_DIR,
    ArtifactError,
    load_artifact,
    save_artifact,
)
from seqstream.model.carry import CarryLayout, CarryScorer, running_stats, score_history
from seqstream.model.errors import ModelError
from seqstream.model.inference import WindowScorer, score_series
from seqstream.model.network import SequenceModel
from seqstream.model.spec import (
    CARRY_INPUT_CLIP,
    CarrySpec,
    ForecastTask,
    HeadSpec,
    LSTMArgs,
    ModelSpec,
    Normalization,
)
from seqstream.pipeline.cli import main as cli_main
from seqstream.pipeline.config import EventSchema, load_settings
from seqstream.pipeline.errors import SeqstreamError
from seqstream.pipeline.scoring.model_versions import check_artifact
from seqstream.pipeline.sources.series import demo_series_files, load_series
from seqstream.pipeline.stream import build_query

from helpers import standalone_loader

FEATURES = ["a", "b", "c"]


@pytest.fixture(scope="module")
def reference():  # type: ignore[no-untyped-def]
    namespace: dict = {}
    exec(standalone_loader(), namespace)  # noqa: S102 - our own docs' snippets
    exec(standalone_loader("standalone-carry"), namespace)  # noqa: S102
    return namespace


def carry_model(folder: Path, *, per_key: bool = False, units: str = "normalized", **lstm) -> Path:  # type: ignore[no-untyped-def]
    spec = ModelSpec(
        version="carry-test",
        kind="carry",
        features=FEATURES,
        task=ForecastTask(error_std=[0.5, 1.0, 2.0], error_units=units),
        normalization=Normalization(mean=[10.0, 0.0, -5.0], std=[3.0, 1.0, 2.0], per_key=per_key),
        carry=CarrySpec(min_events=3),
        lstm=LSTMArgs(input_size=3, hidden_size=16, **lstm),
        head=HeadSpec(output_size=3),
    )
    torch.manual_seed(1)
    save_artifact(SequenceModel(spec.lstm, spec.head), spec, folder)
    return folder


def histories(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        f"k{k}": (rng.normal(size=(n, 3)) * [3, 1, 2] + [10 * (k + 1), 0, -5]).astype(np.float32)
        for k, n in enumerate([400, 37, 900, 5, 250])
    }


def score_in_pieces(scorer: CarryScorer, data: dict[str, np.ndarray], seed: int) -> dict:
    """Every key's events in random pieces, keys interleaved in each call, states carried."""
    rng = np.random.default_rng(seed)
    states: dict[str, np.ndarray | None] = dict.fromkeys(data)
    done = dict.fromkeys(data, 0)
    scores: dict[str, list[np.ndarray]] = {k: [] for k in data}
    while any(done[k] < len(data[k]) for k in data):
        keys = [k for k in data if done[k] < len(data[k])]
        pieces = {k: data[k][done[k] : done[k] + int(rng.integers(1, 90))] for k in keys}
        # a random interleaving of the keys' events, each key's in order
        codes = rng.permutation(np.repeat(np.arange(len(keys)), [len(pieces[k]) for k in keys]))
        events = np.zeros((len(codes), pieces[keys[0]].shape[1]), np.float32)
        for i, k in enumerate(keys):
            events[codes == i] = pieces[k]
        result, new = scorer.score([states[k] for k in keys], codes, events)
        for i, k in enumerate(keys):
            states[k] = new[i]
            scores[k].append(result.score[codes == i])
            done[k] += len(pieces[k])
    return {k: np.concatenate(v) for k, v in scores.items()}


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"per_key": True},
        {"num_layers": 3, "proj_size": 8, "batch_first": False, "per_key": True},
        {"num_layers": 2, "bias": False, "dropout": 0.3},
        {"per_key": True, "units": "original"},
        {"units": "original"},
    ],
    ids=[
        "global",
        "per-key",
        "projected-time-major",
        "no-bias-dropout",
        "per-key-original-units",
        "global-original-units",
    ],
)
def test_scoring_in_pieces_equals_one_call_over_the_whole_history(
    reference, tmp_path, options
) -> None:  # type: ignore[no-untyped-def]
    folder = carry_model(tmp_path / "m", **options)
    config, lstm, head = reference["load_seqstream_model"](str(folder))
    scorer = CarryScorer(load_artifact(folder), batch_size=2)  # several packed calls per piece
    data = histories()
    got = score_in_pieces(scorer, data, seed=3)
    for key, events in data.items():
        want = reference["carry_forecast_scores"](config, lstm, head, events)
        assert np.array_equal(np.isnan(got[key]), np.isnan(want))
        assert np.isnan(want[:2]).all() and not np.isnan(want[2:]).any()  # min_events 3
        real = ~np.isnan(want)
        assert np.abs(got[key][real] - want[real]).max() <= 1e-5 * max(1.0, np.abs(want).max())


def test_the_state_holds_what_the_layout_says(tmp_path) -> None:
    folder = carry_model(tmp_path / "m", per_key=True, num_layers=2, proj_size=4)
    layout = CarryLayout.of(load_artifact(folder).spec)
    assert layout.size == 1 + 2 * (4 + 16) + 3 + 3 * 3  # count, h and c per layer, forecast, stats
    scorer = CarryScorer(load_artifact(folder))
    events = histories()["k0"][:10]
    _, states = scorer.score([None], np.zeros(10, np.int64), events)
    state = states[0][None]
    assert layout.part(state, "count")[0, 0] == 10
    assert np.array_equal(layout.part(state, "shift")[0], events[0].astype(np.float64))
    exact = (events.astype(np.float64) - events[0]).sum(0)
    assert np.allclose(layout.part(state, "sum")[0], exact, rtol=1e-12)


def test_a_bidirectional_carry_model_is_refused_at_load_saying_why(tmp_path) -> None:
    folder = shutil.copytree(DEMO_CARRY_MODEL_DIR, tmp_path / "m")
    config = json.loads((folder / "config.json").read_text())
    config["lstm"]["bidirectional"] = True
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(
        ArtifactError,
        match="a carry model cannot be bidirectional: it runs one "
        "step per event from the key's carried state, and a reverse direction "
        "would need the key's future events",
    ):
        load_artifact(folder)


def test_format_version_1_files_are_window_models_and_still_load(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A version 1 config (the first demo model's: no kind, global normalisation, errors in
    normalised units) loads as a window model with those defaults."""
    folder = shutil.copytree(DEMO_MODEL_DIR, tmp_path / "v1")
    config = json.loads((folder / "config.json").read_text())
    config["format_version"] = 1
    for section, field in (("", "kind"), ("", "carry"), ("task", "error_units")):
        (config[section] if section else config).pop(field)
    config["normalization"] = {k: config["normalization"][k] for k in ("mean", "std")}
    (folder / "config.json").write_text(json.dumps(config))
    spec = load_artifact(folder).spec
    assert (spec.format_version, spec.kind, spec.normalization.per_key) == (1, "window", False)
    assert spec.task.error_units == "normalized" and spec.normalization.clip is None
    with pytest.raises(ValueError, match="format_version 1 has window models"):
        spec.model_copy(update={"kind": "carry"}).model_validate(
            {**spec.model_dump(), "kind": "carry", "window": None, "carry": {"min_events": 2}}
        )


def test_each_scorer_refuses_the_other_kind() -> None:
    with pytest.raises(ModelError, match="is a carry model: score it with CarryScorer"):
        WindowScorer(load_artifact(DEMO_CARRY_MODEL_DIR))
    with pytest.raises(ModelError, match="is a window model, not a carry model"):
        CarryScorer(load_artifact(DEMO_MODEL_DIR))


def in_units(folder: Path, units: str, out: Path) -> Path:
    """The artifact at ``folder`` with its forecast error in ``units``."""
    loaded = load_artifact(folder)
    task = loaded.spec.task.model_copy(update={"error_units": units})
    save_artifact(loaded.network, loaded.spec.model_copy(update={"task": task}), out)
    return out


@pytest.mark.parametrize("kind", ["carry", "window"])
def test_per_key_normalisation_scores_a_key_the_same_at_any_scale(tmp_path, kind) -> None:  # type: ignore[no-untyped-def]
    """The issue's nyc_taxi case: values near 15,000 score as the same series near 15 in
    normalised units, and x1000 in the events' own units (the forecast is the same, scaled).
    (Not while the std floor binds: this series has no constant stretch, whose std is 0.)"""
    values = load_series([p for p in demo_series_files() if "5f5533" in p.name], EventSchema())
    series = next(iter(values.values()))[:600]
    scaled = (series.astype(np.float64) * 1000 + 15000).astype(np.float32)
    demo = DEMO_CARRY_MODEL_DIR if kind == "carry" else DEMO_MODEL_DIR
    assert load_artifact(demo).spec.normalization.per_key
    for units, factor in (("normalized", 1.0), ("original", 1000.0)):
        model = load_artifact(in_units(demo, units, tmp_path / units))
        if kind == "carry":
            carry = CarryScorer(model)
            a, b = score_history(carry, series).score, score_history(carry, scaled).score
        else:
            windows = WindowScorer(model)
            a, b = score_series(windows, series)[1].score, score_series(windows, scaled)[1].score
        assert np.nanmax(np.abs(a * factor - b) / np.maximum(np.abs(a * factor), factor)) < 1e-3


def test_train_carry_is_seeded_and_writes_a_carry_model(tmp_path, capsys) -> None:
    data = [str(p) for p in demo_series_files()[:2]]
    args = ["train", "--carry", "--per-key", "--epochs", "2", "--hidden-size", "8", "--data", *data]
    for name in ("a", "b"):
        assert cli_main([*args, "--out", str(tmp_path / name), "--no-progress"]) == 0
    a, b = load_artifact(tmp_path / "a"), load_artifact(tmp_path / "b")
    assert a.spec.kind == "carry" and a.spec.normalization.per_key
    assert a.spec.weights_sha256 == b.spec.weights_sha256  # same seed, same weights
    assert "forecasts" in capsys.readouterr().out
    losses = [
        float(line.split("train loss ")[1].split(",")[0])
        for line in capsys.readouterr().out.splitlines()
        if "train loss" in line
    ]
    assert all(np.isfinite(losses))


def test_a_swapped_in_model_must_keep_the_state_shape(tmp_path) -> None:
    settings = load_settings(None, {"events": {"features": ["value"]}})
    _, running = check_artifact(DEMO_CARRY_MODEL_DIR, settings)
    spec = running.model_copy(update={"lstm": running.lstm.model_copy(update={"hidden_size": 16})})
    save_artifact(SequenceModel(spec.lstm, spec.head), spec, tmp_path / "small")
    with pytest.raises(
        SeqstreamError,
        match=r"keeps another per-key state than the running model "
        rf"nab-cpu-carry-2: hidden_size 16 \(running: {running.lstm.hidden_size}\)",
    ):
        check_artifact(tmp_path / "small", settings, running)
    with pytest.raises(SeqstreamError, match=r"kind window \(running: carry\)"):
        check_artifact(DEMO_MODEL_DIR, settings, running)
    # new weights of the same shape are taken: the stream goes on from the states the old made
    retrained = running.model_copy(update={"version": "nab-cpu-carry-retrained"})
    torch.manual_seed(5)
    save_artifact(SequenceModel(retrained.lstm, retrained.head), retrained, tmp_path / "v2")
    assert (
        check_artifact(tmp_path / "v2", settings, running)[1].version == "nab-cpu-carry-retrained"
    )


def test_event_time_mode_needs_a_window_model(spark, tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = load_settings(
        None,
        {
            "kafka": {"bootstrap_servers": "127.0.0.1:9"},
            "stream": {
                "topics": ["t"],
                "mode": "time",
                "model": str(DEMO_CARRY_MODEL_DIR),
                "checkpoint": str(tmp_path / "cp"),
                "parquet_path": str(tmp_path / "scores"),
            },
        },
    )
    with pytest.raises(SeqstreamError, match="is a carry model, and stream.mode: time scores"):
        build_query(spark, settings, "127.0.0.1:9")


def float64_carry_scores(folder: Path, events: np.ndarray) -> np.ndarray:
    """README's carry equations (docs/models.md, standalone-carry) evaluated in float64 end to
    end: the key's running statistics, the LSTM and the head."""
    model = load_artifact(folder)
    spec, layout = model.spec, CarryLayout.of(model.spec)
    x = events.astype(np.float64)
    mean, std, _ = running_stats(x[None], np.array([len(x)]), np.zeros((1, layout.size)), layout)
    z = ((x[None] - mean) / std)[0]
    network = copy.deepcopy(model.network).double().eval()
    with torch.inference_mode():
        out, _ = network.steps(
            torch.from_numpy(np.clip(z, -CARRY_INPUT_CLIP, CARRY_INPUT_CLIP))[None],
            torch.tensor([len(x)]),
        )
        forecast = network.head_output(out)[0].numpy()
    error = z[1:] - forecast[:-1]
    if spec.task.error_units == "original":
        error = error * std[0, 1:]
    scores = np.sqrt(((error / np.asarray(spec.task.error_std)) ** 2).mean(axis=1))
    scores = np.concatenate([[np.nan], scores])
    scores[: spec.min_events - 1] = np.nan
    return scores


def test_a_long_history_scored_in_pieces_stays_within_float32_precision_of_float64() -> None:
    """16,128 real events of one key (the bundled NAB series one after another), scored in
    random pieces as micro-batches score them: every row within 1e-5 of a float64 evaluation,
    relative to the score (absolute below a score of 1, where float32's forecast rounds)."""
    events = np.concatenate(
        [load_series([path], EventSchema())[path.stem] for path in demo_series_files()]
    ).astype(np.float32)
    scorer = CarryScorer(load_artifact(DEMO_CARRY_MODEL_DIR))
    got = score_in_pieces(scorer, {"long": events}, seed=5)["long"]
    want = float64_carry_scores(DEMO_CARRY_MODEL_DIR, events)
    assert np.array_equal(np.isnan(got), np.isnan(want))
    real = ~np.isnan(want)
    error = np.abs(got[real] - want[real]) / np.maximum(np.abs(want[real]), 1.0)
    assert error.max() <= 1e-5, (error.max(), want[real][error.argmax()])
