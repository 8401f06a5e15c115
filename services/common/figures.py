"""The metrics workers' figures as the alerts and the wall read them: types, parsing, merge.

Pure: :class:`Figure` is the /v1/kpis item (docs/metrics-api.md), typed and
versioned: the metrics workers write it (:meth:`Figure.to_json`), and
:mod:`services.common.figures_client` fetches it for the alerts and the wall, which
read it with :func:`parse_figures`. This module also reads :class:`Activity`, merges
the answers of several workers, and judges a rate against its target
(:func:`classify`) the one way every service shares.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from fractions import Fraction
from typing import Any, Final, NamedTuple

import orjson

from services.common.rates import BP_SCALE, meets, rate_bp, to_bp
from services.common.stalls import MEMBER as STALL_MEMBER
from services.common.stalls import CountingStall


class Standing(StrEnum):
    """How one rate stands against its target; the order is worst first."""

    BELOW = "below"
    """Enough volume, and the rate is under the target."""
    LOW_VOLUME = "low_volume"
    """Fewer events than the KPI's minimum volume: shown, never judged."""
    NO_DATA = "no_data"
    """No event counts towards this rate in this window."""
    MEETS = "meets"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {s: i for i, s in enumerate(Standing)}


def classify(numerator: int, denominator: int, target_bp: int, min_volume: int) -> Standing:
    """Judge one rate: volume first (small numbers lie), then the target in basis points.

    A rate exactly on its target meets it; the comparison is exact on the integer counts
    (:func:`services.common.rates.meets`), never on a float or on the shown, rounded rate.
    The alerts' KpiBelowTarget breaches exactly when this says BELOW; the wall shows BELOW
    exactly then too.
    """
    if denominator <= 0:
        return Standing.NO_DATA
    if denominator < min_volume:
        return Standing.LOW_VOLUME
    return Standing.MEETS if meets(numerator, denominator, target_bp) else Standing.BELOW


ITEM_VERSION: Final = 2
"""Version of the /v1/kpis item. 2: ``target_bp``, ``rate_bp`` and ``version`` added.

A new optional field (with a default here, ``null``/absent on the wire) keeps the
version; a field removed, renamed or changing meaning raises it, and readers refuse an
item of a version they do not know rather than misread it. Items without ``version``
are version 1 (their target is read from the ratio ``target``).
"""


class TargetBasis(NamedTuple):
    """Where a figure's target comes from: a dated default of data/targets.json and the
    document it cites, or an operator's override (services/common/targets.py). The wall
    and the files cite it beside the target (services/common/targetdata.py ``cite``), so
    a national target, a province's own and a project default are never confused."""

    origin: str
    """``default``, or the override's scope: ``unit``, ``province_level``, ``province``."""
    source: str | None = None
    """A default's source id in data/targets.json (``project-default`` when no document
    sets the target); None for an override."""
    valid_from: date | None = None
    valid_until: date | None = None
    reason: str = ""
    """An override's reason, as its operator gave it."""

    def to_json(self) -> dict[str, Any]:
        return {
            "origin": self.origin,
            "source": self.source,
            "valid_from": None if self.valid_from is None else self.valid_from.isoformat(),
            "valid_until": None if self.valid_until is None else self.valid_until.isoformat(),
            "reason": self.reason or None,
        }


class DossierCounts(NamedTuple):
    """The dossiers behind the on-time rate in one window (services/metrics/dossiers.py):
    the rate is (early + on_time) / (early + on_time + late + open_overdue)."""

    early: int
    on_time: int
    late: int
    open_overdue: int


