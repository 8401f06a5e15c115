"""The throughput shortcuts give the same answers as the plain path: resolution cache,
grouped sums, and cutting a step into flushes."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from services.common.tally import Deltas, TallyEvent
from services.metrics.agents import parts
from services.metrics.decoding import Counted, Rejected
from services.metrics.periods import local_day_of_epoch
from services.metrics.pipeline import Record
from tests.unit.metrics.helpers import as_bytes, decoder, document, registry

AT_2024 = datetime(2024, 3, 12, 9, 0, tzinfo=UTC)
AT_2026 = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)
REFORM = datetime(2025, 6, 30, 17, 0, tzinfo=UTC)  # 2025-07-01 00:00 in Vietnam


def test_one_decoder_resolves_a_code_by_the_era_of_each_event() -> None:
    # 16351 is a commune of Nông Cống before the reform, crosswalked to 16342 after it.
    d = decoder()
    times = (AT_2024, AT_2026, REFORM - timedelta(microseconds=1), REFORM, AT_2024)
    chains = []
    for at in times:
        outcome = d.decode(as_bytes(document("16351", at)))
        assert isinstance(outcome, Counted), outcome
        expected = registry().resolve("16351", at)
        assert outcome.resolution == expected
        assert outcome.units == tuple(u.code for u in expected.chain)
        chains.append(outcome.units)
    assert chains[0] == chains[2] == chains[4] and len(chains[0]) == 3
    assert chains[1] == chains[3] == ("16342", "38")


def test_an_unknown_code_is_refused_every_time_it_comes() -> None:
    d = decoder()
    for _ in range(2):
        outcome = d.decode(as_bytes(document("99999", AT_2026)))
        assert isinstance(outcome, Rejected) and outcome.reason == "unit-unknown"


def contribution(
    epoch: float, units: tuple[str, ...], counts: tuple[tuple[str, int, int], ...]
) -> TallyEvent:
    day = local_day_of_epoch(epoch)
    return TallyEvent(b"k" * 16, "t", "documents", epoch, day, units, counts, False)


def test_grouped_sums_equal_per_event_sums() -> None:
    base = datetime(2026, 11, 23, 16, 50, tzinfo=UTC).timestamp()  # 23:50 in Vietnam
    cs = [
        contribution(base + 60 * i, units, counts)
        for i in range(30)
        for units, counts in (
            (("01843", "19"), (("a", 1, 1), ("b", 0, 1))),
            (("01843", "19"), (("a", 0, 1),)),
            (("00004", "01"), ()),
            (("16342", "38"), (("b", 1, 1),)),
        )
    ]
    expected_daily: dict[tuple[str, str, date], list[int]] = {}
    expected_buckets: dict[tuple[str, str, int], list[int]] = {}
    expected_activity: dict[tuple[str, str], float] = {}
    for c in cs:
        for unit in c.units:
            expected_activity[(unit, c.family)] = max(
                expected_activity.get((unit, c.family), 0.0), c.epoch
            )
            for kpi, num, den in c.counts:
                for table, key in (
                    (expected_daily, (unit, kpi, c.day)),
                    (expected_buckets, (unit, kpi, c.bucket)),
                ):
                    row = table.setdefault(key, [0, 0])
                    row[0] += num
                    row[1] += den
    deltas = Deltas.of(cs)
    assert deltas.events == len(cs)
    assert deltas.daily == expected_daily
    assert deltas.buckets == expected_buckets
    assert deltas.activity == expected_activity
    assert {day for _, _, day in deltas.daily} == {date(2026, 11, 23), date(2026, 11, 24)}


def record(offset: int, size: int) -> Record:
    return Record("t", 0, offset, None, b"x" * size)


def test_a_step_is_cut_into_flushes_in_order_without_losing_a_record() -> None:
    records = [record(i, size) for i, size in enumerate([10, 30, 70, 200, 5, 5, 0])]
    runs = parts(records, 100)
    assert [[r.offset for r in run] for run in runs] == [[0, 1], [2], [3], [4, 5, 6]]
    assert parts([], 100) == []
    assert parts(records, 10**9) == [records]
