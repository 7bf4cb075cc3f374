"""The bucketed window state: a bucket carries each key's events and last-seen time exactly,
drops keys idle for the TTL, and a key's bucket is the same in every process."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np

from seqstream.pipeline.state.buckets import (
    Bucket,
    Carried,
    bucket_of,
    decode_bucket,
    encode_bucket,
)

from helpers import REPO


def test_a_bucket_carries_every_key_exactly() -> None:
    rng = np.random.default_rng(3)
    entries = {
        "plain": Carried(1_000, rng.standard_normal((31, 3)).astype(np.float32)),
        "short \u00e9\u6f22": Carried(2_000, rng.standard_normal((1, 3)).astype(np.float32)),
        "": Carried(3_000, np.empty((0, 3), np.float32)),
        "tiny": Carried(4_000, np.array([[np.float32(1e-38), -0.0, np.inf]], np.float32)),
    }
    back = decode_bucket(encode_bucket(entries), 3, now_ms=5_000, ttl_ms=None).entries
    assert list(back) == list(entries)
    for key, carried in entries.items():
        assert back[key].seen_ms == carried.seen_ms
        assert back[key].state.dtype == np.float32 and back[key].state.shape == carried.state.shape
        assert back[key].state.tobytes() == carried.state.tobytes()  # bit for bit


def test_an_empty_bucket_round_trips() -> None:
    assert decode_bucket(encode_bucket({}), 1, now_ms=0, ttl_ms=10) == Bucket({}, 0)


def test_a_carry_models_float64_state_round_trips_bit_for_bit() -> None:
    state = np.random.default_rng(4).standard_normal((1, 77))
    back = decode_bucket(encode_bucket({"k": Carried(1, state)}), 77, now_ms=2, ttl_ms=None)
    assert back.entries["k"].state.dtype == np.float64
    assert back.entries["k"].state.tobytes() == state.tobytes()


def test_keys_idle_for_the_ttl_are_dropped_when_read() -> None:
    one = np.ones((2, 1), np.float32)
    entries = {"old": Carried(1_000, one), "edge": Carried(1_001, one), "new": Carried(5_000, one)}
    blob = encode_bucket(entries)
    assert decode_bucket(blob, 1, now_ms=11_000, ttl_ms=10_000).entries.keys() == {"edge", "new"}
    assert decode_bucket(blob, 1, now_ms=11_000, ttl_ms=10_000).expired == 1
    assert decode_bucket(blob, 1, now_ms=11_001, ttl_ms=10_000).entries.keys() == {"new"}
    assert decode_bucket(blob, 1, now_ms=11_001, ttl_ms=10_000).expired == 2
    assert decode_bucket(blob, 1, now_ms=10**12, ttl_ms=None).expired == 0


def test_a_keys_bucket_does_not_depend_on_the_process() -> None:
    keys = [f"sensor-{i}" for i in range(200)] + ["\u00e9", ""]
    code = (
        "from seqstream.pipeline.state.buckets import bucket_of\n"
        f"print([bucket_of(k, 16) for k in {keys!r}])"
    )
    runs = {
        subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
            cwd=REPO,
        ).stdout
        for seed in ("1", "2")
    }
    assert runs == {f"{[bucket_of(k, 16) for k in keys]}\n"}
    assert len({bucket_of(k, 16) for k in keys}) == 16  # spread over every bucket
