"""Side by side: the signing KPI in Quix Streams and in our metrics service, same events.

One embedded broker; one documents topic filled with the same events for both
(one CloudEvent per message, keyed by province, as integrators publish; with exact
re-sends and yesterday's events mixed in). Each engine's figures are checked equal to
the plain computation of :mod:`bench.peers.kpi` before its speed is reported; a peer
whose figures differ gets a row saying so, not a speed.

Quix runs in its own virtualenv (``.venv/peer``, made here when missing) because
quixstreams 3.28.1 pins ``pydantic-settings<2.16`` and ``pydantic<2.14`` while this
project pins pydantic-settings 2.16.3.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Final

import httpx
import orjson
from aiokafka import AIOKafkaProducer

from bench.common import (
    REPO,
    Row,
    check_mode,
    embedded_broker,
    fresh_database,
    row,
    rss_bytes,
    service_process,
    tail,
)
from bench.peers.kpi import KPI_ID, Figures, SigningKpi, differences, reference_figures
from bench.references import create_topic
from services.common.broker import free_port
from services.common.units import VN_TZ, UnitRegistry, era_at

PEER_VENV: Final = REPO / ".venv" / "peer"
PEER_PYTHON: Final = PEER_VENV / "bin" / "python"
PEER_REQUIREMENTS: Final = REPO / "bench" / "peers" / "requirements.txt"
PROVINCES: Final = ("38", "19")  # Thanh Hóa, Thái Nguyên
SIZES: Final = {"quick": 10_000, "full": 100_000}
PEER_TIMEOUT_S: Final = {"quick": 50.0, "full": 300.0}
PARTITIONS: Final = 6
# tansu's DescribeConfigs returns only what was set at creation; Quix derives its changelog
# topics from the source's retention and fails with KeyError('retention.ms') without them.
TOPIC_CONFIGS: Final = {"retention.ms": "604800000", "retention.bytes": "-1"}


def ensure_peer_venv() -> Path:
    """The peer's virtualenv, created from bench/peers/requirements.txt when missing."""
    if not PEER_PYTHON.exists():
        subprocess.run([sys.executable, "-m", "venv", str(PEER_VENV)], check=True)
        pip = [str(PEER_VENV / "bin" / "pip"), "install", "-q", "-r", str(PEER_REQUIREMENTS)]
        subprocess.run(pip, check=True, timeout=600)
    return PEER_PYTHON


def make_events(n: int, now: datetime, seed: int = 7) -> list[dict[str, Any]]:
    """n document events of today's communes of PROVINCES: ~5% exact re-sends, ~4% from
    yesterday, some paper-only or classified (outside the denominator)."""
    rng = random.Random(seed)
    registry = UnitRegistry.from_dir()
    era = era_at(now)
    communes = [
        u.code
        for u in registry.units(era)
        if u.level == "commune" and registry.resolve(u.code, now).province.code in PROVINCES
    ]
    events: list[dict[str, Any]] = []
    while len(events) < n:
        if events and rng.random() < 0.05:
            events.append(rng.choice(events))  # an integrator's retry: same source and id
            continue
        unit = rng.choice(communes)
        ago = timedelta(days=1) if rng.random() < 0.04 else timedelta(0)
        at = now - ago - timedelta(seconds=rng.uniform(0, 3600))
        events.append(
            {
                "specversion": "1.0",
                "id": str(uuid.UUID(int=rng.getrandbits(128))),
                "source": f"https://tdoffice.p{unit[:2]}.gov.vn/{unit}",
                "type": "vn.egov.document.issued",
                "time": at.isoformat(),
                "unit": unit,
                "datacontenttype": "application/json",
                "data": {
                    "document_id": f"VB-{len(events)}",
                    "electronic": rng.random() < 0.9,
                    "signed": rng.random() < 0.93,
                    "classified": rng.random() < 0.02,
                },
            }
        )
    return events


async def publish(bootstrap: str, topic: str, events: list[dict[str, Any]], now: datetime) -> None:
    registry = UnitRegistry.from_dir()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        sends = []
        for e in events:
            key = registry.resolve(e["unit"], now).province.code.encode()
            sends.append(await producer.send(topic, orjson.dumps(e), key=key))
        await asyncio.gather(*sends)
    finally:
        await producer.stop()


