"""The metrics workers' figures as the alerts and the wall read them: types, parsing, merge.

Pure: :mod:`services.common.figures_client` fetches the JSON of /v1/kpis and
/v1/activity (docs/metrics-api.md); this module turns it into :class:`Figure` and
:class:`Activity`, merges the answers of several workers, and judges a rate against
its target (:func:`classify`) the one way both services share.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, NamedTuple

import orjson


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


def classify(numerator: int, denominator: int, target: float, min_volume: int) -> Standing:
    """Judge one rate: volume first (small numbers lie), then the target.

    A rate exactly on its target meets it. The alerts' KpiBelowTarget breaches exactly
    when this says BELOW; the wall shows BELOW exactly then too.
    """
    if denominator <= 0:
        return Standing.NO_DATA
    if denominator < min_volume:
        return Standing.LOW_VOLUME
    return Standing.MEETS if numerator / denominator >= target else Standing.BELOW


class Figure(NamedTuple):
    """One KPI rate of one unit in one window, as a metrics worker serves it.

    A named tuple rather than a frozen dataclass: the alerts build 70,000 per window and
    cycle at 10,000 units, and a tuple is built about three times faster. Names fall
    back to codes, and the province to the unit itself, when an answer leaves them out.
    """

    kpi: str
    unit: str
    window: str
    numerator: int
    denominator: int
    target: float
    min_volume: int
    unit_name: str = ""
    unit_name_en: str = ""
    kpi_name_vi: str = ""
    kpi_name_en: str = ""
    level: str = ""
    province: str = ""
    parent: str | None = None
    last_event_time: datetime | None = None

    @property
    def ratio(self) -> float | None:
        return self.numerator / self.denominator if self.denominator else None

    @property
    def status(self) -> Standing:
        return classify(self.numerator, self.denominator, self.target, self.min_volume)

    @property
    def gap(self) -> float:
        """How far under the target (positive = worse); 0 when not judged below."""
        ratio = self.ratio
        if ratio is None or self.status is not Standing.BELOW:
            return 0.0
        return self.target - ratio


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

    An item without a target (a code the worker cannot place in today's hierarchy) has
    nothing to be compared with and is left out; any other malformed item refuses the
    whole answer (a worker answers for all of its units or is counted as not answering).
    """
    try:
        items = orjson.loads(body)["items"]
        return [_figure(i) for i in items if i.get("target") is not None]
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise AnswerFormatError(f"not a /v1/kpis answer ({exc!r})") from None


def _figure(i: dict[str, Any]) -> Figure:
    # Positional and without conversions where the API always answers (this runs for
    # every (unit, KPI, window) every cycle: 70,000 times per window at 10,000 units).
    kpi, unit = i["kpi"], i["unit"]
    name = i.get("unit_name") or unit
    return Figure(
        kpi,
        unit,
        i.get("window") or "day",
        i["numerator"] or 0,
        i["denominator"] or 0,
        i["target"],
        i.get("min_volume") or 0,
        name,
        i.get("unit_name_en") or name,
        i.get("kpi_name_vi") or kpi,
        i.get("kpi_name_en") or kpi,
        i.get("level") or "",
        i.get("province") or unit,
        i.get("parent") or None,
        _time(i.get("last_event_time")),
    )


def parse_activity(body: bytes) -> list[Activity]:
    """The items of one /v1/activity answer; an item without a readable time is left out."""
    try:
        items = orjson.loads(body)["items"]
        found = ((i.get("unit"), i.get("family"), _time(i.get("last_event_time"))) for i in items)
        return [Activity(u, f or "", t) for u, f, t in found if u and t is not None]
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise AnswerFormatError(f"not a /v1/activity answer ({exc!r})") from None


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
    period only grow, so the larger (denominator, numerator) is the fresher figure, and
    the unit is counted once.
    """
    if len(answers) == 1:
        return list(answers[0])  # one worker never answers for a unit twice
    best: dict[tuple[str, str, str], Figure] = {}
    for answer in answers:
        for fig in answer:
            key = (fig.kpi, fig.unit, fig.window)
            held = best.get(key)
            if held is None or (fig.denominator, fig.numerator) > (
                held.denominator,
                held.numerator,
            ):
                best[key] = fig
    return list(best.values())


def merge_activity(answers: Iterable[Iterable[Activity]]) -> list[Activity]:
    """The latest event per (unit, family) over every worker's answer, in that order."""
    latest: dict[tuple[str, str], Activity] = {}
    for answer in answers:
        for act in answer:
            held = latest.get((act.unit, act.family))
            if held is None or act.last_event_time > held.last_event_time:
                latest[(act.unit, act.family)] = act
    return [latest[k] for k in sorted(latest)]
