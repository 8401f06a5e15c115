"""The dead-letter topic keeps its records EGOV_DEAD_LETTER_RETENTION_DAYS (review 81).

A dead letter waits for a person; with the event topics' 7 days, one nobody handled in a
week expired unseen. ``ensure_topics`` creates the topic with the setting's retention and
raises a shorter one of a topic that exists already, keeping its other settings.
"""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from services.common.kafka import dead_letter_retention_ms, ensure_topics
from services.common.settings import CommonSettings

pytestmark = pytest.mark.integration

WEEK_MS = 7 * 24 * 3600 * 1000


async def _configs(settings: CommonSettings) -> dict[str, str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        topic = ConfigResource(ConfigResourceType.TOPIC, settings.topic_dead_letter)
        described = await admin.describe_configs([topic])
    finally:
        await admin.close()
    return {
        entry[0]: entry[1]
        for response in described
        for *_, entries in response.resources
        for entry in entries
    }


async def _settled(settings: CommonSettings, retention_ms: str) -> dict[str, str]:
    """The topic's configs once its retention reads ``retention_ms``: Apache Kafka (KRaft)
    applies an AlterConfigs to the broker's metadata a moment after answering it."""
    deadline = time.monotonic() + 15
    configs = await _configs(settings)
    while configs.get("retention.ms") != retention_ms and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        configs = await _configs(settings)
    assert configs.get("retention.ms") == retention_ms, configs
    return configs


async def _create_for_a_week(settings: CommonSettings) -> None:
    """The topic as a release before the setting (or an operator) made it."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        configs = {"retention.ms": str(WEEK_MS), "max.message.bytes": "2097152"}
        topic = NewTopic(settings.topic_dead_letter, 1, 1, topic_configs=configs)
        await admin.create_topics([topic])
        deadline = time.monotonic() + 15  # listed by every broker before the test goes on
        while settings.topic_dead_letter not in await admin.list_topics():
            assert time.monotonic() < deadline, "the topic was never listed"
            await asyncio.sleep(0.2)
    finally:
        await admin.close()


async def test_the_dead_letter_topic_is_made_with_the_settings_retention(
    common_settings: CommonSettings,
) -> None:
    settings = common_settings.model_copy(update={"dead_letter_retention_days": 30})
    await ensure_topics(settings)
    await _settled(settings, str(dead_letter_retention_ms(settings)))
    assert dead_letter_retention_ms(settings) == 30 * 24 * 3600 * 1000


async def _ensure_and_say(settings: CommonSettings, caplog: pytest.LogCaptureFixture) -> list[str]:
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="services.common.kafka"):
        await ensure_topics(settings)
    return [
        r.getMessage() for r in caplog.records if "EGOV_DEAD_LETTER_RETENTION_DAYS" in r.message
    ]


@pytest.mark.broker("kafka", "tansu answers no AlterConfigs: it says so (the test below)")
async def test_a_shorter_retention_is_raised_and_said_once_other_settings_kept(
    common_settings: CommonSettings, caplog: pytest.LogCaptureFixture
) -> None:
    await _create_for_a_week(common_settings)
    said = await _ensure_and_say(common_settings, caplog)
    configs = await _settled(common_settings, str(90 * 24 * 3600 * 1000))
    assert configs["max.message.bytes"] == "2097152"  # the operator's, kept
    assert len(said) == 1 and "keeps them 90 days now" in said[0], said
    assert common_settings.topic_dead_letter in said[0]
    assert await _ensure_and_say(common_settings, caplog) == []  # as set: nothing to say


async def test_a_shorter_retention_never_stops_the_start_and_is_said_in_one_line(
    common_settings: CommonSettings, caplog: pytest.LogCaptureFixture
) -> None:
    """Raised where the broker lets it (Apache Kafka, as admin), else said: tansu has no
    AlterConfigs, and ingest's principal on the authenticated stack may not alter it."""
    await _create_for_a_week(common_settings)
    said = await _ensure_and_say(common_settings, caplog)
    assert len(said) == 1 and common_settings.topic_dead_letter in said[0], said
    if "could not be changed" in said[0]:
        assert "by hand" in said[0] and (await _configs(common_settings)).get(
            "retention.ms", str(WEEK_MS)
        ) == str(WEEK_MS), said
    else:
        assert "keeps them 90 days now" in said[0], said
        await _settled(common_settings, str(90 * 24 * 3600 * 1000))
