"""Review 85: a real worker whose flushes an operator's lock holds says its counting is
stalled (docs/metrics.md, "A stalled counting says so"): /v1/kpis a 503 naming the
stall, /v1/activity a 200 that says it, /metrics a gauge; and once the lock goes it
counts every event once and answers current figures again."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import httpx
import pytest

from services.common.broker import free_port
from services.common.kafka import ensure_topics
from services.common.settings import CommonSettings
from tests.faults.conftest import samples, serving, tail, until
from tests.faults.postgres import metrics_env, seen_keys
from tests.integration.alerts.test_review85_worker_restarts import Publisher, operator_lock
from tests.integration.metrics.harness import communes_by_province

pytestmark = pytest.mark.integration


async def _current(client: httpx.AsyncClient, url: str, unit: str, publisher: Publisher) -> bool:
    """The worker's last documents event of ``unit`` is the publisher's last one."""
    answer = (await client.get(f"{url}/v1/activity", timeout=5)).json()
    times = [i["last_event_time"] for i in answer["items"]
             if i["unit"] == unit and i["family"] == "documents"]  # fmt: skip
    last = publisher.last_at
    return bool(times) and last is not None and datetime.fromisoformat(times[0]) >= last


async def _stalled_s(client: httpx.AsyncClient, url: str) -> float:
    found = await samples(client, url, "egov_metrics_counting_stalled_seconds")
    return found[0][1] if found else -1.0


async def test_a_worker_whose_flushes_are_held_answers_503_and_counts_all_after(
    common_settings: CommonSettings, database_url: str, tmp_path: Path
) -> None:
    ((unit, province),) = communes_by_province(1)
    await ensure_topics(common_settings)
    port = free_port()
    log = tmp_path / "metrics.log"
    env = metrics_env(common_settings, database_url, "r85-503", port, tmp_path / "w")
    async with (
        serving(["metrics"], env, port, log) as url,
        httpx.AsyncClient() as client,
        Publisher(common_settings, unit, province) as publisher,
    ):
        await until(lambda: _current(client, url, unit, publisher), 60, lambda: tail(log))
        assert (await client.get(f"{url}/v1/kpis", timeout=5)).status_code == 200
        assert await _stalled_s(client, url) < 2  # keeping up: 0, or a flush under way

        async with operator_lock(database_url, "metrics_seen_events"):

            async def refused() -> bool:
                return (await client.get(f"{url}/v1/kpis", timeout=5)).status_code == 503

            await until(refused, 20, lambda: tail(log))
            answer = await client.get(f"{url}/v1/kpis", params={"window": "day"}, timeout=5)
            assert answer.headers["content-type"].startswith("application/problem+json")
            assert answer.headers["retry-after"] == "5"
            problem = answer.json()
            assert problem["type"].endswith("/counting-stalled"), problem
            stall = problem["counting_stalled"]
            assert stall["stalled_s"] >= 2 and stall["waiting_records"] >= 1, problem
            assert stall["after_s"] == 2
            activity = await client.get(f"{url}/v1/activity", timeout=5)
            assert activity.status_code == 200
            assert activity.json()["counting_stalled"]["waiting_records"] >= 1
            assert await _stalled_s(client, url) >= 2
            assert (await client.get(f"{url}/healthz", timeout=5)).status_code == 200

        await publisher.stop()

        async def counted() -> bool:
            return await seen_keys(database_url) == publisher.sent

        await until(counted, 60, lambda: tail(log))
        await until(lambda: _current(client, url, unit, publisher), 30, lambda: tail(log))
        assert (await client.get(f"{url}/v1/kpis", timeout=5)).status_code == 200
        assert (await client.get(f"{url}/v1/activity", timeout=5)).json()[
            "counting_stalled"
        ] is None
        assert await _stalled_s(client, url) == 0.0
    assert await seen_keys(database_url) == publisher.sent  # every event once, none lost
