"""Kafka adapters: a producer with safe defaults, idempotent topic creation, and the
service's Kafka credentials for every client it opens (aiokafka's and Faust's)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import faust
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

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
        missing = [
            NewTopic(name, settings.topic_partitions, settings.topic_replication)
            for name in names
            if name not in existing
        ]
        if missing:
            try:
                await admin.create_topics(missing)
            except TopicAlreadyExistsError:
                pass  # another process won the race: the topic is there, which is all we need
            log.info("created topics %s", [t.name for t in missing])
        present = [name for name in names if name in existing]
        if present:
            for topic in await admin.describe_topics(present):
                _say_partitions(topic, settings.topic_partitions)
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
