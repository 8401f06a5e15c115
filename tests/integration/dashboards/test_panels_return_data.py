"""Every panel of the dashboards returns data from a real pipeline fed known events.

Real ingest, metrics worker and alerts processes on the real broker and database, scraped
every second by a real Prometheus with the repo's recording rules. The known events go
through ingest (one accepted batch, a retry of one of its events, one refused batch) and
include a late event within the grace, one beyond it (published straight to Kafka, as
ingest refuses it, and dead-lettered by the worker), a
retired commune code and enough unsigned documents for an alert to fire. The checks:
the KPI figures equal what the catalogue computes; ingest, worker and alerts counters
equal what those events must produce; then every panel and variable query returns at
least one series with a value, carrying the labels the events imply.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import pytest

from services.alerts.targets import Change, set_override
from services.common.contract import Contract
from services.common.kafka import ensure_topics, make_producer
from services.common.kpis import KpiCatalogue
from services.common.scorecard import Scorecard
from services.common.settings import CommonSettings
from services.common.targets import Scope
from tests.integration.dashboards.known_events import (
    DOCUMENT,
    PROVINCE,
    UNIT,
    KnownEvents,
)
from tests.integration.dashboards.prometheus import (
    Prometheus,
    grafana_regex,
    panel_queries,
    query_result_lines,
    substitute,
    variable_queries,
)
from tests.integration.dashboards.stack import JOBS, Stack, running_stack

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]

Series = dict[str, float]

# Labels a panel's series must carry, given the known events: (a fragment of the panel's
# PromQL, the label, values that must all appear). Counters by type are exported as 0
# for every type from the start, so those panels are checked by value further down.
PANEL_LABELS = [
    ("rate(egov_ingest_requests_total", "status", {"202", "422"}),
    ("sum by (outcome) (rate(egov_ingest_events_total", "outcome", {"accepted", "rejected"}),
    ('egov_ingest_events_total{outcome="rejected"}', "reason", {"unit-unknown", "time-in-future"}),
    ("egov_events_dead_lettered_total", "reason", {"too-late"}),
    ("egov_alerts)", "state", {"pending", "firing"}),
    ('up{job=~"ingest|metrics|alerts"}', "job", set(JOBS)),
]

# Panels allowed to return no series with these events, each with the reason. Empty: with
# one scrape before the events, every histogram_quantile has two samples to rate.
EXEMPT: dict[str, str] = {}

# An operator's target for the province, so that the overrides' table has a row to show,
# cited as the wall cites it (a KPI the alerts check below does not read).
OVERRIDE_KPI = "meeting_online"
OVERRIDE_REASON = "Kế hoạch chuyển đổi số của tỉnh năm 2026"
PANEL_LABELS.append(
    ("egov_kpi_target_override_ratio", "basis", {f"Mục tiêu của tỉnh: {OVERRIDE_REASON}"})
)


async def set_province_override(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        change = Change(Scope(province=PROVINCE), OVERRIDE_KPI, "ioc-operator", OVERRIDE_REASON)
        await set_override(conn, change, 7_000)
    finally:
        await conn.close()


def test_every_panel_returns_the_series_of_events_sent_through_ingest(
    common_settings: CommonSettings, database_url: str, tmp_path: Path
) -> None:
    asyncio.run(ensure_topics(common_settings))
    known = KnownEvents.at(datetime.now(UTC))
    unit_day, province_day = known.unit_day(), known.province_day()
    assert set(unit_day) == set(KpiCatalogue.load().ids) and all(d for _, d in unit_day.values())
    asyncio.run(set_province_override(database_url))
    with running_stack(common_settings, database_url, tmp_path, PROVINCE) as stack:
        stack.wait_until_scraped()
        publish(stack, known)
        asyncio.run(publish_straight(common_settings, known.too_late))
        prometheus = stack.prometheus
        for kpi, (num, den) in unit_day.items():
            expr = f'egov_kpi_ratio{{unit="{UNIT}", window="day", kpi="{kpi}"}}'
            settles(prometheus, expr, "", {"": num / den})
        for kpi, (num, den) in province_day.items():
            selector = f'{{unit="{PROVINCE}", kpi="{kpi}"}}'
            settles(prometheus, f"province:egov_kpi_ratio:day{selector}", "", {"": num / den})
            settles(prometheus, f"province:egov_kpi_denominator:day{selector}", "", {"": den})
        check_scorecard(prometheus, unit_day)
        check_ingest_counters(prometheus, known)
        check_worker_counters(prometheus, known, common_settings.topic_documents)
        check_alerts(stack)
        check_every_panel(prometheus)
        check_health_rules(prometheus, common_settings.topic_documents)


def publish(stack: Stack, known: KnownEvents) -> None:
    response = stack.post(known.accepted_batch)
    assert response.status_code == 202, response.text
    retry = stack.post(known.duplicate)
    assert retry.status_code == 202, retry.text
    refused = stack.post(known.refused)
    assert refused.status_code == 422, refused.text
    codes = sorted(error["code"] for error in refused.json()["errors"])
    assert codes == ["time-in-future", "unit-unknown"], refused.text


async def publish_straight(settings: CommonSettings, event: dict[str, object]) -> None:
    producer = make_producer(settings)
    await producer.start()
    try:
        value = orjson.dumps(event)  # UNIT's, so keyed by PROVINCE (schemas/CONTRACT.md §5)
        await (await producer.send(settings.topic_documents, value, key=PROVINCE.encode()))
    finally:
        await producer.stop()


def check_scorecard(prometheus: Prometheus, unit_day: dict[str, tuple[int, int]]) -> None:
    """Each measured indicator's points this month and this year are its maximum × UNIT's
    rate, up to its threshold (every known dossier is of today; 2.1: 20 × 8 / 10 = 16;
    4.2: 1 of 2 digitised, full from 80 %: 4 × 50 / 80 = 2.5), its measured maximum
    is its maximum, and the dossier tiles add up to the on-time rate's counts."""
    for ind in (i for i in Scorecard.load().indicators if i.measured and i.kpi):
        num, den = unit_day[ind.kpi]
        for period in ("month", "year"):
            selector = f'{{unit="{UNIT}", indicator="{ind.id}"}}'
            points = f"unit_indicator:egov_scorecard_points:{period}{selector}"
            earned = ind.rule.points(ind.max_points, num, den)  # with its threshold, if any
            settles(prometheus, points, "", {"": float(earned or 0)})
            top = f"unit_indicator:egov_scorecard_max_points:{period}{selector}"
            settles(prometheus, top, "", {"": ind.max_points})
    num, den = unit_day["dossier_on_time"]

    def tiles(outcomes: str) -> str:
        selector = f'unit="{UNIT}", window="day", outcome=~"{outcomes}"'
        return f"sum(max by (outcome) (egov_dossiers{{{selector}}}))"

    settles(prometheus, tiles(".+"), "", {"": den})
    settles(prometheus, tiles("early|on_time"), "", {"": num})


