"""Runs real service processes against the real broker and database, for integration tests."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, ConsumerRecord

from services.common.settings import CommonSettings


def service_env(settings: CommonSettings, database_url: str | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
            "EGOV_TOPIC_DOCUMENTS": settings.topic_documents,
            "EGOV_TOPIC_DOSSIERS": settings.topic_dossiers,
            "EGOV_TOPIC_MEETINGS": settings.topic_meetings,
            "EGOV_TOPIC_DEAD_LETTER": settings.topic_dead_letter,
            "EGOV_TOPIC_PARTITIONS": str(settings.topic_partitions),
            "PYTHONUNBUFFERED": "1",
        }
    )
    if database_url:
        env["DATABASE_URL"] = database_url
    return env


@contextmanager
def running_service(
    args: list[str], env: dict[str, str], port: int, log: Path, ready_path: str = "/healthz"
) -> Iterator[str]:
    """Run ``egov-pulse ARGS`` until the block ends; yields its base URL once it answers."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "services.cli", *args], env=env, stdout=out, stderr=out
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"{args} exited early:\n{log.read_text()[-4000:]}")
            try:
                if httpx.get(base + ready_path, timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"{args} did not answer:\n{log.read_text()[-4000:]}")
            time.sleep(0.2)
        yield base
    finally:
        stop(proc)


def stop(proc: subprocess.Popen[Any], timeout_s: float = 20) -> int:
    """SIGTERM ``proc``, SIGKILL it if it has not exited within ``timeout_s``; its status."""
    proc.terminate()
    try:
        return proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
    return proc.wait()


async def read_topic(
    settings: CommonSettings, topic: str, timeout_ms: int = 3000
) -> list[ConsumerRecord[bytes, bytes]]:
    """The records of ``topic`` from the start, as one fetch of at most ``timeout_ms``."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        batches = await consumer.getmany(timeout_ms=timeout_ms)
        return [record for records in batches.values() for record in records]
    finally:
        await consumer.stop()
