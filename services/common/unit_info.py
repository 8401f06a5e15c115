"""How the services describe a unit to people: names, level, province, parent. Pure."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class UnitInfo:
    """One unit as the alerts' directory and the wall's pages describe it.

    ``province`` is the unit's top ancestor (a province is its own); ``parent`` is
    ``None`` for a province, and where the source does not say (the alerts' directory
    needs only the province).
    """

    code: str
    name: str
    name_en: str
    level: str
    province: str
    parent: str | None = None
