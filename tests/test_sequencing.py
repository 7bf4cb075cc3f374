"""Per-key windows: identical whether a key's events arrive at once or across many batches."""

from __future__ import annotations

import numpy as np
import pytest

from seqstream.model.windows import empty_state, extend_windows, keyed_windows


def brute_force(events: np.ndarray, length: int) -> list[np.ndarray]:
    return [events[max(0, i - length + 1) : i + 1] for i in range(len(events))]


@pytest.mark.parametrize("length", [1, 2, 5, 16])
def test_windows_are_the_last_events_ending_at_each_event(length: int) -> None:
    events = np.random.default_rng(length).normal(size=(40, 3)).astype(np.float32)
    batch = extend_windows(empty_state(3), events, length)
    assert batch.windows.shape == (40, length, 3)
    for row, expected in enumerate(brute_force(events, length)):
        n = batch.lengths[row]
        assert n == len(expected)
        np.testing.assert_array_equal(batch.windows[row, :n], expected)
        assert not batch.windows[row, n:].any()  # left-aligned, zero padding after
    np.testing.assert_array_equal(batch.state, events[len(events) - (length - 1) :])


@pytest.mark.parametrize("cuts", [[1], [3, 4, 5], [7, 7, 20], [39]])
def test_batches_with_carried_context_give_the_same_windows(cuts: list[int]) -> None:
    events = np.random.default_rng(0).normal(size=(40, 2)).astype(np.float32)
    whole = extend_windows(empty_state(2), events, 8)
    context, windows, lengths = empty_state(2), [], []
    for chunk in np.split(events, cuts):
        batch = extend_windows(context, chunk, 8)
        assert len(batch.state) <= 7  # state per key stays bounded
        context = batch.state
        windows.append(batch.windows)
        lengths.append(batch.lengths)
    np.testing.assert_array_equal(np.concatenate(windows), whole.windows)
    np.testing.assert_array_equal(np.concatenate(lengths), whole.lengths)


def test_empty_batch_keeps_the_context() -> None:
    context = np.ones((3, 2), np.float32)
    batch = extend_windows(context, np.zeros((0, 2), np.float32), 8)
    assert batch.windows.shape == (0, 8, 2)
    np.testing.assert_array_equal(batch.state, context)


def test_feature_mismatch_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"context \(2, 3\) and new events \(4, 2\) must be"):
        extend_windows(np.zeros((2, 3), np.float32), np.zeros((4, 2), np.float32), 8)


@pytest.mark.parametrize("length", [1, 3, 8])
def test_many_keys_at_once_give_each_key_its_own_windows(length: int) -> None:
    """Interleaved events of several keys, some with carried context: every window is the key's
    own last events (brute force over the key's whole history), in the events' order."""
    rng = np.random.default_rng(length)
    contexts = [
        rng.normal(size=(c, 2)).astype(np.float32) for c in (0, 2, 9, 1)
    ]  # 9 > length - 1: trimmed
    codes = rng.integers(0, 4, size=60)
    codes[codes == 3] = 2  # key 3 has context only, no new events
    events = rng.normal(size=(60, 2)).astype(np.float32)
    made = keyed_windows(contexts, codes, events, length)
    for key, context in enumerate(contexts):
        history = np.concatenate(
            [context[max(len(context) - (length - 1), 0) :], events[codes == key]]
        )
        expected = brute_force(history, length)[len(history) - int((codes == key).sum()) :]
        for row, want in zip(np.flatnonzero(codes == key), expected, strict=False):
            n = made.lengths[row]
            assert n == len(want)
            np.testing.assert_array_equal(made.windows[row, :n], want)
            assert not made.windows[row, n:].any()
        np.testing.assert_array_equal(
            made.states[key], history[max(len(history) - (length - 1), 0) :]
        )
