"""Ingest throughput and latency under wrk, beside the raw producer and a naive endpoint.

Run: ``.venv/bin/python -m bench.ingest [quick|full]`` (or through ``python -m bench``).
Needs ``wrk`` (Debian package ``wrk``; installed here with apt-get if missing).
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from aiokafka import AIOKafkaProducer

from bench.common import admin_dsn, embedded_broker
from services.common.broker import free_port
from services.common.contract import Contract
from services.common.db import migrate
from services.common.kafka import ensure_topics
from services.common.settings import CommonSettings
from services.ingest.keystore import create_key

ROOT = Path(__file__).resolve().parent.parent
UNIT = "14758"  # a commune of Thanh Hóa (38)


def _event() -> dict[str, Any]:
    event = copy.deepcopy(Contract.load().examples("vn.egov.document.issued", "valid")[0][1])
    event.update(id=str(uuid.uuid4()), unit=UNIT, time=datetime.now(UTC).isoformat())
    return event


def _ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found is None:
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True, capture_output=True)
        found = shutil.which("wrk")
    assert found is not None
    return found


async def _database() -> str:
    name = f"egov_bench_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(admin_dsn())
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    return admin_dsn().rsplit("/", 1)[0] + "/" + name


async def _drop(dsn: str) -> None:
    admin = await asyncpg.connect(admin_dsn())
    await admin.execute(f'DROP DATABASE IF EXISTS "{dsn.rsplit("/", 1)[1]}" WITH (FORCE)')
    await admin.close()


async def _key(dsn: str) -> str:
    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn)
        types = sorted(Contract.load().event_types)
        return (await create_key(conn, "bench", ["38"], types, sources=["https:", "urn:"])).token
    finally:
        await conn.close()


@contextmanager
def _server(args: list[str], env: dict[str, str], port: int) -> Iterator[str]:
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                httpx.post(base + "/v1/events", content=b"", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def _wrk(
    wrk: str, url: str, body: bytes, headers: dict[str, str], conns: int, secs: int
) -> dict[str, float]:
    lua = "wrk.method = 'POST'\nwrk.body = " + json.dumps(body.decode()) + "\n"
    lua += "".join(f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}\n" for k, v in headers.items())
    lua += (
        "done = function(summary, latency, requests)\n"
        "  io.write(string.format('RESULT %d %d %d %.0f\\n', summary.requests,"
        " summary.errors.status + summary.errors.connect + summary.errors.read"
        " + summary.errors.write + summary.errors.timeout, summary.duration,"
        " latency:percentile(99)))\nend\n"
    )
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(lua)
    try:
        out = subprocess.run(
            [
                wrk,
                "-t",
                "1",
                "-c",
                str(conns),
                "-d",
                f"{secs}s",
                "-s",
                script.name,
                url + "/v1/events",
            ],
            capture_output=True,
            text=True,
            timeout=secs + 60,
            check=True,
        ).stdout
    finally:
        os.unlink(script.name)
    match = re.search(r"RESULT (\d+) (\d+) (\d+) (\d+)", out)
    assert match, out
    requests, errors, duration_us, p99_us = (int(g) for g in match.groups())
    return {"rps": requests / (duration_us / 1e6), "errors": errors, "p99_ms": p99_us / 1000}


async def _raw_producer(bootstrap: str, topic: str, count: int) -> float:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=5, max_batch_size=1024 * 1024
    )
    await producer.start()
    value = json.dumps(_event()).encode()
    try:
        started = time.perf_counter()
        futures = [await producer.send(topic, value, key=b"38") for _ in range(count)]
        await asyncio.gather(*futures)
        return count / (time.perf_counter() - started)
    finally:
        await producer.stop()


def _row(
    name: str,
    metric: str,
    value: float,
    unit: str,
    ref: str | None = None,
    ref_value: float | None = None,
    notes: str = "",
) -> dict[str, Any]:
    ratio = value / ref_value if ref_value else None
    return {
        "benchmark": name,
        "metric": metric,
        "value": round(value, 1),
        "unit": unit,
        "reference": ref,
        "reference_value": None if ref_value is None else round(ref_value, 1),
        "ratio": None if ratio is None else round(ratio, 3),
        "notes": notes,
    }


def run(mode: str) -> list[dict[str, Any]]:
    secs = 3 if mode == "quick" else 20
    wrk = _ensure_wrk()
    batch = [_event() for _ in range(500)]
    for event in batch:
        event["id"] = str(uuid.uuid4())
    bodies = {"batch": json.dumps(batch).encode(), "single": json.dumps(_event()).encode()}
    rows: list[dict[str, Any]] = []
    with embedded_broker() as broker:
        settings = CommonSettings(kafka_bootstrap_servers=broker.bootstrap_servers)
        asyncio.run(ensure_topics(settings, [*settings.event_topics, "bench.naive", "bench.raw"]))
        raw = asyncio.run(
            _raw_producer(
                broker.bootstrap_servers, "bench.raw", 200_000 if mode != "quick" else 100_000
            )
        )
        dsn = asyncio.run(_database())
        try:
            token = asyncio.run(_key(dsn))
            env = {
                **os.environ,
                "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
                "DATABASE_URL": dsn,
                "EGOV_RATE_LIMIT_PER_S": "1000000000",
                "EGOV_RATE_LIMIT_BURST": "1000000000",
                # Signing on, as in a deployment: its cost is in the figures.
                "EGOV_RECORD_SIGNING_KEY": secrets.token_hex(32),
                "NAIVE_TOPIC": "bench.naive",
            }
            auth = {"Authorization": f"Bearer {token}"}
            ingest_port, naive_port = free_port(), free_port()
            while naive_port == ingest_port:
                naive_port = free_port()
            ingest = [sys.executable, "-m", "services.cli", "ingest"]
            naive = [
                sys.executable,
                "-m",
                "uvicorn",
                "bench._naive_ingest:app",
                "--port",
                str(naive_port),
                "--log-level",
                "warning",
                "--no-access-log",
            ]
            # Both servers up at once and measured turn by turn: the machine is shared,
            # so the ratio of two runs seconds apart means more than either figure.
            with (
                _server(ingest, {**env, "EGOV_INGEST_PORT": str(ingest_port)}, ingest_port) as a,
                _server(naive, {**env, "PYTHONPATH": str(ROOT)}, naive_port) as b,
            ):
                servers = {"ingest": (a, auth), "naive": (b, {})}
                results = _measure(servers, wrk, bodies, secs, 1 if mode == "quick" else 2)
        finally:
            asyncio.run(_drop(dsn))
    ing, nai = results["ingest"], results["naive"]
    rows.append(_row("ingest", "raw aiokafka producer", raw, "events/s"))
    rows.append(
        _row(
            "ingest",
            "batch500 c4 events/s",
            ing["batch"]["rps"] * 500,
            "events/s",
            "raw aiokafka producer",
            raw,
            f"errors {ing['batch']['errors']:.0f}",
        )
    )
    rows.append(
        _row(
            "ingest",
            "batch500 c4 events/s vs naive",
            ing["batch"]["rps"] * 500,
            "events/s",
            "naive starlette+fastjsonschema",
            nai["batch"]["rps"] * 500,
            f"naive p99 {nai['batch']['p99_ms']:.1f} ms",
        )
    )
    rows.append(
        _row("ingest", "batch500 c4 p99", ing["batch"]["p99_ms"], "ms", notes="target < 100")
    )
    rows.append(
        _row(
            "ingest",
            "single c16 requests/s",
            ing["single"]["rps"],
            "requests/s",
            "naive starlette+fastjsonschema",
            nai["single"]["rps"],
            f"errors {ing['single']['errors']:.0f}; naive p99 {nai['single']['p99_ms']:.1f} ms",
        )
    )
    rows.append(
        _row("ingest", "single c16 p99", ing["single"]["p99_ms"], "ms", notes="target < 50")
    )
    return rows


def _measure(
    servers: dict[str, tuple[str, dict[str, str]]],
    wrk: str,
    bodies: dict[str, bytes],
    secs: int,
    rounds: int,
) -> dict[str, dict[str, dict[str, float]]]:
    """{server: {"batch"|"single": wrk figures}}, the servers taking turns per shape.

    The order flips at every turn (A B, B A, ...) so that neither server always runs
    second, in whatever the machine's other load left; rates are averaged over the
    rounds, p99 is the worst round's.
    """
    shapes = {
        "batch": ("application/cloudevents-batch+json", 4),
        "single": ("application/cloudevents+json", 16),
    }
    runs: dict[tuple[str, str], list[dict[str, float]]] = {}
    for base, auth in servers.values():  # warm-up: connections, caches, metadata
        headers = {"Content-Type": shapes["batch"][0], **auth}
        _wrk(wrk, base, bodies["batch"], headers, 4, 2)
    order = list(servers)
    for _ in range(rounds):
        for shape, (content_type, conns) in shapes.items():
            for name in order:
                base, auth = servers[name]
                headers = {"Content-Type": content_type, **auth}
                figures = _wrk(wrk, base, bodies[shape], headers, conns, secs)
                runs.setdefault((name, shape), []).append(figures)
            order.reverse()
    return {
        name: {
            shape: {
                "rps": sum(r["rps"] for r in runs[name, shape]) / rounds,
                "errors": sum(r["errors"] for r in runs[name, shape]),
                "p99_ms": max(r["p99_ms"] for r in runs[name, shape]),
            }
            for shape in shapes
        }
        for name in servers
    }


if __name__ == "__main__":
    for row in run(sys.argv[1] if len(sys.argv) > 1 else "quick"):
        print(json.dumps(row, ensure_ascii=False))
