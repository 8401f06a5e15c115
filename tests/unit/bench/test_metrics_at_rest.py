"""The metrics benchmark reads the worker's RSS once its snapshot has caught up."""

from __future__ import annotations

import time

import pytest

import bench.metrics as bm


def test_waits_for_a_snapshot_taken_after_the_last_flush_and_then_quiet(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    since = time.perf_counter()
    # Taken before the flush for the first polls, then one taken 0.3 s after it.
    taken_after = since + 0.3

    def age(url: str, unit: str) -> float:
        now = time.perf_counter()
        return now - (taken_after if now > taken_after + 0.1 else since - 1.0)

    monkeypatch.setattr(bm, "snapshot_age", age)
    waited = bm.wait_snapshot_after("http://w", "u", since, timeout_s=5)
    assert waited >= 0.3 + 1.0


def test_no_snapshot_after_the_flush_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    since = time.perf_counter()
    monkeypatch.setattr(bm, "snapshot_age", lambda url, unit: time.perf_counter() - since + 1)
    with pytest.raises(RuntimeError, match="no snapshot"):
        bm.wait_snapshot_after("http://w", "u", since, timeout_s=0.5)
