"""Compatibility shim for the embedded broker (tansu), installed by the composition root.

tansu numbers a group's first generation 0, and aiokafka sends LeaveGroup on shutdown
only when the generation is above 0: a worker stopped in generation 0 never leaves, and
one restarted quickly can sit unassigned for about 108 s. Sending LeaveGroup for
generation 0 too is harmless on Apache Kafka (it numbers generations from 1).
"""

from __future__ import annotations

import logging
from typing import Any

from aiokafka.consumer.group_coordinator import GroupCoordinator
from aiokafka.errors import KafkaError
from aiokafka.protocol.group import LeaveGroupRequest

log = logging.getLogger(__name__)
_installed = False


async def _maybe_leave_group(self: Any) -> None:
    if self.generation >= 0 and self._group_instance_id is None:
        try:
            await self._send_req(LeaveGroupRequest(self.group_id, self.member_id))
        except KafkaError as exc:
            log.warning("LeaveGroup failed: %r", exc)
    self.reset_generation()


def install_leave_group_shim() -> None:
    """Leave the group on clean shutdown whatever the generation (idempotent)."""
    global _installed
    if not _installed:
        GroupCoordinator._maybe_leave_group = _maybe_leave_group
        _installed = True
