"""The dated registry of administrative units: which unit a code means at an event's time.

Errors: :class:`UnitError` (``.code``, ``.reason``) with two leaves, :class:`UnknownUnit`
(no such unit at that time, e.g. a district code after the 2025 reform) and
:class:`AmbiguousUnit` (a retired code split between several successors;
``.candidates``). The registry is pure: :meth:`UnitRegistry.from_dir` and
:meth:`UnitRegistry.from_db` are the only adapters, and every answer is precomputed.
"""

from __future__ import annotations

import csv
import functools
import hashlib
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Literal, cast
from zoneinfo import ZoneInfo

import asyncpg

from services.common.paths import UNITS_DIR

REFORM_DATE = date(2025, 7, 1)
"""First local day (Asia/Ho_Chi_Minh) of the two-level hierarchy."""
VN_TZ = ZoneInfo("Asia/Ho_Chi_Minh")
REFORM_INSTANT = datetime(2025, 7, 1, tzinfo=VN_TZ)

Era = Literal["2024", "2025"]
Level = Literal["province", "district", "commune", "department"]
ERAS: tuple[Era, Era] = ("2024", "2025")


def era_at(at: datetime) -> Era:
    """The era of an aware datetime, by its local date in Vietnam."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"naive datetime {at!r}: event times must carry a time zone")
    return "2025" if at >= REFORM_INSTANT else "2024"


@dataclass(frozen=True, slots=True)
class Unit:
    """An administrative unit (or provincial department) as it was in one era."""

    code: str
    level: Level
    name: str
    name_en: str
    full_name: str
    full_name_en: str
    parent: str | None
    era: Era


@dataclass(frozen=True, slots=True)
class Resolution:
    """What a code means at a time: the unit that counts and its ancestors."""

    unit: Unit
    chain: tuple[Unit, ...]
    original_code: str
    via_crosswalk: bool

    @property
    def province(self) -> Unit:
        return self.chain[-1]


class UnitError(Exception):
    """A code that cannot be counted for one unit; ``reason`` says why, in English."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason


class UnknownUnit(UnitError):
    """No unit has this code at that time."""


class AmbiguousUnit(UnitError):
    """A retired code whose area went (at least partly) to several successors."""

    def __init__(self, code: str, reason: str, candidates: tuple[str, ...]) -> None:
        super().__init__(code, reason)
        self.candidates = candidates


@dataclass(frozen=True, slots=True)
class CrosswalkLink:
    """One row of crosswalk-2025.csv: an old code and one possible successor."""

    old_code: str
    old_level: str
    new_code: str
    match: Literal["unchanged", "merged", "partial"]


@dataclass(frozen=True, slots=True)
class _Failure:
    """A precomputed refusal; a fresh exception is raised each time."""

    code: str
    reason: str
    candidates: tuple[str, ...] | None = None

    def error(self) -> UnitError:
        if self.candidates is None:
            return UnknownUnit(self.code, self.reason)
        return AmbiguousUnit(self.code, self.reason, self.candidates)


_Answer = Resolution | _Failure


