"""The trend of one unit and KPI over the last days, drawn as inline SVG with a data table."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from html import escape
from typing import Any

from services.common.figures import Standing, classify
from services.common.rates import (
    BP_SCALE,
    format_count,
    format_date,
    format_fraction,
    format_rate,
    format_target,
)
from services.common.units import REFORM_DATE
from services.wall.history import FormerUnit, labels
from services.wall.i18n import fmt_day, status_badge, status_label, text
from services.wall.settings import Lang

WIDTH, HEIGHT = 1000, 300
LEFT, RIGHT, TOP, BOTTOM = 90, 20, 20, 50


@dataclass(frozen=True, slots=True)
class TrendPoint:
    day: str
    numerator: int
    denominator: int
    restated: bool = False
    """A day before the 2025 reform, summed from the units merged into today's unit."""
    target_bp: int | None = None
    """The target in force that day, as /v1/kpis/history says it; None from a worker older
    than that field (the day is then judged against today's target, see ``in_force``)."""

    @property
    def ratio(self) -> float | None:
        return self.numerator / self.denominator if self.denominator else None


def points_from_json(items: Sequence[Mapping[str, Any]]) -> list[TrendPoint]:
    """/v1/kpis/history items, oldest first; ValueError for a day counted out of range."""
    points = [
        TrendPoint(
            str(i["day"]),
            int(i.get("numerator") or 0),
            int(i.get("denominator") or 0),
            i.get("restated") is True,
            _target_bp(i.get("target_bp")),
        )
        for i in items
    ]
    for p in points:
        if not 0 <= p.numerator <= p.denominator:
            raise ValueError(f"{p.day}: numerator {p.numerator} outside 0..{p.denominator}")
    return sorted(points, key=lambda p: p.day)


