"""`make up` runs the wall as a service of its own: on its port, named in the banner,
without the secrets of the services that count."""

from __future__ import annotations

from services.common.apache_kafka import KafkaAuth
from services.devstack import SERVICES, StackOptions, _banner, _child_env, _service_env

AUTH = KafkaAuth("admin-pw", "controller-pw", {"metrics": "metrics-pw", "alerts": "alerts-pw"})


def env() -> dict[str, str]:
    options = StackOptions(ports={"ingest": 1, "metrics": 2, "alerts": 3, "wall": 4})
    base = _child_env(options, "127.0.0.1:9092", "postgresql://egov:pw@127.0.0.1/egov")
    return {**base, "EGOV_RECORD_SIGNING_KEY": "ab" * 32}


def test_the_wall_reads_the_workers_and_alerts_on_its_own_port() -> None:
    wall = _service_env(env(), "wall", AUTH)
    assert wall["EGOV_WALL_PORT"] == "4"
    assert wall["EGOV_METRICS_URLS"] == "http://127.0.0.1:2"
    assert wall["EGOV_ALERTS_URL"] == "http://127.0.0.1:3"
    assert "wall" in SERVICES


def test_the_wall_gets_no_database_signing_or_kafka_secret() -> None:
    wall = _service_env(env(), "wall", AUTH)
    assert not {"DATABASE_URL", "EGOV_RECORD_SIGNING_KEY", "EGOV_KAFKA_SASL_PASSWORD"} & set(wall)
    metrics = _service_env(env(), "metrics", AUTH)  # a counting service keeps its own
    assert metrics["EGOV_KAFKA_SASL_PASSWORD"] == "metrics-pw" and "DATABASE_URL" in metrics


def test_the_banner_names_the_walls_url() -> None:
    banner = _banner(StackOptions(), "127.0.0.1:9092", "postgresql://egov@127.0.0.1/egov")
    assert "IOC wall page             http://127.0.0.1:8083/wall" in banner
