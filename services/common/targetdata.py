"""Default KPI targets as dated, cited data: loads data/targets.json. Pure.

Each entry gives one KPI's targets per unit level, in basis points (10000 = 100 %), the
Vietnam days it is valid for (``valid_from`` to ``valid_until`` inclusive, None open)
and the source that sets it (a decision, resolution or plan; or ``project-default``,
which says that no national document sets that target). Entries of one KPI never
overlap, so a KPI has at most one default on any day (docs/targets.md).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from itertools import pairwise
from pathlib import Path
from typing import Any, Final

from services.common.paths import REPO_ROOT

TARGETS: Final = REPO_ROOT / "data" / "targets.json"
LEVELS: Final = ("province", "district", "commune", "department")
"""Every level a target or a stored override may name, today's and former ones: district
stays for the days before the 2025 reform (data/targets.json) and for overrides stored
then. A new override is checked against the levels of today's units instead
(services/alerts/api.py ``KnownIds.scope``)."""
BP_MAX: Final = 10_000
PROJECT_DEFAULT: Final = "project-default"
"""The source id of a target that no national document sets: the project's own choice."""


class TargetDataError(ValueError):
    """data/targets.json is malformed; the message names the KPI and the problem."""


@dataclass(frozen=True, slots=True)
class Source:
    """The document a target comes from (or the project, when there is none)."""

    id: str
    document: str | None
    issuer: str
    signed: date | None
    title_vi: str
    title_en: str

    @property
    def national(self) -> bool:
        return self.id != PROJECT_DEFAULT


@dataclass(frozen=True, slots=True)
class DatedTarget:
    """One KPI's default targets per level, for the Vietnam days it is valid."""

    kpi: str
    target_bp: Mapping[str, int]
    valid_from: date | None
    valid_until: date | None
    source: Source

    def valid_on(self, day: date) -> bool:
        return (self.valid_from is None or self.valid_from <= day) and (
            self.valid_until is None or day <= self.valid_until
        )


class TargetData:
    """All default targets, by KPI, in date order."""

    def __init__(self, entries: list[DatedTarget], sources: Mapping[str, Source]) -> None:
        self.sources = dict(sources)
        by_kpi: dict[str, list[DatedTarget]] = {}
        for entry in entries:
            by_kpi.setdefault(entry.kpi, []).append(entry)
        self._by_kpi = {k: tuple(sorted(es, key=_start)) for k, es in by_kpi.items()}
        for kpi, dated in self._by_kpi.items():
            _check_no_overlap(kpi, dated)

    @classmethod
    def load(cls, path: Path = TARGETS) -> TargetData:
        raw = json.loads(path.read_bytes())
        sources = {sid: _source(sid, s) for sid, s in raw["sources"].items()}
        return cls([_entry(e, sources) for e in raw["targets"]], sources)

    @property
    def kpis(self) -> frozenset[str]:
        return frozenset(self._by_kpi)

    def schedule(self, kpi: str) -> tuple[DatedTarget, ...]:
        """The KPI's entries, oldest first (empty for a KPI the file does not name)."""
        return self._by_kpi.get(kpi, ())

    def default(self, kpi: str, day: date) -> DatedTarget | None:
        """The entry valid on ``day`` (a Vietnam calendar day), or None."""
        return next((e for e in self.schedule(kpi) if e.valid_on(day)), None)


def _start(entry: DatedTarget) -> date:
    return entry.valid_from or date.min


def _check_no_overlap(kpi: str, dated: tuple[DatedTarget, ...]) -> None:
    for before, after in pairwise(dated):
        if before.valid_until is None or before.valid_until >= _start(after):
            raise TargetDataError(
                f"KPI {kpi!r}: the targets valid from {before.valid_from} and from "
                f"{after.valid_from} overlap (one default per day)"
            )


def _day(value: Any, what: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except (TypeError, ValueError):
        raise TargetDataError(f"{what}: not a date (YYYY-MM-DD): {value!r}") from None


def _source(sid: str, raw: Mapping[str, Any]) -> Source:
    try:
        return Source(
            sid,
            raw["document"],
            raw["issuer"],
            _day(raw["signed"], f"source {sid!r}"),
            raw["title_vi"],
            raw["title_en"],
        )
    except KeyError as exc:
        raise TargetDataError(f"source {sid!r}: missing {exc.args[0]!r}") from None


def _entry(raw: Mapping[str, Any], sources: Mapping[str, Source]) -> DatedTarget:
    kpi = raw.get("kpi", "?")
    try:
        levels = raw["target_bp"]
        bp = {level: levels[level] for level in LEVELS}
        source = sources.get(raw["source"])
        valid_from = _day(raw["valid_from"], f"KPI {kpi!r}")
        valid_until = _day(raw["valid_until"], f"KPI {kpi!r}")
    except KeyError as exc:
        raise TargetDataError(f"KPI {kpi!r}: missing {exc.args[0]!r}") from None
    if any(type(v) is not int or not 0 <= v <= BP_MAX for v in bp.values()):
        raise TargetDataError(f"KPI {kpi!r}: targets are basis points, integers 0..10000")
    if source is None:
        raise TargetDataError(f"KPI {kpi!r}: unknown source {raw['source']!r}")
    if valid_from and valid_until and valid_until < valid_from:
        raise TargetDataError(f"KPI {kpi!r}: valid_until {valid_until} before {valid_from}")
    return DatedTarget(kpi, bp, valid_from, valid_until, source)
