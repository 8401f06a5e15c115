"""The wall's figures as a person reads them, through its real HTTP rendering.

The wall service (``egov-pulse wall``) serves /wall; its source is a fake worker
answering /v1/kpis with the items a worker writes (:meth:`Figure.to_json`), shaped like
Nông Cống's published figure: 11,703 of 11,710 documents signed, 99.94 %.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest

from services.common.figures import Figure
from services.common.units import VN_TZ
from tests.integration.alerts.harness import FakeMetrics
from tests.integration.wall.test_wall_browser import wall, worker_env

pytestmark = pytest.mark.integration

__all__ = ["worker_env"]  # the fixture, used by name below

NOW = datetime.now(VN_TZ)
SIGNING = ("document_signing", "Tỷ lệ văn bản điện tử được ký số", "Digital-signing rate")


def nong_cong(window: str, numerator: int, denominator: int, target_bp: int) -> Figure:
    """Huyện Nông Cống (code 404 in data/units), Thanh Hóa (38)."""
    kpi, name_vi, name_en = SIGNING
    return Figure(
        kpi,
        "404",
        window,
        numerator,
        denominator,
        target_bp,
        20,
        unit_name="Huyện Nông Cống",
        unit_name_en="Nong Cong District",
        kpi_name_vi=name_vi,
        kpi_name_en=name_en,
        level="district",
        province="38",
        parent="38",
        last_event_time=NOW - timedelta(minutes=1),
    )


def province(window: str) -> Figure:
    kpi, name_vi, name_en = SIGNING
    return Figure(kpi, "38", window, 11_703, 11_710, 9750, 20, "Tỉnh Thanh Hóa", "Thanh Hoa",
                  name_vi, name_en, "province", "38", None, NOW)  # fmt: skip


async def test_nong_cong_reads_99_94_on_the_wall_in_both_languages(
    worker_env: dict[str, str], tmp_path: Path
) -> None:
    async with FakeMetrics() as fake:
        for window in ("day", "month"):
            fake.items[("document_signing", "38", window)] = province(window).to_json()
        # Today: 11,703 of 11,710; this month the same unit at 24,374 of 25,000 (97.496 %).
        today = nong_cong("day", 11_703, 11_710, 10_000)
        month = nong_cong("month", 24_374, 25_000, 9750)
        fake.items[("document_signing", "404", "day")] = today.to_json()
        fake.items[("document_signing", "404", "month")] = month.to_json()
        worker_env["EGOV_METRICS_URLS"] = fake.url
        async with (
            wall(worker_env, tmp_path / "wall.log") as (base, _),
            httpx.AsyncClient(timeout=10) as client,
        ):
            vi = (await client.get(f"{base}/wall", params={"province": "38", "unit": "404"})).text
            en = (
                await client.get(
                    f"{base}/wall", params={"province": "38", "unit": "404", "lang": "en"}
                )
            ).text

    assert "Huyện Nông Cống" in vi
    assert '<span class="rate">99,94 %</span>' in vi and "11.703 / 11.710" in vi
    assert '<td class="target">100 %</td>' in vi  # today's target, trailing zeros trimmed
    # 99,94 % is under 100 %; the month reads 97,50 % and is under 97,5 % too: on the counts.
    assert '<span class="rate">97,50 %</span>' in vi and "24.374 / 25.000" in vi
    cell = (
        '<td class="rate-cell st-{}" data-unit="404" data-kpi="document_signing" data-window="{}"'
    )
    assert cell.format("below", "day") in vi and cell.format("below", "month") in vi
    assert "Chưa đạt mục tiêu" in vi
    assert "99,9 %" not in vi and "100,00 %" not in vi

    assert "Nong Cong District" in en
    assert '<span class="rate">99.94%</span>' in en and "11,703 / 11,710" in en
    assert '<span class="rate">97.50%</span>' in en and "Below target" in en
