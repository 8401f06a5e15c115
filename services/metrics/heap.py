"""Hands the heap's free pages back to the operating system: after large steps, and
large blocks as soon as they are freed.

A replay step holds ~40 MB of record values and what is decoded from them; freed, those
blocks stay in glibc's heap, fragmented between long-lived objects, so a worker's RSS
kept the high-water mark of its largest replay (~110 MiB above its figures, measured
here). ``malloc_trim(0)`` returns every free page of the heap, in a few milliseconds.

Large blocks: glibc maps a block of at least its mmap threshold on its own and unmaps it
when it is freed, but it raises that threshold to the size of every mapped block freed
(up to 32 MiB), and lets each heap keep twice as much free at its top. Apache Kafka
fills a fetch up to the consumer's limits: its responses reach the worker as frames of
up to 31 MB (4 MiB median; tansu's at most 6.4 MB), so after the first large fetch every
block under ~31 MB (snapshot builds, a whole-window /v1/kpis answer, a /metrics scrape)
came from the heaps, which kept up to ~62 MB each until the next trim: a worker at rest
after the benchmark's phases held 317-345 MiB on Kafka against 262-268 on tansu.
:func:`fix_mmap_threshold` sets the threshold once at start-up, which also turns the
raising off: 250-263 MiB on Kafka then (``MetricsSettings.metrics_malloc_mmap_threshold``).

Elsewhere than glibc (musl, macOS) both are no-ops.

The garbage collector: a step's short-lived objects set off its collections, and the
full ones walk every tracked object the worker holds (its figures and snapshot; what
exists at start-up is frozen out of sight by ``run_worker``). :func:`collect_young_every`
makes them rarer (``MetricsSettings.metrics_gc_gen0_threshold``).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3
"""glibc's ``mallopt`` parameter (malloc.h)."""

TRIM_AFTER_BYTES = 16 * 2**20
"""Record bytes processed since the last trim that make the next one worth its cost."""


def _libc_function(name: str) -> Any:
    """A C library function, or None where there is none by that name (not glibc)."""
    library = ctypes.util.find_library("c")
    if library is None:
        return None
    try:
        return getattr(ctypes.CDLL(library), name)
    except (OSError, AttributeError):
        return None


def fix_mmap_threshold(nbytes: int) -> bool:
    """Blocks of ``nbytes`` or more mapped on their own and unmapped when freed, whatever
    was freed before (see the module docstring); 0 leaves glibc's own, rising threshold.

    Process-wide: call it once at start-up. False where nothing was set (0, or no glibc).
    """
    mallopt = _libc_function("mallopt") if nbytes > 0 else None
    if mallopt is None:
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, nbytes))


def collect_young_every(allocations: int) -> None:
    """The garbage collector's first generation collected after this many allocations
    (less deallocations) instead of 700; the older generations' ratios stay (10 and 10).

    Process-wide: call it once at start-up (``MetricsSettings.metrics_gc_gen0_threshold``).
    """
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(allocations, gen1, gen2)


def _malloc_trim() -> Callable[[], None] | None:
    trim = _libc_function("malloc_trim")
    if trim is None:
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int

    def release() -> None:
        trim(0)

    return release


class HeapTrimmer:
    """Counts record bytes; past ``TRIM_AFTER_BYTES`` the next ``maybe_trim`` trims."""

    def __init__(self, after_bytes: int = TRIM_AFTER_BYTES) -> None:
        self._trim = _malloc_trim()
        self._after = after_bytes
        self._pending = 0
        self.trims = 0

    @property
    def available(self) -> bool:
        """Whether this C library can trim (glibc)."""
        return self._trim is not None

    def processed(self, nbytes: int) -> None:
        self._pending += nbytes

    def maybe_trim(self) -> None:
        if self._pending < self._after:
            return
        self._pending = 0
        if self._trim is not None:
            self._trim()
            self.trims += 1
