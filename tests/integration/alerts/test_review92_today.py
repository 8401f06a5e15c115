"""Review 92: what today's alerts changes (review 90's lock, review 85's failover) got wrong.

Each defect is one strict xfail asserting the right behaviour (real PostgreSQL, the real
rule file through promtool):

1. A standby shows the active service's open alerts as its own. ``connect`` restores
   the state file before standing by (services/alerts/service.py:146 ``self._restore()``,
   then :151 ``lease.stand_by``), and only cancels the Alertmanager resend when it finds
   the lock held (:152 ``keep_told.cancel``): the restored book stays in
   ``self.state`` for as long as it stands by, although the docstring (:143-145) says
   the process "forgets what it restored from the state file". Its /metrics therefore
   exports ``egov_alerts{state="firing"}`` read from the active service's file
   (services/alerts/telemetry.py:14-34 reads ``state.open`` at scrape time): with a
   standby beside the active, every firing alert is counted twice in Prometheus and
   Grafana, and the standby keeps exporting alerts the active has long resolved (it
   never rereads the file).
2. A healthy standby pages EgovAlertsNotEvaluating (critical). The standby's registry
   exports ``egov_alerts_last_evaluation_timestamp_seconds 0`` (services/alerts/
   telemetry.py:57-60, a Gauge never set until a cycle completes, service.py:277), and
   deploy/prometheus/rules/egov-health.yml:196-197 (``time() -
   egov_alerts_last_evaluation_timestamp_seconds{job="alerts"} > 120``) knows nothing
   of the role: two minutes after a second service starts standing by (a site running
   two for availability, or a deploy whose old process stays up), on-call are paged that
   "the alerts service has completed no evaluation for 1.8e9 s" while the active one
   evaluates every 30 s; docs/alerts.md says a standby "is healthy".
3. A lost lock forgets the silence memory the flush loop had not written yet: the blind
   span of a metrics worker's outage that ended in the last seconds (every unit's time
   nobody answered for is not silence). ``_run`` (services/alerts/service.py:384)
   calls ``_fresh_start`` (:467-484), which replaces the evaluator and state without
   saving anything; the state file keeps only the open alerts and the journal
   (services/alerts/state.py:115), and the silence memory is written only by the flush
   (every 5 s, or never while PostgreSQL is away, the very outage that ends the lock's
   session). docs/alerts.md says only "unwritten transitions are in the state file".
   After the takeover the outage's span is gone, so each unit's silence runs through
   the time nobody could see it: UnitSilent pages for communes that published all along
   (before review 90 the memory stayed in memory through a PostgreSQL outage and was
   written when it came back).
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from services.alerts.app import create_app
from services.alerts.service import AlertsService
from tests.integration.alerts.conftest import ServiceFactory
from tests.integration.alerts.harness import FakeMetrics, TcpProxy, wait_until

pytestmark = pytest.mark.integration

RETRY_S = 1.0
REPO = Path(__file__).resolve().parents[3]
HEALTH_RULES = REPO / "deploy" / "prometheus" / "rules" / "egov-health.yml"


@contextlib.asynccontextmanager
async def looping(svc: AlertsService) -> AsyncIterator[AlertsService]:
    svc.start_loops()
    try:
        yield svc
    finally:
        with contextlib.suppress(Exception):
            await svc.close()


async def scrape(svc: AlertsService) -> str:
    transport = httpx.ASGITransport(app=create_app(svc, run_loops=False))
    async with httpx.AsyncClient(transport=transport, base_url="http://alerts") as client:
        response = await client.get("/metrics")
    assert response.status_code == 200
    return response.text


def firing_count(text: str) -> float:
    total = 0.0
    for family in text_string_to_metric_families(text):
        if family.name != "egov_alerts":
            continue
        for sample in family.samples:
            if sample.labels.get("state") == "firing":
                total += sample.value
    return total


async def test_a_standby_exports_the_active_services_open_alerts_as_its_own(
    make_service: ServiceFactory, fake_metrics: FakeMetrics
) -> None:
    # Both on one volume (the fixture's one state file), as compose's alerts-state is.
    active = make_service(alert_standby_retry_s=RETRY_S, alert_interval_s=0.3, alert_for_s=0.6)
    standby = make_service(alert_standby_retry_s=RETRY_S, alert_interval_s=0.3, alert_for_s=0.6)
    fake_metrics.set("c1", 80, 100)
    async with looping(active):
        await wait_until(lambda: len(active.state.firing()) == 1, 20, "the page")
        assert firing_count(await scrape(active)) == 1
        async with looping(standby):
            await wait_until(lambda: standby.role == "standby", 5, "standby")
            await asyncio.sleep(2 * RETRY_S)
            assert not standby.state.loaded.is_set()  # standing by, as designed
            # Once this holds, Prometheus counts the one firing alert once, not twice.
            assert firing_count(await scrape(standby)) == 0, (
                "the standby exports the state file's firing alerts as its own"
            )
            assert not standby.state.open


def _series(text: str, instance: str) -> list[dict[str, str]]:
    """Every sample of a scrape as a promtool input series held for 20 minutes; a
    last-evaluation timestamp other than 0 as one kept current on promtool's clock."""
    series: list[dict[str, str]] = []
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = {**sample.labels, "job": "alerts", "instance": instance}
            body = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
            name = f"{sample.name}{{{body}}}"
            value = sample.value
            if value != value or value in (float("inf"), float("-inf")):
                continue
            if sample.name == "egov_alerts_last_evaluation_timestamp_seconds" and value > 0:
                values = "0+60x20"  # evaluated every cycle: always as recent as promtool's now
            else:
                values = f"{value!r}x20"
            series.append({"series": name, "values": values})
    return series


