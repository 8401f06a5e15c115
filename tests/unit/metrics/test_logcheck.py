"""The decision to resume a partition where it was stored, or not (services/metrics/logcheck.py)."""

from __future__ import annotations

import pytest

from services.metrics.logcheck import (
    Inconclusive,
    Stored,
    Verdict,
    fingerprint,
    judge,
    mark_last_records,
)
from services.metrics.pipeline import Record
from services.metrics.tally import PartitionBatch

MARK = fingerprint(b"k", b"v", 1_700_000_000_000)


def test_the_same_record_before_the_position_resumes_there() -> None:
    assert judge(Stored(10, MARK), 0, (9, MARK)) == Verdict(10)


def test_another_record_at_that_offset_means_another_log() -> None:
    other = fingerprint(b"k", b"w", 1_700_000_000_000)
    assert judge(Stored(10, MARK), 0, (9, other)) == Verdict(0, "replaced")


def test_no_record_there_means_the_log_is_shorter_than_what_was_read() -> None:
    assert judge(Stored(10, MARK), 0, None) == Verdict(0, "replaced")
    assert judge(Stored(10, MARK), 0, (12, MARK)) == Verdict(0, "replaced")


def test_a_position_before_the_log_start_reports_what_was_deleted() -> None:
    assert judge(Stored(10, MARK), 25, None) == Verdict(25, "deleted", 15)


def test_a_position_at_the_log_start_lost_nothing() -> None:
    """Retention deleted only the record before it: resume there, no reset reported."""
    assert judge(Stored(25, MARK), 25, None) == Verdict(25)


def test_a_record_the_broker_holds_but_did_not_send_is_no_verdict() -> None:
    """Apache Kafka's end offset says offset 9 exists: a slow answer (a leader moving) is
    retried, never taken for a replaced log; beyond the end, the log is shorter."""
    with pytest.raises(Inconclusive):
        judge(Stored(10, MARK), 0, None, log_end=50)
    assert judge(Stored(10, MARK), 0, None, log_end=5) == Verdict(0, "replaced")


def test_nothing_to_check_at_zero_and_bounds_only_without_a_fingerprint() -> None:
    assert judge(Stored(0, None), 0, None) == Verdict(0)
    assert judge(Stored(10, None), 0, (9, MARK)) == Verdict(10)
    assert judge(Stored(10, None), 0, None) == Verdict(0, "replaced")


def test_fingerprints_tell_key_value_and_time_apart() -> None:
    prints = {
        fingerprint(b"k", b"v", 1),
        fingerprint(b"k", b"v", 2),
        fingerprint(b"kv", b"", 1),
        fingerprint(None, b"kv", 1),
    }
    assert len(prints) == 4


def test_the_last_record_of_each_partition_is_marked_as_the_read_back_sees_it() -> None:
    records = [
        Record("t", 0, 5, b"a", b"x", (), 1_700_000_000.123),
        Record("t", 0, 6, b"b", b"y", (), 1_700_000_000.456),
        Record("t", 1, 3, None, b"z", (), None),
    ]
    batches = {("t", 0): PartitionBatch(("t", 0), 7), ("t", 1): PartitionBatch(("t", 1), 4)}
    mark_last_records(batches, records)
    assert batches[("t", 0)].last_record == fingerprint(b"b", b"y", 1_700_000_000_456)
    assert batches[("t", 1)].last_record == fingerprint(None, b"z", 0)


def test_a_position_of_zero_is_checked_against_the_log_start() -> None:
    """A partition claimed before its first record (or never counted): records retention
    deleted before the first flush were never counted either (review 89)."""
    assert judge(Stored(0, None), 100, None) == Verdict(100, "deleted", 100)
    assert judge(Stored(0, None), 0, None, log_end=50) == Verdict(0)