class UnitRegistry:
    """Units of both eras with the 2025 crosswalk; every resolution is precomputed.

    Build it with :meth:`from_dir` (data/units/) or :meth:`from_db`; the constructor
    takes the units and crosswalk links themselves, so tests can pass any.
    """

    def __init__(self, units: Iterable[Unit], crosswalk: Iterable[CrosswalkLink]) -> None:
        self._units: dict[Era, dict[str, Unit]] = {era: {} for era in ERAS}
        for unit in units:
            self._units[unit.era][unit.code] = unit
        self._children = _children(self._units)
        links: dict[str, list[CrosswalkLink]] = defaultdict(list)
        for link in crosswalk:
            links[link.old_code].append(link)
        self._answers: dict[Era, dict[str, _Answer]] = {
            "2024": {code: self._chain_of(code, "2024") for code in self._units["2024"]},
            "2025": self._answers_2025(links),
        }
        self._scopes = {
            era: {
                c: frozenset(u.code for u in a.chain)
                for c, a in answers.items()
                if isinstance(a, Resolution)
            }
            for era, answers in self._answers.items()
        }
        self._today_scopes = self._today_scopes_of(links)

    # ------------------------------------------------------------ construction

    def _chain_of(self, code: str, era: Era, original: str | None = None) -> Resolution:
        units = self._units[era]
        chain = [units[code]]
        while chain[-1].parent is not None:
            chain.append(units[chain[-1].parent])
        return Resolution(chain[0], tuple(chain), original or code, original is not None)

    def _answers_2025(self, links: Mapping[str, list[CrosswalkLink]]) -> dict[str, _Answer]:
        answers: dict[str, _Answer] = {
            code: self._chain_of(code, "2025") for code in self._units["2025"]
        }
        for code, unit in self._units["2024"].items():
            if code not in answers:
                found = links.get(code, [])
                if unit.level == "department":
                    found = self._department_links(code, unit, links)
                answers[code] = self._retired(code, unit, found)
        return answers

    def _department_links(
        self, code: str, unit: Unit, links: Mapping[str, list[CrosswalkLink]]
    ) -> list[CrosswalkLink]:
        """A retired department (the project's codes: province-ABBREV) goes where its
        province went: to the department of the same abbreviation there, if it exists."""
        kind = code.split("-", 1)[-1]
        return [
            CrosswalkLink(code, "department", f"{link.new_code}-{kind}", link.match)
            for link in links.get(unit.parent or "", [])
            if f"{link.new_code}-{kind}" in self._units["2025"]
        ]

    def _retired(self, code: str, unit: Unit, links: list[CrosswalkLink]) -> _Answer:
        if unit.level == "district":
            return _Failure(code, "district codes were abolished on 2025-07-01; no successor")
        if not links:
            return _Failure(code, f"retired {unit.level} code with no identified successor")
        candidates = tuple(sorted(link.new_code for link in links))
        if len(links) == 1 and links[0].match != "partial":
            return self._chain_of(links[0].new_code, "2025", original=code)
        why = "split between several new units" if len(links) > 1 else "only partly merged"
        return _Failure(code, f"retired {unit.level} code {why}", candidates)

    def _today_scopes_of(
        self, links: Mapping[str, list[CrosswalkLink]]
    ) -> dict[str, frozenset[str]]:
        """Each 2024-era code -> its 2024 chain and the 2025 units (with their ancestors)
        that hold it whole through its own or an ancestor's crosswalk row: ``merged`` or
        ``unchanged`` (a department, as its province went). ``partial`` rows add nothing."""
        whole: dict[str, frozenset[str]] = {}
        for code, unit in self._units["2024"].items():
            found = links.get(code, [])
            if unit.level == "department":
                found = self._department_links(code, unit, links)
            whole[code] = frozenset(
                ancestor
                for link in found
                if link.match != "partial" and link.new_code in self._units["2025"]
                for ancestor in self._scopes["2025"][link.new_code]
            )
        return {
            code: scope.union(*(whole[u] for u in scope))
            for code, scope in self._scopes["2024"].items()
        }

    @classmethod
    def from_dir(cls, units_dir: Path = UNITS_DIR) -> UnitRegistry:
        """Read data/units/ (the committed files)."""
        units = [_unit(row, era) for era in ERAS for row in _rows(units_dir / f"units-{era}.csv")]
        units += list(_departments(_rows(units_dir / "departments.csv")))
        links = [_link(row) for row in _rows(units_dir / "crosswalk-2025.csv")]
        return cls(units, links)

    @classmethod
    async def from_db(cls, conn: asyncpg.Connection) -> UnitRegistry:
        """Read the units and unit_crosswalk tables (see migration 0002_units.sql)."""
        unit_rows = await conn.fetch(
            "SELECT code, era, level, name, name_en, full_name, full_name_en, parent_code"
            " FROM units"
        )
        link_rows = await conn.fetch(
            "SELECT old_code, old_level, new_code, match FROM unit_crosswalk"
        )
        units = [_unit(dict(r), cast(Era, r["era"])) for r in unit_rows]
        return cls(units, [_link(dict(r)) for r in link_rows])

    # ------------------------------------------------------------ queries

    @functools.cached_property
    def fingerprint(self) -> bytes:
        """SHA-256 of every answer ``resolve`` gives (the chain of each code in each era, and
        every refusal): two registries with the same fingerprint count every event for the
        same units, whatever they were read from (ingest's summaries rely on it)."""
        digest = hashlib.sha256()
        for era in ERAS:
            for code, answer in sorted(self._answers[era].items()):
                if isinstance(answer, Resolution):
                    chain = ",".join(unit.code for unit in answer.chain)
                    line = f"{era}|{code}|{chain}|{answer.via_crosswalk}\n"
                else:
                    line = f"{era}|{code}|!{answer.reason}|{answer.candidates}\n"
                digest.update(line.encode())
        return digest.digest()

    def resolve(self, code: str, at: datetime) -> Resolution:
        """The unit ``code`` means at ``at``; raises UnknownUnit or AmbiguousUnit."""
        era = era_at(at)
        answer = self._answers[era].get(code)
        if answer is None:
            raise UnknownUnit(code, f"no unit has this code in the {era} hierarchy")
        if isinstance(answer, _Failure):
            raise answer.error()
        return answer

    def get(self, code: str, era: Era) -> Unit:
        return self._units[era][code]

    def units(self, era: Era) -> Iterable[Unit]:
        return self._units[era].values()

    def children(self, code: str, era: Era) -> list[Unit]:
        return list(self._children[era].get(code, ()))

    def is_within(self, code: str, ancestor: str, at: datetime) -> bool:
        """Whether ``code`` (resolved at ``at``) is ``ancestor`` or lies under it.

        A code that cannot be resolved to one unit is within nothing.
        """
        scope = self._scopes[era_at(at)].get(code)
        return scope is not None and ancestor in scope

    def is_within_today(self, code: str, ancestor: str, at: datetime) -> bool:
        """:meth:`is_within`, or, for a time before the reform, whether ``code`` (or a unit
        above it then) went whole (crosswalk ``merged`` or ``unchanged``) into today's
        ``ancestor`` or a unit under it: the 2024-era units whose days /v1/kpis/history
        restates on ``ancestor`` (services/metrics/eras.py ``Lineage.whole``). A unit only
        partly merged (``partial``) is not held whole by any unit of today."""
        era = era_at(at)
        scope = (self._today_scopes if era == "2024" else self._scopes[era]).get(code)
        return scope is not None and ancestor in scope


