"""Existing topics keep their partitions, and the services say so when the setting differs.

Records are keyed by province and a worker's figures are the sums of the partitions it
owns: re-partitioning a topic splits provinces' periods between workers (docs/
runbooks.md, "More metrics workers than partitions"). ensure_topics never does it; an
operator who raised EGOV_TOPIC_PARTITIONS to scale out is told why nothing changed.
"""

from __future__ import annotations

import logging

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from services.common.kafka import ensure_topics
from services.common.settings import CommonSettings

pytestmark = pytest.mark.integration


async def _partitions(settings: CommonSettings) -> dict[str, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        topics = await admin.describe_topics(list(settings.event_topics))
    finally:
        await admin.close()
    return {t["topic"]: len(t["partitions"]) for t in topics}


async def test_a_raised_partition_setting_changes_no_topic_and_says_so(
    common_settings: CommonSettings, caplog: pytest.LogCaptureFixture
) -> None:
    await ensure_topics(common_settings)
    created = await _partitions(common_settings)
    assert set(created.values()) == {common_settings.topic_partitions}

    raised = common_settings.model_copy(update={"topic_partitions": 12})
    with caplog.at_level(logging.WARNING, logger="services.common.kafka"):
        await ensure_topics(raised)
    assert await _partitions(common_settings) == created  # nothing re-partitioned
    for topic in common_settings.event_topics:
        assert f"topic {topic} has 3 partitions, EGOV_TOPIC_PARTITIONS says 12" in caplog.text

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="services.common.kafka"):
        await ensure_topics(common_settings)
    assert "EGOV_TOPIC_PARTITIONS says" not in caplog.text  # as set: nothing to say
