"""Who may do what on an authenticated Kafka: one principal per service, least privilege.

- ``ingest`` and ``backfill`` (its own principal: its records count however old) write the
  event topics; ``backfill``, the operator's tools' principal, also reads the dead-letter
  topic and the event topics without a consumer group (``egov-pulse dead-letters list``
  and ``replay``: a dead letter and the record a reference points at);
- ``metrics`` (the workers' consumer group) reads the event topics, writes them too (events
  keyed by something else than their province, published again keyed by it) and the
  dead-letter topic, and owns Faust's internal topics (its app id as prefix);
- ``alerts`` writes its own topic;
- ``admin`` (a super user, the brokers' own) creates the topics and these ACLs.

Nobody else may do anything (``allow.everyone.if.no.acl.found=false``,
deploy/kafka/security.properties). docker-compose.yml runs ``python -m
services.common.kafka_acls`` once as ``admin`` before the services start; the tests'
authenticated cluster applies the same plan (tests/integration/test_kafka_auth.py).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from enum import IntEnum

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.protocol.admin import CreateAclsRequest
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.common.kafka import ensure_topics
from services.common.settings import CommonSettings

log = logging.getLogger(__name__)


class Resource(IntEnum):
    """Kafka's ResourceType codes."""

    TOPIC = 2
    GROUP = 3
    CLUSTER = 4


class Pattern(IntEnum):
    LITERAL = 3
    PREFIXED = 4


class Operation(IntEnum):
    ALL = 2
    READ = 3
    WRITE = 4
    CREATE = 5
    DESCRIBE = 8
    IDEMPOTENT_WRITE = 12


ALLOW = 3
CLUSTER_NAME = "kafka-cluster"


@dataclass(frozen=True, slots=True)
class Acl:
    """One ALLOW rule: ``principal`` may do ``operation`` on a resource, from any host."""

    principal: str
    resource: Resource
    name: str
    operation: Operation
    pattern: Pattern = Pattern.LITERAL


class Principals(BaseSettings):
    """The services' Kafka user names (each service's ``EGOV_KAFKA_SASL_USERNAME``), read
    by the set-up as ``EGOV_KAFKA_PRINCIPAL_INGEST``, ``..._BACKFILL``, ``..._METRICS``
    and ``..._ALERTS``; the defaults are docker-compose.yml's."""

    model_config = SettingsConfigDict(env_prefix="EGOV_KAFKA_PRINCIPAL_", extra="ignore")

    ingest: str = "ingest"
    backfill: str = "backfill"
    metrics: str = "metrics"
    alerts: str = "alerts"


def acl_plan(
    settings: CommonSettings,
    principals: Principals,
    metrics_group: str,
    alerts_topic: str,
) -> list[Acl]:
    """Every ACL the services need, and no more (see the module docstring)."""
    acls: list[Acl] = []
    events = settings.event_topics
    for writer in (principals.ingest, principals.backfill):
        user = f"User:{writer}"
        acls += [Acl(user, Resource.TOPIC, t, Operation.WRITE) for t in events]
        # Describe: ingest lists the topics it would otherwise create at start-up.
        acls += [Acl(user, Resource.TOPIC, settings.topic_dead_letter, Operation.DESCRIBE)]
        acls.append(Acl(user, Resource.CLUSTER, CLUSTER_NAME, Operation.IDEMPOTENT_WRITE))
    acls += _operator_reads(settings, f"User:{principals.backfill}")
    metrics = f"User:{principals.metrics}"
    acls += [Acl(metrics, Resource.TOPIC, t, Operation.READ) for t in events]
    # Events an integrator keyed by something else than their province are published
    # again keyed by it (services/metrics/rekeying.py). No new power over the figures: a
    # worker already writes them in PostgreSQL and holds the key that signs summaries.
    acls += [Acl(metrics, Resource.TOPIC, t, Operation.WRITE) for t in events]
    acls += [
        Acl(metrics, Resource.TOPIC, settings.topic_dead_letter, Operation.WRITE),
        Acl(metrics, Resource.GROUP, metrics_group, Operation.READ),
        # Faust's own topics (its partition assignor's leader topic), created by the app.
        Acl(metrics, Resource.TOPIC, f"{metrics_group}-", Operation.ALL, Pattern.PREFIXED),
        Acl(metrics, Resource.CLUSTER, CLUSTER_NAME, Operation.IDEMPOTENT_WRITE),
    ]
    alerts = f"User:{principals.alerts}"
    acls += [
        Acl(alerts, Resource.TOPIC, alerts_topic, Operation.WRITE),
        Acl(alerts, Resource.TOPIC, alerts_topic, Operation.CREATE),
        Acl(alerts, Resource.CLUSTER, CLUSTER_NAME, Operation.IDEMPOTENT_WRITE),
    ]
    return acls


def _operator_reads(settings: CommonSettings, user: str) -> list[Acl]:
    """What ``egov-pulse dead-letters`` reads, run as ``backfill`` (its replay publishes
    as backfill does): the dead letters (DESCRIBE on that topic is given above), and the
    event records a reference points at (WRITE there implies DESCRIBE). READ on topics
    only, no GROUP: it reads with no consumer group, so it moves nobody's positions and
    cannot join the workers' group."""
    topics = [settings.topic_dead_letter, *settings.event_topics]
    return [Acl(user, Resource.TOPIC, t, Operation.READ) for t in topics]


class AclError(RuntimeError):
    """The broker refused to create an ACL."""


async def apply_acls(settings: CommonSettings, acls: list[Acl]) -> None:
    """Create ``acls`` as ``settings``' principal (a super user); repeating is harmless."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        request_timeout_ms=int(settings.kafka_request_timeout_s * 1000),
        **settings.kafka_security,
    )
    await asyncio.wait_for(admin.start(), settings.kafka_request_timeout_s)
    try:
        for acl in acls:
            request = CreateAclsRequest(
                acl.resource, acl.name, acl.pattern, acl.principal, "*", acl.operation, ALLOW
            )
            response = await admin._send_request(request)
            for code, message in response.creation_responses:
                if code:
                    raise AclError(f"{acl}: error {code} {message}")
    finally:
        await admin.close()
    log.info("%d ACLs in place", len(acls))


async def setup(settings: CommonSettings, principals: Principals, group: str, alerts: str) -> None:
    """Topics first (as admin: the services may not create them), then the ACLs."""
    await ensure_topics(settings, [*settings.event_topics, settings.topic_dead_letter, alerts])
    await apply_acls(settings, acl_plan(settings, principals, group, alerts))


def main() -> None:  # pragma: no cover (run by docker-compose.yml's kafka-setup)
    """Create the topics and the ACLs, as the ``admin`` principal of the environment."""
    from services.alerts.settings import AlertsSettings
    from services.metrics.settings import MetricsSettings

    logging.basicConfig(level=logging.INFO)
    settings = MetricsSettings()
    principals = Principals()
    alerts_topic = AlertsSettings().topic_alerts
    asyncio.run(setup(settings, principals, settings.metrics_app_id, alerts_topic))


if __name__ == "__main__":  # pragma: no cover
    main()
