"""Soak (full mode only): simulated traffic at 10x the national average through ingest into
metrics for an hour, RSS of every process and end-to-end lag sampled every minute.

The national daily average is a few events per second (shared/DOMAIN.md); 10x of 5/s
is 50 events/s from ``egov-pulse simulate`` into a real ``egov-pulse ingest`` and
``egov-pulse metrics`` on an embedded broker and a fresh database. End-to-end lag is
measured with a probe: one event for a unit the simulator never touches, POSTed to
ingest, timed until ``/v1/kpis`` shows it. Memory flatness is the slope of a least-
squares line through each process's RSS after the first fifth of the run (warm-up).
``BENCH_SOAK_MINUTES`` (``--soak-minutes``) shortens it for a trial.

The clock starts at steady state: the simulator first publishes the 7 hours of past
traffic that a running worker holds (``BUCKET_RETENTION_S`` of 5-minute buckets), and
sampling begins once the worker has counted it. Without it, an hour's soak watches the
buckets fill (about 6 MiB/h here) and cannot tell that from a leak.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

import asyncpg
import httpx
import orjson
from prometheus_client.parser import text_string_to_metric_families

from bench.common import (
    Row,
    check_mode,
    dump_json,
    embedded_broker,
    fresh_database,
    percentile,
    rss_bytes,
    run_dir,
    service_process,
    tail,
)
from bench.common import row as make_row
from services.common.broker import EmbeddedBroker, free_port, wait_for_port
from services.common.contract import Contract
from services.common.kafka import ensure_topics
from services.common.settings import CommonSettings
from services.common.units import UnitRegistry, era_at
from services.common.unitstore import load_units
from services.ingest.keystore import create_key
from services.metrics.periods import BUCKET_RETENTION_S

RATE: Final = 50.0  # events/s: 10 x ~5/s national average
PROVINCES: Final = ("19", "38", "68")  # the simulator's provinces
PROBE_PROVINCE: Final = "01"  # Hà Nội: never simulated, so only the probe moves it
PROBE_TIMEOUT_S: Final = 30.0
HISTORY_S: Final = BUCKET_RETENTION_S
HISTORY_TIMEOUT_S: Final = 900.0
HISTORY_LINE: Final = re.compile(r"past traffic published: (\d+) events")


@dataclass
class Samples:
    minutes: list[float] = field(default_factory=list)
    rss_mib: dict[str, list[float]] = field(default_factory=dict)
    lag_s: list[float | None] = field(default_factory=list)


def probe_unit(now: datetime) -> str:
    registry = UnitRegistry.from_dir()
    for unit in registry.units(era_at(now)):
        if unit.level == "commune" and registry.resolve(unit.code, now).province.code == "01":
            return unit.code
    raise RuntimeError("no commune of Hà Nội in the unit registry")


def slope_per_hour(xs_minutes: list[float], ys: list[float]) -> float:
    """Least-squares slope of ys over time, in ys-units per hour (0 for < 2 points)."""
    n = len(xs_minutes)
    if n < 2:
        return 0.0
    mx, my = sum(xs_minutes) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs_minutes)
    if sxx == 0:
        return 0.0
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs_minutes, ys, strict=True))
    return sxy / sxx * 60


def after_warmup(samples: Samples, series: list[float]) -> tuple[list[float], list[float]]:
    cut = len(series) // 5
    return samples.minutes[cut:], series[cut:]


async def prepare(dsn: str, probe: str) -> str:
    """Units loaded and one API key for the simulator's provinces and the probe unit."""
    conn = await asyncpg.connect(dsn)
    try:
        await load_units(conn, CommonSettings().units_dir)
        types = sorted(Contract.load().event_types)
        key = await create_key(
            conn,
            f"soak-{uuid.uuid4().hex[:6]}",
            [*PROVINCES, probe],
            types,
            sources=["https:", "urn:"],
        )
        return key.token
    finally:
        await conn.close()


async def probe_lag(
    client: httpx.AsyncClient, ingest: str, metrics: str, unit: str, key: str
) -> float | None:
    """Seconds from POSTing one probe event to its count showing on /v1/kpis (None: never)."""
    params = {"unit": unit, "kpi": "document_signing", "window": "day"}

    async def denominator() -> int:
        response = await client.get(f"{metrics}/v1/kpis", params=params)
        items = response.json().get("items", []) if response.status_code == 200 else []
        return sum(i["denominator"] for i in items if i["unit"] == unit)

    before = await denominator()
    event = {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": "https://bench.egov-pulse.vn/soak-probe",
        "type": "vn.egov.document.issued",
        "time": datetime.now(UTC).isoformat(),
        "unit": unit,
        "datacontenttype": "application/json",
        "data": {"document_id": uuid.uuid4().hex, "electronic": True, "signed": True},
    }
    headers = {"content-type": "application/cloudevents+json", "authorization": f"Bearer {key}"}
    started = time.monotonic()
    response = await client.post(
        f"{ingest}/v1/events", content=orjson.dumps(event), headers=headers
    )
    if response.status_code != 202:
        return None
    while time.monotonic() - started < PROBE_TIMEOUT_S:
        if await denominator() > before:
            return time.monotonic() - started
        await asyncio.sleep(0.1)
    return None


