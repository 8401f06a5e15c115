"""Alert state: the open alerts, their lifecycle, and its persistence in PostgreSQL.

:class:`AlertState` owns the :class:`~services.alerts.lifecycle.AlertBook` (verdicts in,
transitions out), the :class:`~services.alerts.journal.Journal` that writes those
transitions in order, and the last event seen per unit and family (``last_seen``,
table ``alert_unit_activity``). Start-up waits for PostgreSQL to load the open alerts,
so a restart never re-opens one as new; afterwards the database may come and go: the
state goes on in memory and :meth:`AlertState.flush` writes the backlog when it returns.
A local copy of the open alerts and the backlog (:mod:`services.alerts.spool`) carries
both across a restart made while the database is away.
Delivery is not here (:mod:`services.alerts.delivery`): the journal only asks it which
outbox rows go with each transition.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from datetime import datetime

import asyncpg

from services.alerts import store
from services.alerts.journal import UNAVAILABLE, Journal, Outbox
from services.alerts.lifecycle import AlertBook
from services.alerts.model import Alert, AlertKey, State, Transition, Verdict
from services.alerts.silence_memory import SilenceMemory
from services.alerts.spool import Spool, Spooled, SpoolUnreadable, encode
from services.common.db import expire_if_read_only, migrate_database

log = logging.getLogger(__name__)

Seen = dict[tuple[str, str], datetime]
"""(unit, family) -> last event time."""


class AlertState:
    """Open alerts and last-seen times, in memory first and in PostgreSQL when it answers."""

    def __init__(
        self, outbox: Outbox, spool: Spool | None = None, nobody_to_tell: bool = False
    ) -> None:
        self.book = AlertBook()
        self.journal = Journal(outbox, nobody_to_tell)
        self.last_seen: Seen = {}
        self.watch_start: datetime | None = None
        """When the service first began watching for silence (PostgreSQL), once loaded."""
        self.pool: asyncpg.Pool | None = None
        self.loaded = asyncio.Event()
        self._dirty_seen: Seen = {}
        self._spool = spool
        self._spool_lock = asyncio.Lock()
        self._known = False  # restored or loaded: what ``save`` writes is the real state
        self._restored_open: set[str] | None = None
        self.silence: SilenceMemory | None = None
        """The silence judgement's memory the last run left in PostgreSQL, once loaded."""
        self._silence_written: bytes | None = None
        self._silence_dirty: bytes | None = None

    @property
    def open(self) -> Mapping[AlertKey, Alert]:
        return self.book.open

    def pending(self) -> list[Alert]:
        return [a for a in self.book.open.values() if a.state is State.PENDING]

    def firing(self) -> list[Alert]:
        return [a for a in self.book.open.values() if a.state is State.FIRING]

    def acknowledged(self, alert_id: str, by: str | None, at: str | None) -> None:
        """An operator acknowledged ``alert_id`` (stored already): its open alert says so."""
        for alert in self.book.open.values():
            if alert.id == alert_id:
                alert.acked_by = by
                alert.acked_at = datetime.fromisoformat(at) if at else None

    def restore(self) -> Spooled | None:
        """Before PostgreSQL answers: the open alerts and the unwritten journal the last run
        left on local disk (None without a file). The journal is written first when
        PostgreSQL answers (``load``); until then the open alerts are what the file says,
        unless it was set aside as stale (a write had failed after it)."""
        if self._spool is None:
            log.warning("no EGOV_ALERT_STATE_FILE: a restart while PostgreSQL is away forgets "
                        "the transitions not yet written")  # fmt: skip
            self._known = True
            return None
        try:
            spooled = self._spool.read()
        except SpoolUnreadable:
            # Never written over: this run keeps no local copy, the file is left as it is.
            log.exception("this run keeps no local alert state")
            self._spool = None
            self._known = True
            return None
        self._known = True
        if spooled is None:
            return None
        if not spooled.stale:
            self.book = AlertBook(spooled.open)
            self._restored_open = {a.id for a in spooled.open}
        self.journal.extend(spooled.journal)
        log.info("restored %d open alerts and %d unwritten transitions from %s (written %s%s)",
                 len(self.book.open), len(spooled.journal), self._spool.path,
                 spooled.written_at.isoformat(), ", stale" if spooled.stale else "")  # fmt: skip
        return spooled

    async def save(self, now: datetime) -> None:
        """Replace the local copy with the open alerts and the journal as they are now.
        A disk that fails is logged, not raised (PostgreSQL stays the record), and the
        file is set aside as stale: a restart must not push what it no longer holds."""
        if self._spool is None or not self._known:
            return
        async with self._spool_lock:  # snapshots reach the disk in the order they were taken
            data = encode(list(self.book.open.values()), self.journal.unwritten(), now)
            try:
                await asyncio.to_thread(self._spool.write, data)
            except OSError:
                log.exception("the alert state file %s could not be written", self._spool.path)
                await asyncio.to_thread(self._spool.set_stale)

    async def load(self, dsn: str, resolved_since: datetime, now: datetime) -> list[Alert]:
        """Connect, migrate, load open alerts, last-seen times and when the service began
        watching (``watch_start``: ``now`` on the first start ever); retries forever.

        Returns the alerts resolved since ``resolved_since`` (delivery re-sends them).
        """
        delay = 0.5
        while True:
            pool = None
            try:
                await migrate_database(dsn)  # no pool's statement timeout (review 52)
                pool = await store.create_pool(dsn)
                # What the last run decided while PostgreSQL was away goes in first (each
                # transition once: ids already there are skipped), so the rows read next
                # are the truth: a resolution made meanwhile stays resolved.
                try:
                    await self.journal.flush(pool)
                except UNAVAILABLE:
                    raise
                except Exception:  # a bad row: the write loop retries it, loudly, as always
                    log.exception("the restored journal could not be written before loading")
                async with pool.acquire() as conn:
                    open_alerts = await store.load_open(conn)
                    resolved = await store.load_resolved_since(conn, resolved_since)
                    seen = await store.load_activity(conn)
                    self.watch_start = await store.watch_started(conn, now)
                    silence = await store.load_silence_memory(conn)
                break
            except UNAVAILABLE as exc:
                if pool is not None:
                    pool.terminate()
                log.warning("PostgreSQL unavailable (%r); retrying in %.1f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
        self.pool = pool
        self.silence = _silence(silence)
        if self._restored_open is not None and self._restored_open != {a.id for a in open_alerts}:
            log.warning("PostgreSQL's open alerts differ from the local state file's (a "
                        "database restored from a backup?): PostgreSQL's are kept")  # fmt: skip
        keep_holds(self.book.open.values(), open_alerts)
        self.book = AlertBook(open_alerts)
        self._known = True
        for key, at in seen.items():
            self.last_seen[key] = max(at, self.last_seen.get(key, at))
        self.loaded.set()
        log.info("loaded %d open alerts", len(self.book.open))
        return resolved

    def apply(self, verdicts: Iterable[Verdict], now: datetime) -> list[Transition]:
        """One evaluation's verdicts through the lifecycle; the transitions are journalled."""
        transitions = self.book.observe(verdicts, now)
        self.journal.extend(transitions)
        return transitions

    def remember(self, seen: Mapping[tuple[str, str], datetime]) -> None:
        """Newer last-event times; the changed ones are written at the next flush."""
        for key, at in seen.items():
            if key not in self.last_seen or at > self.last_seen[key]:
                self.last_seen[key] = at
                self._dirty_seen[key] = at

    def remember_silence(self, memory: SilenceMemory) -> None:
        """The silence judgement's memory after a cycle: written at the next flush if it
        changed."""
        body = memory.encode()
        self._silence_dirty = None if body == self._silence_written else body

    async def flush(self) -> int:
        """Write the journal, the changed last-seen entries and the silence memory;
        raises if PG is away. A server refusing writes (a failover left the pool on the
        demoted primary) has the pool's connections replaced first: retried on the same
        connections, nothing would be written until a restart (review 74)."""
        pool = self.pool
        if pool is None:
            raise ConnectionError("PostgreSQL not connected yet")
        try:
            return await self._flush(pool)
        except UNAVAILABLE as exc:
            await expire_if_read_only(pool, exc)
            raise

    async def _flush(self, pool: asyncpg.Pool) -> int:
        written = await self.journal.flush(pool)
        if self._silence_dirty is not None:
            body = self._silence_dirty
            async with pool.acquire() as conn:
                await store.save_silence_memory(conn, body)
            self._silence_written = body
            if self._silence_dirty == body:
                self._silence_dirty = None
        if self._dirty_seen:
            dirty, self._dirty_seen = self._dirty_seen, {}
            try:
                async with pool.acquire() as conn:
                    await store.save_activity(conn, dirty)
            except BaseException:
                for key, at in dirty.items():
                    self._dirty_seen.setdefault(key, at)
                raise
        return written

    async def database_ok(self) -> bool:
        if self.pool is None:
            return False
        try:
            async with asyncio.timeout(3):
                await self.pool.fetchval("SELECT 1")
        except UNAVAILABLE:
            return False
        except asyncpg.PostgresError:
            return False
        return True

    async def close(self) -> None:
        if self.pool is not None:
            await self.pool.close()
            self.pool = None


def _silence(raw: str | None) -> SilenceMemory | None:
    if raw is None:
        return None
    try:
        return SilenceMemory.decode(raw)
    except ValueError:
        log.exception("the silence memory in PostgreSQL is unreadable: silences are judged "
                      "without the spans the last run saw")  # fmt: skip
        return None


def keep_holds(restored: Iterable[Alert], loaded: Iterable[Alert]) -> None:
    """The rows never hold a burn alert's hold (it changes without a transition): an alert
    still open under the same id keeps the one the state file restored, so a restart does
    not start it again; without the file it starts again at the next CLEAR."""
    since = {a.id: a.clear_since for a in restored if a.clear_since is not None}
    for alert in loaded:
        if alert.state is State.FIRING and alert.id in since:
            alert.clear_since = since[alert.id]
