"""The wall service in headless Chromium, reading a real metrics worker on the broker.

Two processes, as `make up` runs them: ``egov-pulse metrics`` counts and publishes
/v1/kpis, ``egov-pulse wall`` serves the page from it. The page shows the figures
/v1/kpis serves, follows new events without a reload, says so when the worker stops
answering (its figures stay, marked old) and when the wall itself goes away.
Screenshots land in test-artifacts/.
"""

from __future__ import annotations

import asyncio
import copy
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from services.common.broker import free_port
from services.common.contract import Contract
from services.common.kafka import ensure_topics, make_producer
from services.common.settings import CommonSettings
from tests.integration.processes import service_env
from tests.integration.wall.cdp import Page, chromium_page

pytestmark = pytest.mark.integration

ARTIFACTS = Path(__file__).resolve().parents[3] / "test-artifacts"
UNIT, PROVINCE, KPI = "01843", "19", "document_signing"  # Phường Bắc Kạn, Thái Nguyên


def document(signed: bool) -> dict[str, Any]:
    example = Contract.load().examples("vn.egov.document.issued", "valid")[0][1]
    event = copy.deepcopy(example)
    event.update(id=str(uuid.uuid4()), unit=UNIT, time=datetime.now(UTC).isoformat())
    event["data"] = {**event["data"], "electronic": True, "signed": signed}
    return event


async def publish(settings: CommonSettings, signed: int, unsigned: int) -> None:
    """Straight to Kafka, one CloudEvent per record, keyed by the province (the contract)."""
    producer = make_producer(settings)
    await producer.start()
    try:
        for flag in [True] * signed + [False] * unsigned:
            await producer.send_and_wait(
                settings.topic_documents, orjson.dumps(document(flag)), key=PROVINCE.encode()
            )
    finally:
        await producer.stop()


def _tail(log: Path) -> str:
    return log.read_text()[-4000:]


