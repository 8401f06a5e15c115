"""Compatibility shim for the embedded broker (tansu), installed by the composition root.

On tansu a worker never sends LeaveGroup: it stops and lets its session expire.

tansu 0.6.0's coordinator removes a member that leaves while the group rebalances but
keeps it as the group's leader. Every member still there is then told, at each
JoinGroup, that the departed member leads; their SyncGroup is answered
REBALANCE_IN_PROGRESS (only the leader may complete a rebalance) and they rejoin at
the same generation forever, the group's partitions read by no one. The fault suite's
worker chaos met it whenever a SIGTERMed worker had just been made leader (three CI
runs; tests/integration/metrics/test_group_leave.py makes it happen on purpose). A
member whose session expires instead is dropped as leader too, and the survivors
complete the rebalance: a clean stop costs one session (6 s) before its partitions
move, as a crash does.

aiokafka itself leaves only above generation 0, and tansu numbers a group's first
generation 0, so its own behaviour is neither: leaving or not depends on the
generation. None of this applies to Apache Kafka, where the workers leave as usual.
"""

from __future__ import annotations

import logging
from typing import Any

from aiokafka.consumer.group_coordinator import GroupCoordinator

log = logging.getLogger(__name__)
_installed = False


async def _expire_instead_of_leaving(self: Any) -> None:
    if self.generation >= 0 and self._group_instance_id is None:
        log.info(
            "Not sending LeaveGroup to the embedded broker: member %s of %s expires after "
            "its session instead",
            self.member_id,
            self.group_id,
        )
    self.reset_generation()


def install_no_leave_group_shim() -> None:
    """Never send LeaveGroup (idempotent): see the module's docstring for why."""
    global _installed
    if not _installed:
        GroupCoordinator._maybe_leave_group = _expire_instead_of_leaving
        _installed = True
