"""`make up`: the whole system on the embedded broker, fed by the simulator, stopped by Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from services.common.broker import free_port

pytestmark = pytest.mark.integration


def wait_for(predicate: object, what: str, log: Path, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if predicate():  # type: ignore[operator]
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"{what} within {timeout_s} s:\n{log.read_text()[-3000:]}")


def child_pid(parent: int, command: str) -> int:
    """The child of ``parent`` running ``egov-pulse COMMAND`` (read from /proc)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            argv = (stat.parent / "cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError, IndexError):
            continue
        if ppid == parent and command.encode() in argv:
            return int(stat.parent.name)
    raise AssertionError(f"no child running {command!r}")


def simulated_documents(metrics: str) -> float:
    items = httpx.get(f"{metrics}/v1/kpis?kpi=document_electronic&level=province", timeout=5)
    return sum(i["denominator"] for i in items.json()["items"])


def wall_counted(overview: str) -> int:
    """Items counted today in the figures the wall shows for its province."""
    kpis = httpx.get(overview, timeout=5).json()["kpis"]
    return sum(k["day"]["denominator"] for k in kpis if k["day"])


def _answers(base: str) -> bool:
    try:
        return httpx.get(f"{base}/healthz", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def test_up_runs_every_service_with_simulated_traffic_and_stops_cleanly(
    database_url: str, tmp_path: Path
) -> None:
    ports = {name: free_port() for name in ("broker", "ingest", "metrics", "alerts", "wall")}
    env = dict(os.environ, DATABASE_URL=database_url, PYTHONUNBUFFERED="1")
    env.pop("KAFKA_BOOTSTRAP_SERVERS", None)  # `up` always runs its own embedded broker
    log = tmp_path / "up.log"
    args = [f"--{name}-port={port}" for name, port in ports.items()]
    with log.open("wb") as out:
        up = subprocess.Popen(
            [sys.executable, "-m", "services.cli", "up", "--simulator-rate=50", *args],
            env=env,
            stdout=out,
            stderr=out,
            start_new_session=True,
        )
    try:
        wait_for(lambda: "egov-pulse is up" in log.read_text(), "no banner", log)
        metrics = f"http://127.0.0.1:{ports['metrics']}"
        wait_for(lambda: simulated_documents(metrics) > 0, "no simulated figures", log)
        alerts = httpx.get(f"http://127.0.0.1:{ports['alerts']}/v1/alerts", timeout=5)
        assert alerts.status_code == 200
        # The wall is a service of its own, on its own port, named in the banner; the
        # counting processes render no page.
        wall = f"http://127.0.0.1:{ports['wall']}/wall"
        assert f"IOC wall page             {wall}" in log.read_text()
        page = httpx.get(wall, params={"lang": "en"}, timeout=5)
        assert page.status_code == 200 and "lang=" in page.text
        wait_for(lambda: wall_counted(f"{wall}/api/overview") > 0, "no figures on the wall", log)
        assert httpx.get(f"{metrics}/wall", timeout=5).status_code == 404
        # A worker that dies is restarted and carries on from its stored offsets.
        os.kill(child_pid(up.pid, "metrics"), signal.SIGKILL)
        wait_for(lambda: "metrics exited with -9; restarting" in log.read_text(), "no restart", log)
        before = simulated_documents(metrics) if _answers(metrics) else 0.0
        wait_for(lambda: simulated_documents(metrics) > before, "no figures after restart", log)
        # Ctrl-C reaches the whole foreground process group.
        os.killpg(up.pid, signal.SIGINT)
        assert up.wait(timeout=60) == 0, log.read_text()[-3000:]
    finally:
        if up.poll() is None:
            os.killpg(up.pid, signal.SIGKILL)
            up.wait()
    assert "egov-pulse stopped." in log.read_text()
    for port in ports.values():
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
