"""Every panel's PromQL runs against a real Prometheus loaded with the repo's recording rules.

The first test needs only Prometheus: every query and variable parses and evaluates, and
every recording rule a dashboard names is one that Prometheus loaded. The second scrapes a
running metrics worker fed with known events and checks each panel's series and the KPI
figures against what the catalogue says those events add up to.
"""

from __future__ import annotations

import asyncio
import copy
import re
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from services.common.broker import free_port
from services.common.contract import Contract
from services.common.events import CloudEvent, parse_time
from services.common.kafka import ensure_topics
from services.common.kpis import KpiCatalogue
from services.common.settings import CommonSettings
from tests.integration.dashboards.prometheus import (
    Prometheus,
    grafana_regex,
    panel_queries,
    query_result_lines,
    running_prometheus,
    substitute,
    variable_queries,
)
from tests.integration.processes import running_service, service_env

pytestmark = pytest.mark.integration

VIETNAM = ZoneInfo("Asia/Ho_Chi_Minh")

RECORDED = re.compile(r"\b(?:unit|province|national):egov_[a-z_]+:[a-z0-9]+\b")

# Phường Bắc Kạn (01843) of Thái Nguyên (19) in today's two-level hierarchy; Phường Đức
# Xuân (01840), also of 19, sent one event three hours ago and nothing since.
UNIT, PROVINCE, SILENT_UNIT = "01843", "19", "01840"
OTHER_TYPES = (
    "vn.egov.dossier.received",
    "vn.egov.dossier.resolved",
    "vn.egov.dossier.paid",
    "vn.egov.meeting.held",
)

# (electronic, signed, classified) of the known documents: 6 count for the signing rate
# (electronic, not classified), 4 of them signed; 9 count for the electronic rate.
DOCUMENTS = [
    (True, True, False),
    (True, True, False),
    (True, True, False),
    (True, True, False),
    (True, False, False),
    (True, False, False),
    (False, False, False),
    (False, False, False),
    (False, False, False),
    (True, True, True),
]


@pytest.fixture
def bare_prometheus(tmp_path: Path) -> Iterator[Prometheus]:
    with running_prometheus(tmp_path, {"prometheus": []}) as prometheus:
        yield prometheus


def test_every_query_parses_and_every_recording_rule_it_names_is_loaded(
    bare_prometheus: Prometheus,
) -> None:
    deadline = time.monotonic() + 15
    loaded = bare_prometheus.rule_names()
    while not loaded and time.monotonic() < deadline:
        time.sleep(0.2)
        loaded = bare_prometheus.rule_names()
    queries = panel_queries()
    assert len(queries) > 40
    for q in queries:
        bare_prometheus.query(q.concrete)  # fails with Prometheus's parse error
        named = set(RECORDED.findall(q.expr))
        assert named <= loaded, f"{q.dashboard} / {q.panel}: no rule records {named - loaded}"
    for _, inner, regex in variable_queries():
        bare_prometheus.query(substitute(inner))
        grafana_regex(regex)


def test_the_variable_regex_picks_name_and_code_from_query_result() -> None:
    line = query_result_lines(
        [
            {
                "metric": {
                    "__name__": "unit:egov_unit_province:info",
                    "level": "commune",
                    "name": "Phường Bắc Kạn",
                    "parent": "19",
                    "province": "19",
                    "unit": "01843",
                },
                "value": [1, "1"],
            }
        ]
    )[0]
    for _, _, regex in variable_queries():
        match = grafana_regex(regex).search(line)
        assert match and match["text"] == "Phường Bắc Kạn" and match["value"] == "01843"


def document(electronic: bool, signed: bool, classified: bool, when: datetime) -> dict[str, object]:
    return {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": "https://vpdt.thainguyen.gov.vn/test-dashboards",
        "type": "vn.egov.document.issued",
        "time": when.isoformat(),
        "unit": UNIT,
        "datacontenttype": "application/json",
        "data": {
            "document_id": uuid.uuid4().hex[:12],
            "electronic": electronic,
            "signed": signed,
            "classified": classified,
        },
    }


def contract_examples(when: datetime) -> list[dict[str, object]]:
    """The contract's valid examples of the other families, moved to UNIT and ``when``."""
    contract = Contract.load()
    events = []
    for event_type in OTHER_TYPES:
        for _, example in contract.examples(event_type, "valid"):
            event = copy.deepcopy(example)
            event.update(id=str(uuid.uuid4()), unit=UNIT, time=when.isoformat())
            events.append(event)
    return events


def topic_of(settings: CommonSettings, event_type: str) -> str:
    family = event_type.split(".")[2]
    return {
        "document": settings.topic_documents,
        "dossier": settings.topic_dossiers,
        "meeting": settings.topic_meetings,
    }[family]


