"""`make up` announces the stack only once every service answers, not when a port opens.

A CI run saw the banner printed, then the first publish refused a connection: an open
port (or a probe connected to itself on loopback) is not a serving ingest. The stack now
waits for each service's ready answer and stops, naming the service and its log, when one
exits or never answers.
"""

from __future__ import annotations

import asyncio
import sys
import textwrap
from pathlib import Path

import pytest

from services.common.broker import free_port
from services.devstack import Child, StartError, _wait_ready

# A service that answers 503 on /readyz until ``ready_after`` seconds have passed.
SERVER = textwrap.dedent(
    """
    import http.server, sys, time
    started, ready_after = time.monotonic(), float(sys.argv[2])
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            ready = time.monotonic() - started >= ready_after
            self.send_response(200 if ready and self.path == "/readyz" else 503)
            self.end_headers()
            self.wfile.write(b'{"broker": false}' if not ready else b"{}")
        def log_message(self, *args):
            pass
    http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
    """
)


async def spawn(name: str, tmp_path: Path, *args: str) -> Child:
    process = await asyncio.create_subprocess_exec(sys.executable, *args)
    return Child(name, process, tmp_path / f"{name}.log", list(args), {})


async def stop(child: Child) -> None:
    if child.process.returncode is None:
        child.process.kill()
    await child.process.wait()


async def test_a_listening_service_that_is_not_ready_yet_is_waited_for(tmp_path: Path) -> None:
    port = free_port()
    child = await spawn("ingest", tmp_path, "-c", SERVER, str(port), "1.5")
    try:
        loop = asyncio.get_running_loop()
        started = loop.time()
        await _wait_ready(child, port, timeout_s=30)
        # Its port opened at once; it said 503 for 1.5 s, and that was waited out.
        assert loop.time() - started >= 1.4
    finally:
        await stop(child)


async def test_a_service_that_never_gets_ready_stops_the_start_with_its_answer(
    tmp_path: Path,
) -> None:
    port = free_port()
    child = await spawn("ingest", tmp_path, "-c", SERVER, str(port), "3600")
    try:
        with pytest.raises(StartError) as refused:
            await _wait_ready(child, port, timeout_s=1.5)
        message = str(refused.value)
        assert "ingest is not ready after 1.5 s" in message
        assert '503 {"broker": false}' in message
        assert str(tmp_path / "ingest.log") in message
        assert child.process.returncode is None  # still running: `up` stops it in order
    finally:
        await stop(child)


async def test_a_service_that_exits_while_starting_is_named_at_once(tmp_path: Path) -> None:
    child = await spawn("metrics", tmp_path, "-c", "raise SystemExit(3)")
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(StartError) as refused:
        await _wait_ready(child, free_port(), timeout_s=60)
    assert "metrics exited with 3 while starting" in str(refused.value)
    assert str(tmp_path / "metrics.log") in str(refused.value)
    assert loop.time() - started < 30  # not the whole timeout
