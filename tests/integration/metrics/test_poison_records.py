"""No poison record (issue 14): hostile records written straight into the event topic,
between valid ones, never stop a real worker.

Random bytes, truncated JSON, years 1 and 9999, huge strings, unknown units, forged and
malformed signatures and summaries, a 2 MB record. The invariant: every valid event is
counted exactly once (dedup keys and KPI figures in PostgreSQL), every hostile record is
in the dead-letter topic once with its reason, and the worker process never restarted
(same PID, still running). The random parts replay from ``EGOV_FAULTS_SEED``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import random
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from services.common.contract import Contract
from services.common.headers import BACKFILL_HEADER, accepted_header
from services.common.kafka import ensure_topics, make_producer
from services.common.kpis import KpiCatalogue
from services.common.settings import CommonSettings
from services.common.signing import RecordSigner
from services.common.summaries import Summarizer, summary_fingerprint
from services.ingest.publisher import pack, signed
from services.ingest.validation import EventValidator, Limits
from tests.integration.metrics.harness import REGISTRY, document, workers
from tests.integration.metrics.test_dead_letters import dead_letters
from tests.integration.metrics.test_workers import stored

pytestmark = pytest.mark.integration
UNIT, PROVINCE = "01843", "19"
KEY = secrets.token_hex(32)  # strong enough for a worker on Apache Kafka
SEED = int(os.environ.get("EGOV_FAULTS_SEED", "1414"))
CONTRACT = Contract.load()
CATALOGUE = KpiCatalogue.load(event_types=CONTRACT.event_types)

Headers = list[tuple[str, Any]]
Message = tuple[bytes, Headers]


def signer() -> RecordSigner:
    """The worker's own signer (same key, contract, catalogue and registry)."""
    fingerprint = summary_fingerprint(CONTRACT.fingerprint, CATALOGUE, REGISTRY)
    return RecordSigner(KEY.encode(), CONTRACT.fingerprint, fingerprint)


def ingest_packed(events: list[dict[str, Any]], now: datetime, topic: str) -> Message:
    """One packed, summarised and signed record, made by ingest's own code."""
    limits = Limits(timedelta(seconds=300), horizon=None)
    validator = EventValidator(CONTRACT, REGISTRY, limits, Summarizer(CATALOGUE))
    records, errors = validator.check(events, now)
    assert errors == []
    (record,) = signed(pack(records), signer(), accepted_header(now), lambda _: topic)
    return record.value, list(record.headers)


def resummarised(message: Message, change: Callable[[Any], Any], topic: str) -> Message:
    """``message`` with its summary rewritten and MAC'd with the real key: only an ingest
    bug or a stolen key could send it."""
    value, headers = message
    summary = dict(headers)["egov_summary"]
    rewritten = orjson.dumps(change(orjson.loads(summary)))
    kept = [(k, v) for k, v in headers if k not in ("egov_summary", "egov_summary_mac")]
    where = {"topic": topic, "key": PROVINCE.encode()}
    return value, [*kept, *signer().summary_headers(value, rewritten, headers=kept, **where)]


def forged_summary(message: Message, change: Callable[[Any], Any]) -> Message:
    """``message`` with its summary rewritten but its MAC kept (made without the key)."""
    value, headers = message
    rewritten = orjson.dumps(change(orjson.loads(dict(headers)["egov_summary"])))
    return value, [(k, rewritten if k == "egov_summary" else v) for k, v in headers]


def unsigned_claim(message: Message) -> Message:
    """``message`` claiming its summary without any MAC (nor record signature)."""
    value, headers = message
    return value, [(k, v) for k, v in headers if k not in ("egov_summary_mac", "egov_validated")]


def none_signed(summary: Any) -> Any:
    # The events were all signed electronic documents: this would halve a unit's rate.
    summary["c"] = ["document_signing:0:1,document_electronic:0:1"] * len(summary["c"])
    return summary


def numerator_above_denominator(summary: Any) -> Any:
    summary["c"] = ["document_signing:9:1"] * len(summary["c"])
    return summary


def unknown_unit(summary: Any) -> Any:
    summary["u"] = ["99999,99"] * len(summary["u"])
    return summary


