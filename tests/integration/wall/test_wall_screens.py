"""The wall's screens in headless Chromium at 1920×1080, from a seeded scenario.

The wall service runs as its own process (``egov-pulse wall``) reading the seeded
workers and alerts (tests/integration/wall/scenario.py). Each screen must fit the screen
(no scrollbar, no element past its edges or overflowing its box) and show the figures the
scenario holds; the kiosk must move on by itself. Screenshots land in test-artifacts/.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.common.broker import free_port
from services.common.rates import format_fraction, format_rate
from services.wall.unitpage import comparisons
from tests.integration.wall.cdp import Page, chromium_page
from tests.integration.wall.scenario import (
    CATALOGUE,
    NEARLY_ALL,
    ONE_OF_ONE,
    WORST,
    Scenario,
    SeededSources,
)
from tests.integration.wall.test_wall_browser import ARTIFACTS, wall

pytestmark = pytest.mark.integration

WIDTH, HEIGHT = 1920, 1080

FITS = """(() => {
  const doc = document.documentElement;
  const out = {scroll: [doc.scrollWidth, doc.scrollHeight, innerWidth, innerHeight], bad: []};
  for (const el of document.body.querySelectorAll('*')) {
    const r = el.getBoundingClientRect();
    if (r.width === 0 && r.height === 0) continue;
    const name = el.tagName + (el.className && el.className.baseVal === undefined
      ? '.' + el.className : '') + ' ' + (el.textContent || '').trim().slice(0, 40);
    if (r.right > innerWidth + 0.5 || r.bottom > innerHeight + 0.5 || r.left < -0.5
        || r.top < -0.5) out.bad.push('outside: ' + name);
    const cs = getComputedStyle(el);
    if (el instanceof SVGElement || cs.display === 'inline' || cs.textOverflow === 'ellipsis')
      continue;
    if (el.scrollWidth > el.clientWidth + 1 || el.scrollHeight > el.clientHeight + 1)
      out.bad.push('overflows: ' + name);
  }
  return out;
})()"""


async def assert_fits(page: Page, what: str, size: tuple[int, int] = (WIDTH, HEIGHT)) -> None:
    found: dict[str, Any] = await page.evaluate(FITS)
    sw, sh, iw, ih = found["scroll"]
    assert (iw, ih) == size, found["scroll"]
    assert sw <= iw and sh <= ih, f"{what} scrolls: {found['scroll']}"
    assert not found["bad"], f"{what}: {found['bad'][:10]}"


async def ranked_units(page: Page) -> list[str]:
    units: list[str] = await page.evaluate(
        "[...document.querySelectorAll('.rank-table tbody tr')].map(r => r.dataset.unit)"
    )
    return units


async def text_of(page: Page) -> str:
    return str(await page.evaluate("document.body.innerText"))


@pytest.fixture
async def seeded(tmp_path: Path) -> AsyncIterator[tuple[str, Scenario]]:
    scenario = Scenario(datetime.now(UTC))
    async with SeededSources(scenario) as sources:
        env = dict(os.environ)
        env.update(
            EGOV_WALL_PORT=str(free_port()),
            EGOV_METRICS_URLS=sources.url,
            EGOV_ALERTS_URL=sources.url,
            EGOV_WALL_LANG="vi",
        )
        async with wall(env, tmp_path / "wall.log") as (base, _):
            yield base, scenario


async def test_province_overview_fits_one_screen_with_the_scorecard(
    seeded: tuple[str, Scenario],
) -> None:
    base, _ = seeded
    async with chromium_page() as page:
        await page.viewport(WIDTH, HEIGHT)
        await page.goto(f"{base}/wall/province?province=38")
        await assert_fits(page, "province overview")
        shown = await text_of(page)
        await page.screenshot(ARTIFACTS / "wall-overview.png")
        # Nông Cống's published figure, as the province's month: two decimals, half up.
        strip = await page.evaluate(
            "document.querySelector('.kpistrip li[data-kpi=\"document_signing\"]').innerText"
        )
        assert "99,94 %" in strip and "11.703 / 11.710" in strip, strip
        # Every KPI of the catalogue has its line in the strip (the scenario follows it).
        kpis = await page.evaluate(
            "[...document.querySelectorAll('.kpistrip li')].map(li => li.dataset.kpi)"
        )
        assert sorted(kpis) == sorted(CATALOGUE.ids), kpis
        # 885 of 1,000 dossiers on time: 17,70 of indicator 2.1's 20 points, 2,30 lost; with
        # 4.1, 4.2, 4.5b and 5.4 (5,70 + 3,60 + 1,80 + 5,40), 34,20 of the 38 measured.
        assert await page.evaluate("document.querySelector('.score .points').innerText") == (
            "34,20"
        )
        assert "trên 38 điểm đo được ở đây (tổng 100 điểm)" in shown
        assert "Mất nhiều điểm nhất: 2.1" in shown and "mất 2,30 điểm" in shown
        lines = await page.evaluate(
            "Object.fromEntries([...document.querySelectorAll('.groups .ind')]"
            ".map(i => [i.dataset.indicator, i.innerText]))"
        )
        assert sorted(lines) == ["2.1", "4.1", "4.2", "4.5b", "5.4"], lines
        assert "17,70 / 20" in lines["2.1"] and "885 / 1.000" in lines["2.1"], lines
        assert "3,60 / 4" in lines["4.2"] and "5,40 / 6" in lines["5.4"], lines
        # Not measured here, with their maximum points: 18 of publicity's 18, and so on.
        nm = await page.evaluate(
            "[...document.querySelectorAll('.groups tr[data-group]')]"
            ".map(r => [r.dataset.group, r.querySelector('.nm-total').innerText])"
        )
        assert nm == [["publicity", "18"], ["timeliness", "0"], ["online", "22"],
                      ["digitisation", "10"], ["satisfaction", "12"]]  # fmt: skip
        tiles = await page.evaluate(
            "Object.fromEntries([...document.querySelectorAll('.tile')]"
            ".map(t => [t.dataset.tile, t.querySelector('.v').innerText]))"
        )
        assert tiles == {"received": "1.234", "resolved": "975", "early": "600",
                         "on_time": "285", "late": "90", "open_overdue": "25"}  # fmt: skip
        # The worst unit first, with its counts beside the rate.
        first = await page.evaluate("document.querySelector('.worst-table tbody tr').innerText")
        assert first.startswith("1\tPhường Bỉm Sơn"), first
        worst = await page.evaluate("document.querySelector('.worst-table tbody tr').dataset.unit")
        assert worst == WORST and "40,00 %" in first and "40 / 100" in first, first
        # Seven open alerts: five shown, unacknowledged first, and the rest counted.
        assert await page.evaluate("document.querySelectorAll('.alert-list li').length") == 5
        assert "và 2 cảnh báo khác" in shown

        await page.goto(f"{base}/wall/province?province=38&lang=en")
        await assert_fits(page, "province overview (en)")
        shown = await text_of(page)
        assert "99.94%" in shown and "11,703 / 11,710" in shown and "34.20" in shown
        await page.screenshot(ARTIFACTS / "wall-overview-en.png")

        # A 4K wall shows the same page, larger: it still fits.
        await page.viewport(3840, 2160)
        await page.goto(f"{base}/wall/province?province=38")
        await assert_fits(page, "province overview (4K)", (3840, 2160))


async def test_rankings_put_low_volume_apart_and_fit(seeded: tuple[str, Scenario]) -> None:
    base, _ = seeded
    async with chromium_page() as page:
        await page.viewport(WIDTH, HEIGHT)
        await page.goto(f"{base}/wall/rankings?province=38&key=document_signing")
        await assert_fits(page, "rankings by signing rate")
        await page.screenshot(ARTIFACTS / "wall-rankings-signing.png")
        rule = await page.evaluate("document.querySelector('[data-rule]').innerText")
        assert "dưới 20 mục" in rule and "không xếp hạng" in rule
        ranked = await ranked_units(page)
        # 1 of 1 (100,00 %) never tops the ranking: on no page, and counted apart.
        assert ranked[0] != ONE_OF_ONE and NEARLY_ALL in ranked
        pages = int(
            (await page.evaluate("document.querySelector('.pager').innerText")).split("/")[1]
        )
        for number in range(2, pages + 1):
            await page.goto(f"{base}/wall/rankings?province=38&key=document_signing&page={number}")
            await assert_fits(page, f"rankings page {number}")
            ranked += await ranked_units(page)
        assert ONE_OF_ONE not in ranked
        apart = await page.evaluate("document.querySelector('.apart h2').innerText")
        assert 166 - len(ranked) >= int(apart.rsplit("(", 1)[1].rstrip(")")) >= 1, apart
        await page.goto(f"{base}/wall/rankings?province=38&key=document_signing")
        row = await page.evaluate(
            f"document.querySelector('.rank-table tr[data-unit=\"{NEARLY_ALL}\"]').innerText"
        )
        assert "99,00 %" in row and "990 / 1.000" in row, row

        await page.goto(f"{base}/wall/rankings?province=38")
        await assert_fits(page, "rankings by score")
        await page.screenshot(ARTIFACTS / "wall-rankings-score.png")
        assert WORST not in (await ranked_units(page))[:5]
        await page.goto(f"{base}/wall/rankings?province=38&lang=en")
        await assert_fits(page, "rankings by score (en)")
        assert "fewer than 10 items" in await text_of(page)


async def test_unit_page_compares_periods_and_fits(seeded: tuple[str, Scenario]) -> None:
    base, scenario = seeded
    async with chromium_page() as page:
        await page.viewport(WIDTH, HEIGHT)
        await page.goto(f"{base}/wall/unit?unit={NEARLY_ALL}")
        await assert_fits(page, "unit page")
        await page.screenshot(ARTIFACTS / "wall-unit.png")
        today = scenario.now.date()
        items = scenario.history(NEARLY_ALL, "document_signing", 800)
        from services.wall.trend import points_from_json

        expected = {t.key: t for t in comparisons(points_from_json(items), today)}
        for key in ("this_month", "previous_month", "same_month_last_year", "ytd"):
            cell = await page.evaluate(
                'document.querySelector(\'tr[data-kpi="document_signing"] '
                f'td[data-period="{key}"]\').innerText'
            )
            t = expected[key]
            assert format_rate(t.numerator, t.denominator, "vi") in cell, (key, cell)
            assert format_fraction(t.numerator, t.denominator, "vi") in cell, (key, cell)
        sparks = await page.evaluate("document.querySelectorAll('svg.spark').length")
        assert sparks == 2 * len(CATALOGUE.ids)  # a 14-day and a 13-month line per KPI
        await page.goto(f"{base}/wall/unit?unit={NEARLY_ALL}&lang=en")
        await assert_fits(page, "unit page (en)")
        assert "Same month last year" in await text_of(page)


async def test_kiosk_rotates_provinces_and_screens(seeded: tuple[str, Scenario]) -> None:
    base, _ = seeded
    async with chromium_page() as page:
        await page.viewport(WIDTH, HEIGHT)
        await page.goto(f"{base}/wall/kiosk?provinces=19,38&screens=province,rankings&every=2")
        seen = []
        for stop in range(4):
            await page.wait_for(f"document.body && document.body.dataset.stop === '{stop}'", 15)
            await page.wait_for("document.readyState === 'complete'")
            await assert_fits(page, f"kiosk stop {stop}")
            seen.append(
                await page.evaluate(
                    "[document.body.dataset.screen, document.querySelector('h1').innerText]"
                )
            )
            await page.screenshot(ARTIFACTS / f"wall-kiosk-{stop}.png")
        assert [s for s, _ in seen] == ["province", "rankings", "province", "rankings"]
        assert "Thái Nguyên" in seen[0][1] and "Thanh Hoá" in seen[2][1], seen  # as data/units
        # The rotation never ends: after the last stop comes the first again.
        await page.wait_for("document.body && document.body.dataset.stop === '0'", 15)


async def test_a_screen_says_when_its_figures_are_old(tmp_path: Path) -> None:
    sources = SeededSources(Scenario(datetime.now(UTC)))
    await sources.__aenter__()
    running = True
    try:
        env = dict(os.environ)
        env.update(EGOV_WALL_PORT=str(free_port()), EGOV_METRICS_URLS=sources.url,
                   EGOV_ALERTS_URL=sources.url, EGOV_WALL_LANG="vi")  # fmt: skip
        async with wall(env, tmp_path / "wall.log") as (base, _), httpx.AsyncClient() as client:
            url = f"{base}/wall/province?province=38"
            assert 'data-state="live"' in (await client.get(url)).text
            await sources.__aexit__(None, None, None)
            running = False
            deadline = time.monotonic() + 20
            page = ""
            while 'data-state="stale"' not in page and time.monotonic() < deadline:
                await asyncio.sleep(0.3)
                page = (await client.get(url)).text
        # Old figures stay, marked old: a wall never shows them as live.
        assert 'data-state="stale"' in page and "Số liệu chưa được cập nhật kể từ" in page
        assert "99,94 %" in page
    finally:
        if running:
            await sources.__aexit__(None, None, None)
