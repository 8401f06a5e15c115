"""Review 74a: today's metrics-side changes (087154d re-keying, d0ade32 commit-lost
reload, 5c66471 rates summed over workers), read adversarially.

- A mis-keyed record larger than the workers' producer takes (Faust's
  ``producer_max_request_size``, 1,000,000 bytes, kept by services/metrics/app.py) is
  forwarded with ``MessageSizeTooLargeError`` retried for ever (``Counting._forwards``
  retries every ``KafkaError``; the dead letters know the too-large case, the forwards
  do not): the worker stops counting on one record
  (``test_a_mis_keyed_record_too_large_to_forward_does_not_stop_the_counting``).
- The KPI counter rates are summed over workers, but a worker's ``_total`` series of a
  unit is the total of the partitions it owns, loaded from PostgreSQL at each claim: a
  partition that moves to another worker and back (a rolling restart) resumes the first
  owner's series at a total that includes what the other counted meanwhile, so rate()
  sees that part twice, once per owner
  (``test_rates_over_a_partition_that_moves_away_and_back_count_each_event_once``).

Both were strict xfails; fixed 2026-12-06: a batch's forwards are cut under the
producer's limit and an event too large alone is dead-lettered (``unforwardable``); the
rate rules took ``max by`` again; since later that day they join the owners' totals
first and take ``delta()`` of the one series (review 71's move for good as well).
"""

from __future__ import annotations

import asyncio
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import orjson
import pytest
from aiokafka.errors import MessageSizeTooLargeError

from services.metrics.pipeline import Record
from services.metrics.rekeying import Forward
from tests.integration.metrics.test_review4_refusals import counting_on
from tests.integration.metrics.test_store_refusals import Sent, fetch, keys
from tests.unit.metrics.helpers import document

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
DOCS = "egov.documents"
THAI_NGUYEN = "01843"  # a commune of province 19 (since 2025)
PRODUCER_MAX_REQUEST_SIZE = 1_000_000
"""Faust's default ``producer_max_request_size``, which services/metrics/app.py keeps
(pipeline.DEAD_LETTER_MAX_BYTES says so): aiokafka's send() refuses a larger record."""


class Producer:
    """The worker's forward as Faust's producer behaves: a record whose key and value
    exceed ``producer_max_request_size`` raises MessageSizeTooLargeError in send()."""

    def __init__(self) -> None:
        self.delivered: list[Forward] = []
        self.refused = 0

    async def __call__(self, moved: Forward) -> None:
        if len(moved.key) + len(moved.value) + 61 > PRODUCER_MAX_REQUEST_SIZE:
            self.refused += 1
            raise MessageSizeTooLargeError(
                f"The message is {len(moved.value)} bytes when serialized which is larger "
                "than the maximum request size you have configured with the "
                "max_request_size configuration"
            )
        self.delivered.append(moved)


async def test_a_mis_keyed_record_too_large_to_forward_does_not_stop_the_counting(
    pool: asyncpg.Pool, database_url: str
) -> None:
    at = datetime.now(UTC) - timedelta(minutes=5)
    events = [document(THAI_NGUYEN, at, f"big-{i}") for i in range(3200)]
    value = orjson.dumps(events)
    assert len(value) > PRODUCER_MAX_REQUEST_SIZE  # a 1.1 MB batch, as a topic takes it
    work = await counting_on(pool, [(DOCS, 0)])
    producer = Producer()
    work.forward = producer
    sent = Sent()
    after = Record(DOCS, 0, 1, b"19", orjson.dumps(document(THAI_NGUYEN, at, "after")))
    try:
        await asyncio.wait_for(
            _step_and_drain(work, [Record(DOCS, 0, 0, b"38", value), after], sent), 10
        )
    except TimeoutError:
        pytest.fail(
            f"the worker is stuck: the forward was refused {producer.refused} times "
            "and retried, the offsets never move past the record"
        )
    # Nothing vanished: each event forwarded (in records the producer takes) or the
    # record dead-lettered, visibly; and the counting went on past it.
    forwarded = sum(f.events for f in producer.delivered)
    whole = len(events) if any(d.offset == 0 for d in sent.letters) else 0
    assert forwarded + whole == len(events), (forwarded, [d.reason for d in sent.letters])
    assert work.state.metrics.rekeyed.labels(DOCS)._value.get() + whole == len(events)
    rows = await fetch(
        database_url, "SELECT next_offset FROM consumer_offsets WHERE topic = 'egov.documents'"
    )
    assert [r["next_offset"] for r in rows] == [2]


