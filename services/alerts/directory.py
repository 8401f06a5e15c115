"""What the alerts need to know about units: names, level, province, peers. Pure."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from services.common.unit_info import UnitInfo
from services.common.units import Unit


class UnitDirectory:
    """Today's units by code, and the units of each (province, level) for the peer rule."""

    def __init__(self, units: Iterable[UnitInfo]) -> None:
        self._by_code = {u.code: u for u in units}
        peers: dict[tuple[str, str], list[str]] = defaultdict(list)
        for unit in self._by_code.values():
            peers[(unit.province, unit.level)].append(unit.code)
        self._peers = {k: tuple(sorted(v)) for k, v in peers.items()}

    @property
    def levels(self) -> frozenset[str]:
        """The levels some unit has (today: province, commune, department; no district
        since the 2025 reform)."""
        return frozenset(level for _, level in self._peers)

    def __len__(self) -> int:
        return len(self._by_code)

    def get(self, code: str) -> UnitInfo | None:
        return self._by_code.get(code)

    def peers(self, province: str, level: str) -> tuple[str, ...]:
        """Every unit of that level in that province (the unit itself included)."""
        return self._peers.get((province, level), ())

    def in_province(self, province: str) -> tuple[str, ...]:
        """Every unit of ``province``, of every level, the province itself included."""
        return tuple(u for level in sorted(self.levels) for u in self.peers(province, level))

    def name(self, code: str) -> str:
        unit = self._by_code.get(code)
        return unit.name if unit else code

    def province(self, code: str) -> str:
        unit = self._by_code.get(code)
        return unit.province if unit else ""


def from_units(units: Iterable[Unit]) -> UnitDirectory:
    """Build from the registry's units of one era; a unit's province is its top ancestor."""
    by_code = {u.code: u for u in units}

    def province_of(code: str) -> str:
        for _ in range(4):  # province > district > commune: never deeper
            parent = by_code[code].parent if code in by_code else None
            if parent is None:
                return code
            code = parent
        return code

    return UnitDirectory(
        UnitInfo(u.code, u.name, u.name_en, u.level, province_of(u.code), u.parent)
        for u in by_code.values()
    )
