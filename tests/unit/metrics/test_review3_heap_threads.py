"""Review of 166c4ab: glibc's mmap threshold fixed at start-up holds in every arena.

Faust's consumer runs aiokafka in a thread of its own (its own glibc arena): a fetch's
response is allocated and freed there. The threshold is process-wide, also when fixed
after threads exist; each case runs in a process of its own (the raising of glibc's own
threshold cannot be undone)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from services.metrics.heap import HeapTrimmer
from services.metrics.settings import MetricsSettings

ROOT = Path(__file__).resolve().parents[3]

_IN_THREADS = """
import ctypes, sys, threading
from services.metrics.heap import fix_mmap_threshold

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
        "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = MallInfo2
started, go = threading.Event(), threading.Event()
found = []

def consumer():  # a thread of its own, as Faust's consumer thread, started first
    started.set()
    go.wait()
    big = bytearray(20 * 2**20)  # a fetch's response on Apache Kafka, freed in the thread
    del big
    before = libc.mallinfo2().hblks
    block = bytearray(4 * 2**20)
    found.append(libc.mallinfo2().hblks - before)
    del block

thread = threading.Thread(target=consumer)
thread.start()
started.wait()
fixed = fix_mmap_threshold(int(sys.argv[1]))  # after the thread exists
go.set()
thread.join()
print(fixed, found[0])
"""


def _in_threads(threshold: int) -> tuple[bool, int]:
    out = subprocess.run(
        [sys.executable, "-c", _IN_THREADS, str(threshold)],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    ).stdout.split()
    return out[0] == "True", int(out[1])


@pytest.mark.skipif(not HeapTrimmer().available, reason="glibc only")
def test_fixed_after_threads_exist_it_holds_for_blocks_of_another_thread() -> None:
    assert _in_threads(2**20) == (True, 1)


@pytest.mark.skipif(not HeapTrimmer().available, reason="glibc only")
def test_without_it_a_thread_s_large_free_raises_the_threshold_for_all() -> None:
    assert _in_threads(0) == (False, 0)


@pytest.mark.skipif(not HeapTrimmer().available, reason="glibc only")
def test_the_largest_setting_allowed_is_one_glibc_accepts() -> None:
    """A setting glibc refused would be ignored in silence (the command does not read
    ``fix_mmap_threshold``'s answer)."""
    field = MetricsSettings.model_fields["metrics_malloc_mmap_threshold"]
    largest = next(m.le for m in field.metadata if hasattr(m, "le"))
    code = f"from services.metrics.heap import fix_mmap_threshold as f; print(f({largest}))"
    out = subprocess.run(  # process-wide: not in the tests' own process
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.split() == ["True"]
