"""Worker processes and events for the metrics integration tests (real broker, PostgreSQL)."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
from prometheus_client.parser import text_string_to_metric_families

from services.common.broker import free_port
from services.common.kafka import make_producer
from services.common.settings import CommonSettings
from services.common.units import UnitRegistry
from tests.integration.processes import service_env

REGISTRY = UnitRegistry.from_dir()


def communes_by_province(count: int) -> list[tuple[str, str]]:
    """(commune, province) pairs of today's hierarchy, one commune in each of ``count``."""
    pairs = []
    for province in sorted(u.code for u in REGISTRY.units("2025") if u.level == "province"):
        kids = [u for u in REGISTRY.children(province, "2025") if u.level == "commune"]
        if kids:
            pairs.append((kids[0].code, province))
        if len(pairs) == count:
            break
    return pairs


def document(event_id: str, unit: str, at: datetime | None = None) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": event_id,
        "source": "urn:test:metrics-workers",
        "type": "vn.egov.document.issued",
        "time": (at or datetime.now(UTC)).isoformat(),
        "unit": unit,
        "datacontenttype": "application/json",
        "data": {"document_id": event_id, "electronic": True, "signed": True},
    }


async def publish(
    settings: CommonSettings, messages: list[tuple[bytes, bytes]], topic: str | None = None
) -> None:
    producer = make_producer(settings)
    await producer.start()
    try:
        futures = [
            await producer.send(topic or settings.topic_documents, value, key=key)
            for key, value in messages
        ]
        for future in futures:
            await future
    finally:
        await producer.stop()


def mixed_messages(
    first: int, count: int, pairs: list[tuple[str, str]]
) -> tuple[list[tuple[bytes, bytes]], Counter[str]]:
    """Uniquely numbered events, half in batch messages of 50 and half one per message,
    with every 7th event delivered again (in a later single message or inside its batch).

    Returns the messages and the number of distinct events per province."""
    messages: list[tuple[bytes, bytes]] = []
    expected: Counter[str] = Counter()
    batches: dict[str, list[dict[str, Any]]] = {}
    for n in range(first, first + count):
        unit, province = pairs[n % len(pairs)]
        event = document(f"ev-{n}", unit)
        expected[province] += 1
        if n % 2:
            messages.append((province.encode(), orjson.dumps(event)))
        else:
            batch = batches.setdefault(province, [])
            batch.append(event)
            if n % 14 == 0:
                batch.append(event)  # the same event twice in one batch message
            if len(batch) >= 50:
                messages.append((province.encode(), orjson.dumps(batch)))
                batches[province] = []
        if n % 7 == 0:
            messages.append((province.encode(), orjson.dumps(event)))
    for province, batch in batches.items():
        if batch:
            messages.append((province.encode(), orjson.dumps(batch)))
    return messages, expected


@dataclass
class WorkerProcess:
    """One `egov-pulse metrics` worker; start, SIGKILL and restart it."""

    name: str
    env: dict[str, str]
    port: int
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "services.cli", "metrics"],
                env=self.env,
                stdout=out,
                stderr=out,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.tail()
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"{self.name} did not answer\n{self.tail()}")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def samples(self, name: str) -> list[tuple[dict[str, str], float]]:
        text = httpx.get(self.url + "/metrics", timeout=10).text
        return [
            (s.labels, s.value)
            for family in text_string_to_metric_families(text)
            for s in family.samples
            if s.name == name
        ]


@contextmanager
def workers(
    settings: CommonSettings, database_url: str, tmp_path: Path, count: int, **extra: str
) -> Iterator[list[WorkerProcess]]:
    """``count`` workers of one app id (one consumer group), each with its own web port."""
    env = service_env(settings, database_url)
    env["EGOV_METRICS_APP_ID"] = f"mw-{uuid.uuid4().hex[:8]}"
    env.update(extra)
    procs = []
    for i in range(count):
        port = free_port()
        worker_env = {
            **env,
            "EGOV_METRICS_WEB_PORT": str(port),
            "EGOV_METRICS_DATA_DIR": str(tmp_path / f"w{i}"),
        }
        procs.append(WorkerProcess(f"w{i}", worker_env, port, tmp_path / f"w{i}.log"))
    try:
        for proc in procs:
            proc.start()
        yield procs
    finally:
        for proc in procs:
            proc.stop()


async def stored_figure(
    database_url: str, kpi: str, unit: str, day: str | None = None
) -> tuple[int, int]:
    """(numerator, denominator) of ``unit`` for ``kpi`` in PostgreSQL, on ``day``
    (ISO date) or over every stored day."""
    conn = await asyncpg.connect(database_url)
    try:
        row = await conn.fetchrow(
            "SELECT coalesce(sum(numerator), 0)::bigint n, coalesce(sum(denominator), 0)::bigint d"
            " FROM kpi_daily WHERE kpi = $1 AND unit = $2"
            " AND ($3::text IS NULL OR day = $3::text::date)",
            kpi,
            unit,
            day,
        )
    finally:
        await conn.close()
    return row["n"], row["d"]
