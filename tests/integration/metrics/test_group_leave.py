"""A worker stopped while its group rebalances must not leave the others unassigned.

tansu 0.6.0 keeps a member that sent LeaveGroup mid-rebalance as the group's leader,
and the members left rejoin at the same generation forever (services/metrics/compat.py;
the fault suite's worker chaos in CI, seeds 291851724, 880368967 and 1674601764). Real
aiokafka consumers on the broker under test: the member leading the group stops while
a second one is joining (after tansu took its JoinGroup, before the leader's next
heartbeat would take it into the rebalance).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.consumer.group_coordinator import GroupCoordinator
from aiokafka.protocol.group import LeaveGroupRequest

from services.metrics import compat
from tests.servers import broker_name

PARTITIONS = 3
SESSION_MS = 6_000
# The leader's next heartbeat (which would tell it of the rebalance) is well after it stops.
LEADER_HEARTBEAT_MS = 5_000
# A session to expire, tansu's 3 s follower pause and a rejoin, with room to spare.
RECOVERY_S = 4 * SESSION_MS / 1000

LeaveGroup = Callable[[Any], Coroutine[Any, Any, None]]


async def _leave_always(self: Any) -> None:
    """The shim the workers had until 2026-12-05: LeaveGroup at every generation."""
    await self._send_req(LeaveGroupRequest(self.group_id, self.member_id))
    self.reset_generation()


async def _topic(bootstrap: str) -> str:
    name = f"t{uuid.uuid4().hex[:10]}.leave"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, PARTITIONS, 1)])
    finally:
        await admin.close()
    return name


def _consumer(bootstrap: str, topic: str, group: str, heartbeat_ms: int) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        session_timeout_ms=SESSION_MS,
        heartbeat_interval_ms=heartbeat_ms,
        rebalance_timeout_ms=10_000,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )


async def _members(bootstrap: str, group: str, count: int) -> None:
    """Wait until the coordinator lists ``count`` members (a JoinGroup it has taken)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            described = await admin.describe_consumer_groups([group])
            if len(described[0].groups[0][5]) >= count:
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"the coordinator never listed {count} members of {group}")
    finally:
        await admin.close()


async def _held_after_leader_stops(bootstrap: str) -> int:
    """Partitions the joining member holds ``RECOVERY_S`` after the leader stopped."""
    topic = await _topic(bootstrap)
    group = f"leave-{uuid.uuid4().hex[:8]}"
    leader = _consumer(bootstrap, topic, group, LEADER_HEARTBEAT_MS)
    joiner = _consumer(bootstrap, topic, group, 1_000)
    await leader.start()
    joining: asyncio.Task[None] | None = None
    try:
        await leader.getmany(timeout_ms=100)
        assert len(leader.assignment()) == PARTITIONS, "the first member got no partitions"
        # start() returns with the consumer's first assignment: it runs on while the
        # leader stops.
        joining = asyncio.create_task(joiner.start())
        await _members(bootstrap, group, 2)
        await leader.stop()
        deadline = time.monotonic() + RECOVERY_S
        done, _ = await asyncio.wait({joining}, timeout=RECOVERY_S)
        if not done:
            return 0
        while time.monotonic() < deadline and len(joiner.assignment()) < PARTITIONS:
            await joiner.getmany(timeout_ms=200)
        return len(joiner.assignment())
    finally:
        if joining is not None and not joining.done():
            joining.cancel()
            await asyncio.gather(joining, return_exceptions=True)
        await joiner.stop()
        await leader.stop()


async def test_a_worker_stopped_mid_rebalance_leaves_its_partitions_to_the_others(
    kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a worker does on stop (on tansu the shim; on Kafka aiokafka's LeaveGroup)."""
    if broker_name() == "tansu":
        monkeypatch.setattr(
            GroupCoordinator, "_maybe_leave_group", compat._expire_instead_of_leaving
        )
    held = await _held_after_leader_stops(kafka_bootstrap)
    assert held == PARTITIONS, (
        f"{RECOVERY_S:g} s after the leader stopped, the other member holds {held} of "
        f"{PARTITIONS} partitions"
    )


@pytest.mark.broker("tansu", "the coordinator bug the workers work around is tansu's")
async def test_tansu_keeps_a_leader_that_left_mid_rebalance_and_the_group_stalls(
    kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Why the shim never leaves: with a LeaveGroup the other member never gets a partition.

    Should a later tansu fix this, this test fails, and services/metrics/compat.py may go.
    """
    monkeypatch.setattr(GroupCoordinator, "_maybe_leave_group", _leave_always)
    held = await _held_after_leader_stops(kafka_bootstrap)
    assert held == 0, f"the other member got {held} partitions: tansu no longer stalls"
