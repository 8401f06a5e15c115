"""Every alert egov-pulse raises has a runbook section, and its annotation leads there.

The alerts service's alertnames come from services/alerts/conditions.py; Prometheus's
health alerts from deploy/prometheus/rules/egov-health.yml (promtool checks its
expressions: tests/integration/test_deploy.py). A section is a ``### Name`` heading of
docs/runbooks.md, whose anchor is the name in lower case.
"""

from __future__ import annotations

import re
from pathlib import Path

from services.alerts import conditions
from services.alerts.runbooks import REPO_PATH, anchor, render, runbook_url

REPO = Path(__file__).resolve().parents[2]
HEALTH_RULES = REPO / "deploy" / "prometheus" / "rules" / "egov-health.yml"
SERVICE_ALERTS = (conditions.BELOW, conditions.BURN, conditions.SILENT, conditions.REJECTIONS)


def sections() -> set[str]:
    """The anchors of docs/runbooks.md's alert sections."""
    text = (REPO / REPO_PATH).read_text("utf-8")
    return {name.lower() for name in re.findall(r"^### (\w+)$", text, re.MULTILINE)}


def health_rules() -> dict[str, str]:
    """alertname -> its runbook annotation, in the order of the rule file."""
    text = HEALTH_RULES.read_text("utf-8")
    names = re.findall(r"^\s+- alert: (\w+)$", text, re.MULTILINE)
    runbooks = re.findall(r"^\s+runbook: (\S+)$", text, re.MULTILINE)
    assert len(names) == len(runbooks), "every health alert has one runbook annotation"
    return dict(zip(names, runbooks, strict=True))


def test_every_service_alert_links_to_its_section_of_the_served_page() -> None:
    page = render((REPO / REPO_PATH).read_text("utf-8"))
    for name in SERVICE_ALERTS:
        base, section = runbook_url("http://alerts:8082/runbooks", name).split("#")
        assert base == "http://alerts:8082/runbooks" and section in sections(), name
        assert f'<h3 id="{section}">{name}</h3>' in page, name


def test_the_page_gives_every_section_its_anchor_and_escapes_raw_html() -> None:
    page = render((REPO / REPO_PATH).read_text("utf-8"))
    assert {s for s in sections() if f'id="{s}"' in page} == sections()
    assert "<script>" not in render("### X\n\n<script>alert(1)</script>\n")


def test_every_health_alert_links_to_its_own_section() -> None:
    rules = health_rules()
    assert {"EgovServiceDown", "EgovAcceptedNotCounted", "Watchdog"} <= set(rules)
    for name, link in rules.items():
        assert link == f"{REPO_PATH}#{anchor(name)}", f"{name}: {link}"
        assert name.lower() in sections(), name


def test_no_section_is_left_for_an_alert_that_does_not_exist() -> None:
    assert sections() == {n.lower() for n in [*SERVICE_ALERTS, *health_rules()]}


async def test_the_alerts_service_serves_the_page_its_links_open() -> None:
    import httpx

    from services.alerts.app import create_app
    from services.alerts.service import AlertsService
    from services.alerts.settings import AlertsSettings

    service = AlertsService(AlertsSettings())
    app = create_app(service, run_loops=False)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://alerts") as client:
        answer = await client.get("/runbooks")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/html")
    assert '<h3 id="kpibelowtarget">KpiBelowTarget</h3>' in answer.text
    assert '<h3 id="egovservicedown">EgovServiceDown</h3>' in answer.text
