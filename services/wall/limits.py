"""Bounds on what requests make the wall do: files at once, shared reads, streams per client.

Until 2026-12-05 nothing bounded them (review 55): 60 clicks on a download were 60 full
/v1/kpis reads of a province on every worker at once, 30 loads of a unit page 330 two-year
history reads on PostgreSQL, and one address could hold 300 event streams, each page
rebuilt every heartbeat on the wall's one event loop. Now:

- a :class:`Gate` lets ``limit`` requests do a costly thing at once; the next waits a
  moment for a place, then is answered 503 with ``Retry-After`` (:class:`Busy`);
- :class:`SharedReads` reads one key once at a time and shares the answer with every
  request that asks meanwhile and for ``keep_s`` after (a reload loop, a kiosk, many
  people opening the same unit), each read through an optional gate;
- :class:`StreamSlots` counts open event streams per client address and in all: past
  either limit a new stream is refused (429 for the client, 503 for the wall).

The numbers come from :class:`services.wall.settings.WallSettings` (``EGOV_WALL_MAX_*``);
the defaults below are theirs. Pure asyncio: nothing here does I/O.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Generic, TypeVar

from services.common.figures import Figure

if TYPE_CHECKING:
    from services.wall.history import History
    from services.wall.settings import WallSettings

EXPORTS_AT_ONCE: Final = 4
"""Files read and written at once: each reads every worker and writes in a thread."""
HISTORY_READS_AT_ONCE: Final = 16
"""/v1/kpis/history reads in flight at once (11 KPIs make one unit page)."""
BUSY_WAIT_S: Final = 10.0
"""How long a request waits for a free place before a 503."""
SHARE_READS_S: Final = 2.0
"""How long a read's answer is shared: the workers publish every 2 s."""
STREAMS: Final = 500
"""Event streams (open /wall pages) the wall serves at once."""
STREAMS_PER_CLIENT: Final = 10
"""Event streams from one client address: a wall PC drives a few screens."""

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Busy(Exception):
    """No place freed within the wait: answer 503 with ``Retry-After``."""


class Gate:
    """At most ``limit`` holders at once; a newcomer waits up to ``wait_s`` for a place,
    then is refused with :class:`Busy` rather than queued without end."""

    def __init__(self, limit: int, wait_s: float) -> None:
        self._places = asyncio.Semaphore(limit)
        self.wait_s = wait_s

    @asynccontextmanager
    async def place(self) -> AsyncIterator[None]:
        try:
            async with asyncio.timeout(self.wait_s):
                await self._places.acquire()
        except TimeoutError:
            raise Busy(f"every place taken for {self.wait_s:g} s") from None
        try:
            yield
        finally:
            self._places.release()


class SharedReads(Generic[K, V]):
    """One read of a key at a time, its answer shared by every request asking for that
    key meanwhile and for ``keep_s`` after; through ``gate`` when given.

    A failed read is not kept: the next request reads again. Callers must not mutate
    the answer they share."""

    def __init__(
        self,
        keep_s: float,
        gate: Gate | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.keep_s = keep_s
        self.gate = gate
        self._clock = clock
        self._kept: dict[K, tuple[float, V]] = {}
        self._reading: dict[K, asyncio.Task[V]] = {}

    async def get(self, key: K, read: Callable[[], Awaitable[V]]) -> V:
        kept = self._kept.get(key)
        if kept is not None and self._clock() - kept[0] < self.keep_s:
            return kept[1]
        task = self._reading.get(key)
        if task is None:
            task = asyncio.ensure_future(self._read(key, read))
            task.add_done_callback(_retrieved)
            self._reading[key] = task
        # Shielded: a request that goes away does not cancel the read others await.
        return await asyncio.shield(task)

    def forget(self, key: K) -> None:
        """Read ``key`` afresh next time: its answer proved unusable (a file's figures
        of two periods, a window rolling over), and a retry must not be handed it again."""
        self._kept.pop(key, None)

    async def _read(self, key: K, read: Callable[[], Awaitable[V]]) -> V:
        try:
            if self.gate is None:
                value = await read()
            else:
                async with self.gate.place():
                    value = await read()
            self._keep(key, value)
            return value
        finally:
            del self._reading[key]

    def _keep(self, key: K, value: V) -> None:
        now = self._clock()
        # Forget what expired, so the table holds only the last few seconds' keys.
        for old in [k for k, (at, _) in self._kept.items() if now - at >= self.keep_s]:
            del self._kept[old]
        self._kept[key] = (now, value)


def _retrieved(task: asyncio.Task[Any]) -> None:
    # Every awaiting request may have left: the failure is theirs to see, not the loop's
    # "exception was never retrieved".
    if not task.cancelled():
        task.exception()


class StreamSlots:
    """Open event streams, per client address and in all."""

    def __init__(self, total: int, per_client: int) -> None:
        self.total = total
        self.per_client = per_client
        self._open: Counter[str] = Counter()

    def take(self, client: str) -> int | None:
        """None when a stream of ``client`` may open (give it back with :meth:`give_back`);
        else the status to refuse it with: 429 the client has its share, 503 the wall has
        every stream it serves."""
        if self._open[client] >= self.per_client:
            return 429
        if self._open.total() >= self.total:
            return 503
        self._open[client] += 1
        return None

    def give_back(self, client: str) -> None:
        self._open[client] -= 1
        if self._open[client] <= 0:
            del self._open[client]


@dataclass(frozen=True, slots=True)
class Limits:
    """The wall's bounds, built once and shared by its views (one set per process)."""

    exports: Gate
    figures: SharedReads[tuple[str, str], list[Figure]]
    """A province's figures of a window for a file, by (window, province)."""
    histories: SharedReads[tuple[str, str, int], History]
    """/v1/kpis/history answers, by (unit, kpi, days)."""
    streams: StreamSlots

    @classmethod
    def build(
        cls,
        exports_at_once: int = EXPORTS_AT_ONCE,
        history_reads_at_once: int = HISTORY_READS_AT_ONCE,
        busy_wait_s: float = BUSY_WAIT_S,
        share_reads_s: float = SHARE_READS_S,
        streams: int = STREAMS,
        streams_per_client: int = STREAMS_PER_CLIENT,
    ) -> Limits:
        return cls(
            exports=Gate(exports_at_once, busy_wait_s),
            # Read inside the export's own place: no gate of its own.
            figures=SharedReads(share_reads_s),
            histories=SharedReads(share_reads_s, Gate(history_reads_at_once, busy_wait_s)),
            streams=StreamSlots(streams, streams_per_client),
        )

    @classmethod
    def of(cls, settings: WallSettings) -> Limits:
        return cls.build(
            exports_at_once=settings.wall_max_exports,
            history_reads_at_once=settings.wall_max_history_reads,
            busy_wait_s=settings.wall_busy_wait_s,
            share_reads_s=settings.wall_share_reads_s,
            streams=settings.wall_max_streams,
            streams_per_client=settings.wall_max_streams_per_client,
        )
