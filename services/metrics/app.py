"""The Faust App object, and nothing else: agents and views register on it elsewhere."""

from __future__ import annotations

import faust

from services.metrics.settings import MetricsSettings


def create_app(settings: MetricsSettings) -> faust.App:
    """A Faust app configured for at-least-once delivery on any Kafka-protocol broker.

    No ``exactly_once`` and no idempotent producer unless configured: the embedded
    broker has neither; outputs are made idempotent instead.
    """
    return faust.App(
        settings.metrics_app_id,
        broker=[f"kafka://{host}" for host in settings.kafka_bootstrap_servers.split(",")],
        store="memory://",
        datadir=str(settings.metrics_data_dir),
        web_enabled=True,
        web_host=settings.metrics_web_host,
        web_port=settings.metrics_web_port,
        web_bind=settings.metrics_web_host,
        # Table contents must never be served over HTTP.
        web_tables_enabled=False,
        producer_acks=-1,
        producer_enable_idempotence=settings.kafka_idempotence,
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replication,
        topic_allow_declare=True,
        # Faust's defaults wait tens of seconds before a group settles or a dead
        # worker's partitions move; an operations wall cannot wait that long.
        broker_session_timeout=10.0,
        broker_heartbeat_interval=1.0,
        broker_rebalance_timeout=10.0,
        consumer_auto_offset_reset="earliest",
    )
