"""`make up`'s Prometheus and Alertmanager files (services/monitoring.py): production's
rules, routes and inhibitions, local addresses only; checked by promtool and amtool, the
sink's notifications as on-call would read them."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from services import devstack
from services.monitoring import (
    ALERTMANAGER_CONFIG,
    PROMETHEUS_CONFIG,
    RULES_DIR,
    ConfigError,
    MonitoringPorts,
    alertmanager_config,
    notification_sink,
    prometheus_config,
    write_configs,
)
from tests.binaries import require

PORTS = MonitoringPorts(
    prometheus=19090,
    alertmanager=19093,
    notifications=19097,
    services={"ingest": 18080, "metrics": 18081, "alerts": 18082},
)
SINK = "http://127.0.0.1:19097"


def _production(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(path.read_text("utf-8"))
    return loaded


def test_every_production_job_is_scraped_at_its_local_port() -> None:
    config = prometheus_config(PORTS)
    targets = {s["job_name"]: s["static_configs"][0]["targets"] for s in config["scrape_configs"]}
    production = [s["job_name"] for s in _production(PROMETHEUS_CONFIG)["scrape_configs"]]
    assert list(targets) == production  # every job, under its own name
    assert targets == {
        "prometheus": ["127.0.0.1:19090"],
        "ingest": ["127.0.0.1:18080"],
        "metrics": ["127.0.0.1:18081"],
        "alerts": ["127.0.0.1:18082"],
        "alertmanager": ["127.0.0.1:19093"],
    }
    managers = config["alerting"]["alertmanagers"]
    assert managers == [{"static_configs": [{"targets": ["127.0.0.1:19093"]}]}]
    # Everything else as production has it: intervals, external labels.
    assert config["global"] == _production(PROMETHEUS_CONFIG)["global"]


def test_the_rules_are_production_files_where_they_are() -> None:
    (pattern,) = prometheus_config(PORTS)["rule_files"]
    assert Path(pattern).parent == RULES_DIR
    assert sorted(Path("/").glob(pattern.lstrip("/"))) == sorted(RULES_DIR.glob("*.yml"))


def test_a_production_job_without_a_local_service_is_an_error() -> None:
    ports = MonitoringPorts(1, 2, 3, {"ingest": 4, "metrics": 5})  # no alerts service
    try:
        prometheus_config(ports)
    except ConfigError as error:
        assert "'alerts'" in str(error)
    else:
        raise AssertionError("a job with no target was written")


def test_alertmanager_keeps_routes_and_inhibitions_and_sends_each_receiver_to_the_sink() -> None:
    production = _production(ALERTMANAGER_CONFIG)
    config = alertmanager_config(SINK)
    assert config["route"] == production["route"]
    assert config["inhibit_rules"] == production["inhibit_rules"]
    assert [r["name"] for r in config["receivers"]] == [r["name"] for r in production["receivers"]]
    for receiver in config["receivers"]:
        if receiver["name"] == "null":
            assert receiver == {"name": "null"}
            continue
        (hook,) = receiver["webhook_configs"]
        assert hook["url"] == f"{SINK}/{receiver['name']}"
    watchdog = next(r for r in config["receivers"] if r["name"] == "watchdog")
    assert watchdog["webhook_configs"][0]["send_resolved"] is False  # as production
    oncall = next(r for r in config["receivers"] if r["name"] == "oncall")
    assert oncall["webhook_configs"][0]["send_resolved"] is True


def test_promtool_and_amtool_accept_the_written_files(tmp_path: Path) -> None:
    prometheus, alertmanager = write_configs(tmp_path, PORTS)
    checked = subprocess.run(
        [require("promtool"), "check", "config", str(prometheus)], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS" in checked.stdout + checked.stderr
    checked = subprocess.run(
        [require("amtool"), "check-config", str(alertmanager)], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    # The routes as production routes them: Thái Nguyên's pages to its own rota.
    routed = subprocess.run(
        [require("amtool"), "config", "routes", "test", f"--config.file={alertmanager}",
         "alertname=KpiBelowTarget", "severity=critical", "province=19"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert routed.stdout.strip() == "oncall-thai-nguyen", routed.stdout + routed.stderr


def _client(log: Path, said: list[str]) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=notification_sink(log, said.append))
    return httpx.AsyncClient(transport=transport, base_url="http://sink")


def _notification(status: str = "firing") -> dict[str, Any]:
    return {
        "version": "4",
        "status": status,
        "receiver": "oncall-thai-nguyen",
        "alerts": [
            {
                "status": status,
                "labels": {
                    "alertname": "KpiBelowTarget",
                    "severity": "critical",
                    "province": "19",
                    "unit": "01843",
                    "kpi": "document_signing",
                },
                "annotations": {"summary_en": "Digital-signing rate\n  is 91.00% (91 / 100)"},
            }
        ],
    }


async def test_the_sink_logs_each_notification_whole_and_prints_one_line_per_alert(
    tmp_path: Path,
) -> None:
    log, said = tmp_path / "notifications.jsonl", list[str]()
    client = _client(log, said)
    assert (await client.post("/oncall-thai-nguyen", json=_notification())).status_code == 200
    assert (
        await client.post("/oncall-thai-nguyen", json=_notification("resolved"))
    ).status_code == 200
    lines = [json.loads(line) for line in log.read_text("utf-8").splitlines()]
    assert [line["notification"] for line in lines] == [_notification(), _notification("resolved")]
    assert {line["receiver"] for line in lines} == {"oncall-thai-nguyen"}
    assert said == [
        "notification to oncall-thai-nguyen: FIRING KpiBelowTarget [critical] province=19"
        " unit=01843 kpi=document_signing - Digital-signing rate is 91.00% (91 / 100)",
        "notification to oncall-thai-nguyen: RESOLVED KpiBelowTarget [critical] province=19"
        " unit=01843 kpi=document_signing - Digital-signing rate is 91.00% (91 / 100)",
    ]


async def test_the_watchdog_is_logged_not_printed(tmp_path: Path) -> None:
    log, said = tmp_path / "notifications.jsonl", list[str]()
    client = _client(log, said)
    assert (await client.post("/watchdog", json=_notification())).status_code == 200
    assert said == []
    assert json.loads(log.read_text("utf-8"))["receiver"] == "watchdog"


async def test_what_is_not_a_notification_is_refused_and_nothing_logged(tmp_path: Path) -> None:
    log, said = tmp_path / "notifications.jsonl", list[str]()
    client = _client(log, said)
    refused = await client.post("/oncall", content=b"{not json")
    assert refused.status_code == 400 and refused.json() == {"error": "not JSON"}
    assert (await client.post("/oncall", json=[1, 2])).status_code == 400
    assert not log.exists() and said == []
    # A good one after them is still taken.
    assert (await client.post("/oncall", json=_notification())).status_code == 200
    assert len(log.read_text("utf-8").splitlines()) == 1


def test_the_alerts_service_notifies_the_stacks_alertmanager(
    monkeypatch: Any,
) -> None:
    monkeypatch.delenv("EGOV_ALERTMANAGER_URL", raising=False)
    monkeypatch.setenv("EGOV_RECORD_SIGNING_KEY", "00" * 32)
    options = devstack.StackOptions(monitoring_ports={"prometheus": 1, "alertmanager": 2,
                                                      "notifications": 3})  # fmt: skip
    env = devstack._child_env(options, "127.0.0.1:9092", "postgresql://x@127.0.0.1/x")
    assert env["EGOV_ALERTMANAGER_URL"] == "http://127.0.0.1:2"
    # The operator's own Alertmanager wins; without monitoring, none is named.
    monkeypatch.setenv("EGOV_ALERTMANAGER_URL", "http://am.example:9093")
    env = devstack._child_env(options, "127.0.0.1:9092", "postgresql://x@127.0.0.1/x")
    assert env["EGOV_ALERTMANAGER_URL"] == "http://am.example:9093"
    monkeypatch.delenv("EGOV_ALERTMANAGER_URL")
    off = devstack.StackOptions(monitoring=False)
    env = devstack._child_env(off, "127.0.0.1:9092", "postgresql://x@127.0.0.1/x")
    assert "EGOV_ALERTMANAGER_URL" not in env


def test_the_monitoring_ports_are_checked_free_before_the_start() -> None:
    ports = devstack._ports(devstack.StackOptions())
    assert {ports["prometheus"], ports["alertmanager"], ports["notifications"]} == {
        9190,
        9193,
        9197,
    }
    assert "prometheus" not in devstack._ports(devstack.StackOptions(monitoring=False))


def test_make_ups_health_rules_link_to_the_local_runbooks_page(tmp_path: Path) -> None:
    from services.monitoring import MonitoringPorts, write_configs

    ports = MonitoringPorts(9190, 9193, 9197, {"ingest": 8080, "metrics": 8081, "alerts": 8082})
    prometheus, _ = write_configs(tmp_path, ports)
    config = yaml.safe_load(prometheus.read_text("utf-8"))
    assert config["rule_files"] == [str(tmp_path / "rules" / "*.yml")]
    health = tmp_path / "rules" / "egov-health.yml"
    links = re.findall(r"runbook: (\S+)", health.read_text("utf-8"))
    assert links and all(link.startswith("http://127.0.0.1:8082/runbooks#") for link in links), (
        links
    )


def test_make_up_shortens_the_alert_timings_only_where_none_is_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from services.devstack import MAKE_UP_ALERT_TIMINGS, StackOptions, _child_env

    monkeypatch.setenv("EGOV_ALERT_FOR_S", "0")
    monkeypatch.delenv("EGOV_ALERT_BURN_FOR_S", raising=False)
    env = _child_env(StackOptions(), "127.0.0.1:9092", "postgresql://x/y")
    assert env["EGOV_ALERT_FOR_S"] == "0"
    assert env["EGOV_ALERT_BURN_FOR_S"] == MAKE_UP_ALERT_TIMINGS["EGOV_ALERT_BURN_FOR_S"]
