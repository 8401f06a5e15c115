"""Review 41: the pipeline's health alerts (deploy/prometheus/rules/egov-health.yml)
under real faults of the real services.

Real ingest, metrics worker and alerts processes (tests/integration/dashboards/stack.py)
scraped every second by a real Prometheus. The rules are the repo's, copied with their
``for:`` durations, range windows and offsets shortened (every expression otherwise the
same), so that a fault that takes minutes in production takes seconds here. Each test
was a strict xfail; all three defects are fixed (dead letters and lost offsets read from
the time of the last one, ingest's accepted counters exported from 0, the
EgovRecordsHeld runbook).
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import yaml

from services.common.kafka import ensure_topics, make_producer
from services.common.settings import CommonSettings
from services.metrics import refusals
from tests.integration.dashboards import prometheus as prometheus_module
from tests.integration.dashboards.known_events import PROVINCE, UNIT, document
from tests.integration.dashboards.stack import Stack, running_stack

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
HEALTH_RULES = REPO / "deploy" / "prometheus" / "rules" / "egov-health.yml"

# Every range window and offset of the health rules becomes this: long enough for a few
# 1 s scrapes, short enough for a test.
WINDOW = "12s"
DURATION = re.compile(r"(\[|offset )(\d+[smhd])(\])?")
SINCE_LAST = re.compile(r"<\s*\d+\s*$")


def shortened_rules(directory: Path) -> Path:
    """The repo's rule files, the health rules with ``for:`` at 1 s and every range
    window and offset at WINDOW; the expressions are otherwise the file's own."""
    directory.mkdir()
    for source in sorted(HEALTH_RULES.parent.glob("*.yml")):
        rules = yaml.safe_load(source.read_text("utf-8"))
        if source == HEALTH_RULES:
            for group in rules["groups"]:
                for rule in group["rules"]:
                    rule["expr"] = DURATION.sub(
                        lambda m: f"{m.group(1)}{WINDOW}{m.group(3) or ''}", rule["expr"]
                    )
                    # "For so long after the last one" (time() - a timestamp < seconds).
                    rule["expr"] = SINCE_LAST.sub(f"< {WINDOW[:-1]}", rule["expr"])
                    if "for" in rule:
                        rule["for"] = "1s"
        (directory / source.name).write_text(yaml.safe_dump(rules, allow_unicode=True), "utf-8")
    return directory


@contextmanager
def health_stack(
    settings: CommonSettings,
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Stack]:
    """running_stack with the shortened health rules loaded instead of the repo's."""
    monkeypatch.setattr(prometheus_module, "RULES_DIR", shortened_rules(tmp_path / "rules"))
    asyncio.run(ensure_topics(settings))
    with running_stack(settings, database_url, tmp_path, PROVINCE) as stack:
        stack.wait_until_scraped()
        yield stack


