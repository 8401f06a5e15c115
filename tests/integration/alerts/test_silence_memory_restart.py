"""The silence judgement's memory through PostgreSQL, across a restart of the service.

The unit tests (tests/unit/alerts/test_silence_memory.py) show what forgetting it cost:
each commune not yet heard from after its province's outage paged on its own. Here the
real path: one service writes it with its flush, the next loads it at connect.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from services.alerts.conditions import Blind
from services.alerts.silence_memory import Heard, SilenceMemory
from tests.integration.alerts.conftest import ServiceFactory
from tests.integration.alerts.harness import FakeMetrics

pytestmark = pytest.mark.integration


async def test_a_restarted_service_recalls_the_spans_and_the_quiet_provinces(
    make_service: ServiceFactory, fake_metrics: FakeMetrics
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    outage = Blind(now - timedelta(hours=2), now - timedelta(hours=1), frozenset({"c0"}))
    quiet = Blind(now - timedelta(hours=5), now - timedelta(minutes=30), frozenset({"19"}),
                  "19", "dossiers")  # fmt: skip
    heard = {("19", "dossiers"): Heard(now - timedelta(hours=5), 3600.0, True)}
    memory = SilenceMemory((outage,), (quiet,), heard)
    fake_metrics.set("c1", 99, 100)
    first = make_service()
    await first.connect()
    try:
        first.evaluator.recall(memory)
        await first.evaluate_once(now)
        await first.flush()
    finally:
        await first.close()

    second = make_service()
    await second.connect()
    try:
        recalled = second.evaluator.memory()
        assert recalled.until == now  # the first service's last cycle
        assert replace(recalled, until=None) == memory
    finally:
        await second.close()


async def test_an_unreadable_memory_is_said_and_judging_goes_on(
    make_service: ServiceFactory, fake_metrics: FakeMetrics, caplog: pytest.LogCaptureFixture
) -> None:
    first = make_service()
    await first.connect()
    try:
        assert first.pool is not None
        await first.pool.execute(
            "INSERT INTO alert_silence_memory (id, body) VALUES (1, '{\"version\": 99}') "
            "ON CONFLICT (id) DO UPDATE SET body = EXCLUDED.body"
        )
    finally:
        await first.close()
    fake_metrics.set("c1", 99, 100)
    second = make_service()
    await second.connect()
    try:
        assert "silence memory in PostgreSQL is unreadable" in caplog.text
        assert second.evaluator.memory() == SilenceMemory((), (), {})  # nothing recalled
        await second.evaluate_once(datetime.now(UTC))  # judged as before it was kept
        await second.flush()
        assert second.pool is not None
        body = await second.pool.fetchval("SELECT body::text FROM alert_silence_memory")
        written = SilenceMemory.decode(body)
        assert replace(written, until=None) == SilenceMemory((), (), {})  # written over
    finally:
        await second.close()


async def test_closing_writes_what_the_flush_loop_had_not_yet(
    make_service: ServiceFactory, fake_metrics: FakeMetrics
) -> None:
    """A deploy's SIGTERM right after a cycle: no flush ran since, and the memory is kept
    nowhere but PostgreSQL, so closing writes it (it was lost until 2026-12-06)."""
    now = datetime.now(UTC).replace(microsecond=0)
    quiet = Blind(now - timedelta(hours=3), now - timedelta(minutes=10), frozenset({"38"}),
                  "38", "documents")  # fmt: skip
    memory = SilenceMemory((), (quiet,), {})
    fake_metrics.set("c1", 99, 100)
    first = make_service()
    await first.connect()
    try:
        first.evaluator.recall(memory)
        await first.evaluate_once(now)
    finally:
        await first.close()  # no flush of its own before

    second = make_service()
    await second.connect()
    try:
        recalled = second.evaluator.memory()
        assert recalled.until == now
        assert replace(recalled, until=None) == memory
    finally:
        await second.close()


async def test_closing_with_postgresql_away_says_so_and_keeps_the_journal(
    make_service: ServiceFactory, fake_metrics: FakeMetrics, caplog: pytest.LogCaptureFixture
) -> None:
    """The last flush meets no PostgreSQL: closing still ends, in bounded time, says why,
    and the state file keeps the journal for the next start (docs/alerts.md)."""
    service = make_service()
    await service.connect()
    fake_metrics.set("c1", 10, 100)  # far below any target: a transition to write
    assert await service.evaluate_once(datetime.now(UTC))
    assert service.state.journal
    assert service.pool is not None
    await service.pool.close()  # what an outage leaves: every write refused
    await service.close()
    assert "last flush at close not written" in caplog.text

    # The next start writes what the state file kept: nothing was lost.
    again = make_service()
    await again.connect()
    try:
        await again.flush()
        assert again.pool is not None
        assert await again.pool.fetchval("SELECT count(*) FROM alerts WHERE unit = 'c1'") == 1
    finally:
        await again.close()
