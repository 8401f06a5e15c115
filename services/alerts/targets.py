"""Operator overrides of KPI targets (table kpi_target_overrides + its history).

An override names its KPI and one scope (a unit; a province and a level; a province),
in basis points, with optional validity dates (services/common/targets.py has the
resolution order). The metrics workers read the table and serve the effective target;
every change is kept in ``kpi_target_override_history`` with who made it and why.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import asyncpg

from services.alerts.store import NotFound
from services.common.db import Connection
from services.common.targetdata import BP_MAX
from services.common.targets import Override, Scope

_DELETE = (
    "DELETE FROM kpi_target_overrides WHERE "
    "coalesce(unit, '') = coalesce($1, '') AND coalesce(province, '') = coalesce($2, '') "
    "AND coalesce(level, '') = coalesce($3, '') AND kpi = $4 "
    "AND coalesce(valid_from, '-infinity'::date) = coalesce($5, '-infinity'::date) "
    "RETURNING kpi"
)
"""One override, by its scope, KPI and start day (the table's unique key)."""
_UPSERT = (
    "INSERT INTO kpi_target_overrides (unit, province, level, kpi, valid_from, target_bp, "
    "valid_until, changed_by, reason) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) "
    "ON CONFLICT ((coalesce(unit, '')), (coalesce(province, '')), (coalesce(level, '')), kpi, "
    "(coalesce(valid_from, '-infinity'::date))) DO UPDATE SET target_bp = excluded.target_bp, "
    "valid_until = excluded.valid_until, changed_by = excluded.changed_by, "
    "changed_at = now(), reason = excluded.reason"
)
"""Set one override, replacing the one of the same scope, KPI and start day (the
expressions of the unique index kpi_target_overrides_key, migration 0011)."""
_LIST = (
    "SELECT unit, province, level, kpi, target_bp, valid_from, valid_until, changed_by, "
    "changed_at, reason FROM kpi_target_overrides "
    "ORDER BY unit NULLS LAST, province, level NULLS FIRST, kpi, valid_from NULLS FIRST"
)


class InvalidTarget(ValueError):
    """A target outside 0..10000 bp, dates in the wrong order, or a change without who/why."""


@dataclass(frozen=True, slots=True)
class Change:
    """One requested change: which override (scope, KPI, start day), by whom and why."""

    scope: Scope
    kpi: str
    changed_by: str
    reason: str
    valid_from: date | None = None

    def validate(self) -> None:
        if not self.changed_by.strip():
            raise InvalidTarget("say who changes the target")
        if not self.reason.strip():
            raise InvalidTarget("say why the target changes")

    @property
    def key(self) -> tuple[str | None, str | None, str | None, str, date | None]:
        return self.scope.unit, self.scope.province, self.scope.level, self.kpi, self.valid_from


def override_json(o: Override, *, with_names: bool) -> dict[str, Any]:
    """The API's view of an override; who changed it only for an operator in scope."""

    def day(d: date | None) -> str | None:
        return d.isoformat() if d is not None else None

    return {
        "scope": o.scope.kind,
        "unit": o.scope.unit,
        "province": o.scope.province,
        "level": o.scope.level,
        "kpi": o.kpi,
        "target_bp": o.target_bp,
        "target": o.target_bp / BP_MAX,
        "valid_from": day(o.valid_from),
        "valid_until": day(o.valid_until),
        "changed_by": o.changed_by if with_names else None,
        "changed_at": o.changed_at.isoformat() if o.changed_at else None,
        "reason": o.reason,
    }


async def list_overrides(conn: Connection) -> list[Override]:
    """Every override, units first, then provinces; in a stable order."""
    rows = await conn.fetch(_LIST)
    return [override_of(r) for r in rows]


def override_of(row: asyncpg.Record) -> Override:
    """An override row as the pure type (the metrics workers read the same columns)."""
    return Override(
        Scope(row["unit"], row["province"], row["level"]),
        row["kpi"],
        row["target_bp"],
        row["valid_from"],
        row["valid_until"],
        row["changed_by"],
        row["changed_at"],
        row["reason"],
    )


async def set_override(
    conn: Connection, change: Change, target_bp: int, valid_until: date | None = None
) -> None:
    change.validate()
    if not 0 <= target_bp <= BP_MAX:
        raise InvalidTarget("a target is between 0 and 100 % (0..10000 basis points)")
    if change.valid_from and valid_until and valid_until < change.valid_from:
        raise InvalidTarget(f"valid_until {valid_until} is before valid_from {change.valid_from}")
    async with conn.transaction():
        # One statement, not DELETE then INSERT: two operators setting the same override
        # at once would both delete nothing and the second insert would break the unique
        # key. Here the second waits for the first and replaces its row (the later wins);
        # the history keeps both sets.
        await conn.execute(_UPSERT, *change.key, target_bp, valid_until, change.changed_by,
                           change.reason)  # fmt: skip
        await _history(conn, change, "set", target_bp, valid_until)


async def unset_override(conn: Connection, change: Change) -> None:
    change.validate()
    async with conn.transaction():
        gone = await conn.fetchval(_DELETE, *change.key)
        if gone is None:
            since = f" from {change.valid_from}" if change.valid_from else ""
            raise NotFound(f"no override of {change.kpi} for {change.scope}{since}")
        await _history(conn, change, "unset", None, None)


async def _history(
    conn: Connection, change: Change, action: str, target_bp: int | None, until: date | None
) -> None:
    await conn.execute(
        "INSERT INTO kpi_target_override_history (unit, province, level, kpi, valid_from, "
        "action, target_bp, valid_until, changed_by, reason) VALUES ($1, $2, $3, $4, $5, $6, "
        "$7, $8, $9, $10)",
        *change.key, action, target_bp, until, change.changed_by, change.reason,
    )  # fmt: skip