def run_quix(bootstrap: str, topic: str, expected: int, day: str, mode: str) -> dict[str, Any]:
    """Run the Quix app until it has read ``expected`` messages; its figures and timing."""
    python = ensure_peer_venv()
    with tempfile.TemporaryDirectory(prefix="bench-quix-") as tmp:
        out = Path(tmp) / "quix.json"
        log = Path(tmp) / "quix.log"
        group = f"bench-quix-{uuid.uuid4().hex[:6]}"
        cmd = [str(python), str(REPO / "bench/peers/quix_app.py"), bootstrap, topic, group]
        cmd += [str(expected), day, str(out)]
        started = time.perf_counter()
        peak = 0
        with log.open("wb") as sink:
            proc = subprocess.Popen(cmd, cwd=tmp, stdout=sink, stderr=subprocess.STDOUT)
            try:
                deadline = time.monotonic() + PEER_TIMEOUT_S[mode]
                while proc.poll() is None and time.monotonic() < deadline:
                    peak = max(peak, rss_bytes(proc.pid) or 0)
                    time.sleep(0.2)
            finally:
                if proc.poll() is None:
                    proc.kill()
                proc.wait()
        if not out.exists():
            tail = log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"Quix app gave no figures (exit {proc.returncode}):\n{tail}")
        result: dict[str, Any] = json.loads(out.read_text())
        result["wall_seconds"] = time.perf_counter() - started
        result["peak_rss_mib"] = peak / 2**20
        return result


@dataclass
class Ours:
    figures: Figures
    peak_rss: int
    wall_s: float  # worker start to every figure right
    rate: float  # events/s: first event published to every figure right


async def run_ours(
    bootstrap: str, topic: str, events: list[dict[str, Any]], expected: Figures, mode: str
) -> Ours:
    """Our metrics service over the same topic: started on the empty topic, then fed the
    events; its /v1/kpis day figures are polled until they equal the expected ones or the
    time runs out (then what it last saw is returned, for the report to show)."""
    port = free_port()
    async with fresh_database("egov_bench_peer") as dsn:
        env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "EGOV_TOPIC_DOCUMENTS": topic,
            "EGOV_TOPIC_DOSSIERS": f"{topic}.dossiers",
            "EGOV_TOPIC_MEETINGS": f"{topic}.meetings",
            "EGOV_TOPIC_DEAD_LETTER": f"{topic}.dead-letter",
            "EGOV_TOPIC_PARTITIONS": str(PARTITIONS),
            "EGOV_METRICS_WEB_PORT": str(port),
            "EGOV_METRICS_APP_ID": f"bench-ours-{uuid.uuid4().hex[:6]}",
            "DATABASE_URL": dsn,
        }
        with tempfile.TemporaryDirectory(prefix="bench-ours-") as tmp:
            env["EGOV_METRICS_DATA_DIR"] = tmp
            log = Path(tmp) / "metrics.log"
            started = time.perf_counter()
            with service_process(["metrics"], env, log) as proc:
                poll = Poller(port, proc, log, PEER_TIMEOUT_S[mode])
                async with httpx.AsyncClient(timeout=5) as client:
                    await poll.until_assigned(client, topic)
                    fed = time.perf_counter()
                    await publish(bootstrap, topic, events, datetime.now(VN_TZ))
                    figures = await poll.until_equal(client, expected)
                    done = time.perf_counter()
    return Ours(figures, poll.peak, done - started, len(events) / (done - fed))


class Poller:
    """Reads one worker's /v1/kpis, watching that it lives and how much memory it holds."""

    def __init__(self, port: int, proc: subprocess.Popen[bytes], log: Path, timeout_s: float):
        self.url = f"http://127.0.0.1:{port}/v1/kpis"
        self.proc, self.log = proc, log
        self.deadline = time.monotonic() + timeout_s
        self.peak = 0

    async def get(self, client: httpx.AsyncClient) -> dict[str, Any] | None:
        if self.proc.poll() is not None:
            raise RuntimeError(f"metrics exited early:\n{tail(self.log, 2000)}")
        self.peak = max(self.peak, rss_bytes(self.proc.pid) or 0)
        try:
            response = await client.get(self.url, params={"kpi": KPI_ID, "window": "day"})
        except httpx.TransportError:
            return None
        if response.status_code == 404:
            raise RuntimeError("the metrics service has no /v1/kpis yet")
        return response.json() if response.status_code == 200 else None

    async def until_assigned(self, client: httpx.AsyncClient, topic: str) -> None:
        while time.monotonic() < self.deadline:
            body = await self.get(client)
            mine = [p for p in (body or {}).get("partitions", []) if p.startswith(topic + "[")]
            if len(mine) == PARTITIONS:
                return
            await asyncio.sleep(0.25)
        raise RuntimeError(f"the metrics worker was not assigned {topic} in time")

    async def until_equal(self, client: httpx.AsyncClient, expected: Figures) -> Figures:
        seen: Figures = {}
        while time.monotonic() < self.deadline:
            body = await self.get(client)
            if body is not None:
                seen = {i["unit"]: [i["numerator"], i["denominator"]] for i in body["items"]}
                seen = {u: v for u, v in seen.items() if v[1] or u in expected}
                if not differences(expected, seen):
                    return seen
            await asyncio.sleep(0.25)
        return seen


