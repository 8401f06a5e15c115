"""PostgreSQL adapter of the alerts service (tables in migrations/0005_alerts.sql).

Errors: :class:`StoreError` with leaves :class:`NotFound` and :class:`Conflict`;
asyncpg's own errors for an unreachable database pass through (callers retry them).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from services.alerts.model import Alert, AlertKey, State, Transition
from services.common.db import SESSION_LIMITS, Connection


class StoreError(Exception):
    """Base of the store's own errors."""


class NotFound(StoreError):
    """No such alert, operator or override."""


class Conflict(StoreError):
    """The write contradicts what is recorded (e.g. a second open alert)."""


async def _init(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def create_pool(dsn: str, *, max_size: int = 5) -> asyncpg.Pool:
    """A pool whose connections speak jsonb as Python values; short timeouts throughout,
    and the sessions bounded as the other services' are (``SESSION_LIMITS``): a lock an
    operator holds ends a wait with 55P03 after lock_timeout, before the 15 s command
    timeout, and is logged as what it is."""
    pool = await asyncpg.create_pool(
        dsn,
        min_size=1,
        max_size=max_size,
        timeout=5,
        command_timeout=15,
        init=_init,
        server_settings=SESSION_LIMITS,
    )
    if pool is None:  # asyncpg types the result as optional; it never is here
        raise RuntimeError("asyncpg returned no pool")
    return pool


_ALERT_COLUMNS = (
    'id, condition, kpi, unit, "window", state, severity, province, labels, annotations, '
    "vals, pending_since, fired_at, resolved_at, updated_at, acked_at, acked_by"
)


def _alert(row: asyncpg.Record) -> Alert:
    return Alert(
        id=str(row["id"]),
        key=AlertKey(row["condition"], row["kpi"], row["unit"], row["window"]),
        state=State(row["state"]),
        severity=row["severity"],
        province=row["province"],
        labels=row["labels"],
        annotations=row["annotations"],
        values=row["vals"],
        pending_since=row["pending_since"],
        updated_at=row["updated_at"],
        fired_at=row["fired_at"],
        resolved_at=row["resolved_at"],
        acked_at=row["acked_at"],
        acked_by=row["acked_by"],
    )


def alert_json(alert: Alert) -> dict[str, Any]:
    """The API's (and Kafka's) view of an alert."""

    def iso(at: datetime | None) -> str | None:
        return at.isoformat() if at is not None else None

    return {
        "id": alert.id,
        "condition": alert.key.condition,
        "kpi": alert.key.kpi,
        "unit": alert.key.unit,
        "window": alert.key.window,
        "state": alert.state.value,
        "severity": alert.severity,
        "province": alert.province,
        "labels": alert.labels,
        "annotations": alert.annotations,
        "values": alert.values,
        "pending_since": iso(alert.pending_since),
        "fired_at": iso(alert.fired_at),
        "resolved_at": iso(alert.resolved_at),
        "updated_at": iso(alert.updated_at),
        "acked_at": iso(alert.acked_at),
        "acked_by": alert.acked_by,
    }


async def load_open(conn: Connection) -> list[Alert]:
    rows = await conn.fetch(
        f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE state IN ('pending', 'firing')"  # noqa: S608
    )
    return [_alert(r) for r in rows]


async def load_resolved_since(conn: Connection, since: datetime) -> list[Alert]:
    """The alerts resolved since ``since``, and every fired one whose resolution
    Alertmanager was never told (migration 0020), however old: delivery sends them."""
    rows = await conn.fetch(
        f"SELECT {_ALERT_COLUMNS} FROM alerts "  # noqa: S608
        "WHERE state = 'resolved' AND (resolved_at >= $1"
        " OR (told_resolved_at IS NULL AND fired_at IS NOT NULL))",
        since,
    )
    return [_alert(r) for r in rows]


async def mark_resolutions_told(conn: Connection, ids: Sequence[str], at: datetime) -> None:
    """Alertmanager accepted a push carrying these resolutions. A row not written yet
    (its transition still in the journal) stays untold, and is sent again after a
    restart: a resolution told twice is harmless, one never told leaves a page open."""
    await conn.execute(
        "UPDATE alerts SET told_resolved_at = $2"
        " WHERE id = ANY($1::uuid[]) AND told_resolved_at IS NULL",
        list(ids),
        at,
    )


async def write_transition(
    conn: Connection,
    transition: Transition,
    outbox: Sequence[tuple[str, dict[str, Any]]],
    nobody_to_tell: bool = False,
) -> None:
    """Record one transition, the alert's new state and its notifications, atomically.

    ``nobody_to_tell``: no Alertmanager is configured, so a resolution is written as told
    (migration 0020): else a site without one owed Alertmanager every resolution of its
    history, sent the day it added one (review 58).

    Idempotent on the transition id: a flush retried after an unknown outcome (the
    connection dropped during COMMIT), or a local journal replayed after a restart
    (services/alerts/spool.py), writes nothing twice, and does not set the alert back to
    the state of a transition older than the row.
    """
    a = transition.alert
    async with conn.transaction():
        written = await conn.fetchval(
            "SELECT true FROM alert_transitions WHERE id = $1", transition.id
        )
        if written:
            return
        try:
            await conn.execute(
                f"INSERT INTO alerts ({_ALERT_COLUMNS}) "  # noqa: S608
                "VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,NULL,NULL) "
                "ON CONFLICT (id) DO UPDATE SET state = $6, severity = $7, labels = $9, "
                "annotations = $10, vals = $11, fired_at = $13, resolved_at = $14, "
                "updated_at = $15",
                a.id, a.key.condition, a.key.kpi, a.key.unit, a.key.window, a.state.value,
                a.severity, a.province, a.labels, a.annotations, a.values, a.pending_since,
                a.fired_at, a.resolved_at, a.updated_at,
            )  # fmt: skip
        except asyncpg.UniqueViolationError as exc:
            raise Conflict(f"another alert is open for {a.key}") from exc
        if nobody_to_tell and a.state is State.RESOLVED:
            await conn.execute(
                "UPDATE alerts SET told_resolved_at = coalesce(told_resolved_at, resolved_at)"
                " WHERE id = $1",
                a.id,
            )
        inserted = await conn.fetchval(
            "INSERT INTO alert_transitions (id, alert_id, from_state, to_state, at, vals) "
            "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING RETURNING id",
            transition.id,
            a.id,
            transition.from_state.value if transition.from_state else None,
            transition.to_state.value,
            transition.at,
            transition.values,
        )
        if inserted is None:
            return
        for sink, payload in outbox:
            await conn.execute(
                "INSERT INTO alert_outbox (transition_id, sink, payload) VALUES ($1, $2, $3) "
                "ON CONFLICT DO NOTHING",
                transition.id,
                sink,
                payload,
            )


@dataclass(frozen=True, slots=True)
class AlertFilter:
    unit: str | None = None
    kpi: str | None = None
    severity: str | None = None
    state: str | None = None
    condition: str | None = None
    limit: int = 500


async def list_alerts(conn: Connection, f: AlertFilter, recent_since: datetime) -> list[Alert]:
    """Every open alert, and at most ``f.limit`` of those closed since ``recent_since``;
    newest change first.

    The limit is on the closed ones only: an alert firing for days has its last change
    days ago, and under one limit on both it came after the day's closed ones and was
    cut off once more than the limit closed (each midnight closes the day window's), so
    the API and the wall's alert panel lost alerts that still fire (review 68)."""
    clauses: list[str] = []
    args: list[Any] = [recent_since]
    for column, value in (
        ("unit", f.unit), ("kpi", f.kpi), ("severity", f.severity), ("state", f.state),
        ("condition", f.condition),
    ):  # fmt: skip
        if value is not None:
            args.append(value)
            clauses.append(f"{column} = ${len(args)}")
    args.append(f.limit)
    where = "".join(f" AND {c}" for c in clauses)
    rows = await conn.fetch(
        f"(SELECT {_ALERT_COLUMNS} FROM alerts "  # noqa: S608
        f"WHERE state IN ('pending', 'firing'){where}) "
        f"UNION ALL (SELECT {_ALERT_COLUMNS} FROM alerts "
        f"WHERE state NOT IN ('pending', 'firing') AND updated_at >= $1{where} "
        f"ORDER BY updated_at DESC LIMIT ${len(args)}) "
        "ORDER BY updated_at DESC",
        *args,
    )
    return [_alert(r) for r in rows]


async def get_alert(conn: Connection, alert_id: str) -> dict[str, Any]:
    """One alert with its transitions and notes."""
    row = await conn.fetchrow(
        f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE id = $1",  # noqa: S608
        alert_id,
    )
    if row is None:
        raise NotFound(alert_id)
    history = await conn.fetch(
        "SELECT id, from_state, to_state, at, vals FROM alert_transitions "
        "WHERE alert_id = $1 ORDER BY seq",
        alert_id,
    )
    notes = await conn.fetch(
        "SELECT kind, operator, body, at FROM alert_notes WHERE alert_id = $1 ORDER BY id",
        alert_id,
    )
    return {
        **alert_json(_alert(row)),
        "history": [
            {
                "transition_id": str(h["id"]),
                "from": h["from_state"],
                "to": h["to_state"],
                "at": h["at"].isoformat(),
                "values": h["vals"],
            }
            for h in history
        ],
        "notes": [
            {
                "kind": n["kind"],
                "operator": n["operator"],
                "body": n["body"],
                "at": n["at"].isoformat(),
            }
            for n in notes
        ],
    }


async def add_note(conn: Connection, alert_id: str, kind: str, operator: str, body: str) -> None:
    async with conn.transaction():
        exists = await conn.fetchval("SELECT 1 FROM alerts WHERE id = $1 FOR UPDATE", alert_id)
        if exists is None:
            raise NotFound(alert_id)
        await conn.execute(
            "INSERT INTO alert_notes (alert_id, kind, operator, body) VALUES ($1, $2, $3, $4)",
            alert_id,
            kind,
            operator,
            body,
        )
        if kind == "ack":
            await conn.execute(
                "UPDATE alerts SET acked_at = now(), acked_by = $2 WHERE id = $1",
                alert_id,
                operator,
            )


# --- last event per unit and family (UnitSilent) -------------------------------------


async def watch_started(conn: Connection, now: datetime) -> datetime:
    """When the service first began watching for silence: ``now`` on the first start
    ever, then whatever that start stored (migration 0015)."""
    await conn.execute(
        "INSERT INTO alert_watch (started_at) VALUES ($1) ON CONFLICT DO NOTHING", now
    )
    started: datetime = await conn.fetchval("SELECT started_at FROM alert_watch")
    return started


async def load_activity(conn: Connection) -> dict[tuple[str, str], datetime]:
    rows = await conn.fetch("SELECT unit, family, last_event_time FROM alert_unit_activity")
    return {(r["unit"], r["family"]): r["last_event_time"] for r in rows}


async def save_activity(conn: Connection, seen: dict[tuple[str, str], datetime]) -> None:
    if not seen:
        return
    await conn.executemany(
        "INSERT INTO alert_unit_activity (unit, family, last_event_time) VALUES ($1, $2, $3) "
        "ON CONFLICT (unit, family) DO UPDATE SET last_event_time = "
        "GREATEST(alert_unit_activity.last_event_time, EXCLUDED.last_event_time)",
        [(u, f, t) for (u, f), t in seen.items()],
    )


async def load_silence_memory(conn: Connection) -> str | None:
    """The silence judgement's memory the last run wrote (services/alerts/silence_memory.py)."""
    body = await conn.fetchval("SELECT body::text FROM alert_silence_memory WHERE id = 1")
    return str(body) if body is not None else None


async def save_silence_memory(conn: Connection, body: bytes) -> None:
    await conn.execute(
        "INSERT INTO alert_silence_memory (id, body) VALUES (1, $1::text::jsonb) "
        "ON CONFLICT (id) DO UPDATE SET body = EXCLUDED.body, updated_at = now()",
        body.decode(),
    )


# --- outbox ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OutboxItem:
    id: int
    transition_id: str
    payload: dict[str, Any]
    attempts: int


async def due(conn: Connection, sink: str, limit: int = 100) -> list[OutboxItem]:
    """Undelivered items of one sink in order, if the oldest is due (order is kept)."""
    rows = await conn.fetch(
        "SELECT id, transition_id, payload, attempts, next_attempt_at <= now() AS ready "
        "FROM alert_outbox WHERE sink = $1 AND delivered_at IS NULL ORDER BY id LIMIT $2",
        sink,
        limit,
    )
    if not rows or not rows[0]["ready"]:
        return []
    return [OutboxItem(r["id"], str(r["transition_id"]), r["payload"], r["attempts"]) for r in rows]


OUTBOX_LOCK_CLASS = 0x65676F6F
"""The first key of each sink's outbox lock (``pg_try_advisory_lock(class, hashtext(sink))``)."""


async def claim_sink(conn: Connection, sink: str) -> bool:
    """Take ``sink``'s outbox for this session, if no other session has it: two
    deliverers never send the same item (the alerts lock already keeps one service
    active; this holds even if two ran). Released by :func:`release_sink`, or with the
    session (asyncpg's pool resets a connection it takes back with pg_advisory_unlock_all)."""
    got: bool = await conn.fetchval(
        "SELECT pg_try_advisory_lock($1, hashtext($2))", OUTBOX_LOCK_CLASS, sink
    )
    return got


async def release_sink(conn: Connection, sink: str) -> None:
    await conn.execute("SELECT pg_advisory_unlock($1, hashtext($2))", OUTBOX_LOCK_CLASS, sink)


async def delivered(conn: Connection, item_id: int) -> None:
    await conn.execute("UPDATE alert_outbox SET delivered_at = now() WHERE id = $1", item_id)


async def prune_delivered(conn: Connection, kept: timedelta, limit: int = 1000) -> int:
    """Delete up to ``limit`` items delivered more than ``kept`` ago; how many went."""
    status = await conn.execute(
        "DELETE FROM alert_outbox WHERE id IN (SELECT id FROM alert_outbox "
        "WHERE delivered_at < now() - $1::interval ORDER BY delivered_at LIMIT $2)",
        kept,
        limit,
    )
    return int(status.split()[-1])


async def failed(conn: Connection, item_id: int, error: str, retry_in: timedelta) -> None:
    await conn.execute(
        "UPDATE alert_outbox SET attempts = attempts + 1, last_error = $2, "
        "next_attempt_at = now() + $3 WHERE id = $1",
        item_id,
        error[:500],
        retry_in,
    )


async def backlog(conn: Connection) -> dict[str, int]:
    rows = await conn.fetch(
        "SELECT sink, count(*) AS n FROM alert_outbox WHERE delivered_at IS NULL GROUP BY sink"
    )
    return {r["sink"]: r["n"] for r in rows}