async def test_a_forward_sent_twice_counts_once_on_the_province_partition(
    pool: asyncpg.Pool, database_url: str
) -> None:
    """Guard: a crash between the forward and the flush sends it again (at least once);
    the copies, on the province's partition, count once, with their headers' backfill."""
    at = datetime.now(UTC) - timedelta(minutes=5)
    work = await counting_on(pool, [(DOCS, 0), (DOCS, 1)])
    producer = Producer()
    work.forward = producer
    sent = Sent()
    value = orjson.dumps([document(THAI_NGUYEN, at, "twice"), document(THAI_NGUYEN, at, "b")])
    await _step_and_drain(work, [Record(DOCS, 0, 0, None, value)], sent)
    (moved,) = producer.delivered
    assert (moved.key, moved.events, sent.letters) == (b"19", 2, [])
    copies = [
        Record(DOCS, 1, i, moved.key, moved.value, moved.headers, moved.timestamp) for i in range(2)
    ]
    await _step_and_drain(work, copies, sent)
    assert len(producer.delivered) == 1 and sent.letters == []  # no loop
    assert await keys(database_url) == 2
    day = await fetch(
        database_url,
        "SELECT coalesce(sum(denominator), 0) AS n FROM kpi_daily"
        " WHERE unit = '01843' AND kpi = 'document_signing'",
    )
    assert day[0]["n"] == 2
    assert work.state.metrics.duplicates.labels("vn.egov.document.issued")._value.get() == 2


async def _step_and_drain(work: object, records: list[Record], sent: Sent) -> None:
    await work.step(records, sent)  # type: ignore[attr-defined]
    await work.drain()  # type: ignore[attr-defined]


def _series(values: list[str]) -> str:
    return " ".join(values)


def test_rates_over_a_partition_that_moves_away_and_back_count_each_event_once(
    tmp_path: Path,
) -> None:
    """Province 19's partition on metrics-1 (50 of 100 on time so far); a rolling restart
    moves it to metrics-2 for ten minutes (it counts 50 documents, none signed), then
    back to metrics-1 (it counts 50, all signed). Over the hour, 50 of 100: 0.5."""
    one = 'job="metrics",instance="metrics-1:8081",kpi="signing_rate",unit="19"'
    two = 'job="metrics",instance="metrics-2:8081",kpi="signing_rate",unit="19"'
    stale, missing = ["stale"] * 10, ["_"] * 10
    rules = ROOT / "deploy/prometheus/rules/egov-recording.yml"
    test = f"""
rule_files:
  - {rules}
evaluation_interval: 1m
tests:
  - name: a partition away and back
    interval: 1m
    input_series:
      # metrics-1 owns it (0-9 min), loses it (10-19), claims it back at the total
      # PostgreSQL holds (20) and counts on (21-25).
      - series: 'egov_kpi_numerator_total{{{one}}}'
        values: '50x9 {_series(stale)} 50+10x5 100x15'
      - series: 'egov_kpi_denominator_total{{{one}}}'
        values: '100x9 {_series(stale)} 150+10x5 200x15'
      # metrics-2 owns it from 10 to 19 min: claimed at 100, counts 50 unsigned.
      - series: 'egov_kpi_numerator_total{{{two}}}'
        values: '{_series(missing)} 50x9 {_series(stale * 2)}'
      - series: 'egov_kpi_denominator_total{{{two}}}'
        values: '{_series(missing)} 100+10x5 150x3 {_series(stale * 2)}'
    promql_expr_test:
      - expr: |
          abs(
            delta(unit:egov_kpi_numerator_total:max[1h])
            / delta(unit:egov_kpi_denominator_total:max[1h])
            - 0.5
          ) < bool 0.05
        eval_time: 40m
        exp_samples:
          - labels: '{{kpi="signing_rate",unit="19"}}'
            value: 1
"""
    path = tmp_path / "moves.test.yml"
    path.write_text(test)
    ran = subprocess.run(
        ["promtool", "test", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr


async def test_events_the_producer_refuses_for_their_size_are_dead_lettered_not_retried(
    pool: asyncpg.Pool, database_url: str
) -> None:
    """One event alone above what the producer takes cannot be forwarded: its record is
    dead-lettered (reason ``unforwardable``, the province it belongs to in the detail)
    and the counting goes on past it."""

    class Refusing(Producer):
        async def __call__(self, moved: Forward) -> None:
            self.refused += 1
            raise MessageSizeTooLargeError("as if larger than max_request_size")

    at = datetime.now(UTC) - timedelta(minutes=5)
    work = await counting_on(pool, [(DOCS, 0)])
    work.forward = Refusing()
    sent = Sent()
    value = orjson.dumps(document(THAI_NGUYEN, at, "huge"))
    after = Record(DOCS, 0, 1, b"19", orjson.dumps(document(THAI_NGUYEN, at, "after")))
    await asyncio.wait_for(
        _step_and_drain(work, [Record(DOCS, 0, 0, b"38", value), after], sent), 10
    )
    (dead,) = sent.letters
    assert (dead.reason, dead.offset, dead.key, dead.value) == ("unforwardable", 0, b"38", value)
    assert "'19'" in dead.detail
    assert work.state.metrics.rekeyed.labels(DOCS)._value.get() == 0
    rows = await fetch(
        database_url, "SELECT next_offset FROM consumer_offsets WHERE topic = 'egov.documents'"
    )
    assert [r["next_offset"] for r in rows] == [2]
    assert await keys(database_url) == 1  # "after" counted