# ---------------------------------------------------------------- helpers


def _children(units: Mapping[Era, dict[str, Unit]]) -> dict[Era, dict[str, list[Unit]]]:
    result: dict[Era, dict[str, list[Unit]]] = {}
    for era, by_code in units.items():
        kids: dict[str, list[Unit]] = defaultdict(list)
        for unit in sorted(by_code.values(), key=lambda u: u.code):
            if unit.parent is not None:
                kids[unit.parent].append(unit)
        result[era] = dict(kids)
    return result


def _rows(path: Path) -> Iterator[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        yield from csv.DictReader(fh)


def _unit(row: Mapping[str, str | None], era: Era) -> Unit:
    return Unit(
        code=str(row["code"]),
        level=cast(Level, row["level"]),
        name=str(row["name"]),
        name_en=str(row["name_en"]),
        full_name=str(row["full_name"]),
        full_name_en=str(row["full_name_en"]),
        parent=row["parent_code"] or None,
        era=era,
    )


def _departments(rows: Iterable[dict[str, str]]) -> Iterator[Unit]:
    """Departments of each era (``era`` column), under the province of their era."""
    for row in rows:
        era = cast(Era, row["era"])
        yield _unit({**row, "level": "department", "parent_code": row["province_code"]}, era)


def _link(row: Mapping[str, str]) -> CrosswalkLink:
    match = cast(Literal["unchanged", "merged", "partial"], row["match"])
    return CrosswalkLink(row["old_code"], row["old_level"], row["new_code"], match)
