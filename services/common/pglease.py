"""One holder per database: a PostgreSQL session-level advisory lock on its own connection.

The lock lives as long as the session: a process that stops, crashes or loses its
connection releases it, and the server hands it to the next ``pg_try_advisory_lock``.
The holder learns that its session is gone from asyncpg (the connection's termination
listener) or from a ping that fails or does not answer within ``PING_TIMEOUT_S``; it must
then stop writing at once. A network that cuts the holder off leaves the server's
session alive until TCP gives up on it, so the holder, whose ping fails within seconds,
stops before anyone else can be handed the lock.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from dataclasses import dataclass

import asyncpg

from services.common.db import SESSION_LIMITS

log = logging.getLogger(__name__)

PING_TIMEOUT_S = 2.0
"""How long a ping of the lock's session may take before the lock is taken for lost."""

CONNECT_TIMEOUT_S = 5.0

FRESH_S = 0.5
"""A ping younger than this answers :meth:`AdvisoryLease.confirm` without another: the
write steps of one cycle share it."""


@dataclass(frozen=True, slots=True)
class Holder:
    """The session holding the lock, as pg_stat_activity shows it."""

    pid: int
    client: str
    application: str

    def __str__(self) -> str:
        return f"{self.application or 'unnamed'} from {self.client}, backend pid {self.pid}"


_HOLDER = (
    "SELECT a.pid, coalesce(host(a.client_addr), 'local socket') AS client, "
    "a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
    "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
    "AND l.classid = $1::bigint::oid AND l.objid = $2::bigint::oid "
    "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
)


class AdvisoryLease:
    """``pg_try_advisory_lock(key)`` held on a dedicated connection to ``dsn``.

    :meth:`try_acquire` takes it if free; :meth:`confirm` says whether it is still held
    (a ping at most every ``FRESH_S``); :attr:`lost` is set the moment it is known gone;
    :meth:`release` ends the session, and with it the lock (and clears :attr:`lost`).
    """

    def __init__(self, dsn: str, key: int, application: str) -> None:
        self._dsn = dsn
        self.key = key
        # Named in pg_stat_activity, so a standby's log line says which process holds it.
        self._application = f"{application} {socket.gethostname()} pid {os.getpid()}"[:63]
        self._conn: asyncpg.Connection | None = None
        self._pinged = 0.0
        self._ping_lock = asyncio.Lock()
        self.lost = asyncio.Event()

    @property
    def held(self) -> bool:
        return self._conn is not None and not self.lost.is_set()

    async def try_acquire(self) -> Holder | None:
        """Take the lock if free: None once held; else who holds it (``Holder(0, ...)``
        if pg_stat_activity does not show it). Raises asyncpg's and OSError's errors
        while PostgreSQL does not answer."""
        if self.held:
            return None
        await self.release()
        conn = await asyncpg.connect(
            self._dsn,
            timeout=CONNECT_TIMEOUT_S,
            command_timeout=PING_TIMEOUT_S * 2,
            # The keepalives of every pooled session: a holder whose host died loses the
            # lock in about 25 s; a live holder's own ping fails well before that.
            server_settings={**SESSION_LIMITS, "application_name": self._application},
        )
        try:
            got = await conn.fetchval("SELECT pg_try_advisory_lock($1)", self.key)
            if not got:
                row = await conn.fetchrow(_HOLDER, self.key >> 32, self.key & 0xFFFFFFFF)
                await conn.close()
                if row is None:
                    return Holder(0, "unknown", "")
                return Holder(row["pid"], row["client"], row["application_name"])
        except BaseException:
            conn.terminate()
            raise
        conn.add_termination_listener(self._terminated)
        self._conn = conn
        self._pinged = time.monotonic()
        return None

    def _terminated(self, _conn: object) -> None:
        if self._conn is not None:
            log.error("the lock connection to PostgreSQL closed: lock %#x lost", self.key)
            self.lost.set()

    async def confirm(self) -> bool:
        """Whether the lock is still held: its session answers a ping within
        ``PING_TIMEOUT_S``. False sets :attr:`lost` (and stays False)."""
        conn = self._conn
        if conn is None or self.lost.is_set():
            return False
        async with self._ping_lock:  # one query at a time on the connection
            if self.lost.is_set():
                return False
            if time.monotonic() - self._pinged < FRESH_S:
                return True
            try:
                async with asyncio.timeout(PING_TIMEOUT_S):
                    await conn.fetchval("SELECT 1")
            except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.error("the lock connection to PostgreSQL failed (%r): lock %#x lost",
                          exc, self.key)  # fmt: skip
                self.lost.set()
                return False
            self._pinged = time.monotonic()
            return True

    async def release(self) -> None:
        """End the session (the server releases the lock with it); :attr:`lost` is
        cleared, for the next term."""
        conn, self._conn = self._conn, None
        self.lost.clear()
        if conn is None:
            return
        conn.remove_termination_listener(self._terminated)
        try:
            async with asyncio.timeout(PING_TIMEOUT_S):
                await conn.close()
        except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            conn.terminate()
