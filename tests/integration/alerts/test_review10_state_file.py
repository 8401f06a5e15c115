"""Adversarial review (round 10) of the local alert state file (commit 561930a).

The promise (docs/alerts.md, "A restart while PostgreSQL is away"): a restart of the
alerts service while PostgreSQL is down forgets no transition decided meanwhile, keeps
Alertmanager told of the firing alerts while it waits, never sets an alert back to an
older state, survives a torn, unreadable or unwritable file, and loses nothing accepted.

Five defects were found, strict xfails here until fixed on 2026-12-05 (a file left stale
by failed writes re-opened a resolved alert; nothing was saved after loading, so a crash
before the first transition left Alertmanager untold; a read that failed once let an
empty state overwrite the file; JSON that is not an object stopped the service). One
remains a strict xfail, by policy: PostgreSQL restored from a backup older than the file
keeps its rows (the database is the record; the disagreement is logged). The other tests
check claims that hold. The integration tests use this folder's fixtures (a fake metrics
worker, a real Alertmanager routing to a receiver, a fresh PostgreSQL database, a TCP
proxy that cuts it off); the unit-level ones call services/alerts/spool.py directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from services.alerts import operators, store
from services.alerts.service import AlertsService
from services.alerts.spool import Spool
from tests.integration.alerts.conftest import ServiceFactory
from tests.integration.alerts.harness import (
    QUIET,
    Alertmanager,
    FakeMetrics,
    Receiver,
    TcpProxy,
    statuses,
    wait_until,
)

pytestmark = pytest.mark.integration


async def stored(svc: AlertsService) -> list[tuple[str, str]]:
    """(unit, state) of every alert row, oldest first."""
    assert svc.pool is not None
    async with svc.pool.acquire() as conn:
        rows = await conn.fetch("SELECT unit, state FROM alerts ORDER BY pending_since")
    return [(r["unit"], r["state"]) for r in rows]


async def crash(svc: AlertsService) -> None:
    """The process dies (OOM, kill -9): no close(), so no save; only our sockets closed."""
    for task in svc._tasks:
        task.cancel()
    for task in svc._tasks:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
    await svc.state.close()
    await svc._http.aclose()


def disk_full(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every state-file write fails as on a full disk (ENOSPC); reading still works."""

    def write(self: Spool, data: bytes) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(self.path))

    monkeypatch.setattr(Spool, "write", write)


# --- 1. a stale file (writes that failed: a full disk) re-opens a resolved alert --------


