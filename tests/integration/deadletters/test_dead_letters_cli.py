"""``egov-pulse dead-letters list|replay`` as an operator runs them, on the broker under
test (``EGOV_TEST_BROKER``: tansu or Apache Kafka) with real workers and PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import orjson
import pytest

from services.common.headers import PUBLISHER_HEADER
from services.common.kafka import ensure_topics, make_producer
from services.common.settings import CommonSettings
from services.common.summaries import record_signer
from services.ingest.keystore import create_key
from tests.integration.ingest.harness import CATALOGUE, CONTRACT, REGISTRY
from tests.integration.metrics.harness import document, workers
from tests.integration.metrics.test_review81_dead_letters import (
    PROVINCE,
    TIGHT,
    UNIT,
    counted,
    egov,
    wait_counted,
)
from tests.integration.processes import service_env

pytestmark = pytest.mark.integration
Headers = list[tuple[str, bytes]]


async def produce(
    settings: CommonSettings, topic: str, records: list[tuple[bytes, Headers]]
) -> None:
    """Each record keyed by the province; a record naming a publisher is signed as ingest
    signs it when the run has a signing key (Apache Kafka's): a worker believes the header
    under ingest's MAC only, and dead-letters it `publisher-unsigned` otherwise."""
    signer = record_signer(settings, CONTRACT, CATALOGUE, REGISTRY)
    key = PROVINCE.encode()
    producer = make_producer(settings)
    await producer.start()
    try:
        for value, headers in records:
            named = any(name == PUBLISHER_HEADER for name, _ in headers)
            if signer is not None and named:
                headers = signer.signed_headers(value, topic=topic, key=key, headers=headers)
            await producer.send_and_wait(topic, value, key=key, headers=headers)
    finally:
        await producer.stop()


def test_list_shows_each_dead_letter_and_expands_a_reference(
    common_settings: CommonSettings, database_url: str
) -> None:
    """Dead letters as the workers write them (a copy and a reference to one event of a
    batch record), read back by the command: one escaped row each, or JSON lines."""
    settings = common_settings
    asyncio.run(ensure_topics(settings))
    batch = [document("b-0", UNIT), document("b-1", UNIT)]
    asyncio.run(produce(settings, settings.topic_documents, [(orjson.dumps(batch), [])]))
    copy = (
        orjson.dumps(document("copied", UNIT)),
        [
            ("egov_publisher", b"tdoffice-19"),
            ("dlq_reason", b"unknown-unit"),
            ("dlq_detail", b"unit 99999\tnot known"),
            ("dlq_source", f"{settings.topic_documents}[3]@12".encode()),
        ],
    )
    body = {"reference": True, "topic": settings.topic_documents, "partition": -1, "offset": 0}
    reference = _reference_to(settings, body)
    gone = {**body, "offset": 10_000}
    asyncio.run(
        produce(
            settings, settings.topic_dead_letter, [copy, reference, _reference_to(settings, gone)]
        )
    )
    env = service_env(settings, database_url)
    shown = egov(env, "dead-letters", "list")
    assert shown.returncode == 0, shown.stderr
    rows = [line.split("\t") for line in shown.stdout.splitlines()]
    assert len(rows) == 3, shown.stdout
    assert rows[0][1:8] == [
        f"{settings.topic_documents}[3]@12",
        "unknown-unit",
        "unit 99999\\tnot known",
        "tdoffice-19",
        PROVINCE,
        PROVINCE,
        "copied",
    ]
    assert rows[0][0].endswith("+07:00")
    assert rows[1][7] == "b-1" and "reference to" in rows[1][9], rows[1]
    assert rows[2][7] == "-" and "not in" in rows[2][9], rows[2]
    as_json = egov(env, "dead-letters", "list", "--json", "--reason", "too-large")
    items = [orjson.loads(line) for line in as_json.stdout.splitlines()]
    assert [i["events"] for i in items] == [
        [{"id": "b-1", "source": "urn:test:metrics-workers"}],
        [],
    ]
    assert items[0]["reference"] is True and items[0]["province"] == PROVINCE
    only = egov(env, "dead-letters", "list", "--publisher", "-", "--since", "1h")
    assert len(only.stdout.splitlines()) == 2, only.stdout
    none = egov(env, "dead-letters", "list", "--since", "2999-01-01T00:00")
    assert none.returncode == 0 and none.stdout == ""
    bad = egov(env, "dead-letters", "list", "--since", "yesterday")
    assert bad.returncode == 2 and "--since" in bad.stderr


def _reference_to(settings: CommonSettings, body: dict[str, object]) -> tuple[bytes, Headers]:
    """A reference as services/metrics/pipeline.py writes it, to event 1 of the record
    at ``body``'s offset (partition -1: the one the province's key lands on)."""
    partition = _partition_of_province(settings)
    body = {**body, "partition": partition, "batch_index": 1, "reason": "too-large"}
    place = f"{body['topic']}[{partition}]@{body['offset']}"
    return orjson.dumps(body), [
        ("dlq_reason", b"too-large"),
        ("dlq_detail", b"too large"),
        ("dlq_source", place.encode()),
        ("dlq_reference", b"1"),
        ("dlq_batch_index", b"1"),
    ]


def _partition_of_province(settings: CommonSettings) -> int:
    async def find() -> int:
        producer = make_producer(settings)
        await producer.start()
        try:
            meta = await producer.send_and_wait(
                settings.topic_meetings, b"{}", key=PROVINCE.encode()
            )
            return int(meta.partition)
        finally:
            await producer.stop()

    return asyncio.run(find())


def test_replay_counts_a_publishers_dead_letter_once_however_often_it_comes(
    common_settings: CommonSettings, database_url: str, tmp_path: Path
) -> None:
    """A publisher's event, dead-lettered by a worker whose clock skew was set too tight,
    then written twice to the dead-letter topic: replayed (under the publisher's identity),
    replayed again, and resent live by the publisher: counted once. The dry run
    publishes nothing."""
    settings = common_settings
    asyncio.run(ensure_topics(settings))
    publisher = f"tdoffice-{uuid.uuid4().hex[:6]}"
    asyncio.run(_key(database_url, publisher))
    now = datetime.now(UTC)
    ok = document(f"ok-{uuid.uuid4().hex[:8]}", UNIT, now)
    ahead = document(f"ahead-{uuid.uuid4().hex[:8]}", UNIT, now + timedelta(seconds=60))
    header = [("egov_publisher", publisher.encode())]
    app = f"dlr-{uuid.uuid4().hex[:8]}"
    with workers(settings, database_url, tmp_path, 1, EGOV_METRICS_APP_ID=app, **TIGHT) as procs:
        asyncio.run(
            produce(
                settings, settings.topic_documents, [(orjson.dumps(e), header) for e in (ok, ahead)]
            )
        )
        wait_counted(database_url, 1, procs)
    env = service_env(settings, database_url)
    listed = egov(env, "dead-letters", "list", "--json", "--reason", "time-in-future")
    (item,) = [orjson.loads(line) for line in listed.stdout.splitlines()]
    assert item["publisher"] == publisher and item["events"][0]["id"] == ahead["id"]
    # The dead letter written a second time (a worker that stopped before its position
    # was stored writes it again).
    asyncio.run(_copy_dead_letters(settings))
    (tmp_path / "fixed").mkdir()
    with workers(settings, database_url, tmp_path / "fixed", 1, EGOV_METRICS_APP_ID=app) as procs:
        dry = egov(env, "dead-letters", "replay", "--reason", "time-in-future", "--dry-run")
        assert dry.returncode == 0, dry.stdout + dry.stderr
        assert "would replay 1 events of 1 dead letters" in dry.stdout, dry.stdout
        first = egov(env, "dead-letters", "replay", "--reason", "time-in-future")
        assert first.returncode == 0, first.stdout + first.stderr
        assert f"as --publisher {publisher!r}" in first.stdout, first.stdout
        assert "once: " in first.stdout and "skipped 0 dead letters" in first.stdout
        wait_counted(database_url, 2, procs)
        again = egov(env, "dead-letters", "replay", "--reason", "time-in-future")
        assert again.returncode == 0, again.stdout + again.stderr
        assert "already counted" in again.stdout, again.stdout
        asyncio.run(produce(settings, settings.topic_documents, [(orjson.dumps(ahead), header)]))
        _wait_duplicates(procs[0], 2)
        assert counted(database_url) == 2


def _wait_duplicates(worker: object, at_least: int) -> None:
    import time

    deadline = time.monotonic() + 30
    while sum(v for _, v in worker.samples("egov_events_duplicate_total")) < at_least:  # type: ignore[attr-defined]
        assert time.monotonic() < deadline, worker.tail()  # type: ignore[attr-defined]
        time.sleep(0.3)


async def _key(database_url: str, name: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await create_key(conn, name, [PROVINCE], ["vn.egov.document.issued"], sources=["urn:test:"])
    finally:
        await conn.close()


async def _copy_dead_letters(settings: CommonSettings) -> None:
    from services.deadletters.reading import TopicReader

    async with TopicReader(settings) as reader:
        letters = await reader.dead_letters(settings.topic_dead_letter, None)
    await produce(
        settings, settings.topic_dead_letter, [(d.value or b"", list(d.headers)) for d in letters]
    )
