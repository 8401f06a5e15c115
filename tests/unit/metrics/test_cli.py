"""``egov-pulse metrics`` tunes the heap and the garbage collector before the worker starts."""

from __future__ import annotations

import argparse

import services.metrics.heap as heap
import services.metrics.worker as worker
from services.metrics import cli


def test_the_worker_command_tunes_the_process_from_the_settings_first(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    calls: list[tuple[str, object]] = []
    monkeypatch.setenv("EGOV_METRICS_MALLOC_MMAP_THRESHOLD", str(2 * 2**20))
    monkeypatch.setenv("EGOV_METRICS_GC_GEN0_THRESHOLD", "5000")
    monkeypatch.setattr(heap, "fix_mmap_threshold", lambda n: calls.append(("mmap", n)))
    monkeypatch.setattr(heap, "collect_young_every", lambda n: calls.append(("gc", n)))
    monkeypatch.setattr(
        worker, "run_worker", lambda settings, loglevel: calls.append(("run", loglevel))
    )
    assert cli._worker(argparse.Namespace(loglevel="warn")) == 0
    assert calls == [("mmap", 2 * 2**20), ("gc", 5000), ("run", "warn")]
