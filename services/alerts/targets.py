"""Operator overrides of KPI targets per unit (table kpi_target_overrides + history).

``kpi`` None overrides every KPI of the unit; a per-KPI override beats it. The metrics
workers read the table and serve the effective target; every change is kept in
``kpi_target_override_history`` with who made it and why.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from services.alerts.store import NotFound
from services.common.db import Connection


class InvalidTarget(ValueError):
    """A target outside 0..1, or a change without who/why."""


@dataclass(frozen=True, slots=True)
class Override:
    unit: str
    kpi: str | None
    target: float
    changed_by: str
    changed_at: str
    reason: str

    def as_json(self) -> dict[str, Any]:
        return {
            "unit": self.unit, "kpi": self.kpi, "target": self.target,
            "changed_by": self.changed_by, "changed_at": self.changed_at, "reason": self.reason,
        }  # fmt: skip


def validate(target: float, changed_by: str, reason: str) -> None:
    if not 0.0 <= target <= 1.0:
        raise InvalidTarget("target is a ratio between 0 and 1 (0.95 means 95%)")
    if not changed_by.strip():
        raise InvalidTarget("say who changes the target")
    if not reason.strip():
        raise InvalidTarget("say why the target changes")


async def list_overrides(conn: Connection, unit: str | None = None) -> list[Override]:
    rows = await conn.fetch(
        "SELECT unit, kpi, target, changed_by, changed_at, reason FROM kpi_target_overrides "
        "WHERE $1::text IS NULL OR unit = $1 ORDER BY unit, kpi NULLS FIRST",
        unit,
    )
    return [
        Override(r["unit"], r["kpi"], r["target"], r["changed_by"],
                 r["changed_at"].isoformat(), r["reason"])
        for r in rows
    ]  # fmt: skip


async def set_override(
    conn: Connection, unit: str, kpi: str | None, target: float, changed_by: str, reason: str
) -> None:
    validate(target, changed_by, reason)
    async with conn.transaction():
        await conn.execute(
            "DELETE FROM kpi_target_overrides WHERE unit = $1 AND coalesce(kpi, '') = "
            "coalesce($2, '')",
            unit,
            kpi,
        )
        await conn.execute(
            "INSERT INTO kpi_target_overrides (unit, kpi, target, changed_by, reason) "
            "VALUES ($1, $2, $3, $4, $5)",
            unit, kpi, target, changed_by, reason,
        )  # fmt: skip
        await conn.execute(
            "INSERT INTO kpi_target_override_history (unit, kpi, action, target, changed_by, "
            "reason) VALUES ($1, $2, 'set', $3, $4, $5)",
            unit, kpi, target, changed_by, reason,
        )  # fmt: skip


async def unset_override(
    conn: Connection, unit: str, kpi: str | None, changed_by: str, reason: str
) -> None:
    validate(0.0, changed_by, reason)
    async with conn.transaction():
        gone = await conn.fetchval(
            "DELETE FROM kpi_target_overrides WHERE unit = $1 AND coalesce(kpi, '') = "
            "coalesce($2, '') RETURNING unit",
            unit,
            kpi,
        )
        if gone is None:
            raise NotFound(f"no override for {unit} {kpi or '(all KPIs)'}")
        await conn.execute(
            "INSERT INTO kpi_target_override_history (unit, kpi, action, target, changed_by, "
            "reason) VALUES ($1, $2, 'unset', NULL, $3, $4)",
            unit, kpi, changed_by, reason,
        )  # fmt: skip
