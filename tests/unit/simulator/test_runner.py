"""The runner end to end against a local HTTP server, and the CLI's settings."""

from __future__ import annotations

import argparse
import asyncio
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import orjson
import pytest

from services.common.contract import Contract
from services.common.units import VN_TZ
from services.simulator.cli import add_arguments, settings_from_args
from services.simulator.runner import history_span, run
from services.simulator.settings import SimulatorSettings

from .conftest import Reply, ScriptedServer

NOW = datetime(2025, 9, 1, 10, 0, tzinfo=VN_TZ)


async def test_run_posts_valid_batches_until_stopped(ingest_server: ScriptedServer) -> None:
    ingest_server.script = [Reply(503, {"Retry-After": "0"})]
    settings = SimulatorSettings(
        ingest_url=ingest_server.url,
        rate=400,
        history_s=0,
        profile="flat",
        batch_interval_s=0.05,
        provinces=["38"],
        silent_unit="16342",
    )
    stop = asyncio.Event()

    async def stop_after_five_batches() -> None:  # by count, not by time: a loaded CI is slow
        while len(ingest_server.received) < 6:  # noqa: ASYNC110 - filled by the server thread
            await asyncio.sleep(0.01)
        stop.set()

    watcher = asyncio.get_running_loop().create_task(stop_after_five_batches())
    async with httpx.AsyncClient(timeout=5.0) as client:
        stats = await asyncio.wait_for(run(settings, stop, client=client, clock=lambda: NOW), 60)
    await watcher

    assert stats.generated >= 5 and stats.batches >= 5
    assert stats.accepted == stats.generated
    assert (stats.refused, stats.failed, stats.retries) == (0, 0, 1)
    assert ingest_server.received[0].body == ingest_server.received[1].body
    contract = Contract.load()
    events = [e for r in ingest_server.received[1:] for e in orjson.loads(r.body)]
    assert len(events) == stats.generated
    assert all(contract.validate(e) == [] for e in events)
    assert "16342" not in {e["unit"] for e in events}
    assert {e["source"].rsplit(":", 1)[1] for e in events} == {"38"}


async def test_history_is_published_first_spread_over_the_past(
    ingest_server: ScriptedServer,
) -> None:
    settings = SimulatorSettings(
        ingest_url=ingest_server.url,
        rate=2,
        history_s=3 * 3600,
        profile="flat",  # the rhythm of the week is tested in test_review37_realism.py
        late_fraction=0,
        duplicate_fraction=0,
        provinces=["38"],
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    async def stop_when_history_is_sent() -> None:
        # The server records requests on its own thread: polled, there is no event to await.
        while sum(len(orjson.loads(r.body)) for r in ingest_server.received) < 3 * 3600 * 2:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        stop.set()

    watcher = loop.create_task(stop_when_history_is_sent())
    async with httpx.AsyncClient(timeout=5.0) as client:
        stats = await asyncio.wait_for(run(settings, stop, client=client, clock=lambda: NOW), 30)
    await watcher

    times = [
        datetime.fromisoformat(e["time"])
        for r in ingest_server.received
        for e in orjson.loads(r.body)
    ]
    history = times[: 3 * 3600 * 2]
    assert stats.accepted == stats.generated >= len(history) == 21_600
    assert all(NOW - timedelta(hours=3) <= t <= NOW for t in history)
    # Spread over the span, oldest slice first: each hour holds about a third.
    per_hour = [
        sum(NOW - timedelta(hours=h + 1) <= t < NOW - timedelta(hours=h) for t in history)
        for h in range(3)
    ]
    assert all(6_800 <= n <= 7_600 for n in per_hour), per_hour
    assert history[0] < NOW - timedelta(hours=2, minutes=58)
    assert history[-1] > NOW - timedelta(minutes=2)


async def test_run_returns_at_once_when_already_stopped(ingest_server: ScriptedServer) -> None:
    stop = asyncio.Event()
    stop.set()
    async with httpx.AsyncClient(timeout=5.0) as client:
        stats = await run(SimulatorSettings(ingest_url=ingest_server.url), stop, client=client)
    assert stats.generated == 0
    assert ingest_server.received == []


def test_provinces_are_read_comma_separated_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EGOV_SIMULATOR_PROVINCES", "19, 68")
    monkeypatch.setenv("EGOV_SIMULATOR_API_KEY", "s3cret")
    settings = SimulatorSettings()
    assert settings.provinces == ["19", "68"]
    assert settings.api_key is not None and "s3cret" not in repr(settings)


def test_defaults_match_the_brief() -> None:
    settings = SimulatorSettings()
    assert settings.ingest_url == "http://127.0.0.1:8080"
    assert settings.provinces == ["19", "38", "68"]
    assert (settings.rate, settings.batch_interval_s) == (0.25, 1.0)
    assert (settings.late_fraction, settings.duplicate_fraction) == (0.02, 0.01)
    assert settings.api_key is None and settings.silent_unit is None
    assert settings.history_s is None and settings.profile == "office"
    # Unset, the history is the past day at the default rate, bounded at load rates.
    assert history_span(settings) == 86400
    assert history_span(SimulatorSettings(rate=200)) == 150


def test_flags_override_settings_and_the_key_comes_from_a_file(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("k3y\n", encoding="utf-8")
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    flags = ["--rate", "5", "--provinces", "38", "--seed", "9", "--history", "3600"]
    args = parser.parse_args([*flags, "--api-key-file", str(key_file)])
    settings = settings_from_args(args)
    assert (settings.rate, settings.provinces, settings.seed) == (5.0, ["38"], 9)
    assert settings.history_s == 3600
    assert settings.api_key is not None and settings.api_key.get_secret_value() == "k3y"
    assert settings.ingest_url == "http://127.0.0.1:8080"
