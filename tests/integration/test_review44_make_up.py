"""Review 44 (fixed 2026-12-05): `make up` run again while, or after, another one runs.

Each test starts `egov-pulse up` as the Makefile does (embedded tansu, its own PostgreSQL,
Prometheus and Alertmanager), on free ports and a var/ folder of its own.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from services.common.broker import port_open
from tests.binaries import require
from tests.integration.test_make_up import NAMES, SESSION_ONLY, stack_ports, unused_port

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


class Up:
    """One `egov-pulse up`, its console in a file."""

    def __init__(self, var: Path, ports: dict[str, int], console: Path) -> None:
        self.var, self.ports, self.console = var, ports, console
        env = {k: v for k, v in os.environ.items() if k not in SESSION_ONLY}
        env |= {"EGOV_VAR_DIR": str(var), "PYTHONUNBUFFERED": "1"}
        command = [sys.executable, "-m", "services.cli", "up", "--simulator", "off"]
        command += [f"--{name}-port={port}" for name, port in ports.items()]
        with console.open("ab") as out:
            self.process = subprocess.Popen(
                command, cwd=REPO, env=env, stdout=out, stderr=out, start_new_session=True
            )

    def text(self) -> str:
        return self.console.read_text(errors="replace")

    def wait_for(self, text: str, within_s: float) -> None:
        deadline = time.monotonic() + within_s
        while text not in self.text():
            if self.process.poll() is not None and text not in self.text():
                raise AssertionError(
                    f"up exited without {text!r}:\n{self.text()[-4000:]}{self.service_logs()}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(f"no {text!r} within {within_s:g} s:\n{self.text()[-4000:]}")
            time.sleep(0.2)

    def service_logs(self) -> str:
        return "".join(
            f"\n--- {log.name}\n{log.read_text(errors='replace')[-1500:]}"
            for log in sorted((self.var / "log").glob("*.log"))
        )

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def stop(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(120)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


@pytest.fixture
def folder() -> Iterator[Path]:
    for binary in ("prometheus", "prometheus-alertmanager"):
        require(binary)
    path = Path(tempfile.mkdtemp(prefix="egov-review44-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _free_port() -> int:
    return unused_port()


def _ports() -> dict[str, int]:
    return stack_ports(NAMES)


def _broker_pids(var: Path) -> list[int]:
    return [int(p) for p in (var / "broker.pids").read_text().split()]


def _alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists() and b"tansu" in Path(f"/proc/{pid}/cmdline").read_bytes()


def test_a_second_make_up_while_one_runs_is_refused_and_leaves_the_first_untouched(
    folder: Path,
) -> None:
    var = folder / "var"
    ports = _ports()
    first = Up(var, ports, folder / "first.log")
    second: Up | None = None
    try:
        first.wait_for("egov-pulse is up", within_s=180)
        pids = _broker_pids(var)
        assert pids and all(_alive(pid) for pid in pids)

        # The user types `make up` again in another terminal (same checkout, same ports).
        second = Up(var, ports, folder / "second.log")
        assert second.process.wait(120) == 1, second.text()[-3000:]
        assert "refusing to start" in second.text(), second.text()[-3000:]

        # The first stack must be as it was: its broker alive, ingest still ready (its
        # readiness asks the broker), nothing it held thrown away.
        time.sleep(3)
        assert "stopping the broker" not in second.text(), second.text()[-3000:]
        assert all(_alive(pid) for pid in pids), "the running stack's broker was stopped"
        assert port_open("127.0.0.1", ports["broker"])
        ready = httpx.get(f"{first.url('ingest')}/readyz", timeout=5)
        assert ready.status_code == 200, ready.text
        assert first.process.poll() is None
    finally:
        if second is not None:
            second.stop()
        first.stop()


def test_make_up_broker_kafka_names_a_held_controller_port(folder: Path) -> None:
    require("java")
    require("mvn")
    names = ("broker", "postgres", "ingest", "metrics", "alerts", "wall")
    ports = {name: port for name, port in _ports().items() if name in names}
    while port_open("127.0.0.1", ports["broker"] + 1):
        ports["broker"] = _free_port()
    controller = ports["broker"] + 1
    with socket.socket() as other:  # another program, on the port Kafka's controller needs
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        other.bind(("127.0.0.1", controller))
        other.listen()
        console = folder / "up.log"
        env = {k: v for k, v in os.environ.items() if k not in SESSION_ONLY}
        env |= {"EGOV_VAR_DIR": str(folder / "var"), "PYTHONUNBUFFERED": "1"}
        command = [sys.executable, "-m", "services.cli", "up", "--simulator", "off",
                   "--monitoring", "off", "--broker", "kafka"]  # fmt: skip
        command += [f"--{name}-port={port}" for name, port in ports.items()]
        with console.open("ab") as out:
            process = subprocess.Popen(
                command, cwd=REPO, env=env, stdout=out, stderr=out, start_new_session=True
            )
        try:
            deadline = time.monotonic() + 240
            while process.poll() is None and time.monotonic() < deadline:
                if "egov-pulse is up" in console.read_text(errors="replace"):
                    break  # a fix that runs the controller elsewhere: it comes up
                time.sleep(0.5)
        finally:
            if process.poll() is None:
                os.kill(process.pid, signal.SIGINT)
                process.wait(120)
    text = console.read_text(errors="replace")
    assert "Traceback" not in text, text[-3000:]
    came_up = "egov-pulse is up" in text
    refused = "refusing to start" in text and str(controller) in text
    assert came_up or refused, text[-3000:]