async def soak(minutes: float) -> tuple[Samples, dict[str, str]]:
    now = datetime.now(UTC)
    probe = probe_unit(now)
    interval = 60.0 if minutes >= 10 else 15.0
    samples = Samples()
    info: dict[str, str] = {}
    with embedded_broker() as broker, tempfile.TemporaryDirectory(prefix="bench-soak-") as data:
        async with fresh_database("egov_bench_soak") as dsn:
            key = await prepare(dsn, probe)
            settings = CommonSettings(kafka_bootstrap_servers=broker.bootstrap_servers)
            await ensure_topics(settings)
            ports = {"ingest": free_port(), "metrics": free_port()}
            env = {
                **os.environ,
                "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
                "DATABASE_URL": dsn,
                "EGOV_INGEST_PORT": str(ports["ingest"]),
                "EGOV_METRICS_WEB_PORT": str(ports["metrics"]),
                "EGOV_METRICS_DATA_DIR": data,
                "EGOV_SIMULATOR_INGEST_URL": f"http://127.0.0.1:{ports['ingest']}",
                "EGOV_SIMULATOR_RATE": str(RATE),
                "EGOV_SIMULATOR_API_KEY": key,
                "EGOV_SIMULATOR_HISTORY_S": str(HISTORY_S),
                # A steady load, round the clock: not the week's rhythm of `make up`.
                "EGOV_SIMULATOR_PROFILE": "flat",
                # The history is published as fast as ingest takes it: the per-key event
                # rate (2,000 events/s by default) would pace the warm-up, not measure it.
                "EGOV_RATE_LIMIT_PER_S": "1000000",
                "EGOV_RATE_LIMIT_BURST": "1000000",
                "EGOV_RECORD_SIGNING_KEY": secrets.token_hex(32),  # as `make up` does
                "PYTHONUNBUFFERED": "1",
            }
            logs = run_dir()
            with (
                service_process(["ingest"], env, logs / "soak-ingest.log") as ingest,
                service_process(["metrics"], env, logs / "soak-metrics.log") as metrics,
            ):
                await wait_for_port("127.0.0.1", ports["ingest"], 60)
                await wait_for_port("127.0.0.1", ports["metrics"], 60)
                sim_log = logs / "soak-simulator.log"
                with service_process(["simulate"], env, sim_log) as simulator:
                    warm_up = await wait_for_history(sim_log, ports["metrics"])
                    info["warm_up"] = warm_up
                    print(f"soak: {warm_up}", flush=True)
                    pids = {
                        "ingest": ingest.pid,
                        "metrics": metrics.pid,
                        "simulator": simulator.pid,
                        # tansu's process; an Apache Kafka node's JVM is not sampled.
                        "broker": broker._proc.pid
                        if isinstance(broker, EmbeddedBroker) and broker._proc
                        else 0,
                    }
                    await sample_loop(samples, pids, ports, probe, key, minutes, interval)
                info["probe_unit"] = probe
                info["interval_s"] = str(interval)
    return samples, info


async def wait_for_history(sim_log: Path, metrics_port: int) -> str:
    """Wait until the simulator has published its past traffic and the worker counted it."""
    started = time.monotonic()
    url = f"http://127.0.0.1:{metrics_port}/metrics"
    published: int | None = None
    async with httpx.AsyncClient(timeout=10) as client:
        while time.monotonic() - started < HISTORY_TIMEOUT_S:
            if published is None:
                found = HISTORY_LINE.search(tail(sim_log, 20_000))
                published = int(found.group(1)) if found else None
            if published is not None:
                seen = handled(await client.get(url))
                if seen >= published:
                    took = time.monotonic() - started
                    return f"{published:,} events of past traffic counted in {took:.0f} s"
            await asyncio.sleep(2)
    raise RuntimeError(f"the past traffic was not counted within {HISTORY_TIMEOUT_S:g} s")


def handled(response: httpx.Response) -> float:
    """Events the worker has counted or recognised as duplicates or too late, so far."""
    names = {"egov_events_processed", "egov_events_duplicate", "egov_events_too_late"}
    return sum(
        sample.value
        for family in text_string_to_metric_families(response.text)
        if family.name in names
        for sample in family.samples
        if sample.name.endswith("_total")
    )


