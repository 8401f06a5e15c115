"""Hands the heap's free pages back to the operating system after large steps.

A replay step holds ~40 MB of record values and what is decoded from them; freed, those
blocks stay in glibc's heap, fragmented between long-lived objects, so a worker's RSS
kept the high-water mark of its largest replay (~110 MiB above its figures, measured
here). ``malloc_trim(0)`` returns every free page of the heap, in a few milliseconds.
Elsewhere than glibc (musl, macOS) it is a no-op.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
from collections.abc import Callable

log = logging.getLogger(__name__)

TRIM_AFTER_BYTES = 16 * 2**20
"""Record bytes processed since the last trim that make the next one worth its cost."""


def _malloc_trim() -> Callable[[], None] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):  # not glibc
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
