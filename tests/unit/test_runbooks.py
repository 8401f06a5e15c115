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
from services.alerts.alertmanager import RUNBOOKS, runbook

REPO = Path(__file__).resolve().parents[2]
HEALTH_RULES = REPO / "deploy" / "prometheus" / "rules" / "egov-health.yml"
SERVICE_ALERTS = (conditions.BELOW, conditions.BURN, conditions.SILENT, conditions.REJECTIONS)


def sections() -> set[str]:
    """The anchors of docs/runbooks.md's alert sections."""
    text = (REPO / RUNBOOKS).read_text("utf-8")
    return {name.lower() for name in re.findall(r"^### (\w+)$", text, re.MULTILINE)}


def health_rules() -> dict[str, str]:
    """alertname -> its runbook annotation, in the order of the rule file."""
    text = HEALTH_RULES.read_text("utf-8")
    names = re.findall(r"^\s+- alert: (\w+)$", text, re.MULTILINE)
    runbooks = re.findall(r"^\s+runbook: (\S+)$", text, re.MULTILINE)
    assert len(names) == len(runbooks), "every health alert has one runbook annotation"
    return dict(zip(names, runbooks, strict=True))


def test_every_service_alert_has_its_runbook_section() -> None:
    for name in SERVICE_ALERTS:
        path, anchor = runbook(name).split("#")
        assert path == RUNBOOKS and anchor in sections(), name


def test_every_health_alert_links_to_its_own_section() -> None:
    rules = health_rules()
    assert {"EgovServiceDown", "EgovAcceptedNotCounted", "Watchdog"} <= set(rules)
    for name, link in rules.items():
        assert link == runbook(name), f"{name}: {link}"
        assert name.lower() in sections(), name


def test_no_section_is_left_for_an_alert_that_does_not_exist() -> None:
    assert sections() == {n.lower() for n in [*SERVICE_ALERTS, *health_rules()]}
