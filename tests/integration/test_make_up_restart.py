"""`make up` twice, as a user on a fresh machine runs it: nothing accepted is lost.

No ``DATABASE_URL``: `up` starts its own PostgreSQL in the var folder (``EGOV_VAR_DIR``,
a temporary one here, so a user's own `make up` is left alone), and the CLI finds that
server by itself. Events acknowledged before Ctrl-C are counted before the embedded
broker stops (services/drain.py); after the second `up` the key still works, the figures
are still there, and new events are counted although the broker started its log again
from offset 0 (services/metrics/logcheck.py).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson
import pytest

from tests.integration.metrics.harness import communes_by_province
from tests.integration.test_make_up import stack_ports

pytestmark = pytest.mark.integration

SOURCE = "urn:test:make-up-restart"


def stack_env(var: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "EGOV_DATABASE_URL")}
    env.pop("KAFKA_BOOTSTRAP_SERVERS", None)
    return env | {"EGOV_VAR_DIR": str(var), "PYTHONUNBUFFERED": "1"}


def cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "services.cli", *args],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@contextmanager
def up(
    env: dict[str, str], ports: dict[str, int], log: Path, broker: str
) -> Iterator[subprocess.Popen[bytes]]:
    args = [f"--{name}-port={port}" for name, port in ports.items()] + [f"--broker={broker}"]
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "services.cli", "up", "--simulator=off", *args],
            env=env, stdout=out, stderr=out, start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while "egov-pulse is up" not in log.read_text().rsplit("egov-pulse stopped.", 1)[-1]:
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.3)
        try:
            yield proc
        except BaseException:
            # What the services said: a failure here is often theirs (a restart, a crash).
            for service in sorted((Path(env["EGOV_VAR_DIR"]) / "log").glob("*.log")):
                print(f"--- {service.name} (last 3000 characters)\n{service.read_text()[-3000:]}")
            print(f"--- up (last 3000 characters)\n{log.read_text()[-3000:]}")
            raise
    finally:
        if proc.poll() is None:  # a failed test: stop it as a user would, then for good
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(timeout=90)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def ctrl_c(proc: subprocess.Popen[bytes], log: Path) -> None:
    os.killpg(proc.pid, signal.SIGINT)
    assert proc.wait(timeout=120) == 0, log.read_text()[-3000:]


def publish(ingest: str, token: str, first: int, count: int, unit: str) -> int:
    """Events ``first``.. in batches of 50; returns how many were acknowledged."""
    acked = 0
    headers = {"authorization": f"Bearer {token}",
               "content-type": "application/cloudevents-batch+json"}  # fmt: skip
    with httpx.Client(base_url=ingest, timeout=10) as client:
        for start in range(first, first + count, 50):
            batch = [
                {"specversion": "1.0", "id": f"ev-{n}", "source": SOURCE,
                 "type": "vn.egov.document.issued", "time": datetime.now(UTC).isoformat(),
                 "unit": unit, "datacontenttype": "application/json",
                 "data": {"document_id": f"d-{n}", "electronic": True, "signed": True}}
                for n in range(start, min(start + 50, first + count))
            ]  # fmt: skip
            answer = client.post("/v1/events", content=orjson.dumps(batch), headers=headers)
            assert answer.status_code == 202, answer.text
            acked += len(batch)
    return acked


def counted(metrics: str, province: str) -> float:
    answer = httpx.get(
        f"{metrics}/v1/kpis", params={"kpi": "document_electronic", "level": "province"}, timeout=5
    )
    return sum(i["denominator"] for i in answer.json()["items"] if i["unit"] == province)


def wait_counted(metrics: str, province: str, want: int, log: Path) -> None:
    deadline = time.monotonic() + 90
    got = -1.0
    while time.monotonic() < deadline:
        try:
            got = counted(metrics, province)
        except httpx.TransportError:
            pass
        if got == want:
            return
        time.sleep(0.5)
    raise AssertionError(f"counted {got}, want {want}\n{log.read_text()[-3000:]}")


@pytest.fixture
def var() -> Iterator[Path]:
    """The stack's var folder: the server runs as 'postgres' under root, and must enter it
    (pytest's own temporary folders are private to root)."""
    folder = Path(tempfile.mkdtemp(prefix="egov-up-"))
    folder.chmod(0o755)
    yield folder / "var"
    shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.parametrize(
    "broker",
    [
        pytest.param("tansu", marks=pytest.mark.broker("tansu", "`make up`, embedded default")),
        pytest.param("kafka", marks=pytest.mark.broker("kafka", "`make up BROKER=kafka`")),
    ],
)
def test_up_twice_keeps_keys_and_figures_and_counts_every_acknowledged_event(
    broker: str, var: Path, tmp_path: Path
) -> None:
    env = stack_env(var)
    # Every port its own, Prometheus's and Alertmanager's too: `make test` runs another
    # `up` beside this one (the other broker's run), and the defaults (9190, 9193, 9197)
    # made the second refuse to start.
    ports = stack_ports()
    ingest = f"http://127.0.0.1:{ports['ingest']}"
    metrics = f"http://127.0.0.1:{ports['metrics']}"
    log = tmp_path / "up.log"
    commune, province = communes_by_province(1)[0]
    name = f"restart-{uuid.uuid4().hex[:6]}"

    with up(env, ports, log, broker) as first:
        # The CLI finds the stack's own server by itself: no DATABASE_URL anywhere.
        token = cli(env, "keys", "create", "--name", name, "--units", province,
                    "--types", "vn.egov.document.issued",
                    "--sources", SOURCE).strip().splitlines()[-1]  # fmt: skip
        before = publish(ingest, token, 0, 1000, commune)
        # Ctrl-C at once: what was acknowledged is counted before the broker stops.
        ctrl_c(first, log)
    assert "every event the broker held is counted" in log.read_text(), log.read_text()[-3000:]
    assert (var / "postgres" / "data" / "PG_VERSION").exists()

    with up(env, ports, log, broker) as second:
        wait_counted(metrics, province, before, log)  # kept in PostgreSQL across the restart
        assert name in cli(env, "keys", "list")
        after = publish(ingest, token, 1000, 1500, commune)  # the same key still works
        wait_counted(metrics, province, before + after, log)
        ctrl_c(second, log)
    assert log.read_text().count("egov-pulse stopped.") == 2
    replaced = "is not in the broker's log" in (var / "log" / "metrics.log").read_text()
    # tansu started its log again from 0 (and the workers noticed); Kafka kept it on disk.
    assert replaced == (broker == "tansu")
    if broker == "kafka":
        assert (var / "kafka" / "node-1" / "egov.documents-0").is_dir()