async def test_a_file_that_could_not_be_written_does_not_reopen_a_resolved_alert(
    make_service: ServiceFactory, fake_metrics: FakeMetrics, receiver: Receiver,
    alertmanager: Alertmanager, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    first = make_service(alertmanager_url=alertmanager.url)
    await first.connect()
    now = datetime.now(UTC) - timedelta(seconds=120)
    try:
        fake_metrics.set("c1", 80, 100)
        await first.evaluate_once(now)
        await first.evaluate_once(now + timedelta(seconds=2))  # fires; saved (journal: 2)
        disk_full(monkeypatch)  # from here, every save is logged and the service goes on
        assert await first.flush() == 2
        assert await first.push_alertmanager(now + timedelta(seconds=2), force=True)
        await wait_until(lambda: statuses(receiver) == ["firing"], 15, "firing")
        fake_metrics.set("c1", 99, 100)  # recovers past the margin: resolved
        await first.evaluate_once(now + timedelta(seconds=10))
        assert await first.flush() == 1
        assert await first.push_alertmanager(now + timedelta(seconds=10))
        await wait_until(lambda: statuses(receiver) == ["firing", "resolved"], 15, "resolved")
        assert await stored(first) == [("c1", "resolved")]
    finally:
        await first.close()

    # A restart (a deploy), PostgreSQL up all along, the disk still full (reads work).
    second = make_service(alertmanager_url=alertmanager.url)
    await second.connect()
    try:
        fake_metrics.set("c1", 96, 100)  # inside the margin: HOLD, neither breach nor clear
        await second.evaluate_once(now + timedelta(seconds=20))
        await second.push_alertmanager(now + timedelta(seconds=20), force=True)
        await asyncio.sleep(QUIET)
        assert statuses(receiver) == ["firing", "resolved"]  # nobody paged again
        assert list(second.state.open.values()) == []  # as the row says
        await second.flush()
        assert await stored(second) == [("c1", "resolved")]
    finally:
        await second.close()


# --- 2. the file is first written at the first transition, not when the state is known --


async def test_a_crash_before_any_transition_still_keeps_alertmanager_told(
    make_service: ServiceFactory, fake_metrics: FakeMetrics, receiver: Receiver,
    alertmanager: Alertmanager, database_url: str, tmp_path: Path,
) -> None:  # fmt: skip
    proxy = TcpProxy()
    await proxy.up()
    # resend 1 s: endsAt 4 s ahead (production: 60 s and 4 min; the outage scales with it)
    settings = {"database_url": proxy.dsn(database_url), "alertmanager_url": alertmanager.url,
                "alert_resend_s": 1.0}  # fmt: skip
    first = make_service(**settings)
    await first.connect()
    try:
        fake_metrics.set("c1", 80, 100)
        real = datetime.now(UTC)
        await first.evaluate_once(real - timedelta(seconds=4))
        await first.evaluate_once(real - timedelta(seconds=2))
        await first.flush()
        assert await first.push_alertmanager(datetime.now(UTC), force=True)
        await wait_until(lambda: statuses(receiver) == ["firing"], 15, "firing")
    finally:
        await first.close()
    # The file is lost (the release before this one kept none; a torn file is set aside).
    (tmp_path / "alerts-state.json").unlink()

    second = make_service(**settings)
    await second.connect()  # PostgreSQL up: c1 firing is loaded from its row
    assert [a.key.unit for a in second.state.firing()] == ["c1"]
    await second.evaluate_once(datetime.now(UTC))  # still 80 %: no transition
    assert await second.push_alertmanager(datetime.now(UTC), force=True)
    await crash(second)  # an OOM during a database outage
    await proxy.down()

    third = make_service(**settings)
    connecting = asyncio.create_task(third.connect())
    try:
        await asyncio.sleep(8)  # two endsAt periods: c1 is still 80 % all along
        assert statuses(receiver) == ["firing"]  # no "resolved" for a unit still failing
    finally:
        connecting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await connecting
        await proxy.up()
        await third.close()
        await proxy.down()


# --- 3. a file that could not be read this once is overwritten with nothing -----------


async def test_a_file_unreadable_once_is_not_overwritten_with_nothing(
    make_service: ServiceFactory, fake_metrics: FakeMetrics, database_url: str,
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    proxy = TcpProxy()
    await proxy.up()
    settings = {"database_url": proxy.dsn(database_url)}
    state_file = tmp_path / "alerts-state.json"
    first = make_service(**settings)
    await first.connect()
    now = datetime.now(UTC) - timedelta(seconds=120)
    try:
        fake_metrics.set("c1", 80, 100)
        await first.evaluate_once(now)
        await first.evaluate_once(now + timedelta(seconds=2))
        await first.flush()  # firing is stored
        await proxy.down()
        fake_metrics.set("c1", 99, 100)
        (resolved,) = await first.evaluate_once(now + timedelta(seconds=10))
        assert resolved.to_state.value == "resolved"
        assert len(first.state.journal) == 1  # on local disk only
    finally:
        await proxy.up()  # only so that closing the pool cannot hang
        await first.close()
    await proxy.down()

    real_read = Path.read_bytes
    failures = [OSError(errno.EIO, "Input/output error")]

    def flaky_read(self: Path) -> bytes:
        if self == state_file and failures:
            raise failures.pop()
        return real_read(self)

    monkeypatch.setattr(Path, "read_bytes", flaky_read)
    second = make_service(**settings)
    second.start_loops()  # waits for PostgreSQL, which stays away
    await asyncio.sleep(1)
    await second.close()  # a deploy, again before PostgreSQL returns
    assert not failures  # the one read failed

    await proxy.up()
    third = make_service(**settings)
    await third.connect()
    try:
        assert list(third.state.open.values()) == []  # the resolution was kept
        await third.flush()
        assert await stored(third) == [("c1", "resolved")]
    finally:
        await third.close()
        await proxy.down()


# --- 4. a file holding JSON that is not an object stopped the start: fixed, tested in
# tests/unit/alerts/test_spool.py (test_an_unreadable_file_is_set_aside_and_said).


# --- claims that hold -------------------------------------------------------------------


async def test_pending_alert_that_fires_while_postgres_is_away_survives_a_restart(
    make_service: ServiceFactory, fake_metrics: FakeMetrics, receiver: Receiver,
    alertmanager: Alertmanager, database_url: str,
) -> None:  # fmt: skip
    proxy = TcpProxy()
    await proxy.up()
    settings = {"database_url": proxy.dsn(database_url), "alertmanager_url": alertmanager.url}
    first = make_service(**settings)
    await first.connect()
    now = datetime.now(UTC) - timedelta(seconds=120)
    try:
        fake_metrics.set("c1", 80, 100)
        await first.evaluate_once(now)
        await first.flush()  # pending is stored
        await proxy.down()
        (fired,) = await first.evaluate_once(now + timedelta(seconds=2))
        assert await first.push_alertmanager(now + timedelta(seconds=2), force=True)
        await wait_until(lambda: statuses(receiver) == ["firing"], 15, "firing")
    finally:
        await proxy.up()
        await first.close()
    await proxy.down()

    second = make_service(**settings)
    connecting = asyncio.create_task(second.connect())
    try:
        await asyncio.sleep(1.5)
        assert [a.id for a in second.state.firing()] == [fired.alert.id]  # from the file
        await proxy.up()
        await asyncio.wait_for(connecting, 60)
        assert await second.flush() == 0  # written as it connected, before the rows
        assert await stored(second) == [("c1", "firing")]
        assert second.pool is not None
        async with second.pool.acquire() as conn:
            history = await conn.fetch(
                "SELECT from_state, to_state FROM alert_transitions WHERE alert_id = $1 "
                "ORDER BY seq",
                fired.alert.id,
            )
        assert [(h["from_state"], h["to_state"]) for h in history] == [
            (None, "pending"),
            ("pending", "firing"),
        ]
        assert await second.evaluate_once(now + timedelta(seconds=20)) == []  # still firing
        await second.push_alertmanager(now + timedelta(seconds=20), force=True)
        await asyncio.sleep(QUIET)
        assert statuses(receiver) == ["firing"]  # paged once
    finally:
        connecting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await connecting
        await proxy.up()
        await second.close()
        await proxy.down()


async def test_an_acknowledgement_survives_a_restart_with_an_older_snapshot_journalled(
    make_service: ServiceFactory, fake_metrics: FakeMetrics, database_url: str,
) -> None:  # fmt: skip
    proxy = TcpProxy()
    await proxy.up()
    settings: dict[str, Any] = {"database_url": proxy.dsn(database_url), "alert_for_s": 5.0}
    first = make_service(**settings)
    await first.connect()
    now = datetime.now(UTC) - timedelta(seconds=120)
    try:
        assert first.pool is not None
        fake_metrics.set("c1", 80, 100)
        await first.evaluate_once(now)
        await first.flush()  # pending is stored
        (fired,) = await first.evaluate_once(now + timedelta(seconds=5))  # not yet written
        assert fired.alert.acked_by is None
        async with first.pool.acquire() as conn:  # what POST /v1/alerts/{id}/ack does
            await operators.create(conn, "trực ban 19", ["19"])
            await store.add_note(conn, fired.alert.id, "ack", "trực ban 19", "")
            at = await conn.fetchval("SELECT acked_at FROM alerts WHERE id = $1", fired.alert.id)
        first.state.acknowledged(fired.alert.id, "trực ban 19", at.isoformat())
        await proxy.down()  # before the firing is written
        fake_metrics.set("c1", 99, 100)
        (resolved,) = await first.evaluate_once(now + timedelta(seconds=10))
        assert resolved.alert.acked_by == "trực ban 19"
    finally:
        await proxy.up()
        await first.close()

    second = make_service(**settings)
    await second.connect()
    try:
        assert list(second.state.open.values()) == []
        assert await second.flush() == 0  # written as it connected, before the rows
        assert second.pool is not None
        async with second.pool.acquire() as conn:
            row = await conn.fetchrow(
                "SELECT state, acked_by FROM alerts WHERE id = $1", fired.alert.id
            )
        assert row is not None
        assert (row["state"], row["acked_by"]) == ("resolved", "trực ban 19")
    finally:
        await second.close()
        await proxy.down()


async def test_two_restarts_while_postgres_is_away_keep_the_resolution(
    make_service: ServiceFactory, fake_metrics: FakeMetrics, database_url: str,
) -> None:  # fmt: skip
    proxy = TcpProxy()
    await proxy.up()
    settings = {"database_url": proxy.dsn(database_url)}
    first = make_service(**settings)
    await first.connect()
    now = datetime.now(UTC) - timedelta(seconds=120)
    try:
        fake_metrics.set("c1", 80, 100)
        await first.evaluate_once(now)
        await first.evaluate_once(now + timedelta(seconds=2))
        await first.flush()
        await proxy.down()
        fake_metrics.set("c1", 99, 100)
        await first.evaluate_once(now + timedelta(seconds=10))
    finally:
        await proxy.up()
        await first.close()
    await proxy.down()
    for _ in range(2):  # two deploys, each closed while still waiting for PostgreSQL
        waiting = make_service(**settings)
        waiting.start_loops()
        await asyncio.sleep(1)
        await waiting.close()
    await proxy.up()
    last = make_service(**settings)
    await last.connect()
    try:
        fake_metrics.set("c1", 96, 100)  # HOLD: a firing alert would stay firing
        await last.evaluate_once(now + timedelta(seconds=20))
        assert list(last.state.open.values()) == []
        await last.flush()
        assert await stored(last) == [("c1", "resolved")]
    finally:
        await last.close()
        await proxy.down()


# --- 5. PostgreSQL restored from a backup older than the file ---------------------------


@pytest.mark.xfail(
    strict=True,
    reason="by policy PostgreSQL's rows win over the file's open set (the disagreement is "
    "logged): after PostgreSQL is restored from a backup taken while an alert fired, the "
    "alert resolved since comes back firing (a second page) although the file says it is "
    "closed; reconciling a restored database is an operator's step (docs/alerts.md)",
)
async def test_postgres_restored_from_an_older_backup_does_not_reopen_a_resolved_alert(
    make_service: ServiceFactory, fake_metrics: FakeMetrics
) -> None:
    first = make_service()
    await first.connect()
    now = datetime.now(UTC) - timedelta(seconds=120)
    try:
        fake_metrics.set("c1", 80, 100)
        await first.evaluate_once(now)
        await first.evaluate_once(now + timedelta(seconds=2))
        await first.flush()
        fake_metrics.set("c1", 99, 100)
        await first.evaluate_once(now + timedelta(seconds=10))
        await first.flush()  # resolved, written; the file: nothing open, nothing unwritten
        assert first.pool is not None
        async with first.pool.acquire() as conn:  # what a backup taken while it fired holds
            await conn.execute(
                "DELETE FROM alert_outbox WHERE transition_id IN (SELECT id FROM "
                "alert_transitions WHERE to_state = 'resolved')"
            )
            await conn.execute("DELETE FROM alert_transitions WHERE to_state = 'resolved'")
            await conn.execute(
                "UPDATE alerts SET state = 'firing', resolved_at = NULL, updated_at = fired_at"
            )
    finally:
        await first.close()

    second = make_service()
    await second.connect()
    try:
        fake_metrics.set("c1", 96, 100)  # HOLD: a firing alert stays firing
        await second.evaluate_once(now + timedelta(seconds=20))
        assert second.state.firing() == []  # the file's word: closed at +10 s
        await second.flush()
        assert await stored(second) == [("c1", "resolved")]
    finally:
        await second.close()
