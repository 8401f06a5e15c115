"""Review 87: resource bounds of the long-running services over weeks of traffic and
under a hostile client.

Every in-memory structure keyed or grown by what a publisher, a client or time controls
was read for a bound (the report lists those found bounded: the ingest key cache, the
per-address and per-key token buckets, the validator's routes, the workers' key-text,
dead-letter-province, summary-chain and resolution caches, the misplaced-key log set,
the record signer's prefixes, the exported label caches, the dossier histories, the
wall's shared reads and stream slots, the alerts' counting-since and quiet spans). Two
are not, each a strict xfail asserting the bound the design should keep:

1. The wall (services/wall/server.py:52, ``uvicorn.Config`` with uvicorn's default
   httptools protocol) reads a request head without a size bound or a deadline: one
   connection sending header lines without end is read for as long as it sends, and a
   trickled head holds its socket for ever; the process's memory grows by what was sent
   (measured: RSS +16 MiB for 16 MiB of one head). Review 82 bounded ingest's heads only
   (services/ingest/protocol.py, EGOV_MAX_HEADER_BYTES 32 KiB, EGOV_HEADER_TIMEOUT_S);
   docs/wall.md says "what one client can make the wall do is bounded".
2. The alerts API (services/alerts/server.py:13, the same default ``uvicorn.Config``):
   the same unbounded request head, on the port compose publishes for operators
   (docker-compose.expose.yml).

Both were fixed 2026-12-06: ingest's bounded protocol moved to services/common/httphead.py
and serves the wall and the alerts API too, with the same ``EGOV_HEADER_TIMEOUT_S`` and
``EGOV_MAX_HEADER_BYTES`` (services/common/settings.py, ``HeadBounds``); the trickled
heads and the wall's event streams under a short deadline are checked below.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from services.common.broker import free_port
from services.common.settings import CommonSettings
from tests.faults.conftest import alerts_env
from tests.integration.processes import service_env

pytestmark = pytest.mark.integration

HEAD_SENT_BYTES = 16 * 1024 * 1024
"""Header lines one connection sends: 512 times ingest's head bound (32 KiB)."""
LINE = b"X-Pad: " + b"a" * 1017 + b"\r\n"  # 1 KiB a header line
GROWN_MAX_MB = 4.0
"""RSS growth a refused endless head may cost (unbounded: +16 MiB). What the client sent
before it saw the refusal is no measure of what the server read: loopback socket buffers,
autotuned to MiBs, took 0.4-2.6 MiB after the server had refused at 32 KiB."""


