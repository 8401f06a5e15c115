"""/v1/kpis/history as the wall reads it: a unit's days, and the former units its restated
days are summed from and leave out (docs/metrics-api.md). Pure.

Before the 2025 reform a unit of today is restated: its days are the sums of the 2024-era
units merged into it whole. A former unit only partly merged cannot be split by figures,
so it is in none of them; the answer names it by code (``left_out``) and the wall names
it as the registry of its era does, so a page never reads complete while it is short.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from services.common.units import ERAS, UnitRegistry
from services.wall.settings import Lang

FORMER_ERA = ERAS[0]
"""The era of the units a restated day is read from: the one before the reform."""


@dataclass(frozen=True, slots=True)
class FormerUnit:
    """A unit as it was before the 2025 reform, named by the registry of that era."""

    code: str
    full_name: str
    full_name_en: str

    def label(self, lang: Lang) -> str:
        """``05461 Phường Gia Sàng`` (vi), ``05461 Gia Sang Ward`` (en): the code alone
        when the registry does not know it."""
        name = self.full_name_en if lang == "en" else self.full_name
        return f"{self.code} {name}" if name else self.code


def former_unit(registry: UnitRegistry, code: str) -> FormerUnit:
    """``code`` as the registry names it before the reform (a worker may know units the
    wall's data does not yet: then by its code alone)."""
    try:
        unit = registry.get(code, FORMER_ERA)
    except KeyError:
        return FormerUnit(code, "", "")
    return FormerUnit(code, unit.full_name, unit.full_name_en)


def labels(lang: Lang, units: Iterable[FormerUnit]) -> str:
    """``05461 Phường Gia Sàng, 05464 Phường ...``: each once, by code."""
    unique = {u.code: u for u in units}
    return ", ".join(unique[c].label(lang) for c in sorted(unique))


@dataclass(frozen=True, slots=True)
class History:
    """One /v1/kpis/history answer: its daily items, and the former units its restated
    days are summed from (``restated_from``) and leave out (``left_out``)."""

    items: tuple[Mapping[str, Any], ...]
    restated_from: tuple[str, ...] = ()
    left_out: tuple[FormerUnit, ...] = ()

    @classmethod
    def from_json(cls, body: Mapping[str, Any], name: Callable[[str], FormerUnit]) -> History:
        """KeyError or TypeError for an answer without its items; a worker older than
        ``left_out`` (review 59) leaves nothing out."""
        items = body["items"]
        if not isinstance(items, list):
            raise TypeError("items is not a list")
        return cls(
            tuple(items),
            _codes(body.get("restated_from")),
            tuple(name(code) for code in _codes(body.get("left_out"))),
        )


def _codes(value: Any) -> tuple[str, ...]:
    if not isinstance(value, Sequence) or isinstance(value, str):
        return ()
    return tuple(str(code) for code in value)