def bucket_in_year_one(summary: Any) -> Any:
    for group in summary["g"]:
        group[3] = -62135596800
    return summary


@dataclasses.dataclass
class Plan:
    """What is written, in order, and what each record must become."""

    messages: list[Message] = dataclasses.field(default_factory=list)
    valid_ids: list[str] = dataclasses.field(default_factory=list)
    hostile: list[int] = dataclasses.field(default_factory=list)  # positions in messages
    reasons: dict[int, str] = dataclasses.field(default_factory=dict)

    def good(self, message: Message, *event_ids: str) -> None:
        self.messages.append(message)
        self.valid_ids += event_ids

    def bad(self, message: Message, reason: str) -> None:
        self.hostile.append(len(self.messages))
        self.reasons[len(self.messages)] = reason
        self.messages.append(message)


def plan(rng: random.Random, now: datetime, topic: str) -> Plan:
    p = Plan()
    n = 0

    def fresh(prefix: str) -> dict[str, Any]:
        nonlocal n
        n += 1
        return document(f"{prefix}-{n}", UNIT, now - timedelta(minutes=n % 50))

    def valid_single() -> None:
        event = fresh("ok")
        p.good((orjson.dumps(event), []), str(event["id"]))

    sample = orjson.dumps(fresh("sample"))
    year = fresh("year")
    signed_year_one = orjson.dumps(fresh("signed-year-1") | {"time": "0001-01-01T00:00:00+14:00"})
    unknown_forged = orjson.dumps(fresh("forged") | {"unit": "99999"})
    hostile: list[tuple[Message, str]] = [
        ((b"\xff" + rng.randbytes(rng.randrange(0, 4000)), []), "malformed-json"),  # not UTF-8
        ((sample[: rng.randrange(1, len(sample) - 1)], []), "malformed-json"),
        ((b"", [("traceparent", b"00-poison-01")]), "empty"),
        ((b"[]", []), "empty"),
        ((b"[" * 3000 + b"]" * 3000, []), "malformed-json"),  # deeper than orjson reads
        ((orjson.dumps(year | {"time": "0001-01-01T00:00:00+14:00"}), []), "schema-violation"),
        ((orjson.dumps(year | {"time": "9999-12-31T23:59:59Z"}), []), "schema-violation"),
        ((orjson.dumps(fresh("huge-id") | {"id": "x" * 300_000}), []), "schema-violation"),
        ((orjson.dumps(fresh("unknown-unit") | {"unit": "99999"}), []), "unit-unknown"),
        ((unknown_forged, [("egov_validated", b"0" * 64)]), "unit-unknown"),
        # Signed with the real key (an ingest bug) and backfilled: past the schema and the
        # grace, year 1 reaches the day arithmetic, which raises.
        (
            (
                signed_year_one,
                [
                    BACKFILL_HEADER,
                    signer().header(
                        signed_year_one,
                        topic=topic,
                        key=PROVINCE.encode(),
                        headers=[BACKFILL_HEADER],
                    ),
                ],
            ),
            "unprocessable",
        ),
        # 2 MB: more than a dead letter may carry, so it goes as a reference.
        ((b'{"padding": "' + b"p" * 2_000_000 + b'"}', []), "schema-violation"),
    ]
    # Summaries written straight to the topic (issue 15): forged (changed after ingest
    # signed it), claimed without a MAC, or signed with the real key and nonsense.
    for prefix, make, reason in [
        ("forged", lambda m: forged_summary(m, none_signed), "summary-forged"),
        ("unsigned", unsigned_claim, "summary-unsigned"),
        (
            "above",
            lambda m: resummarised(m, numerator_above_denominator, topic),
            "summary-nonsense",
        ),
        ("stranger", lambda m: resummarised(m, unknown_unit, topic), "summary-nonsense"),
        (
            "malformed",
            lambda m: resummarised(m, lambda s: {"y": "nonsense"}, topic),
            "summary-nonsense",
        ),
        ("year-1", lambda m: resummarised(m, bucket_in_year_one, topic), "summary-nonsense"),
    ]:
        events = [fresh(f"summary-{prefix}") for _ in range(3)]
        hostile.append((make(ingest_packed(events, now, topic)), reason))
    rng.shuffle(hostile)
    for message, reason in hostile:
        valid_single()
        p.bad(message, reason)
        valid_single()
    # Valid events under odd headers: they count, whatever the headers claim.
    events = [fresh("packed") for _ in range(3)]
    ids = [str(e["id"]) for e in events]
    p.good(ingest_packed(events, now, topic), *ids)
    event = fresh("forged-signature")
    value = orjson.dumps(event)
    forged = [("egov_validated", b"f" * 64), ("egov_summary", b"{}"), ("egov_summary_mac", b"0")]
    p.good((value, forged), str(event["id"]))
    event = fresh("null-headers")
    p.good(
        (orjson.dumps(event), [("egov_validated", None), ("egov_accepted_ms", None)]),
        str(event["id"]),
    )
    valid_single()
    return p


