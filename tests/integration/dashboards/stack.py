"""Real ingest, metrics and alerts processes, scraped every second by a real Prometheus.

The processes are started by tests/integration/processes.py and Prometheus by
prometheus.py; this module only wires them together the way a deployment does (jobs
named ingest, metrics and alerts, as the pipeline dashboard's `up` panel expects).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import orjson

from services.common.broker import free_port
from services.common.contract import Contract
from services.common.settings import CommonSettings
from services.ingest.keystore import create_key
from services.ingest.validation import BATCH, SINGLE
from tests.integration.dashboards.prometheus import Prometheus, running_prometheus
from tests.integration.processes import running_service, service_env

JOBS = ("ingest", "metrics", "alerts")


@dataclass
class Stack:
    ingest: str
    metrics: str
    alerts: str
    prometheus: Prometheus
    token: str

    def post(self, events: list[dict[str, object]] | dict[str, object]) -> httpx.Response:
        """POST a batch (a list) or a single event to ingest with the stack's key."""
        content_type = BATCH if isinstance(events, list) else SINGLE
        return httpx.post(
            f"{self.ingest}/v1/events",
            content=orjson.dumps(events),
            headers={
                "content-type": content_type,
                "authorization": f"Bearer {self.token}",
            },
            timeout=30,
        )

    def wait_until_scraped(self, timeout_s: float = 15) -> None:
        """Every job scraped once, so counters have a sample from before any event."""
        deadline = time.monotonic() + timeout_s
        while (health := self.prometheus.target_health()) != dict.fromkeys(JOBS, "up"):
            if time.monotonic() > deadline:
                raise AssertionError(f"targets not all up: {health}")
            time.sleep(0.2)


async def publisher_key(database_url: str, province: str) -> str:
    """A key for every event type of the contract, scoped to ``province`` and below."""
    conn = await asyncpg.connect(database_url)
    try:
        types = sorted(Contract.load().event_types)
        key = await create_key(conn, "test-dashboards", [province], types, sources=["https:"])
    finally:
        await conn.close()
    return key.token


@contextmanager
def running_stack(
    settings: CommonSettings, database_url: str, tmp_path: Path, province: str
) -> Iterator[Stack]:
    token = asyncio.run(publisher_key(database_url, province))
    ports = {job: free_port() for job in JOBS}
    env = service_env(settings, database_url) | {
        "EGOV_INGEST_PORT": str(ports["ingest"]),
        "EGOV_METRICS_WEB_PORT": str(ports["metrics"]),
        "EGOV_METRICS_APP_ID": f"dash-{uuid.uuid4().hex[:8]}",
        "EGOV_METRICS_DATA_DIR": str(tmp_path / "metrics"),
        "EGOV_ALERTS_PORT": str(ports["alerts"]),
        "EGOV_METRICS_URLS": f"http://127.0.0.1:{ports['metrics']}",
        "EGOV_INGEST_URL": f"http://127.0.0.1:{ports['ingest']}",
        "EGOV_ALERTMANAGER_URL": "",
        "EGOV_TOPIC_ALERTS": f"{settings.topic_documents}.alerts",
        "EGOV_ALERT_FOR_S": "0",
        "EGOV_ALERT_INTERVAL_S": "1",
        "EGOV_ALERT_BURN_ENABLED": "false",
    }
    with ExitStack() as stack:
        urls = {
            job: stack.enter_context(
                running_service([job], env, ports[job], tmp_path / f"{job}.log", "/metrics")
            )
            for job in JOBS
        }
        targets = {job: [f"127.0.0.1:{ports[job]}"] for job in JOBS}
        prometheus = stack.enter_context(running_prometheus(tmp_path, targets))
        yield Stack(urls["ingest"], urls["metrics"], urls["alerts"], prometheus, token)