def expected_figures(events: list[dict[str, object]]) -> dict[str, tuple[int, int]]:
    catalogue = KpiCatalogue.load()
    figures: dict[str, tuple[int, int]] = {}
    for raw in events:
        event = CloudEvent.from_dict(raw)
        for kpi in catalogue.for_type(event.type):
            num, den = kpi.count(event)
            old = figures.get(kpi.id, (0, 0))
            figures[kpi.id] = (old[0] + num, old[1] + den)
    return figures


async def publish(settings: CommonSettings, events: list[dict[str, object]]) -> None:
    """One CloudEvent per Kafka message, keyed by province, as integrators may publish."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all")
    await producer.start()
    try:
        for event in events:
            topic = topic_of(settings, str(event["type"]))
            await producer.send_and_wait(topic, orjson.dumps(event), key=PROVINCE.encode())
    finally:
        await producer.stop()


def settles_at(prometheus: Prometheus, expr: str, expected: float, timeout_s: float = 30) -> None:
    """The single series of ``expr`` reaches ``expected`` (events arrive over a few scrapes)."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = prometheus.query(expr)
        values = [float(series["value"][1]) for series in result]
        if values == pytest.approx([expected]):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{expr}: {values}, expected [{expected}]")
        time.sleep(0.5)


def today_in_vietnam(events: list[dict[str, object]]) -> list[dict[str, object]]:
    today = datetime.now(VIETNAM).date()
    return [e for e in events if parse_time(str(e["time"])).astimezone(VIETNAM).date() == today]


def test_panels_return_the_figures_of_known_events(
    common_settings: CommonSettings, database_url: str, tmp_path: Path
) -> None:
    asyncio.run(ensure_topics(common_settings))
    env = service_env(common_settings, database_url)
    metrics_port = free_port()
    env["EGOV_METRICS_WEB_PORT"] = str(metrics_port)
    env["EGOV_METRICS_APP_ID"] = f"dash-{uuid.uuid4().hex[:8]}"
    env["EGOV_METRICS_DATA_DIR"] = str(tmp_path / "metrics")
    now = datetime.now(UTC)
    events = [document(*flags, now - timedelta(minutes=i)) for i, flags in enumerate(DOCUMENTS)]
    events += contract_examples(now)
    expected = expected_figures(events)
    assert set(expected) == set(KpiCatalogue.load().ids) and all(d for _, d in expected.values())
    # A unit silent for 90 minutes: the wall's silent-units table ($silence = 1 h) lists it.
    silent = document(True, True, False, now - timedelta(minutes=90))
    province_day = expected_figures(today_in_vietnam([*events, silent]))
    events.append({**silent, "unit": SILENT_UNIT})
    with (
        running_service(["metrics"], env, metrics_port, tmp_path / "metrics.log", "/metrics"),
        running_prometheus(tmp_path, {"metrics": [f"127.0.0.1:{metrics_port}"]}) as prometheus,
    ):
        asyncio.run(publish(common_settings, events))
        unit_day = expected_figures(today_in_vietnam(events[:-1]))
        for kpi, (num, den) in unit_day.items():
            settles_at(
                prometheus, f'egov_kpi_ratio{{unit="{UNIT}", window="day", kpi="{kpi}"}}', num / den
            )
        for kpi, (num, den) in province_day.items():
            selector = f'{{unit="{PROVINCE}", kpi="{kpi}"}}'
            settles_at(prometheus, f"province:egov_kpi_ratio:day{selector}", num / den)
            settles_at(prometheus, f"province:egov_kpi_denominator:day{selector}", den)
        assert prometheus.target_health() == {"metrics": "up"}
        check_every_panel(prometheus)


# Panels whose series no process of this test exports (ingest, alerts), or that are
# empty by design with these events (nothing late, duplicated, crosswalked or
# dead-lettered): these must still parse and evaluate.
NOT_FED = re.compile(
    r"egov_ingest_|egov_alert|up\{|late_total|duplicate_total|crosswalked|dead_lettered"
)


def check_every_panel(prometheus: Prometheus) -> None:
    empty = []
    for q in panel_queries():
        if NOT_FED.search(q.expr):
            prometheus.query(q.concrete)
            continue
        if not prometheus.wait_for(q.concrete, timeout_s=3):
            empty.append(f"{q.dashboard} / {q.panel} / {q.ref}: {q.concrete}")
    assert not empty, "panels without series:\n" + "\n".join(empty)
    for name, inner, regex in variable_queries():
        lines = query_result_lines(prometheus.query(substitute(inner)))
        values = {m["value"] for line in lines if (m := grafana_regex(regex).search(line))}
        assert PROVINCE in values or UNIT in values, (name, lines)
