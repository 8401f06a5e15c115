"""``egov-pulse metrics`` fixes glibc's mmap threshold before the worker starts."""

from __future__ import annotations

import argparse

import services.metrics.heap as heap
import services.metrics.worker as worker
from services.metrics import cli


def test_the_worker_command_fixes_the_threshold_from_the_settings_first(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    calls: list[object] = []
    monkeypatch.setenv("EGOV_METRICS_MALLOC_MMAP_THRESHOLD", str(2 * 2**20))
    monkeypatch.setattr(heap, "fix_mmap_threshold", lambda nbytes: calls.append(nbytes))
    monkeypatch.setattr(worker, "run_worker", lambda settings, loglevel: calls.append(loglevel))
    assert cli._worker(argparse.Namespace(loglevel="warn")) == 0
    assert calls == [2 * 2**20, "warn"]
