"""The fault tools themselves: the proxy forwards, refuses, holds and cuts as told."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import httpx
import pytest

from services.common.broker import free_port, wait_for_port
from services.common.settings import CommonSettings
from tests.conftest import ADMIN_DSN
from tests.faults.tools import Chaos, TcpProxy
from tests.integration.processes import service_env

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
    host_port = ADMIN_DSN.split("@", 1)[1].split("/", 1)[0]
    host, port = host_port.split(":")
    async with TcpProxy(host, int(port)) as proxy:
        dsn = ADMIN_DSN.replace(host_port, proxy.address)
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
