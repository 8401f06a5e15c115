"""Corrupt, truncated and wrongly shaped records published straight to Kafka.

A seeded generator (``EGOV_FAULTS_SEED`` replays a run; the seed is in every failure)
makes records of every kind a broken integrator could publish: random bytes, truncated
JSON, invalid UTF-8, lone surrogates, a byte-order mark, empty values and tombstones,
valid JSON of the wrong shape, huge values, arrays nested beyond the parser's limit,
null keys, and batches mixing good and bad elements. They go to the worker in a
shuffled order, followed by valid events. Then:
- the worker is alive and not stuck: every valid event (inside the garbage and after
  it) is counted once, for its commune and its province;
- every rejected record (or batch element) is on the dead-letter topic once, found by
  its ``dlq_source`` and ``dlq_batch_index``, with the expected ``dlq_reason``, a
  ``dlq_detail`` and, for a whole record, its original bytes;
- ``egov_events_dead_lettered_total`` counts them by reason.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer

from services.common.kafka import ensure_topics, make_producer
from services.common.settings import CommonSettings
from tests.integration.metrics.harness import document, workers
from tests.integration.metrics.test_workers import stored

pytestmark = pytest.mark.integration
UNIT, PROVINCE = "01843", "19"  # Phường Bắc Kạn, Thái Nguyên

Where = tuple[str, int, int | None]  # dlq_source, offset, batch index


@dataclass
class Case:
    """One record to publish, what must be dead-lettered from it, and what must count."""

    kind: str
    value: bytes | None
    key: bytes | None = PROVINCE.encode()
    rejected: list[tuple[int | None, str]] = field(default_factory=list)
    counted: list[str] = field(default_factory=list)


class Generator:
    """Seeded makers of bad (and a few good) records."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.n = 0

    def valid(self) -> dict[str, Any]:
        self.n += 1
        return document(f"fuzz-{self.n}", UNIT)

    def cases(self) -> list[Case]:
        made = [*self.unreadable(), *self.wrong_shapes(), *self.huge(), *self.nested()]
        made += [*self.null_keys(), *self.mixed_batches()]
        self.rng.shuffle(made)
        return made

    def unreadable(self) -> list[Case]:
        rng, out = self.rng, []
        for _ in range(8):  # 0xff never starts valid UTF-8, so never valid JSON
            out.append(Case("random-bytes", b"\xff" + rng.randbytes(rng.randint(0, 400))))
        for _ in range(8):
            whole = orjson.dumps(self.valid())
            out.append(Case("truncated", whole[: rng.randint(1, len(whole) - 1)]))
        good = orjson.dumps(self.valid())
        out.append(Case("invalid-utf8", good.replace(b'"id":"', b'"id":"\xc3\x28', 1)))
        out.append(Case("overlong-utf8", good.replace(b'"id":"', b'"id":"\xc0\xaf', 1)))
        out.append(Case("lone-surrogate", good.replace(b'"id":"', b'"id":"\\ud800', 1)))
        out.append(Case("byte-order-mark", b"\xef\xbb\xbf" + orjson.dumps(self.valid())))
        out.append(Case("whitespace", b" \n\t "))
        out.append(Case("nan", b'{"specversion": NaN}'))
        for case in out:
            case.rejected = [(None, "malformed-json")]
        out.append(Case("empty", b"", rejected=[(None, "empty")]))
        out.append(Case("tombstone", None, rejected=[(None, "empty")]))
        out.append(Case("empty-batch", b"[]", rejected=[(None, "empty")]))
        return out

    def wrong_shapes(self) -> list[Case]:
        shapes: list[Any] = [42, "event", None, True, 1.5, {}, {"specversion": "1.0"}]
        shapes.append(dict(self.valid(), data=None))
        shapes.append({k: v for k, v in self.valid().items() if k != "unit"})
        out = [
            Case("shape", orjson.dumps(s), rejected=[(None, "schema-violation")]) for s in shapes
        ]
        elements: list[Any] = [1, "a", None, [], {"id": "x"}]
        self.rng.shuffle(elements)
        out.append(
            Case("batch-of-shapes", orjson.dumps(elements),
                 rejected=[(i, "schema-violation") for i in range(len(elements))])
        )  # fmt: skip
        unknown = dict(self.valid(), unit="99999")
        out.append(Case("unknown-unit", orjson.dumps(unknown), rejected=[(None, "unit-unknown")]))
        return out

    def huge(self) -> list[Case]:
        size = self.rng.randint(200_000, 400_000)
        out = [
            Case(f"huge-{name}", orjson.dumps(dict(self.valid(), **{name: "9" * size})),
                 rejected=[(None, "schema-violation")])
            for name in ("time", "unit", "id")
        ]  # fmt: skip
        out.append(
            Case("huge-number", b'{"specversion": 1e400}', rejected=[(None, "malformed-json")])
        )
        near_limit = b"\xff" + self.rng.randbytes(900_000)
        out.append(Case("huge-garbage", near_limit, rejected=[(None, "malformed-json")]))
        # A 100-digit integer is a number JSON allows; as an extension attribute it is
        # harmless and the event counts.
        event = self.valid()
        big = orjson.dumps(event)[:-1] + b',"bignumber":' + b"7" * 100 + b"}"
        out.append(Case("big-integer-extension", big, counted=[event["id"]]))
        return out

    def nested(self) -> list[Case]:
        depth = self.rng.randint(2_000, 50_000)
        out = [
            Case("nested-beyond-limit", b"[" * depth + b"]" * depth,
                 rejected=[(None, "malformed-json")]),
            Case("nested-element", b"[" * 300 + b"]" * 300, rejected=[(0, "schema-violation")]),
        ]  # fmt: skip
        event = self.valid()
        event["data"]["extra"] = orjson.loads(b"[" * 200 + b"]" * 200)
        out.append(Case("nested-data", orjson.dumps(event), rejected=[(None, "schema-violation")]))
        return out

    def null_keys(self) -> list[Case]:
        event = self.valid()
        return [
            Case("null-key-valid", orjson.dumps(event), key=None, counted=[event["id"]]),
            Case("null-key-garbage", b"{nope", key=None, rejected=[(None, "malformed-json")]),
        ]

    def mixed_batches(self) -> list[Case]:
        out = []
        for _ in range(3):
            elements: list[tuple[Any, str | None]] = []
            for _ in range(self.rng.randint(4, 12)):
                roll = self.rng.random()
                if roll < 0.5:
                    elements.append((self.valid(), None))
                elif roll < 0.7:
                    elements.append((dict(self.valid(), unit="99999"), "unit-unknown"))
                elif roll < 0.85:
                    elements.append(({"id": self.rng.randint(0, 9)}, "schema-violation"))
                else:
                    elements.append((self.rng.choice([0, "", None, [1]]), "schema-violation"))
            good = [e for e, reason in elements if reason is None]
            if good:
                elements.append((good[0], None))  # the same event twice: counts once
            self.rng.shuffle(elements)
            out.append(
                Case("mixed-batch", orjson.dumps([e for e, _ in elements]),
                     rejected=[(i, r) for i, (_, r) in enumerate(elements) if r],
                     counted=[e["id"] for e, r in elements if r is None])
            )  # fmt: skip
        return out


