"""`make up` itself, end to end: `egov-pulse up` as the Makefile runs it (embedded tansu,
its own PostgreSQL, Prometheus and Alertmanager), on free ports and a var/ of its own.

It must come up with every service ready, Prometheus scraping each of them under its
production job with production's rules loaded, Prometheus's alerts reaching Alertmanager
and Alertmanager's notifications reaching the sink that stands for on-call; and Ctrl-C
must stop all of it, leaving no port held.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.common.broker import port_open
from tests.binaries import require

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
NAMES = ("broker", "postgres", "ingest", "metrics", "alerts", "wall", "prometheus",
         "alertmanager", "notifications")  # fmt: skip
# What a test session sets for its own servers; `up` must start its own instead.
SESSION_ONLY = (
    "DATABASE_URL",
    "EGOV_DATABASE_URL",
    "KAFKA_BOOTSTRAP_SERVERS",
    "EGOV_ALERTMANAGER_URL",
    "EGOV_EMBEDDED_BROKER",
    "EGOV_KAFKA_IDEMPOTENCE",
)


def unused_port() -> int:
    """A free port below the ephemeral range (review 44): free_port's are ephemeral ones,
    and an outgoing connection of the stack itself took one before its server bound it."""
    while True:
        port = random.randrange(20000, 30000)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        if not port_open("127.0.0.1", port):
            return port


def stack_ports(names: tuple[str, ...] = NAMES) -> dict[str, int]:
    """A port for each of ``names``, all different; the broker's next one free too (Apache
    Kafka's controller listens there)."""
    while True:
        ports = {name: unused_port() for name in names}
        taken = set(ports.values())
        if len(taken) == len(names) and ports["broker"] + 1 not in taken:
            if not port_open("127.0.0.1", ports["broker"] + 1):
                return ports


class Stack:
    def __init__(self, process: subprocess.Popen[str], ports: dict[str, int], var: Path) -> None:
        self.process = process
        self.ports = ports
        self.var = var
        self.output: list[str] = []

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def read_until(self, text: str, within_s: float) -> None:
        """Lines of the console up to one holding ``text`` (os.set_blocking off: polled)."""
        assert self.process.stdout is not None
        deadline = time.monotonic() + within_s
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if line:
                self.output.append(line)
                if text in line:
                    return
            elif self.process.poll() is not None:
                break
            else:
                time.sleep(0.1)
        raise AssertionError(f"no {text!r} within {within_s:g} s:\n{''.join(self.output)}")


@pytest.fixture
def stack() -> Iterator[Stack]:
    for binary in ("prometheus", "prometheus-alertmanager"):
        require(binary)
    # Not pytest's tmp_path (0700): `up`'s PostgreSQL may run as the 'postgres' account,
    # which must enter the folder.
    tmp_path = Path(tempfile.mkdtemp(prefix="egov-test-up-"))
    tmp_path.chmod(0o755)
    ports = stack_ports()
    env = {k: v for k, v in os.environ.items() if k not in SESSION_ONLY}
    env |= {"EGOV_VAR_DIR": str(tmp_path / "var"), "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "services.cli", "up", "--simulator", "off"]
    command += [f"--{name}-port={port}" for name, port in ports.items()]
    process = subprocess.Popen(
        command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    assert process.stdout is not None
    os.set_blocking(process.stdout.fileno(), False)
    stack = Stack(process, ports, tmp_path / "var")
    try:
        yield stack
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(90)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        process.stdout.close()
        shutil.rmtree(tmp_path, ignore_errors=True)


def _get(url: str) -> Any:
    answer = httpx.get(url, timeout=5)
    answer.raise_for_status()
    return answer.json()


def _wait(check: Any, within_s: float, what: str) -> Any:
    deadline = time.monotonic() + within_s
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(1)
    raise AssertionError(f"{what}: not within {within_s:g} s (last: {last!r})")


def test_make_up_runs_the_whole_system_with_its_monitoring_and_stops_it(stack: Stack) -> None:
    stack.read_until("egov-pulse is up", within_s=180)
    stack.read_until("logs ", within_s=5)
    banner = "".join(stack.output)
    assert f"Prometheus                {stack.url('prometheus')}\n" in banner
    assert f"Alertmanager              {stack.url('alertmanager')}\n" in banner
    for name in ("prometheus", "alertmanager"):  # the pages the banner sends a user to
        page = httpx.get(stack.url(name), timeout=10, follow_redirects=True)
        assert page.status_code == 200, (name, page.status_code, page.text[:200])

    # Each service scraped under its production job, and up.
    def all_up() -> dict[str, str] | None:
        targets = _get(f"{stack.url('prometheus')}/api/v1/targets")["data"]["activeTargets"]
        health = {t["labels"]["job"]: t["health"] for t in targets}
        return health if set(health.values()) == {"up"} else None

    health = _wait(all_up, 60, "every target scraped and up")
    assert set(health) == {"prometheus", "ingest", "metrics", "alerts", "alertmanager"}
    rules = _get(f"{stack.url('prometheus')}/api/v1/rules")["data"]["groups"]
    names = {rule["name"] for group in rules for rule in group["rules"]}
    assert {"EgovServiceDown", "EgovAcceptedNotCounted", "Watchdog"} <= names

    # Prometheus -> Alertmanager -> the sink: the Watchdog heartbeat, logged in var/log.
    log = stack.var / "log" / "notifications.jsonl"
    _wait(lambda: log.exists() and '"watchdog"' in log.read_text("utf-8"), 90,
          "the Watchdog delivered to its receiver")  # fmt: skip
    alerts = _get(f"{stack.url('alertmanager')}/api/v2/alerts")
    assert "Watchdog" in {a["labels"]["alertname"] for a in alerts}

    stack.process.send_signal(signal.SIGINT)
    stack.read_until("egov-pulse stopped.", within_s=90)
    assert stack.process.wait(30) == 0
    held = [name for name, port in stack.ports.items() if port_open("127.0.0.1", port)]
    assert held == [], f"ports still held after Ctrl-C: {held}"