def _fires(text: str, alertname: str) -> bool:
    """Whether ``alertname`` fires at 10 min on a scrape held unchanged that long."""
    test = {
        "rule_files": [str(HEALTH_RULES)],
        "evaluation_interval": "30s",
        "tests": [
            {
                "interval": "1m",
                "input_series": _series(text, "alerts-standby:8082"),
                "alert_rule_test": [{"eval_time": "10m", "alertname": alertname, "exp_alerts": []}],
            }
        ],
    }
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "standby.test.yml"
        path.write_text(yaml.safe_dump(test, allow_unicode=True))
        run = subprocess.run(
            ["promtool", "test", "rules", str(path)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    out = run.stdout + run.stderr
    if run.returncode == 0:
        return False
    if f'Labels:{{alertname="{alertname}"' not in out:  # not the rule firing: a broken test
        raise AssertionError(f"promtool failed: {out}")
    return True


async def test_a_healthy_standby_pages_alerts_not_evaluating(
    make_service: ServiceFactory,
) -> None:
    active = make_service(alert_standby_retry_s=RETRY_S, alert_state_file=None)
    standby = make_service(alert_standby_retry_s=RETRY_S, alert_state_file=None)
    async with looping(active):
        await asyncio.wait_for(active.state.loaded.wait(), 10)
        await wait_until(lambda: active.metrics.last_evaluation._value.get() > 0, 60, "a cycle")
        assert not _fires(await scrape(active), "EgovAlertsNotEvaluating")  # the harness
        async with looping(standby):
            await asyncio.sleep(2 * RETRY_S)
            assert standby.role == "standby"
            assert not _fires(await scrape(standby), "EgovAlertsNotEvaluating"), (
                "a standby, healthy by docs/alerts.md, pages that no evaluation completes"
            )


async def test_a_lost_lock_forgets_a_worker_outage_span_not_yet_flushed(
    make_service: ServiceFactory, fake_metrics: FakeMetrics, database_url: str
) -> None:
    proxy = TcpProxy()
    await proxy.up()
    second = FakeMetrics()  # a second worker, not serving yet: it does not answer
    fake_metrics.set("c1", 99, 100)
    svc = make_service(
        database_url=proxy.dsn(database_url),
        metrics_urls=[fake_metrics.url, second.url],
        alert_standby_retry_s=RETRY_S,
        alert_interval_s=0.3,
    )
    try:
        async with asyncio.timeout(60), looping(svc):
            await asyncio.wait_for(svc.state.loaded.wait(), 10)
            await asyncio.sleep(1.0)  # cycles with the second worker down
            assert not svc.evaluator.memory().blind
            async with second:  # it answers again: the outage's span ends
                await wait_until(lambda: bool(svc.evaluator.memory().blind), 5, "the span")
                spans = svc.evaluator.memory().blind
                # Within the flush loop's 5 s: PostgreSQL restarts, ending the lock's session.
                await proxy.down()
                term = svc.state
                await wait_until(lambda: svc.state is not term, 5, "the term ended")
                await asyncio.sleep(1.0)
                await proxy.up()
                await wait_until(lambda: svc.state.loaded.is_set(), 30, "the lock taken back")
                kept = svc.evaluator.memory().blind
                assert any(k.start == s.start and k.end == s.end for s in spans for k in kept), (
                    f"the worker outage's span {spans} was forgotten at the lost lock: {kept}"
                )
    finally:
        await proxy.down()
