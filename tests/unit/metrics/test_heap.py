"""The worker hands freed heap pages back after large steps, not after every one, and
large blocks as soon as they are freed."""

from __future__ import annotations

import gc
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from services.metrics.heap import HeapTrimmer, collect_young_every, fix_mmap_threshold
from services.metrics.settings import MetricsSettings


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


# In a process of its own: the threshold is process-wide and glibc's raising of it, once
# it has happened, cannot be undone.
_MAPPED_AFTER_A_LARGE_FREE = """
import ctypes, sys
from services.metrics.heap import fix_mmap_threshold

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
        "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = MallInfo2
fixed = fix_mmap_threshold(int(sys.argv[1]))
big = bytes(20 * 2**20)  # as a fetch's response on Apache Kafka
del big  # glibc's own threshold rises to its size here
before = libc.mallinfo2().hblks
block = bytes(4 * 2**20)
print(fixed, libc.mallinfo2().hblks - before)
"""


def _fixed_and_mapped(threshold: int) -> tuple[bool, int]:
    out = subprocess.run(
        [sys.executable, "-c", _MAPPED_AFTER_A_LARGE_FREE, str(threshold)],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[3],
    ).stdout.split()
    return out[0] == "True", int(out[1])


@pytest.mark.skipif(not HeapTrimmer().available, reason="glibc only")
def test_a_fixed_threshold_maps_large_blocks_after_a_larger_one_was_freed() -> None:
    assert _fixed_and_mapped(2**20) == (True, 1)  # mapped, and unmapped when freed


@pytest.mark.skipif(not HeapTrimmer().available, reason="glibc only")
def test_glibcs_own_threshold_rises_to_the_largest_block_freed() -> None:
    """Why the worker fixes it: after a 20 MB block, a 4 MiB one comes from the heap."""
    assert _fixed_and_mapped(0) == (False, 0)


def test_0_sets_nothing() -> None:
    assert fix_mmap_threshold(0) is False


def test_the_threshold_is_a_setting_of_1_mib_by_default(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    assert MetricsSettings().metrics_malloc_mmap_threshold == 2**20
    monkeypatch.setenv("EGOV_METRICS_MALLOC_MMAP_THRESHOLD", "0")
    assert MetricsSettings().metrics_malloc_mmap_threshold == 0
    monkeypatch.setenv("EGOV_METRICS_MALLOC_MMAP_THRESHOLD", str(33 * 2**20))
    with pytest.raises(ValidationError):
        MetricsSettings()


def test_the_young_generation_is_collected_less_often_the_older_ratios_kept() -> None:
    before = gc.get_threshold()
    try:
        collect_young_every(10_000)
        assert gc.get_threshold() == (10_000, before[1], before[2])
    finally:
        gc.set_threshold(*before)


def test_the_young_generation_threshold_is_10_000_by_default(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    assert MetricsSettings().metrics_gc_gen0_threshold == 10_000
    monkeypatch.setenv("EGOV_METRICS_GC_GEN0_THRESHOLD", "0")
    with pytest.raises(ValidationError):
        MetricsSettings()
