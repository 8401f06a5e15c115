"""A real Prometheus (Debian package) for the dashboard tests, and the panels' queries.

The repo's recording rules (every file of deploy/prometheus/rules/) are loaded as they
are, except that each group's evaluation interval is shortened to the test's 1 s so that
a test waits seconds, not half a minute.
"""

from __future__ import annotations

import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import yaml

from services.common.broker import free_port
from services.dashboards.render import build_all
from tests.binaries import require
from tests.integration.processes import stop

REPO = Path(__file__).resolve().parents[3]
RULES_DIR = REPO / "deploy" / "prometheus" / "rules"

# What the tests put in place of Grafana's template variables.
SUBSTITUTIONS = {
    "$__rate_interval": "1m",
    "$province": "19",
    "$unit": "01843",
    "$kpi": ".+",
    "$level": "commune",
    "$window": "month",
    "$silence": "3600",
}


@dataclass(frozen=True)
class PanelQuery:
    dashboard: str
    panel: str
    ref: str
    expr: str

    @property
    def concrete(self) -> str:
        return substitute(self.expr)


def substitute(expr: str) -> str:
    # Longest names first: $__rate_interval before anything shorter.
    for name in sorted(SUBSTITUTIONS, key=len, reverse=True):
        expr = expr.replace(name, SUBSTITUTIONS[name])
    return expr


def panel_queries() -> list[PanelQuery]:
    return [
        PanelQuery(name, panel["title"], target["refId"], target["expr"])
        for name, model in build_all().items()
        for panel in model["panels"]
        if panel["type"] != "row"
        for target in panel.get("targets", [])  # a text panel has none
    ]


def variable_queries() -> list[tuple[str, str, str]]:
    """(dashboard, variable, PromQL inside query_result(...), regex) of query variables."""
    found = []
    for name, model in build_all().items():
        for variable in model["templating"].get("list", []):
            if variable["type"] == "query":
                inner = re.fullmatch(r"query_result\((.*)\)", variable["query"], re.S)
                assert inner, variable["query"]
                found.append((f"{name}:{variable['name']}", inner.group(1), variable["regex"]))
    return found


def grafana_regex(regex: str) -> re.Pattern[str]:
    """Grafana's /.../ JavaScript regex with named groups, as a Python pattern."""
    return re.compile(regex.strip("/").replace("(?<", "(?P<"))


def query_result_lines(result: list[dict[str, Any]]) -> list[str]:
    """The text Grafana's query_result() matches its regex against, one line per series."""
    lines = []
    for series in result:
        labels = dict(series["metric"])
        name = labels.pop("__name__", "")
        inner = ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        lines.append(f"{name}{{{inner}}} {series['value'][1]} {series['value'][0]}")
    return lines


def write_config(directory: Path, targets: dict[str, list[str]]) -> Path:
    rule_files = []
    for source in sorted(RULES_DIR.glob("*.yml")):
        rules = yaml.safe_load(source.read_text("utf-8"))
        for group in rules["groups"]:
            group["interval"] = "1s"
        (directory / source.name).write_text(yaml.safe_dump(rules, allow_unicode=True), "utf-8")
        rule_files.append(source.name)
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": rule_files,
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": hosts}]}
            for job, hosts in targets.items()
        ],
    }
    path = directory / "prometheus.yml"
    path.write_text(yaml.safe_dump(config), "utf-8")
    return path


@contextmanager
def running_prometheus(directory: Path, targets: dict[str, list[str]]) -> Iterator[Prometheus]:
    with prometheus_process(directory, targets) as (prometheus, _):
        yield prometheus


@contextmanager
def prometheus_process(
    directory: Path, targets: dict[str, list[str]]
) -> Iterator[tuple[Prometheus, subprocess.Popen[bytes]]]:
    """``running_prometheus``, with its process (for a test to pause it: SIGSTOP)."""
    binary = require("prometheus")
    port = free_port()
    config = write_config(directory, targets)
    log = directory / "prometheus.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={directory / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--web.enable-lifecycle",
            ],
            stdout=out,
            stderr=out,
        )
    prometheus = Prometheus(f"http://127.0.0.1:{port}", log)
    try:
        prometheus.wait_ready(proc)
        yield prometheus, proc
    finally:
        proc.send_signal(signal.SIGCONT)  # a paused one hears the SIGTERM
        stop(proc)


@dataclass
class Prometheus:
    url: str
    log: Path

    def wait_ready(self, proc: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise AssertionError(f"prometheus exited:\n{self.log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/-/ready", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"prometheus not ready:\n{self.log.read_text()[-3000:]}")

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Instant query at now; a PromQL error fails with Prometheus's own message."""
        answer = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=10).json()
        assert answer["status"] == "success", f"{expr}\n{answer.get('error')}"
        result: list[dict[str, Any]] = answer["data"]["result"]
        return result

    def wait_for(self, expr: str, timeout_s: float = 30) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout_s
        while True:
            result = self.query(expr)
            if result or time.monotonic() > deadline:
                return result
            time.sleep(0.5)

    def rule_names(self) -> set[str]:
        groups = httpx.get(f"{self.url}/api/v1/rules", timeout=10).json()["data"]["groups"]
        return {rule["name"] for group in groups for rule in group["rules"]}

    def target_health(self) -> dict[str, str]:
        answer = httpx.get(f"{self.url}/api/v1/targets", timeout=10).json()
        return {t["labels"]["job"]: t["health"] for t in answer["data"]["activeTargets"]}


class Exposition:
    """A metrics worker's /metrics stood in for by a server answering ``body()`` (called
    at every scrape, so a test may change what it says)."""

    def __init__(self, body: Callable[[], bytes]) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.end_headers()
                self.wfile.write(body())

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextmanager
def scraping(directory: Path, body: bytes, rules: tuple[str, ...]) -> Iterator[Prometheus]:
    """A real Prometheus scraping a fixed exposition, once each of ``rules`` recorded."""
    exposition = Exposition(lambda: body)
    try:
        with running_prometheus(directory, {"egov-metrics": [exposition.target]}) as running:
            for rule in rules:
                assert running.wait_for(rule), f"{rule} never recorded"
            yield running
    finally:
        exposition.close()


def figure_lines(kpi: str, unit: str, windows: tuple[str, ...], num: int, den: int) -> list[str]:
    """A worker's exposition of one unit's KPI figure in each of ``windows``."""
    lines = []
    for window in windows:
        at = f'kpi="{kpi}",unit="{unit}",window="{window}"'
        lines.append(f"egov_kpi_ratio{{{at}}} {num / den!r}")
        lines.append(f"egov_kpi_numerator{{{at}}} {num}")
        lines.append(f"egov_kpi_denominator{{{at}}} {den}")
    return lines
