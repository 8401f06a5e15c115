"""The trend of one unit and KPI over the last days, drawn as inline SVG with a data table."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

from services.metrics.wall.i18n import fmt_day, fmt_int, fmt_pct, text
from services.metrics.wall.settings import Lang

WIDTH, HEIGHT = 1000, 300
LEFT, RIGHT, TOP, BOTTOM = 90, 20, 20, 50


@dataclass(frozen=True, slots=True)
class TrendPoint:
    day: str
    numerator: int
    denominator: int

    @property
    def ratio(self) -> float | None:
        return self.numerator / self.denominator if self.denominator else None


def points_from_json(items: Sequence[Mapping[str, Any]]) -> list[TrendPoint]:
    """/v1/kpis/history items, oldest first."""
    points = [
        TrendPoint(str(i["day"]), int(i.get("numerator") or 0), int(i.get("denominator") or 0))
        for i in items
    ]
    return sorted(points, key=lambda p: p.day)


def _xy(index: int, count: int, ratio: float) -> tuple[float, float]:
    span = WIDTH - LEFT - RIGHT
    x = LEFT + (span * index / (count - 1) if count > 1 else span / 2)
    y = TOP + (HEIGHT - TOP - BOTTOM) * (1 - ratio)
    return round(x, 1), round(y, 1)


def _axes(lang: Lang, points: Sequence[TrendPoint]) -> list[str]:
    parts = []
    for tick in (0.0, 0.5, 1.0):
        _, y = _xy(0, 2, tick)
        parts.append(
            f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y}" y2="{y}"/>'
            f'<text class="ylab" x="{LEFT - 10}" y="{y + 8}" text-anchor="end">'
            f"{fmt_pct(tick, lang, 0)}</text>"
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


def trend_svg(lang: Lang, title: str, points: Sequence[TrendPoint], target: float | None) -> str:
    """An SVG chart (with the target as a dashed line) and the same figures as a table."""
    parts = _axes(lang, points)
    if target is not None:
        _, y = _xy(0, 2, target)
        parts.append(
            f'<line class="target" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y}" y2="{y}"/>'
            f'<text class="tlab" x="{WIDTH - RIGHT}" y="{y - 8}" text-anchor="end">'
            f"{escape(text(lang, 'target'))} {fmt_pct(target, lang, 0)}</text>"
        )
    parts += _line(points)
    for i, p in enumerate(points):
        if p.ratio is None:
            continue
        x, y = _xy(i, len(points), p.ratio)
        below = target is not None and p.ratio < target
        shape = (
            f'<rect class="pt below" x="{x - 7}" y="{y - 7}" width="14" height="14"/>'
            if below
            else f'<circle class="pt" cx="{x}" cy="{y}" r="7"/>'
        )
        parts.append(
            f"<g>{shape}<title>{escape(fmt_day(p.day, lang))}: {fmt_pct(p.ratio, lang)} "
            f"({fmt_int(p.numerator, lang)} / {fmt_int(p.denominator, lang)})</title></g>"
        )
    rows = "".join(
        f'<tr><th scope="row">{escape(fmt_day(p.day, lang))}</th>'
        f"<td>{fmt_pct(p.ratio, lang)}</td>"
        f"<td>{fmt_int(p.numerator, lang)} / {fmt_int(p.denominator, lang)}</td></tr>"
        for p in points
    )
    return (
        f'<figure class="trend-fig"><figcaption>{escape(title)}</figcaption>'
        f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(title)}" '
        f'preserveAspectRatio="xMidYMid meet">{"".join(parts)}</svg>'
        f"<details><summary>{escape(text(lang, 'day'))} / {escape(text(lang, 'rate'))}"
        "</summary><table><thead><tr>"
        f'<th scope="col">{escape(text(lang, "day"))}</th>'
        f'<th scope="col">{escape(text(lang, "rate"))}</th>'
        f'<th scope="col">{escape(text(lang, "counts"))}</th>'
        f"</tr></thead><tbody>{rows}</tbody></table></details></figure>"
    )
