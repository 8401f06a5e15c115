"""Kafka adapters: a producer with safe defaults, idempotent topic creation, and the
service's Kafka credentials for every client it opens (aiokafka's and Faust's)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import faust
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from services.common.settings import CommonSettings

log = logging.getLogger(__name__)


def make_producer(settings: CommonSettings, **overrides: object) -> AIOKafkaProducer:
    """A producer that waits for all in-sync replicas (aiokafka's default is acks=1).

    Idempotence is a setting: Apache Kafka supports it, the embedded broker does not.
    Downstream dedup by (source, id) keeps retries harmless either way.
    """
    timeout_ms = int(settings.kafka_request_timeout_s * 1000)
    options: dict[str, object] = {
        "bootstrap_servers": settings.kafka_bootstrap_servers,
        "acks": "all",
        "enable_idempotence": settings.kafka_idempotence,
        "request_timeout_ms": timeout_ms,
        "linger_ms": 5,
        "max_batch_size": 1024 * 1024,
        "max_request_size": 8 * 1024 * 1024,
        "compression_type": None,
        **settings.kafka_security,
    }
    options.update(overrides)
    return AIOKafkaProducer(**options)


async def ensure_topics(settings: CommonSettings, topics: list[str] | None = None) -> None:
    """Create the event and dead-letter topics if they are missing (safe to repeat)."""
    names = topics if topics is not None else [*settings.event_topics, settings.topic_dead_letter]
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        request_timeout_ms=int(settings.kafka_request_timeout_s * 1000),
        **settings.kafka_security,
    )
    await asyncio.wait_for(admin.start(), settings.kafka_request_timeout_s)
    try:
        existing = set(await admin.list_topics())
        missing = [_new_topic(name, settings) for name in names if name not in existing]
        raced = False
        if missing:
            try:
                await admin.create_topics(missing)
            except TopicAlreadyExistsError:
                raced = True  # another process won the race: the topic is there
            log.info("created topics %s", [t.name for t in missing])
            await _listed(admin, [t.name for t in missing], settings.kafka_request_timeout_s)
        present = [name for name in names if name in existing]
        if present:
            for topic in await admin.describe_topics(present):
                _say_partitions(topic, settings.topic_partitions)
        dead_letter = settings.topic_dead_letter
        if dead_letter in present or (raced and dead_letter in names):
            await _keep_dead_letters(admin, settings)
    finally:
        await admin.close()


def _say_partitions(topic: dict[str, Any], wanted: int) -> None:
    """An existing topic keeps its partitions whatever EGOV_TOPIC_PARTITIONS says: adding
    some moves provinces to other partitions (records are keyed by province), splitting
    their periods between workers and their open dossiers between ledgers (docs/
    runbooks.md, "More metrics workers than partitions"). Said at each start of ingest
    and of the set-up: an operator who raised the setting to scale out learns why the
    new workers sit idle."""
    count = len(topic.get("partitions") or [])
    if count and count != wanted:
        log.warning(
            "topic %s has %d partitions, EGOV_TOPIC_PARTITIONS says %d: existing topics "
            'are never re-partitioned (docs/runbooks.md, "More metrics workers than '
            'partitions")',
            topic.get("topic"),
            count,
            wanted,
        )


async def _listed(admin: AIOKafkaAdminClient, names: list[str], timeout_s: float) -> None:
    """Wait, up to ``timeout_s``, until the broker lists the topics just created: Apache
    Kafka (KRaft) answers CreateTopics before its metadata serves them, and whoever ran
    ``ensure_topics`` reads or describes them next."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not set(names) <= set(await admin.list_topics()):
        if asyncio.get_running_loop().time() > deadline:
            return  # they were created: a slow broker lists them later
        await asyncio.sleep(0.1)


RETENTION = "retention.ms"


def dead_letter_retention_ms(settings: CommonSettings) -> int:
    """``EGOV_DEAD_LETTER_RETENTION_DAYS`` as the topic's ``retention.ms``."""
    return settings.dead_letter_retention_days * 24 * 3600 * 1000


def _new_topic(name: str, settings: CommonSettings) -> NewTopic:
    """An event topic keeps the broker's retention (deploy/kafka/server.properties: 7
    days); the dead-letter topic keeps its records for EGOV_DEAD_LETTER_RETENTION_DAYS,
    as they wait for a person (docs/runbooks.md, EgovDeadLetters)."""
    configs = None
    if name == settings.topic_dead_letter:
        configs = {RETENTION: str(dead_letter_retention_ms(settings))}
    return NewTopic(
        name, settings.topic_partitions, settings.topic_replication, topic_configs=configs
    )


async def _keep_dead_letters(admin: AIOKafkaAdminClient, settings: CommonSettings) -> None:
    """A dead-letter topic made before the setting (or by hand) with a shorter retention
    is given the setting's; best effort, said in one line when it cannot be: a principal
    without DescribeConfigs or AlterConfigs on the topic (ingest's, on the authenticated
    stack: the set-up runs as admin) must not stop the service starting."""
    topic, wanted = settings.topic_dead_letter, dead_letter_retention_ms(settings)
    try:
        kept, overrides = await _retention_and_overrides(admin, topic)
        if kept is not None and (kept < 0 or kept >= wanted):
            return  # -1: kept for good
        overrides[RETENTION] = str(wanted)
        # AlterConfigs (aiokafka has no incremental one) replaces every override of the
        # topic: the others are sent back as they were.
        resource = ConfigResource(ConfigResourceType.TOPIC, topic, configs=overrides)
        for response in await admin.alter_configs([resource]):
            for code, message, *_ in response.resources:
                if code:
                    raise KafkaError(f"error {code}: {message}")
    except (KafkaError, ValueError, TypeError) as exc:
        log.warning(
            "topic %s may keep dead letters for less than EGOV_DEAD_LETTER_RETENTION_DAYS "
            "(%d days) and could not be changed (%r): set its retention.ms to %d by hand",
            topic,
            settings.dead_letter_retention_days,
            exc,
            wanted,
        )
        return
    log.warning(
        "topic %s kept dead letters for %s ms: it keeps them %d days now "
        "(EGOV_DEAD_LETTER_RETENTION_DAYS)",
        topic,
        "the broker's default" if kept is None else kept,
        settings.dead_letter_retention_days,
    )


async def _retention_and_overrides(
    admin: AIOKafkaAdminClient, topic: str
) -> tuple[int | None, dict[str, str]]:
    """``topic``'s retention.ms in force (None: not reported) and the configs set on the
    topic itself, not inherited from the broker."""
    described = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    retention: int | None = None
    overrides: dict[str, str] = {}
    for response in described:
        for code, message, _type, _name, entries in response.resources:
            if code:
                raise KafkaError(f"error {code}: {message}")
            for name, value, _read_only, source, *_ in entries:
                if name == RETENTION and value not in (None, ""):
                    retention = int(value)
                # DescribeConfigs v0 says is_default (a bool), v1 the source (1: the topic).
                if not source if isinstance(source, bool) else source == 1:
                    if value is None:  # a sensitive value, which cannot be sent back
                        raise ValueError(f"{name} of {topic} is not readable")
                    overrides[name] = value
    return retention, overrides


def faust_credentials(
    settings: CommonSettings,
) -> faust.SASLCredentials | faust.SSLCredentials | None:
    """The service's principal and TLS for Faust's ``broker_credentials`` (None: neither).

    Faust turns them into the same aiokafka options as ``settings.kafka_security``
    (``SASL_SSL`` when SASL credentials carry a TLS context, ``SSL`` for TLS alone)."""
    context = settings.kafka_ssl_context()
    if not settings.kafka_sasl_username:
        return None if context is None else faust.SSLCredentials(context)
    password = settings.kafka_sasl_password
    return faust.SASLCredentials(
        username=settings.kafka_sasl_username,
        password="" if password is None else password.get_secret_value(),
        mechanism=settings.kafka_sasl_mechanism,
        ssl_context=context,
    )
