"""The transition log on its way to PostgreSQL, written in order, kept while it is away.

The evaluator appends transitions; :meth:`Journal.flush` writes them one by one (each
with its outbox rows, atomically) and drops each only once committed. If PostgreSQL
is unreachable the log grows in memory and the next flush, after a backoff, writes
the backlog in the order it was evaluated.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import asyncpg

from services.alerts import store
from services.alerts.model import Transition
from services.common.db import DATABASE_UNAVAILABLE

log = logging.getLogger(__name__)

Outbox = Callable[[Transition], Sequence[tuple[str, dict[str, Any]]]]

# What "the database is away" looks like through asyncpg (refused, reset, shutting down,
# out of connection slots, read-only after a failover, a lock wait past lock_timeout):
# the metrics worker's list, so both services agree on what an outage is.
UNAVAILABLE: tuple[type[BaseException], ...] = DATABASE_UNAVAILABLE


class Journal:
    def __init__(self, outbox: Outbox, nobody_to_tell: bool = False) -> None:
        self._queue: deque[Transition] = deque()
        self._outbox = outbox
        self._nobody_to_tell = nobody_to_tell
        """No Alertmanager: resolutions are written as told (``store.write_transition``)."""

    def __len__(self) -> int:
        return len(self._queue)

    def extend(self, transitions: Sequence[Transition]) -> None:
        self._queue.extend(transitions)

    def unwritten(self) -> list[Transition]:
        """The backlog, oldest first (for the local copy: services/alerts/spool.py)."""
        return list(self._queue)

    async def flush(self, pool: asyncpg.Pool) -> int:
        """Write the backlog in order; raises (one of UNAVAILABLE) if the database is away."""
        written = 0
        while self._queue:
            transition = self._queue[0]
            async with pool.acquire() as conn:
                try:
                    await store.write_transition(
                        conn, transition, self._outbox(transition), self._nobody_to_tell
                    )
                except store.Conflict:
                    # Only possible if two services evaluate the same alerts: keep the
                    # recorded alert, drop ours, and say so loudly.
                    log.error("dropped %s: another open alert exists", transition.alert.key)
            self._queue.popleft()
            written += 1
        return written
