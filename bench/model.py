"""The model alone: plain ``WindowScorer`` throughput on the benchmark workload's windows.

    python -m bench.model [--device cpu|cuda] [--batch-sizes 64,256,1024,4096] [--low-precision]

This is the limit the Spark jobs are compared with. The default workload is issue 8's: 1,000 keys,
8 features, window 32, LSTM hidden 64 x 2 layers with a linear forecast head (random weights,
seeded). On CUDA it also compares pinned with pageable host memory; ``--low-precision`` adds
bfloat16 and float16 runs with their score difference from float32 on the same windows.
Writes bench/results/model_<device>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from seqstream.model.artifact import LoadedModel
from seqstream.model.carry import CarryScorer
from seqstream.model.inference import WindowScorer
from seqstream.model.network import SequenceModel
from seqstream.model.spec import (
    CarrySpec,
    ForecastTask,
    HeadSpec,
    LSTMArgs,
    ModelSpec,
    Normalization,
    WindowSpec,
)
from seqstream.model.windows import empty_state, extend_windows


@dataclass(frozen=True)
class Workload:
    keys: int = 1_000
    events_per_key: int = 200
    features: int = 8
    window: int = 32
    hidden: int = 64
    layers: int = 2
    seed: int = 0


def workload_model(w: Workload) -> LoadedModel:
    """A forecast model of the workload's shape with seeded random weights."""
    names = [f"f{i}" for i in range(w.features)]
    spec = ModelSpec(
        version=f"bench-{w.features}x{w.hidden}x{w.layers}",
        features=names,
        task=ForecastTask(error_std=[1.0] * w.features),
        normalization=Normalization(mean=[0.0] * w.features, std=[1.0] * w.features),
        window=WindowSpec(length=w.window, min_length=2),
        lstm=LSTMArgs(input_size=w.features, hidden_size=w.hidden, num_layers=w.layers),
        head=HeadSpec(output_size=w.features),
    )
    torch.manual_seed(w.seed)
    return LoadedModel(spec, SequenceModel(spec.lstm, spec.head).eval(), Path("."))


def workload_carry_model(window: LoadedModel) -> LoadedModel:
    """The carry model of the workload's window model: the same network and weights, the same
    features, normalisation and task, each key's state carried instead of its last events."""
    spec = window.spec.model_copy(
        update={
            "version": window.spec.version + "-carry",
            "kind": "carry",
            "window": None,
            "carry": CarrySpec(min_events=window.spec.window_spec.min_length),
        }
    )
    return LoadedModel(ModelSpec.model_validate(spec.model_dump()), window.network, Path("."))


def carry_events_per_second(
    scorer: CarryScorer, series: dict[str, np.ndarray], events_per_call: int, repeats: int = 3
) -> float:
    """Best of ``repeats`` passes over every key's events in time order across keys, in calls of
    ``events_per_call`` events (a micro-batch's), each key's state carried from call to call."""
    values = np.stack(list(series.values()))  # [keys, events, features]
    keys, steps, _ = values.shape
    events = values.transpose(1, 0, 2).reshape(-1, values.shape[2])  # time order across keys
    codes = np.tile(np.arange(keys), steps)
    scorer.score([None] * keys, codes[: keys * 2], events[: keys * 2])  # warm-up
    best = float("inf")
    for _ in range(repeats):
        states: list[np.ndarray | None] = [None] * keys
        started = time.perf_counter()
        for start in range(0, len(codes), events_per_call):
            part = slice(start, start + events_per_call)
            present, local = np.unique(codes[part], return_inverse=True)
            _, new = scorer.score([states[k] for k in present], local, events[part])
            for k, state in zip(present, new, strict=True):
                states[k] = state
        if scorer.device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - started)
    return len(codes) / best


def workload_series(w: Workload) -> dict[str, np.ndarray]:
    """Per key, its events in order: a seeded random walk per feature."""
    rng = np.random.default_rng(w.seed)
    steps = rng.normal(0, 0.1, size=(w.keys, w.events_per_key, w.features)).astype(np.float32)
    return {f"key-{k:05d}": np.cumsum(steps[k], axis=0) for k in range(w.keys)}


def scoreable_windows(
    series: dict[str, np.ndarray], length: int, min_length: int
) -> tuple[np.ndarray, np.ndarray]:
    """Every window the jobs score: per key, the last ``length`` events ending at each event."""
    batches = [extend_windows(empty_state(v.shape[1]), v, length) for v in series.values()]
    keep = [b.lengths >= min_length for b in batches]
    return (
        np.concatenate([b.windows[k] for b, k in zip(batches, keep, strict=False)]),
        np.concatenate([b.lengths[k] for b, k in zip(batches, keep, strict=False)]),
    )


def windows_per_second(
    scorer: WindowScorer, windows: np.ndarray, lengths: np.ndarray, repeats: int = 3
) -> float:
    """Best of ``repeats`` timed passes after one warm-up (so CUDA kernels and caches are ready)."""
    scorer.score(windows[: scorer.batch_size * 2], lengths[: scorer.batch_size * 2])
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        scorer.score(windows, lengths)
        if scorer.device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - started)
    return len(windows) / best


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-sizes", default="64,256,1024,4096")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--keys", type=int, default=Workload.keys)
    parser.add_argument("--events-per-key", type=int, default=Workload.events_per_key)
    parser.add_argument(
        "--low-precision",
        action="store_true",
        help="also run in bfloat16 and float16 and report their score difference from float32",
    )
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    w = Workload(keys=args.keys, events_per_key=args.events_per_key)
    loaded = workload_model(w)
    windows, lengths = scoreable_windows(
        workload_series(w), w.window, loaded.spec.window.min_length
    )
    sizes = [int(s) for s in args.batch_sizes.split(",")]
    runs: dict[str, dict[str, float]] = {"float32": {}}
    for size in sizes:
        scorer = WindowScorer(loaded, device=args.device, batch_size=size, num_threads=args.threads)
        runs["float32"][str(size)] = windows_per_second(scorer, windows, lengths)
    device = scorer.device.type
    extra: dict[str, object] = {}
    if device == "cuda":
        runs["float32, pageable"] = {
            str(size): windows_per_second(
                WindowScorer(
                    loaded,
                    device=args.device,
                    batch_size=size,
                    pin_memory=False,
                    num_threads=args.threads,
                ),
                windows,
                lengths,
            )
            for size in sizes
        }
        extra["gpu"] = torch.cuda.get_device_name()
    if args.low_precision:
        exact = WindowScorer(
            loaded, device=args.device, batch_size=sizes[-1], num_threads=args.threads
        ).score(windows, lengths)
        extra["low_precision_score_abs_diff"] = {
            "median_float32_score": float(np.median(exact.score))
        }
        for name, dtype in (("bfloat16", torch.bfloat16), ("float16", torch.float16)):
            runs[name] = {}
            for size in sizes:
                low = WindowScorer(
                    loaded,
                    device=args.device,
                    batch_size=size,
                    dtype=dtype,
                    num_threads=args.threads,
                )
                runs[name][str(size)] = windows_per_second(low, windows, lengths)
            diff = np.abs(low.score(windows, lengths).score - exact.score)
            extra["low_precision_score_abs_diff"][name] = {
                "max": float(diff.max()),
                "p99": float(np.percentile(diff, 99)),
            }
    result = {
        "benchmark": "model",
        "device": device,
        "windows": len(windows),
        "workload": w.__dict__,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "threads": args.threads,
        "versions": {"torch": torch.__version__},
        "windows_per_s": runs,
        **extra,
    }
    out = Path(args.out or f"bench/results/model_{device}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
