"""Grafana shows Decision 766 points as the wall does, through a real Prometheus.

Until 2026-12-05 the points panels formatted the recording rules' float: 99,999 of
100,000 dossiers on time earn 19.99998 of 20, which Grafana rounded to "20.00" beside the
wall's "19,99"; one of 300,000 read "0.00". The panels now ask Prometheus for the wall's
hundredths (``promql.shown_points``), out of the measured maximum the wall uses: the
unit's, a group's, an indicator's for the points it loses.

A small exposition server stands in for a metrics worker, one commune of Thái Nguyên per
case; the repo's recording rules run in a real Prometheus; every points query of the
committed dashboards is evaluated for every case's unit and formatted as Grafana would
(two decimals), then set against services/common/scorecard.py on the same counts.
"""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction

import pytest

from services.common.scorecard import (
    Scorecard,
    format_hundredths,
    format_points,
    points_hundredths,
)
from services.common.units import UnitRegistry
from services.dashboards import promql
from tests.integration.dashboards.prometheus import (
    Prometheus,
    figure_lines,
    panel_queries,
    scraping,
    substitute,
)

pytestmark = pytest.mark.integration

PROVINCE = "19"
WINDOWS = ("month", "year")

# The counts of each case's commune: KPI -> (numerator, denominator).
CASES: list[dict[str, tuple[int, int]]] = [
    {"dossier_on_time": (99_999, 100_000)},  # 19.99998: the float read "20.00"
    {"dossier_on_time": (1, 300_000)},  # 0.0000667: the float read "0.00"
    {"dossier_on_time": (17_705, 20_000)},  # 17.705 exactly: half up, 17.71
    {"dossier_on_time": (20_000, 20_000)},  # full marks: 20.00
    {"dossier_on_time": (0, 20_000)},  # none earned: 0.00, and 20.00 lost
    {"dossier_on_time": (1, 3)},  # 6.666...: 6.67
    # Two indicators (2.1 and 4.2, full from 80 %): 19.99998 + 4 of 24 read "24.00".
    {"dossier_on_time": (99_999, 100_000), "dossier_digitised": (8, 10)},
]


def communes() -> list[str]:
    current = UnitRegistry.from_dir().units("2025")
    found = [u for u in current if u.parent == PROVINCE and u.level == "commune"]
    return [u.code for u in found[: len(CASES)]]


def counts_of() -> dict[str, dict[str, tuple[int, int]]]:
    return dict(zip(communes(), CASES, strict=True))


def exposition() -> bytes:
    registry = UnitRegistry.from_dir()
    by_code = {u.code: u for u in registry.units("2025")}
    province = by_code[PROVINCE]
    lines = [f'egov_unit_info{{unit="{PROVINCE}",name="{province.full_name}",level="province",'
             f'parent=""}} 1']  # fmt: skip
    for code, counts in counts_of().items():
        unit = by_code[code]
        lines.append(f'egov_unit_info{{unit="{code}",name="{unit.full_name}",level="commune",'
                     f'parent="{PROVINCE}"}} 1')  # fmt: skip
        for kpi, (num, den) in counts.items():
            lines += figure_lines(kpi, code, WINDOWS, num, den)
    return ("\n".join(lines) + "\n").encode()


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    rules = ("unit:egov_scorecard_points:year", "unit:egov_unit_province:info")
    with scraping(tmp_path_factory.mktemp("prometheus"), exposition(), rules) as running:
        yield running


def wall(counts: dict[str, tuple[int, int]]) -> dict[str, str]:
    """What the wall writes for a commune with ``counts`` (English marks, as Grafana):
    each measured indicator's points rounded out of its own maximum, the points it loses
    as its maximum less those (review 49: the two add up), and each group's and the
    unit's points as the sum of its indicators' shown points (a subtotal is what its
    rows add up to). Made here from the rules, not from Score, which the wall uses."""
    card = Scorecard.load()
    shown: dict[str, str] = {}
    total, measured = 0, False
    for group in card.groups:
        hundredths, any_measured = 0, False
        for ind in group.indicators:
            if not ind.measured or ind.kpi not in counts:
                continue
            got = ind.rule.points(ind.max_points, *counts[ind.kpi])
            assert got is not None
            mine = points_hundredths(got, ind.max_points)
            hundredths, any_measured = hundredths + mine, True
            shown[f"lost {ind.id}"] = format_hundredths(ind.max_points * 100 - mine, "en")
        if any_measured:
            shown[f"group {group.id}"] = format_hundredths(hundredths, "en")
            total, measured = total + hundredths, True
    assert measured
    shown["unit"] = format_hundredths(total, "en")
    return shown


def grafana(value: str) -> str:
    """Grafana's two decimals of a float (toFixed on Math.round, half up)."""
    return f"{int(float(value) * 100 + 0.5) / 100:.2f}"


SHARE = "egov_scorecard_points:$window / unit:egov_scorecard_max_points"


def points_queries() -> list[tuple[str, str, str]]:
    """(dashboard / panel, ref, expr) of every query whose own figure is points earned or
    lost (the ranking's columns name points again to pick their rows; the ranking's share
    of points is a rate, with the rates' value mappings)."""
    found = []
    for q in panel_queries():
        own = q.expr.split(" and on (unit) ")[0]
        named = "egov_scorecard_points" in own or "egov_scorecard_lost_points" in own
        if named and SHARE not in own:
            found.append((f"{q.dashboard} / {q.panel}", q.ref, q.expr))
    return found


def which(labels: dict[str, str]) -> str:
    if "indicator" in labels:
        return f"lost {labels['indicator']}"
    return f"group {labels['group']}" if "group" in labels else "unit"


def test_every_points_query_shows_what_the_wall_shows(prometheus: Prometheus) -> None:
    queries = points_queries()
    # The scorecard's total (month, year), its groups (two), what costs most (two) and
    # the points column of the two rankings (ranked, and apart for low volume); each
    # through shown_points, none the recorded float.
    assert len(queries) == 8, [q[:2] for q in queries]
    assert all("floor(100 *" in expr for _, _, expr in queries), queries
    checked = 0
    for unit, counts in counts_of().items():
        expected = wall(counts)
        for where, ref, expr in queries:
            concrete = substitute(expr.replace("$unit", unit))
            for series in prometheus.wait_for(concrete, 20):
                labels = series["metric"]
                if labels.get("unit") != unit:
                    continue  # the ranking's other communes
                key = which(labels)
                assert grafana(series["value"][1]) == expected[key], (where, ref, counts, key)
                checked += 1
    # Each case's unit in six queries and in one of the rankings (full marks lose
    # nothing: no costliest row); the last case's two indicators are in two groups.
    assert checked == 7 * len(CASES) - 2 + 2


@pytest.mark.parametrize(
    ("points", "maximum", "shown"),
    [
        ("19.99998", 20, "19.99"),
        ("0.0000667", 20, "0.01"),
        ("0", 20, "0.00"),
        ("20", 20, "20.00"),
        ("17.705", 20, "17.71"),
        ("2.675", 6, "2.68"),  # 2.67499999... in binary
        ("5.995", 6, "5.99"),  # half up onto the maximum while a point is missing
    ],
)
def test_the_ends_and_halves(prometheus: Prometheus, points: str, maximum: int, shown: str) -> None:
    expr = promql.shown_points(f"vector({points})", f"vector({maximum})")
    (series,) = prometheus.query(expr)
    assert grafana(series["value"][1]) == shown
    assert format_points(Fraction(points), "en", maximum) == shown