@contextmanager
def served(args: list[str], env: dict[str, str], port: int, log: Path) -> Iterator[int]:
    """``egov-pulse ARGS`` on ``port`` until the block ends; yields its pid once ready."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "services.cli", *args], env=env, stdout=out, stderr=out
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log.read_text(errors="replace")[-3000:]
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code < 500:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, log.read_text(errors="replace")[-3000:]
            time.sleep(0.2)
        yield proc.pid
    finally:
        proc.kill()
        proc.wait()


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def _answered_or_closed(sock: socket.socket) -> bytes | None:
    """What the server sent back (b"" when it closed), or None when it said nothing yet."""
    sock.setblocking(False)
    try:
        return sock.recv(4096)
    except BlockingIOError:
        return None
    except OSError:
        return b""
    finally:
        sock.setblocking(True)


def _endless_head(port: int, pid: int) -> tuple[int | None, float]:
    """Send one request head of ``HEAD_SENT_BYTES`` of header lines: (the bytes sent
    when the server refused or closed, None if it never did; its RSS growth, MiB)."""
    baseline = _rss_mb(pid)
    sock = socket.create_connection(("127.0.0.1", port))
    sock.settimeout(10)
    sent = 0
    try:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: egov\r\n")
        while sent < HEAD_SENT_BYTES:
            try:
                sock.sendall(LINE * 64)
            except OSError:
                return sent, _rss_mb(pid) - baseline
            sent += len(LINE) * 64
            if sent % (1024 * 1024) == 0 and _answered_or_closed(sock) is not None:
                return sent, _rss_mb(pid) - baseline
        time.sleep(0.5)
        if _answered_or_closed(sock) is not None:
            return sent, _rss_mb(pid) - baseline
        return None, _rss_mb(pid) - baseline
    finally:
        sock.close()


def test_the_wall_refuses_an_endless_request_head(tmp_path: Path) -> None:
    port = free_port()
    env = dict(os.environ) | {
        "EGOV_WALL_PORT": str(port),
        "EGOV_METRICS_URLS": f"http://127.0.0.1:{free_port()}",
        "EGOV_ALERTS_URL": "",
        "PYTHONUNBUFFERED": "1",
    }
    with served(["wall"], env, port, tmp_path / "wall.log") as pid:
        refused_at, grown = _endless_head(port, pid)
        after = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
    assert after.status_code == 200
    assert refused_at is not None and grown < GROWN_MAX_MB, (
        f"the wall answered after {refused_at} bytes of one request head (None: not"
        f" within {HEAD_SENT_BYTES >> 20} MiB), RSS +{grown:.0f} MiB; ingest refuses past"
        " 32 KiB"
    )


def test_the_alerts_api_refuses_an_endless_request_head(
    common_settings: CommonSettings, database_url: str, tmp_path: Path
) -> None:
    port = free_port()
    env = alerts_env(
        service_env(common_settings, database_url),
        port,
        EGOV_METRICS_URLS=f"http://127.0.0.1:{free_port()}",
    )
    with served(["alerts"], env, port, tmp_path / "alerts.log") as pid:
        refused_at, grown = _endless_head(port, pid)
        after = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
    assert after.status_code < 500
    assert refused_at is not None and grown < GROWN_MAX_MB, (
        f"the alerts API answered after {refused_at} bytes of one request head (None: not"
        f" within {HEAD_SENT_BYTES >> 20} MiB), RSS +{grown:.0f} MiB; ingest refuses past"
        " 32 KiB"
    )


# --- a trickled head, under a short deadline ------------------------------------------

HEAD_TIMEOUT_S = 1.5
"""EGOV_HEADER_TIMEOUT_S of the services below: short, and not a whole number of the
trickle's seconds, so the refusal never crosses the client's next byte."""


def _trickled_head(port: int) -> tuple[bytes | None, float]:
    """Send a request head one byte a second, as a slowloris client does: (what the
    server sent until it closed, b"" when it closed without a word, None when it was
    still waiting past twice the deadline; seconds from the connection to the answer)."""
    head = b"GET /healthz HTTP/1.1\r\nHost: egov\r\nX-Slow: " + b"a" * 60
    sock = socket.create_connection(("127.0.0.1", port))
    started = time.monotonic()
    try:
        for byte in head:
            if time.monotonic() - started > 2 * HEAD_TIMEOUT_S + 1:
                return None, time.monotonic() - started
            try:
                sock.sendall(bytes([byte]))
                sock.settimeout(1.0)
                first = sock.recv(4096)
            except TimeoutError:
                continue  # nothing yet: the next byte, a second later
            except OSError:
                return b"", time.monotonic() - started
            answered = time.monotonic() - started
            return first + _rest(sock), answered
        return None, time.monotonic() - started
    finally:
        sock.close()


def _rest(sock: socket.socket) -> bytes:
    """What follows on a connection until the server closes it."""
    sock.settimeout(5)
    rest = b""
    while chunk := sock.recv(4096):
        rest += chunk
    return rest


def _refused_in_time(reply: bytes | None, after_s: float, service: str) -> None:
    assert reply is not None, f"the {service} held a trickled head for {after_s:.1f} s"
    # Bytes of a head came, so the client is told why: ingest's 408, the same bytes.
    assert reply.startswith(b"HTTP/1.1 408 "), reply[:300]
    assert b'"type":"https://egov-pulse.vn/problems/headers-too-slow"' in reply, reply
    assert b"connection: close" in reply.lower(), reply[:300]
    assert HEAD_TIMEOUT_S - 0.2 <= after_s <= HEAD_TIMEOUT_S + 1.0, after_s


def _wall_env(port: int) -> dict[str, str]:
    return dict(os.environ) | {
        "EGOV_WALL_PORT": str(port),
        "EGOV_METRICS_URLS": f"http://127.0.0.1:{free_port()}",
        "EGOV_ALERTS_URL": "",
        "EGOV_HEADER_TIMEOUT_S": str(HEAD_TIMEOUT_S),
        "EGOV_WALL_HEARTBEAT_S": "0.5",
        "PYTHONUNBUFFERED": "1",
    }


def _stream_events(port: int, seconds: float) -> list[float]:
    """Read /wall/stream for ``seconds``: when (seconds from its start) each event came."""
    came: list[float] = []
    started = time.monotonic()
    with httpx.stream("GET", f"http://127.0.0.1:{port}/wall/stream", timeout=5) as answer:
        assert answer.status_code == 200
        for line in answer.iter_lines():
            if line.startswith("event:"):
                came.append(time.monotonic() - started)
            if time.monotonic() - started > seconds:
                break
    return came


def test_the_wall_refuses_a_trickled_head_and_keeps_its_streams(tmp_path: Path) -> None:
    port = free_port()
    with served(["wall"], _wall_env(port), port, tmp_path / "wall.log"):
        reply, after_s = _trickled_head(port)
        # The deadline runs only while a head is read: an event stream, one answer that
        # lasts as long as the page is open, goes on well past it.
        came = _stream_events(port, 3 * HEAD_TIMEOUT_S)
        after = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
    _refused_in_time(reply, after_s, "wall")
    assert came and came[-1] > 2 * HEAD_TIMEOUT_S, came
    assert after.status_code == 200


def test_the_alerts_api_refuses_a_trickled_head(
    common_settings: CommonSettings, database_url: str, tmp_path: Path
) -> None:
    port = free_port()
    env = alerts_env(
        service_env(common_settings, database_url),
        port,
        EGOV_METRICS_URLS=f"http://127.0.0.1:{free_port()}",
        EGOV_HEADER_TIMEOUT_S=str(HEAD_TIMEOUT_S),
    )
    with served(["alerts"], env, port, tmp_path / "alerts.log"):
        reply, after_s = _trickled_head(port)
        after = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
    _refused_in_time(reply, after_s, "alerts API")
    assert after.status_code < 500