async def produce(settings: CommonSettings, messages: list[Message]) -> list[int]:
    """Write ``messages`` into the documents topic, in order, in one partition; their offsets."""
    producer = make_producer(settings, max_request_size=8 * 2**20)
    await producer.start()
    try:
        offsets = []
        for value, headers in messages:
            future = await producer.send(
                settings.topic_documents, value, key=PROVINCE.encode(), headers=headers
            )
            offsets.append((await future).offset)
        return offsets
    finally:
        await producer.stop()


def test_hostile_records_are_dead_lettered_and_every_valid_event_counts_once(
    common_settings: CommonSettings, database_url: str, tmp_path: Path
) -> None:
    asyncio.run(ensure_topics(common_settings))
    p = plan(random.Random(SEED), datetime.now(UTC), common_settings.topic_documents)
    expected = len(p.valid_ids)
    with workers(common_settings, database_url, tmp_path, 1, EGOV_RECORD_SIGNING_KEY=KEY) as (
        worker,
    ):
        assert worker.proc is not None
        pid = worker.proc.pid
        offsets = asyncio.run(produce(common_settings, p.messages))
        found = asyncio.run(dead_letters(common_settings, len(p.hostile)))
        deadline = time.monotonic() + 60
        while asyncio.run(stored(database_url))[0] < expected and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(2)  # anything counted twice or dead-lettered again would show by now
        counted = asyncio.run(stored(database_url))
        found = asyncio.run(dead_letters(common_settings, len(p.hostile)))
        dead_counter = sum(v for _, v in worker.samples("egov_events_dead_lettered_total"))
        # The worker never restarted: the same process, still running.
        assert worker.proc.poll() is None and worker.proc.pid == pid, worker.tail()
    replay = f"(replay with EGOV_FAULTS_SEED={SEED})"
    # Every valid event counted exactly once, for its unit and its province.
    assert counted == (expected, {UNIT: expected, PROVINCE: expected}), replay
    # Every hostile record dead-lettered exactly once, with its reason and where it was.
    topic = common_settings.topic_documents
    by_source = {headers["dlq_source"].decode(): headers for _, headers in found}
    assert len(found) == len(by_source) == len(p.hostile), (replay, sorted(by_source))
    for position in p.hostile:
        source = f"{topic}[{_partition(found)}]@{offsets[position]}"
        headers = by_source[source]
        assert headers["dlq_reason"].decode() == p.reasons[position], (replay, headers)
        assert headers["dlq_detail"], (replay, headers)
    unprocessable = [h for h in by_source.values() if h["dlq_reason"] == b"unprocessable"]
    assert [h["dlq_detail"].split(b":")[0] for h in unprocessable] == [b"ValueError while decoding"]
    (reference,) = [(v, h) for v, h in found if h.get("dlq_reference") == b"1"]
    body = orjson.loads(reference[0])
    assert body["size"] > 2_000_000 and body["topic"] == topic and body["reason"]
    assert dead_counter == len(p.hostile)


def _partition(found: list[tuple[bytes, dict[str, bytes]]]) -> str:
    """The one partition every record went to (one key)."""
    (partition,) = {h["dlq_source"].decode().split("[")[1].split("]")[0] for _, h in found}
    return partition
