"""`make up`'s Prometheus and Alertmanager: production's configuration, local addresses.

deploy/prometheus/prometheus.yml and deploy/alertmanager/alertmanager.yml are what
production runs (docker-compose.yml mounts them). `make up` runs the same recording and
health rules, the same routes, groupings and inhibitions, with two changes only: each
address points at the local port of its service, and each receiver's webhook at a sink
inside `up` that prints what on-call would have been sent (and logs it whole), since the
production webhooks are placeholders that reach nobody.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from copy import deepcopy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
import yaml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from services.alerts.runbooks import REPO_PATH, RUNBOOKS_PATH
from services.common.paths import REPO_ROOT

DEPLOY = REPO_ROOT / "deploy"
PROMETHEUS_CONFIG = DEPLOY / "prometheus" / "prometheus.yml"
RULES_DIR = DEPLOY / "prometheus" / "rules"
ALERTMANAGER_CONFIG = DEPLOY / "alertmanager" / "alertmanager.yml"

QUIET_RECEIVERS = frozenset({"watchdog"})
"""Logged, not printed: the dead man's switch repeats every minute by design."""


class ConfigError(ValueError):
    """The production file names something `make up` has no local counterpart for."""


@dataclass(frozen=True)
class MonitoringPorts:
    prometheus: int
    alertmanager: int
    notifications: int
    services: dict[str, int]
    """Each egov-pulse service's HTTP port (ingest, metrics, alerts), by job name."""

    def target(self, job: str) -> str:
        ports = {
            "prometheus": self.prometheus,
            "alertmanager": self.alertmanager,
            **self.services,
        }
        if job not in ports:
            raise ConfigError(f"{PROMETHEUS_CONFIG}: job {job!r} has no service in `make up`")
        return f"127.0.0.1:{ports[job]}"


def prometheus_config(ports: MonitoringPorts, rules_dir: Path = RULES_DIR) -> dict[str, Any]:
    """Production's prometheus.yml with local targets: every job keeps its name (the
    rules and dashboards select on it) and is scraped at its one local address. The rule
    files are read from ``rules_dir`` (:func:`write_rules`' copies)."""
    config: dict[str, Any] = yaml.safe_load(PROMETHEUS_CONFIG.read_text("utf-8"))
    # Relative rule paths resolve against the config file, which `make up` writes in var/.
    config["rule_files"] = [str(rules_dir / Path(pattern).name) for pattern in config["rule_files"]]
    for manager in config["alerting"]["alertmanagers"]:
        manager["static_configs"] = [{"targets": [ports.target("alertmanager")]}]
    for scrape in config["scrape_configs"]:
        scrape["static_configs"] = [{"targets": [ports.target(scrape["job_name"])]}]
    return config


def alertmanager_config(sink_url: str) -> dict[str, Any]:
    """Production's alertmanager.yml with every notifying receiver sent to the sink at
    ``{sink_url}/{receiver}``; routes, timings and inhibitions are kept as they are."""
    config: dict[str, Any] = yaml.safe_load(ALERTMANAGER_CONFIG.read_text("utf-8"))
    receivers = []
    for receiver in config["receivers"]:
        integrations = [key for key in receiver if key.endswith("_configs")]
        if not integrations:
            receivers.append(receiver)  # "null": shown in the UI, nobody notified
            continue
        send_resolved = any(
            item.get("send_resolved", True) for key in integrations for item in receiver[key]
        )
        receivers.append(
            {
                "name": receiver["name"],
                "webhook_configs": [
                    {"url": f"{sink_url}/{receiver['name']}", "send_resolved": send_resolved}
                ],
            }
        )
    config = deepcopy(config)
    config["receivers"] = receivers
    return config


def write_rules(directory: Path, ports: MonitoringPorts) -> Path:
    """Production's rule files with each ``runbook`` link made the local alerts
    service's page (deploy/ names the repository's file, which a site replaces by its
    own copy's URL): on-call's link opens. Copied as text, comments and all."""
    rules = directory / "rules"
    rules.mkdir(parents=True, exist_ok=True)
    page = f"http://127.0.0.1:{ports.services['alerts']}{RUNBOOKS_PATH}"
    for source in sorted(RULES_DIR.glob("*.yml")):
        text = source.read_text("utf-8").replace(f"runbook: {REPO_PATH}#", f"runbook: {page}#")
        (rules / source.name).write_text(text, "utf-8")
    return rules


