"""Review 67: calendar boundaries in Vietnam time (year rollover, targets dated by year).

Each test is a strict xfail for a defect found by the review: it fails today because of
the defect and passes once it is fixed.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta

from services.common.figures import Figure
from services.common.unit_info import UnitInfo
from services.common.units import VN_TZ
from services.wall.screens import unit_html
from services.wall.unitpage import trends

# A province's 2027 plan: document_signing 95 % for its communes from 1 January 2027
# (docs/targets.md's own example, `--valid-from 2027-01-01`); in 2026 the catalogue
# default held: 100 % (data/targets.json, from 2020-02-01).
TODAY = date(2027, 1, 5)
TARGET_2026_BP = 10_000
TARGET_2027_BP = 9_500


def _history_items() -> list[dict[str, object]]:
    """/v1/kpis/history items of December 2026 and January 2027: 96 of 100 signed every
    day, each day with the target in force that day (what a period must be judged on)."""
    items = []
    day = date(2026, 12, 1)
    while day <= TODAY:
        target = TARGET_2026_BP if day.year == 2026 else TARGET_2027_BP
        items.append(
            {"day": day.isoformat(), "numerator": 96, "denominator": 100, "ratio": 0.96,
             "rate_bp": 9600, "restated": False, "target_bp": target}
        )  # fmt: skip
        day += timedelta(days=1)
    return items


def _today_figure() -> Figure:
    return Figure(
        "document_signing", "14758", "day", 96, 100, TARGET_2027_BP, 20,
        unit_name="Xã Thăng Long", unit_name_en="Thang Long Commune",
        kpi_name_vi="Tỷ lệ ký số", kpi_name_en="Digital signing rate",
        level="commune", province="38", parent="38",
        period_start=datetime(2027, 1, 5, tzinfo=VN_TZ),
    )  # fmt: skip


def _cell_status(html: str, period: str) -> str:
    found = re.search(rf'data-period="{period}" class="st-([a-z_]+)"', html)
    assert found is not None, f"no {period} cell in the page"
    return found.group(1)


def test_unit_page_judges_last_years_december_against_the_target_in_force_then() -> None:
    fig = _today_figure()
    trend = trends("document_signing", _history_items(), TODAY)
    info = UnitInfo(fig.unit, fig.unit_name, fig.unit_name_en, fig.level, fig.province,
                    fig.parent)  # fmt: skip
    html = unit_html("en", info, [fig], [trend])
    # December 2026: 3,000 of 3,125 signed (96 %) while 100 % was the target that month.
    assert _cell_status(html, "previous_month") == "below"