def _target_bp(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def in_force(own: int | None, today: int | None) -> int | None:
    """The target a day or a period is judged against: its own (the target in force then,
    review 67), else today's, for an answer from a worker that does not say it."""
    return own if own is not None else today


def judge(
    numerator: int, denominator: int, target_bp: int | None, min_volume: int | None
) -> Standing | None:
    """How a day or a period stands, by the rule the wall's table uses (``classify``:
    too few items to judge under the KPI's minimum volume, then the exact counts); None
    when there is nothing to judge it against: no target, or no known minimum volume (a
    day of 2 of 3 is never drawn as a miss the table calls too few to judge, review 88).
    """
    if target_bp is None or min_volume is None:
        return None
    return classify(numerator, denominator, target_bp, min_volume)


def restated_note(lang: Lang, left_out: Iterable[FormerUnit] = ()) -> str:
    """What a restated figure is (plain text): the days before the reform summed from the
    former units merged into today's unit, and which former units they leave out."""
    note = text(lang, "trend_restated", date=format_date(REFORM_DATE, lang))
    names = labels(lang, left_out)
    return f"{note} {text(lang, 'trend_left_out', units=names)}" if names else note


def every_day(points: Sequence[TrendPoint], last: date, days: int) -> list[TrendPoint]:
    """One point a day, from ``days`` before ``last`` (today) or the first point if older,
    with 0 of 0 (no data: drawn as a gap) where ``points`` have none: /v1/kpis/history
    leaves out the days without events, and the line ran across them (review 48)."""
    by_day = {date.fromisoformat(p.day): p for p in points}
    first = min([last - timedelta(days=days - 1), *by_day])
    end = max([last, *by_day])
    span = (end - first).days + 1
    return [
        by_day.get(d) or TrendPoint(d.isoformat(), 0, 0)
        for d in (first + timedelta(days=i) for i in range(span))
    ]


def _rate(p: TrendPoint, lang: Lang) -> str:
    return format_rate(p.numerator, p.denominator, lang)


def _date(day: str, lang: Lang) -> str:
    """The full local date of an ISO day ("2026-11-22"): 22/11/2026 (vi), 22 Nov 2026 (en)."""
    return format_date(date.fromisoformat(day), lang)


def _xy(index: int, count: int, ratio: float) -> tuple[float, float]:
    span = WIDTH - LEFT - RIGHT
    x = LEFT + (span * index / (count - 1) if count > 1 else span / 2)
    y = TOP + (HEIGHT - TOP - BOTTOM) * (1 - ratio)
    return round(x, 1), round(y, 1)


def _axes(lang: Lang, points: Sequence[TrendPoint]) -> list[str]:
    parts = []
    for tick_bp in (0, BP_SCALE // 2, BP_SCALE):
        _, y = _xy(0, 2, tick_bp / BP_SCALE)
        parts.append(
            f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y}" y2="{y}"/>'
            f'<text class="ylab" x="{LEFT - 10}" y="{y + 8}" text-anchor="end">'
            f"{format_target(tick_bp, lang)}</text>"
        )
    step = max(1, len(points) // 7)
    for i, p in enumerate(points):
        if i % step == 0 or i == len(points) - 1:
            x, _ = _xy(i, len(points), 0)
            parts.append(
                f'<text class="xlab" x="{x}" y="{HEIGHT - 12}" text-anchor="middle">'
                f"{escape(fmt_day(p.day, lang))}</text>"
            )
    return parts


def _line(points: Sequence[TrendPoint]) -> list[str]:
    """Polylines broken at days with no data: a gap is not a zero."""
    runs: list[list[tuple[float, float]]] = [[]]
    for i, p in enumerate(points):
        if p.ratio is None:
            runs.append([])
        else:
            runs[-1].append(_xy(i, len(points), p.ratio))
    return [
        '<polyline class="series" points="' + " ".join(f"{x},{y}" for x, y in run) + '"/>'
        for run in runs
        if len(run) > 1
    ]


_MARKS: dict[Standing | None, str] = {
    Standing.BELOW: '<rect class="pt below" x="{x0}" y="{y0}" width="14" height="14"/>',
    Standing.LOW_VOLUME: '<circle class="pt low_volume" cx="{x}" cy="{y}" r="6"/>',
}
"""A day's mark by its standing; any other (meets, not judged) is a filled circle."""
_DOT = '<circle class="pt" cx="{x}" cy="{y}" r="7"/>'


def _point(lang: Lang, p: TrendPoint, xy: tuple[float, float], standing: Standing | None) -> str:
    """One day's mark, its tooltip the date, rate, counts and standing in words."""
    x, y = xy
    mark = _MARKS.get(standing, _DOT).format(x=x, y=y, x0=round(x - 7, 1), y0=round(y - 7, 1))
    said = f"{_date(p.day, lang)}: {_rate(p, lang)} "
    said += f"({format_fraction(p.numerator, p.denominator, lang)})"
    if standing is not None:
        said += f" — {status_label(lang, standing)}"
    return f"<g>{mark}<title>{escape(said)}</title></g>"


def trend_svg(
    lang: Lang,
    title: str,
    points: Sequence[TrendPoint],
    target_bp: int | None,
    left_out: Sequence[FormerUnit] = (),
    min_volume: int | None = 0,
) -> str:
    """An SVG chart (with today's target as a dashed line) and the same figures as a table.

    Each day is judged (:func:`judge`) against the target in force that day and the
    KPI's ``min_volume`` (the /v1/kpis item's, as the wall's table judges; None: not
    known, no day judged): below it a square, too few to judge a hollow circle, each
    point's tooltip saying which in the table's words. When a day is restated, the
    caption says so and names the former units ``left_out`` of it."""
    parts = _axes(lang, points)
    if target_bp is not None:
        _, y = _xy(0, 2, target_bp / BP_SCALE)
        parts.append(
            f'<line class="target" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y}" y2="{y}"/>'
            f'<text class="tlab" x="{WIDTH - RIGHT}" y="{y - 8}" text-anchor="end">'
            f"{escape(text(lang, 'target'))} {format_target(target_bp, lang)}</text>"
        )
    parts += _line(points)
    standings = [
        judge(p.numerator, p.denominator, in_force(p.target_bp, target_bp), min_volume)
        for p in points
    ]
    for i, (p, standing) in enumerate(zip(points, standings, strict=True)):
        if p.ratio is not None:
            parts.append(_point(lang, p, _xy(i, len(points), p.ratio), standing))
    rows = "".join(
        f'<tr><th scope="row">{escape(_date(p.day, lang))}</th>'
        f"<td>{_rate(p, lang)}</td>"
        f"<td>{format_fraction(p.numerator, p.denominator, lang)}</td>"
        f"<td>{'' if standing is None else status_badge(lang, standing)}</td></tr>"
        for p, standing in zip(points, standings, strict=True)
    )
    caption = escape(title)
    if Standing.LOW_VOLUME in standings:
        key = text(lang, "trend_low_volume", min=format_count(min_volume or 0, lang))
        caption += f'<br><small class="st-low_volume">{escape(key)}</small>'
    if any(p.restated for p in points):
        note = restated_note(lang, left_out)
        caption += f'<br><small class="restated">{escape(note)}</small>'
    return (
        f'<figure class="trend-fig"><figcaption>{caption}</figcaption>'
        f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(title)}" '
        f'preserveAspectRatio="xMidYMid meet">{"".join(parts)}</svg>'
        f"<details><summary>{escape(text(lang, 'day'))} / {escape(text(lang, 'rate'))}"
        "</summary><table><thead><tr>"
        f'<th scope="col">{escape(text(lang, "day"))}</th>'
        f'<th scope="col">{escape(text(lang, "rate"))}</th>'
        f'<th scope="col">{escape(text(lang, "counts"))}</th>'
        f'<th scope="col">{escape(text(lang, "standing"))}</th>'
        f"</tr></thead><tbody>{rows}</tbody></table></details></figure>"
    )