def service_pid(port: str) -> int:
    """The pid of our own `egov-pulse metrics` child listening on ``port`` (found by
    the environment running_stack gave it: it does not hand out its Popen)."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            environ = Path(f"/proc/{entry}/environ").read_bytes().split(b"\0")
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"services.cli" in cmdline and b"metrics" in cmdline:
            if f"EGOV_METRICS_WEB_PORT={port}".encode() in environ:
                return int(entry)
    raise AssertionError(f"no metrics worker on port {port}")


def firing(stack: Stack, alertname: str) -> list[dict[str, Any]]:
    return stack.prometheus.query(f'ALERTS{{alertname="{alertname}", alertstate="firing"}}')


def wait_until(predicate: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s} s: {what}")
        time.sleep(0.5)


async def write_garbage(settings: CommonSettings, count: int = 1) -> None:
    """Bytes that are no CloudEvent, straight to the documents topic (as a client that
    bypasses ingest would): the worker dead-letters them."""
    producer = make_producer(settings)
    await producer.start()
    try:
        for _ in range(count):
            await (await producer.send(settings.topic_documents, b"garbage", key=b"19"))
    finally:
        await producer.stop()


def test_dead_letters_do_not_fire_again_after_a_worker_hangs(
    common_settings: CommonSettings,
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """EgovDeadLetters' second arm (``X unless X offset 15m``) is meant to catch a series
    new in the window. A worker hung for a few scrapes (SIGSTOP: scrapes time out, and
    Prometheus marks its series stale) leaves a hole in every series: 15 minutes later
    ``offset 15m`` lands in the hole, the series looks new, and the alert fires with the
    worker's whole dead-letter total since it started, though nothing was dead-lettered.
    The same happens for the first 15 minutes after Prometheus starts (no data before),
    and for EgovOffsetsLost (1 h)."""
    with health_stack(common_settings, database_url, tmp_path, monkeypatch) as stack:
        asyncio.run(write_garbage(common_settings))
        # The real dead letter fires the alert, then it ends once the window passed it.
        wait_until(lambda: firing(stack, "EgovDeadLetters"), 30, "EgovDeadLetters fires")
        wait_until(lambda: not firing(stack, "EgovDeadLetters"), 40, "EgovDeadLetters ends")
        port = stack.metrics.rsplit(":", 1)[1]
        pid = service_pid(port)
        os.kill(pid, signal.SIGSTOP)  # hung: scrapes time out (1 s), series go stale
        try:
            wait_until(lambda: stack.prometheus.query('up{job="metrics"} == 0'), 15, "scrape fails")
            time.sleep(3)
        finally:
            os.kill(pid, signal.SIGCONT)
        wait_until(lambda: stack.prometheus.query('up{job="metrics"} == 1'), 15, "scraped again")
        # No record was written since: for a window and a bit after the hole, the alert
        # must stay quiet.
        deadline = time.monotonic() + 20
        seen: list[dict[str, Any]] = []
        while time.monotonic() < deadline and not seen:
            seen = firing(stack, "EgovDeadLetters")
            time.sleep(0.5)
        assert not seen, f"EgovDeadLetters fired with no new dead letter: {seen}"


def test_accepted_not_counted_fires_for_the_first_batch_after_ingest_starts(
    common_settings: CommonSettings,
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Ingest exports ``egov_ingest_events_total{outcome="accepted",type=...}`` from
    the first accepted event of a type on, at its count: ``increase()`` reads that first
    sample as the series' start, so the events of the first request of each type after
    ingest (re)starts are not seen. With the worker dead (SIGKILL), a publisher that
    sends one batch gets 202s for events nobody counts, and no alert says so."""
    with health_stack(common_settings, database_url, tmp_path, monkeypatch) as stack:
        port = stack.metrics.rsplit(":", 1)[1]
        os.kill(service_pid(port), signal.SIGKILL)
        wait_until(lambda: stack.prometheus.query('up{job="metrics"} == 0'), 15, "worker down")
        now = datetime.now(UTC)
        response = stack.post([document(UNIT, (True, True, False), now) for _ in range(5)])
        assert response.status_code == 202, response.text
        deadline = time.monotonic() + 20
        seen: list[dict[str, Any]] = []
        while time.monotonic() < deadline and not seen:
            seen = firing(stack, "EgovAcceptedNotCounted")
            time.sleep(0.5)
        assert seen, "5 events accepted, none counted (worker killed): no alert"


# What the EgovRecordsHeld runbook names as causes, and the error PostgreSQL raises then.
RUNBOOK_CAUSES: dict[str, type[BaseException]] = {
    "disk full": asyncpg.DiskFullError,
    "connection limit": asyncpg.TooManyConnectionsError,
}


def test_records_held_runbook_names_only_what_holds_records() -> None:
    """``egov_metrics_records_held`` is set only when PostgreSQL refuses a record's data
    (refusals.REFUSED_BY_STORE: SQLSTATE class 22 and encoding errors) and nothing vouches
    for it being the record's fault. A full disk or the connection limit is infrastructure:
    the flush is retried (or the worker crashes), the gauge stays 0, and what pages is
    EgovAcceptedNotCounted. The runbook sends on-call to free disk and restart PostgreSQL
    for an alert that means a value our schema or code refuses."""
    text = (REPO / "docs" / "runbooks.md").read_text("utf-8")
    section = text.split("### EgovRecordsHeld", 1)[1].split("\n### ", 1)[0]
    means, do = section.split("**Check.**", 1)[0], section.split("**Do.**", 1)[1]
    # Where the runbook names an outage's causes, it says they hold nothing, and where
    # that pages instead; what it asks on-call to do is not an outage's remedy.
    outages = [c for c, e in RUNBOOK_CAUSES.items() if not issubclass(e, refusals.REFUSED_BY_STORE)]
    assert "holds nothing" in means and "EgovAcceptedNotCounted" in means, means
    assert not [w for w in ("free disk", "restart it", *outages) if w in do], do