def check_ingest_counters(prometheus: Prometheus, known: KnownEvents) -> None:
    # Every contract type is exported from 0 (IngestMetrics.prime), the known events'
    # with their counts.
    accepted = dict.fromkeys(Contract.load().event_types, 0.0)
    accepted |= {t: float(n) for t, n in known.accepted_by_type().items()}
    settles(
        prometheus, 'sum by (type) (egov_ingest_events_total{outcome="accepted"})', "type", accepted
    )
    settles(
        prometheus,
        'sum by (reason) (egov_ingest_events_total{outcome="rejected"})',
        "reason",
        {"unit-unknown": 1, "time-in-future": 1},
    )
    settles(
        prometheus, "sum by (status) (egov_ingest_requests_total)", "status", {"202": 2, "422": 1}
    )
    # Every request that got past authentication is sized; only accepted ones are produced.
    settles(prometheus, "sum(egov_ingest_batch_events_count)", "", {"": 3})
    settles(prometheus, "sum(egov_ingest_produce_duration_seconds_count)", "", {"": 2})


def check_worker_counters(prometheus: Prometheus, known: KnownEvents, documents: str) -> None:
    def by_type(name: str) -> str:
        return f"sum by (type) ({name}) > 0"  # types never seen stay at their exported 0

    processed = {t: float(n) for t, n in known.processed_by_type().items()}
    settles(prometheus, by_type("egov_events_processed_total"), "type", processed)
    late = {t: float(n) for t, n in known.late_by_type().items()}
    settles(prometheus, by_type("egov_events_late_total"), "type", late)
    settles(prometheus, by_type("egov_events_duplicate_total"), "type", {DOCUMENT: 1})
    settles(prometheus, by_type("egov_events_crosswalked_total"), "type", {DOCUMENT: 1})
    settles(prometheus, by_type("egov_events_too_late_total"), "type", {DOCUMENT: 1})
    settles(
        prometheus,
        "sum by (reason, topic) (egov_events_dead_lettered_total)",
        "reason, topic",
        {f"too-late,{documents}": 1},
    )


def check_alerts(stack: Stack) -> None:
    """KpiBelowTarget fires for UNIT; Prometheus sees as many firing as the service lists."""

    def firing_in_api() -> list[tuple[str, str, str]]:
        items = httpx.get(f"{stack.alerts}/v1/alerts", timeout=10).json()["items"]
        return [(a["condition"], a["kpi"], a["unit"]) for a in items if a["state"] == "firing"]

    def agree() -> str | None:
        firing = firing_in_api()
        if ("KpiBelowTarget", "document_signing", UNIT) not in firing:
            return f"not firing for {UNIT}: {firing}"
        scraped = series(stack.prometheus.query("sum by (state) (egov_alerts)"), "state")
        sent = series(
            stack.prometheus.query("sum by (sink, outcome) (egov_alerts_notifications_total) > 0"),
            "sink, outcome",
        )
        if scraped.get("firing") != len(firing) or set(sent) != {"kafka,sent"}:
            return f"API firing {firing}; Prometheus {scraped}, notifications {sent}"
        if sent["kafka,sent"] < len(firing):
            return f"{len(firing)} firing, {sent} notifications"
        return None

    eventually(agree)
    lag = stack.prometheus.query("max(egov_alerts_evaluation_lag_seconds)")
    assert len(lag) == 1 and 0 <= float(lag[0]["value"][1]) < 30, lag


