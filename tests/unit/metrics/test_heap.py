"""The worker hands freed heap pages back after large steps, not after every one."""

from __future__ import annotations

from services.metrics.heap import HeapTrimmer


def test_a_trim_comes_only_after_enough_bytes() -> None:
    heap = HeapTrimmer(after_bytes=100)
    heap.processed(60)
    heap.maybe_trim()
    assert heap.trims == 0
    heap.processed(40)
    heap.maybe_trim()
    heap.maybe_trim()  # the count starts again after a trim
    trimmed = 1 if heap.available else 0  # glibc here; a no-op elsewhere
    assert heap.trims == trimmed
    heap.processed(99)
    heap.maybe_trim()
    assert heap.trims == trimmed
