"""Keeps one fresh snapshot while someone watches, and wakes streams when it changes.

The sources are read every ``interval_s`` only while a page is open (a stream is
connected, or a page or API request came in within ``idle_after_s``): a wall nobody
looks at costs the workers nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from services.wall.snapshot import Snapshot
from services.wall.sources import Sources

log = logging.getLogger(__name__)


class Hub:
    """The latest snapshot, a version number that moves when it changes, and waiters."""

    def __init__(self, sources: Sources, interval_s: float, idle_after_s: float = 60.0) -> None:
        self.sources = sources
        self.interval_s = interval_s
        self.idle_after_s = idle_after_s
        self.version = 0
        self.closed = False
        self._snapshot: Snapshot | None = None
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._interest = 0.0
        self._subscribers = 0

    async def current(self) -> Snapshot:
        """The latest snapshot; reads the sources now if there is none yet."""
        self._touch()
        if self._snapshot is None:
            await self._refresh()
        assert self._snapshot is not None  # noqa: S101 -- _refresh always sets it
        return self._snapshot

    async def wait_change(self, seen_version: int, timeout_s: float) -> bool:
        """Wait until the version differs from ``seen_version``; False on timeout."""
        self._touch()
        if self.version != seen_version or self.closed:
            return True
        changed = self._changed
        try:
            await asyncio.wait_for(changed.wait(), timeout_s)
        except TimeoutError:
            return False
        return True

    def subscribe(self) -> None:
        self._subscribers += 1
        self._touch()

    def unsubscribe(self) -> None:
        self._subscribers -= 1

    async def close(self) -> None:
        """Stop reading and release every waiting stream (the worker is shutting down)."""
        self.closed = True
        self._wake()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.sources.aclose()

    def _touch(self) -> None:
        self._interest = time.monotonic()
        if not self.closed and (self._task is None or self._task.done()):
            self._task = asyncio.get_running_loop().create_task(self._run(), name="wall-poll")

    def _watched(self) -> bool:
        return self._subscribers > 0 or time.monotonic() - self._interest < self.idle_after_s

    async def _run(self) -> None:
        while not self.closed and self._watched():
            try:
                await self._refresh()
            except Exception:
                # Sources.read records source failures itself; this is a bug, kept visible.
                log.exception("wall: reading the sources failed")
            await asyncio.sleep(self.interval_s)

    async def _refresh(self) -> None:
        snapshot = await self.sources.read()
        previous = self._snapshot
        self._snapshot = snapshot
        if previous is None or previous.fingerprint != snapshot.fingerprint:
            self.version += 1
            self._wake()

    def _wake(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()