@asynccontextmanager
async def service(
    command: str, env: dict[str, str], port: int, log: Path
) -> AsyncIterator[tuple[str, asyncio.subprocess.Process]]:
    """``egov-pulse COMMAND`` until the block ends; yields its base URL once it answers."""
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "services.cli",
            command,
            env=env,
            stdout=out,
            stderr=out,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(timeout=2) as client:
            deadline = time.monotonic() + 60
            while True:
                if proc.returncode is not None:
                    raise AssertionError(f"{command} exited early:\n{_tail(log)}")
                try:
                    if (await client.get(base + "/healthz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise AssertionError(f"{command} did not answer:\n{_tail(log)}")
                await asyncio.sleep(0.2)
        yield base, proc
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 20)
            except TimeoutError:
                proc.kill()
                await proc.wait()


def wall(env: dict[str, str], log: Path) -> Any:
    """The wall service of ``env`` (EGOV_WALL_PORT, EGOV_METRICS_URLS)."""
    return service("wall", env, int(env["EGOV_WALL_PORT"]), log)


def worker(env: dict[str, str], log: Path) -> Any:
    """The metrics worker of ``env`` (EGOV_METRICS_WEB_PORT)."""
    return service("metrics", env, int(env["EGOV_METRICS_WEB_PORT"]), log)


async def served_figure(base: str, min_denominator: int) -> dict[str, Any]:
    """The day figure of UNIT from /v1/kpis, once it has counted what was published."""
    deadline = time.monotonic() + 60
    item: dict[str, Any] | None = None
    async with httpx.AsyncClient(timeout=5) as client:
        while time.monotonic() < deadline:
            body = (
                await client.get(
                    base + "/v1/kpis", params={"unit": UNIT, "kpi": KPI, "window": "day"}
                )
            ).json()
            # A worker still building its first snapshot answers 503 without items.
            found = body.get("items", [])
            items = [i for i in found if i["unit"] == UNIT and i["kpi"] == KPI]
            item = items[0] if items else None
            if item and item["denominator"] >= min_denominator:
                return item
            await asyncio.sleep(0.3)
    raise AssertionError(f"/v1/kpis did not count the events: {item}")


NO_ALERTS_PANEL = (
    "document.querySelector('.panel.alerts') === null"
    " && !document.body.innerText.includes('Hiện không có cảnh báo')"
)
CELL = f'document.querySelector(\'td[data-unit="{UNIT}"][data-kpi="{KPI}"][data-window="day"]\')'


async def cell(page: Page) -> dict[str, Any]:
    value: dict[str, Any] = await page.evaluate(
        f"(() => {{ const c = {CELL}; return c && {{num: +c.dataset.numerator, "
        "den: +c.dataset.denominator, text: c.innerText}; })()"
    )
    return value


@pytest.fixture
def worker_env(common_settings: CommonSettings, database_url: str, tmp_path: Path) -> dict:
    asyncio.run(ensure_topics(common_settings))
    env = service_env(common_settings, database_url)
    port = free_port()
    env.update(
        EGOV_METRICS_WEB_PORT=str(port),
        EGOV_WALL_PORT=str(free_port()),
        EGOV_METRICS_APP_ID=f"wall-{uuid.uuid4().hex[:8]}",
        EGOV_METRICS_DATA_DIR=str(tmp_path / "metrics"),
        EGOV_METRICS_URLS=f"http://127.0.0.1:{port}",
        # No alerts service in this test: the wall shows no alerts panel (docs/wall.md),
        # never "no open alerts", and its status is live (no failing source).
        EGOV_ALERTS_URL="",
        EGOV_WALL_LANG="vi",
    )
    env.pop("EGOV_WALL_HEARTBEAT_S", None)
    return env


async def test_wall_follows_the_stream_and_says_when_it_is_lost(
    worker_env: dict[str, str], common_settings: CommonSettings, tmp_path: Path
) -> None:
    async with (
        worker(worker_env, tmp_path / "worker.log") as (metrics, counting),
        wall(worker_env, tmp_path / "wall.log") as (base, proc),
    ):
        await publish(common_settings, signed=20, unsigned=5)  # 80 %: below the 95 % target
        first = await served_figure(metrics, 25)
        async with chromium_page() as page:
            await page.viewport(3840, 2160)
            await page.goto(f"{base}/wall?province={PROVINCE}")
            await page.wait_for("document.body.dataset.state === 'live'")
            shown = await cell(page)
            assert (shown["num"], shown["den"]) == (first["numerator"], first["denominator"])
            assert "20 / 25" in shown["text"] and "80,00 %" in shown["text"]
            assert "Chưa đạt mục tiêu" in shown["text"]  # words, not colour alone
            assert await page.evaluate("document.documentElement.lang") == "vi"
            assert await page.evaluate(NO_ALERTS_PANEL), "an alerts panel without a source"
            await page.screenshot(ARTIFACTS / "wall-4k.png")
            await page.viewport(1366, 768)
            await page.screenshot(ARTIFACTS / "wall-laptop.png")

            # New events reach the open page through the stream, without a reload.
            await page.evaluate("window.__sameDocument = true")
            published_at = time.monotonic()
            await publish(common_settings, signed=25, unsigned=0)
            second = await served_figure(metrics, 50)
            await page.wait_for(f"{CELL}?.dataset.denominator === '{second['denominator']}'")
            seen_after = time.monotonic() - published_at
            assert await page.evaluate("window.__sameDocument === true")
            shown = await cell(page)
            assert (shown["num"], shown["den"]) == (second["numerator"], second["denominator"])
            assert await page.evaluate(NO_ALERTS_PANEL)  # nor in what the stream sent
            print(f"page followed the new events {seen_after:.2f} s after publishing began")

            # Drill down to the commune and its trend, drawn from /v1/kpis/history.
            await page.goto(f"{base}/wall?province={PROVINCE}&unit={UNIT}&kpi={KPI}")
            trend = await page.wait_for("document.querySelector('#trend')?.innerText")
            assert "Phường Bắc Kạn" in trend or "Chưa có số liệu theo ngày" in trend, trend
            print("trend:", trend[:300].replace("\n", " | "))
            await page.screenshot(ARTIFACTS / "wall-laptop-trend.png")

            # English, with the registry's English names.
            await page.goto(f"{base}/wall?province={PROVINCE}&lang=en")
            await page.wait_for("document.body.dataset.state === 'live'")
            assert await page.evaluate("document.documentElement.lang") == "en"
            assert "Bac Kan Ward" in await page.evaluate("document.body.innerText")
            await page.screenshot(ARTIFACTS / "wall-laptop-en.png")

            # The worker stops answering: its last figures stay, marked as old.
            counting.terminate()
            await asyncio.wait_for(counting.wait(), 30)
            await page.wait_for("document.body.dataset.state === 'stale'", timeout_s=20)
            status = await page.evaluate("document.getElementById('status').innerText")
            assert "Figures not updated since" in status, status
            assert "Bac Kan Ward" in await page.evaluate("document.body.innerText")
            await page.screenshot(ARTIFACTS / "wall-stale.png")

            # The wall itself goes away: the page says so instead of showing old figures.
            proc.terminate()
            await asyncio.wait_for(proc.wait(), 30)
            await page.wait_for("document.body.dataset.state === 'lost'", timeout_s=20)
            status = await page.evaluate("document.getElementById('status').innerText")
            assert "Connection to the server lost" in status
            assert "Bac Kan Ward" in await page.evaluate("document.body.innerText")
            await page.screenshot(ARTIFACTS / "wall-lost.png")
