"""`make up` keeps its secrets in var/ (issue 15): the record signing key (strong,
private, the same on every start, so records a run left in Apache Kafka still verify
after the next) and, with BROKER=kafka, its Kafka principals' passwords."""

from __future__ import annotations

import stat
from pathlib import Path

from services.common.settings import signing_key_problem
from services.devstack import stack_kafka_auth, stack_signing_key


def test_made_on_the_first_start_strong_and_private(tmp_path: Path) -> None:
    path = tmp_path / "var" / "record-signing.key"
    key = stack_signing_key(path)
    assert signing_key_problem(key, required=True) is None
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().strip() == key


def test_the_same_key_on_the_next_start(tmp_path: Path) -> None:
    path = tmp_path / "record-signing.key"
    assert stack_signing_key(path) == stack_signing_key(path)


def test_a_damaged_file_gets_a_new_key(tmp_path: Path) -> None:
    path = tmp_path / "record-signing.key"
    path.write_text("short\n")
    key = stack_signing_key(path)
    assert key != "short" and signing_key_problem(key, required=True) is None


def test_kafka_credentials_are_made_with_the_log_and_kept(tmp_path: Path) -> None:
    """`make up BROKER=kafka`: one password per principal, made before the log's first
    format (which makes the SCRAM users) and the same on the next start."""
    path, log = tmp_path / "kafka-credentials.json", tmp_path / "kafka"
    first = stack_kafka_auth(path, log)
    assert first is not None and set(first.users) == {"ingest", "backfill", "metrics", "alerts"}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stack_kafka_auth(path, log) == first
    assert len(set(first.users.values()) | {first.admin_password}) == 5


def test_a_log_made_before_credentials_runs_as_it_was_made(tmp_path: Path) -> None:
    log = tmp_path / "kafka"
    (log / "node-1").mkdir(parents=True)
    (log / "node-1" / "meta.properties").write_text("cluster.id=x\n")
    assert stack_kafka_auth(tmp_path / "kafka-credentials.json", log) is None
    assert not (tmp_path / "kafka-credentials.json").exists()
