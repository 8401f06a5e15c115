"""Shared pieces of the fault suite: services run beside the test's own event loop.

The proxies of tests/faults/tools.py live on the test's event loop, so nothing here may
block it: processes are started and stopped from threads (``serving``), and readers of
PostgreSQL and of the workers' /metrics are async.
"""

from __future__ import annotations

import asyncio
import gc
import inspect
import os
import random
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import httpx
import pytest

from services.common.contract import Contract
from services.ingest.keystore import create_key
from tests.faults.leaks import LeakReport

# Shared fixtures, registered here by import.
from tests.integration.alerts.harness import (
    Alertmanager,
    FakeMetrics,
    Receiver,
    alertmanager,
    fake_metrics,
    receiver,
)
from tests.integration.processes import running_service
from tests.servers import database_address

LEAKS = LeakReport()


@pytest.fixture(scope="session", autouse=True)
def _transport_origins() -> Iterator[None]:
    """Where each transport was opened, from the first fault test on: a socket one test
    opened can become garbage in the next (a keep-alive timer let go of it)."""
    with LEAKS.tracking_origins():
        yield


@pytest.fixture(autouse=True)
def _leaked_transports(request: pytest.FixtureRequest) -> Iterator[None]:
    """Each fault test runs without automatic garbage collection and ends with one, so
    that a socket it leaves open is listed with where it was opened, not raised in the
    middle of whichever test the collector happens to run in (tests/faults/leaks.py)."""
    LEAKS.running = request.node.nodeid
    gc.disable()
    try:
        yield
    finally:
        try:
            # Before re-enabling: the first allocation after that would start a
            # collection (a whole test's worth of objects is pending) unguarded.
            LEAKS.collect(request.node.nodeid)
        finally:
            LEAKS.running = None
            gc.enable()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if LEAKS.leaks:
        terminalreporter.section("transports the fault tests left open (tests/faults/leaks.py)")
        for line in LEAKS.lines():
            terminalreporter.write_line(line)


SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][\w:]*)(?:\{(?P<labels>.*)\})? (?P<value>\S+)$")
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def fault_seed() -> int:
    """``EGOV_FAULTS_SEED`` replays a schedule; otherwise a new one each run (printed)."""
    return int(os.environ.get("EGOV_FAULTS_SEED") or random.randrange(2**31))


def via(proxy_port: int, database_url: str) -> str:
    """The same database reached through a proxy on ``proxy_port``."""
    proxied = database_url.replace(database_address(), f"127.0.0.1:{proxy_port}")
    assert proxied != database_url, database_url
    return proxied


PUBLISHER = "faults-publisher"
"""The name of the fault tests' key: the publisher in their events' dedup identity."""
SOURCES = ["urn:egov:faults:"]


async def api_token(database_url: str, units: list[str]) -> str:
    """An ingest key for ``units`` and every event type, made as `keys create` does."""
    conn = await asyncpg.connect(database_url)
    try:
        types = sorted(Contract.load().event_types)
        return (await create_key(conn, PUBLISHER, units, types, sources=SOURCES)).token
    finally:
        await conn.close()


@asynccontextmanager
async def serving(
    args: list[str], env: dict[str, str], port: int, log: Path, ready_path: str = "/healthz"
) -> AsyncIterator[str]:
    """``running_service`` entered and left from a thread: the loop keeps proxying."""
    service = running_service(args, env, port, log, ready_path)
    base = await asyncio.to_thread(service.__enter__)
    try:
        yield base
    finally:
        await asyncio.to_thread(service.__exit__, None, None, None)


async def samples(
    client: httpx.AsyncClient, url: str, name: str
) -> list[tuple[dict[str, str], float]]:
    """Samples called ``name`` on ``url``/metrics; [] when the process does not answer.

    Parsed by line: the KPI families are written by hand (kpitext.py) and a gauge and a
    counter share a stem, which prometheus_client's parser would merge."""
    try:
        text = (await client.get(url + "/metrics", timeout=10)).text
    except httpx.TransportError:
        return []
    found = []
    for line in text.splitlines():
        match = SAMPLE.match(line)
        if match and match["name"] == name:
            labels = dict(LABEL.findall(match["labels"] or ""))
            found.append((labels, float(match["value"])))
    return found


async def counter_sum(client: httpx.AsyncClient, url: str, name: str, **labels: str) -> float:
    return sum(
        value
        for got, value in await samples(client, url, name)
        if all(got.get(k) == v for k, v in labels.items())
    )


async def until(
    check: Callable[[], Awaitable[bool] | bool], within_s: float, what: Callable[[], str] | str
) -> None:
    """Poll ``check`` until true; the failure names what was awaited and what was seen."""
    deadline = time.monotonic() + within_s
    while not await _result(check()):
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {within_s} s: {what() if callable(what) else what}"
            )
        await asyncio.sleep(0.3)


async def _result(value: Awaitable[bool] | bool) -> bool:
    return await value if inspect.isawaitable(value) else value


def tail(log: Path, chars: int = 3000) -> str:
    return log.read_text(errors="replace")[-chars:] if log.exists() else "(no log)"


def alerts_env(base: dict[str, str], port: int, **extra: str) -> dict[str, str]:
    """An `egov-pulse alerts` process that evaluates twice a second and fires after 1 s."""
    return base | {
        "EGOV_ALERTS_PORT": str(port),
        "EGOV_INGEST_URL": "",
        "EGOV_ALERT_KAFKA_ENABLED": "false",
        "EGOV_ALERT_BURN_ENABLED": "false",
        "EGOV_ALERT_INTERVAL_S": "0.5",
        "EGOV_ALERT_FOR_S": "1",
        "EGOV_ALERT_SILENT_AFTER_S": "86400",
        "EGOV_ALERT_HTTP_TIMEOUT_S": "1",
        **extra,
    }
