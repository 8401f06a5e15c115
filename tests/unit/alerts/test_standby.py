"""Standing by for the alerts lock (services/alerts/lease.py), with a fake lock."""

from __future__ import annotations

import asyncio
import logging

import pytest

from services.alerts.lease import stand_by
from services.common.pglease import AdvisoryLease, Holder

OTHER = Holder(4242, "10.0.0.7", "egov-pulse alerts old-host pid 7")


class FakeLease(AdvisoryLease):
    """Held by others for ``answers`` (a Holder, or an OSError for PostgreSQL away)."""

    def __init__(self, answers: list[Holder | OSError]) -> None:
        super().__init__("postgresql://unused/db", 1, "test")
        self.answers = answers
        self.tries = 0

    async def try_acquire(self) -> Holder | None:
        self.tries += 1
        if not self.answers:
            return None
        answer = self.answers.pop(0)
        if isinstance(answer, OSError):
            raise answer
        return answer


async def test_a_standby_says_so_once_per_holder_and_takes_over_when_free(
    caplog: pytest.LogCaptureFixture,
) -> None:
    lease = FakeLease([OSError("refused"), OTHER, OTHER, OTHER])
    stood: list[bool] = []
    with caplog.at_level(logging.WARNING):
        assert await asyncio.wait_for(stand_by(lease, 0.01, lambda: stood.append(True)), 5)
    assert lease.tries == 5 and stood == [True]
    lines = [r.getMessage() for r in caplog.records if "standby:" in r.getMessage()]
    assert lines == [
        "standby: another alerts service holds the lock on this database (egov-pulse "
        "alerts old-host pid 7 from 10.0.0.7, backend pid 4242); not evaluating, writing "
        "or delivering; retrying every 0.01 s"
    ]
    assert any("now active" in r.getMessage() for r in caplog.records)


async def test_a_free_lock_is_taken_without_standing_by() -> None:
    lease = FakeLease([])
    stood: list[bool] = []
    assert not await stand_by(lease, 0.01, lambda: stood.append(True))
    assert stood == []


async def test_a_lease_never_taken_is_neither_held_nor_confirmed() -> None:
    lease = AdvisoryLease("postgresql://unused/db", 1, "test")
    assert not lease.held
    assert not await lease.confirm()
    await lease.release()  # nothing to release: no error