async def sample_loop(
    samples: Samples,
    pids: dict[str, int],
    ports: dict[str, int],
    probe: str,
    key: str,
    minutes: float,
    interval: float,
) -> None:
    ingest = f"http://127.0.0.1:{ports['ingest']}"
    metrics = f"http://127.0.0.1:{ports['metrics']}"
    started = time.monotonic()
    async with httpx.AsyncClient(timeout=5) as client:
        while True:
            elapsed = (time.monotonic() - started) / 60
            samples.minutes.append(round(elapsed, 2))
            for name, pid in pids.items():
                rss = rss_bytes(pid)
                samples.rss_mib.setdefault(name, []).append((rss or 0) / 2**20)
            try:
                samples.lag_s.append(await probe_lag(client, ingest, metrics, probe, key))
            except httpx.HTTPError:
                samples.lag_s.append(None)
            now_mib = {name: round(series[-1]) for name, series in samples.rss_mib.items()}
            print(
                f"soak t={elapsed:.1f} min rss_mib={now_mib} lag_s={samples.lag_s[-1]}", flush=True
            )
            if elapsed >= minutes:
                return
            await asyncio.sleep(max(0.0, interval - (time.monotonic() - started) % interval))


def plot(samples: Samples, folder: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    for name, series in samples.rss_mib.items():
        top.plot(samples.minutes, series, marker="o", markersize=3, label=name)
    top.set_ylabel("RSS (MiB)")
    top.set_ylim(bottom=0)
    top.legend(fontsize=8)
    top.set_title(f"Soak at {RATE:g} events/s (10x national average)")
    lags = [lag if lag is not None else float("nan") for lag in samples.lag_s]
    bottom.plot(samples.minutes, lags, marker="o", markersize=3, color="#c53030")
    bottom.set_ylabel("end-to-end lag (s)")
    bottom.set_xlabel("minutes")
    bottom.set_ylim(bottom=0)
    fig.tight_layout()
    fig.savefig(folder / "soak.png", dpi=110)
    plt.close(fig)


def rows(samples: Samples, minutes: float, simulator: str) -> list[Row]:
    """A slope per process, lag percentiles after warm-up, and what the simulator sent."""
    short = minutes < 30
    found = []
    for name, series in samples.rss_mib.items():
        xs, ys = after_warmup(samples, series)
        slope = slope_per_hour(xs, ys)
        mean = sum(ys) / len(ys) if ys else 0.0
        flat = abs(slope) <= max(0.05 * mean, 5.0)
        verdict = "flat" if flat else "NOT flat"
        if short:
            verdict = f"{verdict}? (a {minutes:g}-minute trial is too short to judge)"
        if name == "broker":
            verdict += "; tansu keeps the whole log in memory, so it grows by design"
        notes = f"{verdict}: mean {mean:.0f} MiB, max {max(series):.0f} MiB, first fifth = warm-up"
        found.append(make_row("soak", f"{name}: RSS slope", round(slope, 2), "MiB/h", notes=notes))
    cut = len(samples.lag_s) // 5
    lags = [lag for lag in samples.lag_s[cut:] if lag is not None]
    missing = sum(lag is None for lag in samples.lag_s[cut:])
    notes = f"{len(lags)} probes after warm-up, {missing} not counted within {PROBE_TIMEOUT_S:g} s"
    if lags:
        found.append(make_row("soak", "end-to-end lag p50", percentile(lags, 50), "s", notes=notes))
        found.append(
            make_row("soak", "end-to-end lag max", max(lags), "s", notes="ingest 202 to /v1/kpis")
        )
    else:
        found.append(make_row("soak", "end-to-end lag", 0, "s", notes=f"no probe counted; {notes}"))
    found.append(
        make_row("soak", "duration", minutes, "min", notes=f"at {RATE:g} events/s; {simulator}")
    )
    return found


def simulator_summary(log: Path) -> str:
    """The simulator's closing line (events generated, accepted, refused, failed)."""
    lines = [line for line in tail(log, 4000).splitlines() if line.startswith("simulator:")]
    return lines[-1] if lines else "simulator summary missing"


def run(mode: str) -> list[Row]:
    check_mode(mode)
    minutes = float(os.environ.get("BENCH_SOAK_MINUTES", "60"))
    samples, info = asyncio.run(soak(minutes))
    folder = run_dir()
    plot(samples, folder)
    dump_json(folder / "soak-samples.json", {**samples.__dict__, **info})
    summary = simulator_summary(folder / "soak-simulator.log")
    return rows(samples, minutes, f"{summary}; before the clock started, {info['warm_up']}")
