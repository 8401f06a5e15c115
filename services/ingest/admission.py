"""How much ingest holds at once: the body bytes of the requests it has read and not yet
answered, bounded by ``EGOV_MAX_INFLIGHT_BYTES``.

The per-key event bucket bounds one publisher; nothing bounded them all together, so
while the broker stalled every request was read, validated and held with its records
until the produce timeout, and memory grew with the number of publishers (review 82).
Body bytes are the measure because they are known before a body is read (its
Content-Length) and a held event's memory follows its size (~13 times). Pure; one event
loop, so no lock.
"""

from __future__ import annotations


class InFlight:
    """Body bytes held by requests under way, at most ``limit``."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("limit must be >= 1")
        self._limit = limit
        self._held = 0

    @property
    def held(self) -> int:
        return self._held

    def fits(self, size: int) -> bool:
        """Whether ``size`` more bytes would be admitted now (nothing is taken)."""
        return self._held + size <= self._limit

    def hold(self, size: int) -> bool:
        """Take ``size`` bytes if they fit (True), else take nothing (False)."""
        if not self.fits(size):
            return False
        self._held += size
        return True

    def release(self, size: int) -> None:
        """Give back what :meth:`hold` took, once the request is answered."""
        self._held = max(0, self._held - size)