def run(mode: str) -> list[Row]:
    check_mode(mode)
    now = datetime.now(VN_TZ)
    events = make_events(SIZES[mode], now)
    expected = reference_figures(events, SigningKpi(now.date()))
    topic = f"bench-peer-{uuid.uuid4().hex[:6]}.documents"
    base = f"{len(events):,} events ({len(expected)} units) on {PARTITIONS} partitions"
    with embedded_broker() as broker:
        bootstrap = broker.bootstrap_servers
        asyncio.run(create_topic(bootstrap, topic, PARTITIONS, TOPIC_CONFIGS))
        ours = _ours(bootstrap, topic, events, expected, mode, base)
        if not _filled(bootstrap, topic, len(events)):  # ours failed before it published
            topic += ".again"
            asyncio.run(create_topic(bootstrap, topic, PARTITIONS, TOPIC_CONFIGS))
            asyncio.run(publish(bootstrap, topic, events, now))
        quix = run_quix(broker.bootstrap_servers, topic, len(events), now.date().isoformat(), mode)
    rows = ours + _quix_rows(quix, expected, base)
    return _side_by_side(rows)


def _quix_rows(quix: dict[str, Any], expected: Figures, base: str) -> list[Row]:
    wrong = differences(expected, quix["figures"])
    if wrong:
        note = f"Quix differs from the reference: {'; '.join(wrong[:5])}"
        return [row("peers", "quix: figures equal to reference", 0, "bool", notes=note)]
    return [
        row("peers", "quix: figures equal to reference", 1, "bool", notes=base),
        row(
            "peers",
            "quix: document_signing throughput",
            round(quix["rate"]),
            "events/s",
            reference="faust-windowed-table",
            notes="Quix Streams 3.28.1, RocksDB state, at-least-once; first to last event",
        ),
        row(
            "peers",
            "quix: wall time incl. start-up",
            round(quix["wall_seconds"], 1),
            "s",
            notes="process start to the last event counted",
        ),
        row("peers", "quix: peak RSS", round(quix["peak_rss_mib"], 1), "MiB"),
    ]


def _filled(bootstrap: str, topic: str, n: int) -> bool:
    """Whether all the events are on the topic (our service may have failed before)."""
    from bench.references import read_topic

    try:
        asyncio.run(read_topic(bootstrap, topic, n, timeout_s=5))
    except RuntimeError:
        return False
    return True


def _side_by_side(rows: list[Row]) -> list[Row]:
    """Ours beside Quix where both were measured (and right): ratio = ours / Quix."""
    by_metric = {r["metric"]: r for r in rows}
    linked = []
    for r in rows:
        peer = by_metric.get(r["metric"].replace("ours:", "quix:"))
        if r["metric"].startswith("ours:") and r["unit"] != "bool" and peer:
            r = row(
                r["benchmark"],
                r["metric"],
                r["value"],
                r["unit"],
                reference=peer["metric"],
                reference_value=peer["value"],
                notes=r["notes"],
            )
        linked.append(r)
    return linked


def _ours(
    bootstrap: str,
    topic: str,
    events: list[dict[str, Any]],
    expected: Figures,
    mode: str,
    base: str,
) -> list[Row]:
    """Our service's rows: equal figures first, then its speed and memory."""
    try:
        ours = asyncio.run(run_ours(bootstrap, topic, events, expected, mode))
    except Exception as error:  # the service is a separate piece of work: report, go on
        note = f"our metrics service not compared ({error}); peer checked vs plain reference only"
        return [row("peers", "ours: figures equal to reference", 0, "bool", notes=note[:400])]
    wrong = differences(expected, ours.figures)
    if wrong:
        note = f"ours differs from the reference: {'; '.join(wrong[:5])}"
        return [row("peers", "ours: figures equal to reference", 0, "bool", notes=note)]
    return [
        row("peers", "ours: figures equal to reference", 1, "bool", notes=base),
        row(
            "peers",
            "ours: document_signing throughput",
            round(ours.rate),
            "events/s",
            notes="one worker; first event published to /v1/kpis showing every figure right",
        ),
        row(
            "peers",
            "ours: wall time incl. start-up",
            round(ours.wall_s, 1),
            "s",
            notes="metrics process start to every figure right (0.25 s polls)",
        ),
        row("peers", "ours: peak RSS", round(ours.peak_rss / 2**20, 1), "MiB", notes="one worker"),
    ]