def check_every_panel(prometheus: Prometheus) -> None:
    empty, unlabelled = [], []
    for q in panel_queries():
        where = f"{q.dashboard} / {q.panel} / {q.ref}"
        result = wait_for_value(prometheus, q.concrete)
        if not result:
            if where not in EXEMPT:
                empty.append(f"{where}: {q.concrete}")
            continue
        for fragment, label, values in PANEL_LABELS:
            if fragment in q.expr:
                seen = {s["metric"].get(label, "") for s in result}
                if not values <= seen:
                    unlabelled.append(f"{where}: {label} {sorted(seen)}, wanted {sorted(values)}")
    assert not empty, "panels without series:\n" + "\n".join(empty)
    assert not unlabelled, "panels missing series:\n" + "\n".join(unlabelled)
    for name, inner, regex in variable_queries():
        lines = query_result_lines(prometheus.query(substitute(inner)))
        values = {m["value"] for line in lines if (m := grafana_regex(regex).search(line))}
        assert PROVINCE in values or UNIT in values, (name, lines)


HEALTH_RULES = REPO / "deploy" / "prometheus" / "rules" / "egov-health.yml"
# Counters with labels that appear only once counted: the known events lose nothing.
NOT_YET_EXPORTED = {
    "egov_metrics_offsets_last_lost_timestamp_seconds": "no record was deleted uncounted",
    "egov_events_last_rekeyed_timestamp_seconds": "ingest keys every record by its province",
}


def health_selectors() -> set[tuple[str, str]]:
    """(metric, job) of every series the health alerts read, as their PromQL names them."""
    text = HEALTH_RULES.read_text("utf-8")
    found = set(re.findall(r'\b(egov_[a-z_]+)\{job="(\w+)"', text))
    for job, alternatives in re.findall(
        r'\{job="(\w+)",__name__=~"egov_events_\(([a-z_|]+)\)_total"\}', text
    ):
        found |= {(f"egov_events_{name}_total", job) for name in alternatives.split("|")}
    return found


def check_health_rules(prometheus: Prometheus, documents: str) -> None:
    """The pipeline's health alerts (deploy/prometheus/rules/egov-health.yml) read series
    the real services export, under the jobs they name; with the known events, the
    dead-lettered record fires EgovDeadLetters and nothing else but the Watchdog."""
    selectors = health_selectors()
    assert len(selectors) >= 10, selectors
    for metric, job in sorted(selectors):
        if metric in NOT_YET_EXPORTED:
            continue
        found = prometheus.query(f'count({metric}{{job="{job}"}})')
        assert found, f"no {job} series of {metric}, which a health alert reads"
    firing = prometheus.wait_for('ALERTS{alertname="EgovDeadLetters", alertstate="firing"}')
    assert [(a["metric"]["topic"], a["metric"]["reason"]) for a in firing] == [
        (documents, "too-late")
    ]
    alerts = {
        a["metric"]["alertname"]
        for a in prometheus.query('ALERTS{alertstate="firing", service!=""}')
    }
    assert alerts == {"EgovDeadLetters", "Watchdog"}, alerts


def wait_for_value(prometheus: Prometheus, expr: str, timeout_s: float = 5) -> list[dict[str, Any]]:
    """The series of ``expr`` once one has a number (a quantile of nothing is NaN)."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = prometheus.query(expr)
        if any(not math.isnan(float(s["value"][1])) for s in result):
            return result
        if time.monotonic() > deadline:
            return []
        time.sleep(0.5)


def series(result: list[dict[str, Any]], by: str) -> Series:
    """{label values joined by commas: value} of an instant query's result."""
    labels = [label.strip() for label in by.split(",") if label.strip()]
    return {
        ",".join(s["metric"].get(label, "") for label in labels): float(s["value"][1])
        for s in result
    }


def settles(prometheus: Prometheus, expr: str, by: str, expected: dict[str, float]) -> None:
    """``expr`` grouped ``by`` reaches ``expected`` (events arrive over a few scrapes)."""

    def differs() -> str | None:
        got = series(prometheus.query(expr), by)
        same = got.keys() == expected.keys() and all(
            got[k] == pytest.approx(v) for k, v in expected.items()
        )
        return None if same else f"{expr}: {got}, expected {expected}"

    eventually(differs)


def eventually(problem: Callable[[], str | None], timeout_s: float = 30) -> None:
    """Poll until ``problem()`` says nothing is wrong; fail with its last answer."""
    deadline = time.monotonic() + timeout_s
    while (last := problem()) is not None:
        if time.monotonic() > deadline:
            raise AssertionError(last)
        time.sleep(0.5)