class Figure(NamedTuple):
    """One KPI rate of one unit in one window: the /v1/kpis item, both written and read.

    The metrics workers build one per (unit, KPI, window) and write it with
    :meth:`to_json`; the alerts and the wall read it with :func:`parse_figures`. A named
    tuple rather than a frozen dataclass: the alerts build 70,000 per window and cycle
    at 10,000 units, and a tuple is built about three times faster. Names fall back to
    codes, and the province to the unit itself, when an answer leaves them out.

    To add a field: append it with a default, write it in :meth:`to_json` and read it
    in :func:`_figure` with ``.get`` (older workers leave it out); the version stays.
    """

    kpi: str
    unit: str
    window: str
    numerator: int
    denominator: int
    target_bp: int | None
    """The effective target in basis points; None only on the writing side (a retired
    KPI, or a code the worker cannot place): such items are never judged nor parsed."""
    min_volume: int
    unit_name: str = ""
    unit_name_en: str = ""
    kpi_name_vi: str = ""
    kpi_name_en: str = ""
    level: str = ""
    province: str = ""
    parent: str | None = None
    last_event_time: datetime | None = None
    period_start: datetime | None = None
    retired: bool = False
    dossiers: DossierCounts | None = None
    """The on-time rate's four counts; None for every other KPI."""
    target_basis: TargetBasis | None = None
    """Where ``target_bp`` comes from; None with no target, or from an older worker."""

    @property
    def ratio(self) -> float | None:
        """The rate as a float 0..1, for charts and arithmetic; never for a judgement."""
        return self.numerator / self.denominator if self.denominator else None

    @property
    def rate_bp(self) -> int | None:
        """The rate as shown, in basis points (:func:`services.common.rates.rate_bp`)."""
        return rate_bp(self.numerator, self.denominator)

    @property
    def target(self) -> float:
        """The target as a ratio 0..1, for arithmetic that is not a judgement (burn rate)."""
        return self._target_bp() / BP_SCALE

    @property
    def status(self) -> Standing:
        return classify(self.numerator, self.denominator, self._target_bp(), self.min_volume)

    @property
    def gap(self) -> float:
        """How far under the target (positive = worse); 0 when not judged below."""
        ratio = self.ratio
        if ratio is None or self.status is not Standing.BELOW:
            return 0.0
        return self.target - ratio

    @property
    def shortfall(self) -> Fraction:
        """:attr:`gap` exactly, from the counts: what orders units equally far below their
        targets (review 48: in binary 0.9 - 0.8 < 0.8 - 0.7, so of two units 10 points
        under, the float gap put the smaller one first, before the volume could)."""
        if self.ratio is None or self.status is not Standing.BELOW:
            return Fraction(0)
        return Fraction(self._target_bp(), BP_SCALE) - Fraction(self.numerator, self.denominator)

    def _target_bp(self) -> int:
        if self.target_bp is None:
            raise ValueError(f"{self.kpi} of {self.unit} has no target: it is never judged")
        return self.target_bp

    def to_json(self) -> dict[str, Any]:
        """The documented item (docs/metrics-api.md), ready for orjson."""
        target, judged = self.target_bp, self.target_bp is not None and not self.retired
        meets_target = None
        if judged and self.denominator and self.denominator >= self.min_volume:
            meets_target = self.status is Standing.MEETS
        return {
            "version": ITEM_VERSION,
            "kpi": self.kpi,
            "kpi_name_vi": self.kpi_name_vi or self.kpi,
            "kpi_name_en": self.kpi_name_en or self.kpi,
            "retired": self.retired,
            "unit": self.unit,
            "unit_name": self.unit_name or None,
            "unit_name_en": self.unit_name_en or None,
            "level": self.level or None,
            "parent": self.parent,
            "province": self.province or None,
            "window": self.window,
            "period_start": _iso(self.period_start),
            "numerator": self.numerator,
            "denominator": self.denominator,
            "ratio": self.ratio,
            "rate_bp": self.rate_bp,
            "target": None if target is None else target / BP_SCALE,
            "target_bp": target,
            "min_volume": None if self.retired else self.min_volume,
            "meets_target": meets_target,
            "last_event_time": _iso(self.last_event_time),
            "target_basis": None if self.target_basis is None else self.target_basis.to_json(),
        } | ({} if self.dossiers is None else {"dossiers": self.dossiers._asdict()})


@dataclass(frozen=True, slots=True)
class Activity:
    """Last event time of one unit for one family (documents, dossiers, meetings)."""

    unit: str
    family: str
    last_event_time: datetime


class AnswerFormatError(ValueError):
    """A worker answered JSON that is not the documented shape; the message says where."""


def parse_figures(body: bytes) -> list[Figure]:
    """The items of one /v1/kpis answer.

    An item without a target (a retired KPI, or a code the worker cannot place in
    today's hierarchy) has nothing to be compared with and is left out; any other
    malformed item, or an item of a version this reader does not know, refuses the whole
    answer (a worker answers for all of its units or is counted as not answering).
    """
    try:
        items = orjson.loads(body)["items"]
        return [_figure(i) for i in items if i.get("target") is not None]
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise AnswerFormatError(f"not a /v1/kpis answer ({exc!r})") from None


def _figure(i: dict[str, Any]) -> Figure:
    # Positional and without conversions where the API always answers (this runs for
    # every (unit, KPI, window) every cycle: 70,000 times per window at 10,000 units).
    version = i.get("version", 1)
    if version != ITEM_VERSION:
        if version != 1:
            raise ValueError(f"item version {version!r}, this reader knows 1..{ITEM_VERSION}")
        target_bp = _v1_target_bp(i["target"])
    else:
        target_bp = i["target_bp"]
    kpi, unit = i["kpi"], i["unit"]
    name = i.get("unit_name") or unit
    numerator, denominator = i["numerator"] or 0, i["denominator"] or 0
    if type(numerator) is not int or type(denominator) is not int:
        # Counts are whole: 1.5 (or 2.0, or true) is a worker's bug, refused here like
        # a numerator above its denominator, not a page failing as it formats it.
        raise ValueError(f"{kpi} of {unit}: counts {numerator!r} of {denominator!r} not whole")
    if not 0 <= numerator <= denominator:
        # Counted wrong upstream: refused here, where it is reported as the worker's
        # fault, rather than shown as a rate above 100 % or failing the page that shows it.
        raise ValueError(f"{kpi} of {unit}: numerator {numerator} outside 0..{denominator}")
    return Figure(
        kpi,
        unit,
        i.get("window") or "day",
        numerator,
        denominator,
        target_bp,
        i.get("min_volume") or 0,
        name,
        i.get("unit_name_en") or name,
        i.get("kpi_name_vi") or kpi,
        i.get("kpi_name_en") or kpi,
        i.get("level") or "",
        i.get("province") or unit,
        i.get("parent") or None,
        _time(i.get("last_event_time")),
        _period(i.get("period_start")),
        False,
        _dossiers(i.get("dossiers")),
        _basis(i.get("target_basis")),
    )


