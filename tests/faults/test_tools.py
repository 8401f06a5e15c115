"""The fault tools themselves: the proxy forwards, refuses, holds and cuts as told."""

from __future__ import annotations

import asyncio
import gc
import warnings
from pathlib import Path

import asyncpg
import httpx
import pytest

from services.common.broker import free_port, wait_for_port
from services.common.settings import CommonSettings
from tests.faults.leaks import LeakReport
from tests.faults.tools import Chaos, TcpProxy
from tests.integration.processes import service_env
from tests.servers import admin_dsn

pytestmark = pytest.mark.faults


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(1024):
        writer.write(data)
        await writer.drain()
    writer.close()


async def test_proxy_forwards_refuses_holds_and_cuts() -> None:
    server = await asyncio.start_server(_echo, "127.0.0.1", 0)
    target = server.sockets[0].getsockname()[1]
    try:
        async with TcpProxy("127.0.0.1", target) as proxy:
            reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
            writer.write(b"ping")
            assert await asyncio.wait_for(reader.read(4), 2) == b"ping"

            proxy.drop()  # the open connection is cut: EOF or reset, not a hang
            try:
                assert await asyncio.wait_for(reader.read(4), 2) == b""
            except ConnectionResetError:
                pass
            writer.close()

            await proxy.refuse()
            with pytest.raises(ConnectionRefusedError):
                await asyncio.open_connection("127.0.0.1", proxy.port)

            await proxy.blackhole()
            reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
            writer.write(b"ping")
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(reader.read(4), 0.5)
            writer.close()

            await proxy.forward()
            reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
            writer.write(b"back")
            assert await asyncio.wait_for(reader.read(4), 2) == b"back"
            writer.close()
    finally:
        server.close()
        await server.wait_closed()


async def test_postgresql_through_the_proxy_fails_clearly_and_recovers() -> None:
    host_port = admin_dsn().split("@", 1)[1].split("/", 1)[0]
    host, port = host_port.split(":")
    async with TcpProxy(host, int(port)) as proxy:
        dsn = admin_dsn().replace(host_port, proxy.address)
        conn = await asyncpg.connect(dsn, timeout=5)
        assert await conn.fetchval("SELECT 1") == 1
        await proxy.refuse()
        with pytest.raises((asyncpg.PostgresConnectionError, ConnectionError, OSError)):
            await conn.fetchval("SELECT 1", timeout=2)
        with pytest.raises(OSError):
            await asyncpg.connect(dsn, timeout=2)
        await proxy.forward()
        conn = await asyncpg.connect(dsn, timeout=5)
        assert await conn.fetchval("SELECT 2") == 2
        await conn.close()


async def test_chaos_kills_and_restarts_on_a_replayable_schedule(
    common_settings: CommonSettings, database_url: str, tmp_path: Path
) -> None:
    port = free_port()
    env = service_env(common_settings, database_url) | {"EGOV_INGEST_PORT": str(port)}
    chaos = Chaos(seed=7)
    try:
        chaos.add("ingest", ["ingest"], env, tmp_path / "ingest.log")
        await wait_for_port("127.0.0.1", port, 30)
        await chaos.rampage(6, gap_s=(1.0, 2.0), down_s=(0.2, 0.5))
        await wait_for_port("127.0.0.1", port, 30)
        async with httpx.AsyncClient(timeout=5) as client:
            assert (await client.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200
    finally:
        chaos.stop_all()
    kills = [what for _, name, what in chaos.history if what in {"SIGKILL", "SIGTERM"}]
    assert kills and chaos.processes["ingest"].starts == len(kills) + 1, chaos.describe()
    assert chaos.describe().startswith("chaos seed 7:")


class _HalfOpen(asyncio.Protocol):
    """Keeps a connection open for writing when the peer hangs up, as anyio's (httpx's)
    protocol does; unlike a StreamWriter, nothing closes it when it is dropped."""

    def eof_received(self) -> bool:
        return True


async def _open_and_forget(port: int) -> None:
    """A client that drops its connection without closing it (the leak to be found)."""
    await asyncio.get_running_loop().create_connection(_HalfOpen, "127.0.0.1", port)


async def _hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.close()


async def test_leak_report_names_the_test_and_where_an_unclosed_socket_was_opened() -> None:
    report = LeakReport()
    # The server hangs up at once: a client socket then no longer waits for input, so the
    # event loop lets go of it and only its owner could have closed it (as in CI's leak,
    # reported "read=idle").
    server = await asyncio.start_server(_hang_up, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        with report.tracking_origins():
            await _open_and_forget(port)
            closed, _ = await asyncio.get_running_loop().create_connection(
                _HalfOpen, "127.0.0.1", port
            )
            closed.close()
            await asyncio.sleep(0.1)  # both hung up on
            found = report.collect("the-test")
    finally:
        server.close()
        await server.wait_closed()
    # Only the forgotten client's socket: not the closed one, nor the server's.
    assert [leak.test for leak in found] == ["the-test"], report.lines()
    assert "unclosed transport" in found[0].transport
    assert "_open_and_forget" in found[0].opened_at
    assert report.lines()[0].startswith("the-test: unclosed transport")


async def test_leak_report_names_a_socket_collected_while_a_test_runs() -> None:
    report = LeakReport(running="the-running-test")
    server = await asyncio.start_server(_hang_up, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        with report.tracking_origins():
            await _open_and_forget(port)
            await asyncio.sleep(0.1)
            # The collector running on its own, mid-test (its warning kept out of pytest).
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", ResourceWarning)
                gc.collect()
    finally:
        server.close()
        await server.wait_closed()
    assert any("unclosed transport" in str(w.message) for w in caught)
    assert [leak.test for leak in report.leaks] == ["the-running-test"], report.lines()
    assert "_open_and_forget" in report.leaks[0].opened_at


def test_leak_report_lists_only_transports_and_lets_other_warnings_through(
    tmp_path: Path,
) -> None:
    report = LeakReport()

    class Holder:
        pass

    holder = Holder()
    holder.cycle = holder  # type: ignore[attr-defined]  # only the collector frees it
    holder.file = (tmp_path / "left-open").open("w")  # type: ignore[attr-defined]
    del holder
    # The fault suite's fixture keeps the automatic collector off, so this one frees it.
    with pytest.warns(ResourceWarning, match="unclosed file"):
        found = report.collect("the-test")
    assert found == []
    assert report.leaks == []