async def publish(settings: CommonSettings, cases: list[Case]) -> dict[Where, Case]:
    """Each case as one record; returns where each rejection must come from."""
    producer = make_producer(settings)
    await producer.start()
    expected: dict[Where, Case] = {}
    try:
        for case in cases:
            meta = await (await producer.send(settings.topic_documents, case.value, key=case.key))
            source = f"{settings.topic_documents}[{meta.partition}]@{meta.offset}"
            for index, _ in case.rejected:
                expected[(source, meta.offset, index)] = case
    finally:
        await producer.stop()
    return expected


async def dead_letters(settings: CommonSettings, count: int) -> list[Any]:
    consumer = AIOKafkaConsumer(
        settings.topic_dead_letter,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        auto_offset_reset="earliest",
        group_id=None,
        fetch_max_bytes=16 * 1024 * 1024,
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    await consumer.start()
    found: list[Any] = []
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            found += [m for messages in batch.values() for m in messages]
            if len(found) >= count and not batch:
                break
    finally:
        await consumer.stop()
    return found


def test_garbage_on_the_stream_is_dead_lettered_by_reason_and_never_blocks_it(
    common_settings: CommonSettings, database_url: str, tmp_path: Path
) -> None:
    seed = int(os.environ.get("EGOV_FAULTS_SEED") or random.randrange(2**31))
    generator = Generator(seed)
    garbage = generator.cases()
    tail = [generator.valid() for _ in range(100)]
    tail_batch = [generator.valid() for _ in range(100)]
    after = [Case("valid", orjson.dumps(e), counted=[e["id"]]) for e in tail]
    after.append(Case("valid-batch", orjson.dumps(tail_batch),
                      counted=[e["id"] for e in tail_batch]))  # fmt: skip
    counted = {i for case in [*garbage, *after] for i in case.counted}
    want_reasons = Counter(r for case in garbage for _, r in case.rejected)
    note = f"seed {seed} (EGOV_FAULTS_SEED={seed} replays it)"
    asyncio.run(ensure_topics(common_settings))
    with workers(common_settings, database_url, tmp_path, 1) as (worker,):
        expected = asyncio.run(publish(common_settings, garbage + after))
        found = asyncio.run(dead_letters(common_settings, len(expected)))
        deadline = time.monotonic() + 30
        while asyncio.run(stored(database_url))[0] < len(counted):
            assert time.monotonic() < deadline, f"valid events not counted; {note}\n{worker.tail()}"
            time.sleep(0.2)
        time.sleep(1)  # anything counted twice would show now
        keys, by_unit = asyncio.run(stored(database_url))
        reasons: Counter[str] = Counter()  # summed over the province label
        for labels, value in worker.samples("egov_events_dead_lettered_total"):
            reasons[labels["reason"]] += value
        assert worker.proc is not None and worker.proc.poll() is None, worker.tail()
        log = worker.log.read_text(errors="replace")
    assert (keys, by_unit) == (len(counted), {UNIT: len(counted), PROVINCE: len(counted)}), note
    where: Counter[Where] = Counter()
    for message in found:
        headers = dict(message.headers)
        source = headers["dlq_source"].decode()
        index = int(headers["dlq_batch_index"]) if "dlq_batch_index" in headers else None
        at: Where = (source, int(source.rsplit("@", 1)[1]), index)
        where[at] += 1
        case = expected.get(at)
        assert case is not None, f"unexpected dead letter {at} {headers}; {note}"
        reason = dict(case.rejected)[index]
        assert headers["dlq_reason"].decode() == reason, (case.kind, headers, note)
        assert headers["dlq_detail"], (case.kind, note)
        assert message.key == case.key, (case.kind, note)
        if index is None or case.kind == "nested-element":
            # nested-element: deeper than orjson writes, so the whole record is kept.
            assert message.value == case.value, (case.kind, note)
    assert set(where) == set(expected), (set(expected) - set(where), note)
    assert max(where.values()) == 1, note  # each once: no redelivery without a restart
    assert reasons == dict(want_reasons), (reasons, dict(want_reasons), note)
    assert "Traceback" not in log, log[-4000:]