def write_configs(directory: Path, ports: MonitoringPorts) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    prometheus = directory / "prometheus.yml"
    alertmanager = directory / "alertmanager.yml"
    sink = f"http://127.0.0.1:{ports.notifications}"
    rules = write_rules(directory, ports)
    for path, config in (
        (prometheus, prometheus_config(ports, rules)),
        (alertmanager, alertmanager_config(sink)),
    ):
        header = f"# Written by `make up` from {path.name} in deploy/; edits are overwritten.\n"
        path.write_text(header + yaml.safe_dump(config, allow_unicode=True), "utf-8")
    return prometheus, alertmanager


def monitoring_commands(var: Path, ports: MonitoringPorts) -> dict[str, list[str]]:
    """The two servers' command lines; their data is kept in ``var`` between runs."""
    prometheus, alertmanager = write_configs(var / "monitoring", ports)
    return {
        "prometheus": [
            "prometheus",
            f"--config.file={prometheus}",
            f"--storage.tsdb.path={var / 'prometheus'}",
            "--storage.tsdb.retention.time=15d",
            f"--web.listen-address=127.0.0.1:{ports.prometheus}",
            # The address links are made of (each alert's generatorURL): by default the
            # host's name, which Debian resolves to 127.0.1.1 where nothing listens.
            f"--web.external-url=http://127.0.0.1:{ports.prometheus}/",
        ],
        "alertmanager": [
            "prometheus-alertmanager",
            f"--config.file={alertmanager}",
            f"--storage.path={var / 'alertmanager'}",
            f"--web.listen-address=127.0.0.1:{ports.alertmanager}",
            f"--web.external-url=http://127.0.0.1:{ports.alertmanager}/",
            # One instance: no gossip port to collide with another Alertmanager.
            "--cluster.listen-address=",
        ],
    }


def summary_line(receiver: str, notification: dict[str, Any]) -> str:
    """One line per alert of an Alertmanager webhook notification, as on-call reads it."""
    lines = []
    for alert in notification.get("alerts", []):
        labels = alert.get("labels", {})
        notes = alert.get("annotations", {})
        shown = ("province", "unit", "kpi", "service")
        where = " ".join(f"{key}={labels[key]}" for key in shown if key in labels)
        text = notes.get("summary_en") or notes.get("summary") or notes.get("summary_vi") or ""
        lines.append(
            f"notification to {receiver}: {alert.get('status', '?').upper()}"
            f" {labels.get('alertname', '?')} [{labels.get('severity', '?')}] {where}"
            f"{' - ' + ' '.join(text.split()) if text else ''}"
        )
    return "\n".join(lines)


def notification_sink(log: Path, say: Callable[[str], None] = print) -> Starlette:
    """The receivers' webhook in `make up`: each notification appended to ``log`` as one
    JSON line (receiver, time, Alertmanager's payload), and summed up on the console."""

    async def receive(request: Request) -> Response:
        receiver = request.path_params["receiver"]
        try:
            notification = json.loads(await request.body())
        except ValueError:
            return JSONResponse({"error": "not JSON"}, status_code=400)
        if not isinstance(notification, dict):
            return JSONResponse({"error": "not an Alertmanager notification"}, status_code=400)
        line = {"receiver": receiver, "received_at": time.time(), "notification": notification}
        with log.open("a", encoding="utf-8") as out:
            out.write(json.dumps(line, ensure_ascii=False) + "\n")
        if receiver not in QUIET_RECEIVERS:
            say(summary_line(receiver, notification))
        return Response(status_code=200)

    async def ready(_: Request) -> Response:
        return Response("ok")

    return Starlette(
        routes=[
            Route("/-/ready", ready),
            Route("/{receiver}", receive, methods=["POST"]),
        ]
    )


class SinkServer:
    """The sink served from a thread of `up`: uvicorn installs signal handlers only in the
    main thread, where they would take Ctrl-C from the stack's own orderly stop."""

    def __init__(self, port: int, log: Path, say: Callable[[str], None] = print) -> None:
        config = uvicorn.Config(
            notification_sink(log, say),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            access_log=False,
            lifespan="off",
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="sink", daemon=True)

    def start(self, timeout_s: float = 10.0) -> None:
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise OSError(f"the notification sink did not start on {self._server.config.port}")
            time.sleep(0.05)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(10)