def _dossiers(value: Any) -> DossierCounts | None:
    """The on-time item's optional counts (absent from other items and older workers)."""
    if value is None:
        return None
    counts = DossierCounts(*(value[name] for name in DossierCounts._fields))
    if any(type(count) is not int for count in counts):
        raise ValueError(f"dossier counts not whole: {value!r}")
    if min(counts) < 0:
        raise ValueError(f"negative dossier counts {value!r}")
    return counts


def _basis(value: Any) -> TargetBasis | None:
    """The item's optional target basis (absent from older workers' items); one that
    does not read is left out (a citation missing, never a figure refused for it)."""
    if not isinstance(value, dict):
        return None
    parts = (value.get(k) for k in ("origin", "source", "valid_from", "valid_until", "reason"))
    if not all(p is None or isinstance(p, str) for p in parts):
        return None  # not a basis (and a list or object could not key the cache below)
    return _basis_of(
        value.get("origin"),
        value.get("source"),
        value.get("valid_from"),
        value.get("valid_until"),
        value.get("reason"),
    )


@functools.lru_cache(maxsize=256)
def _basis_of(
    origin: Any, source: Any, valid_from: Any, valid_until: Any, reason: Any
) -> TargetBasis | None:
    # A handful of distinct bases per answer (one per KPI and override): each read once.
    if not isinstance(origin, str) or not (source is None or isinstance(source, str)):
        return None
    try:
        since = None if valid_from is None else date.fromisoformat(valid_from)
        until = None if valid_until is None else date.fromisoformat(valid_until)
    except (TypeError, ValueError):
        return None
    return TargetBasis(origin, source, since, until, reason if isinstance(reason, str) else "")


@functools.lru_cache(maxsize=256)
def _v1_target_bp(target: float) -> int:
    # A handful of distinct targets per answer: each read through its decimal form once.
    return to_bp(target)


def parse_activity(body: bytes) -> list[Activity]:
    """The items of one /v1/activity answer; an item without a readable time is left out."""
    return parse_activity_answer(body)[0]


def parse_activity_answer(body: bytes) -> tuple[list[Activity], CountingStall | None]:
    """The items of one /v1/activity answer, and the stall of the counting it states
    (services/common/stalls.py; None: the worker's counting keeps up)."""
    try:
        answer = orjson.loads(body)
        items = answer["items"]
        found = ((i.get("unit"), i.get("family"), _time(i.get("last_event_time"))) for i in items)
        activity = [Activity(u, f or "", t) for u, f, t in found if u and t is not None]
        return activity, CountingStall.from_json(answer.get(STALL_MEMBER))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise AnswerFormatError(f"not a /v1/activity answer ({exc!r})") from None


@functools.lru_cache(maxsize=64)
def _period(value: str | None) -> datetime | None:
    # Every item of a window starts its period at the same instant: read it once.
    return _time(value)


def _iso(at: datetime | None) -> str | None:
    return None if at is None else at.isoformat()


def _time(value: Any) -> datetime | None:
    """An ISO 8601 time with an offset; None when absent, unreadable or without offset."""
    if not value or not isinstance(value, str):
        return None
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        return None
    return at if at.tzinfo is not None else None


def merge_figures(answers: Sequence[Sequence[Figure]]) -> list[Figure]:
    """One figure per (kpi, unit, window) over every worker's answer, in no set order.

    During a rebalance two workers can briefly both answer for a unit; counts within a
    period only grow, so of two figures of one period the larger (denominator, numerator)
    is the fresher, and the unit is counted once. Of two periods the later wins, whatever
    its counts: just after midnight a worker that has moved on to today's 0 of 0 is
    fresher than one still answering yesterday's 80 of 100.
    """
    if len(answers) == 1:
        return list(answers[0])  # one worker never answers for a unit twice
    best: dict[tuple[str, str, str], Figure] = {}
    for answer in answers:
        for fig in answer:
            key = (fig.kpi, fig.unit, fig.window)
            held = best.get(key)
            if held is None or _freshness(fig) > _freshness(held):
                best[key] = fig
    return list(best.values())


def _freshness(fig: Figure) -> tuple[float, int, int]:
    """How fresh a figure is: its period (none known counts as the oldest), then counts."""
    start = fig.period_start.timestamp() if fig.period_start is not None else float("-inf")
    return (start, fig.denominator, fig.numerator)


def merge_activity(answers: Iterable[Iterable[Activity]]) -> list[Activity]:
    """The latest event per (unit, family) over every worker's answer, in that order."""
    latest: dict[tuple[str, str], Activity] = {}
    for answer in answers:
        for act in answer:
            held = latest.get((act.unit, act.family))
            if held is None or act.last_event_time > held.last_event_time:
                latest[(act.unit, act.family)] = act
    return [latest[k] for k in sorted(latest)]
