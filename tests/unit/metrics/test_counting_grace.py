"""One horizon: ingest, backfill and the workers share the counting grace, and a worker
judges "too late" against when the record was accepted, never its own clock (issue 14).

Times are explicit: an event at ``EVENT``, accepted by ingest an hour later, read by a
worker whose clock is far past the grace (a backlog waited in the broker).
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from services.common.headers import ACCEPTED_HEADER, accepted_at, accepted_header
from services.common.settings import CommonSettings
from services.common.summaries import Summarizer
from services.ingest.publisher import pack, signed
from services.ingest.settings import IngestSettings
from services.ingest.validation import EventValidator, Limits
from services.metrics.pipeline import Preparer, Record
from services.metrics.settings import MetricsSettings
from tests.unit.metrics.helpers import (
    as_bytes,
    catalogue,
    contract,
    counted_digests,
    decoder,
    digest,
    document,
    registry,
)
from tests.unit.metrics.test_summaries import worker_signer

EVENT = datetime(2026, 2, 14, 9, 0, tzinfo=UTC)  # the first day of a Tết break
ACCEPTED = EVENT + timedelta(hours=1)
GRACE = timedelta(days=14)
READ = EVENT + GRACE + timedelta(days=20)  # the worker reads the backlog 34 days on
TOPIC = "egov.documents"


def preparer(signer: object = None) -> Preparer:
    return Preparer(decoder(), contract(), catalogue(), GRACE, signer=signer)  # type: ignore[arg-type]


def record(
    event_id: str,
    offset: int = 0,
    accepted: datetime | None = None,
    timestamp: datetime | None = None,
) -> Record:
    headers = [] if accepted is None else [accepted_header(accepted)]
    value = as_bytes(document("01843", EVENT, event_id))
    ts = None if timestamp is None else timestamp.timestamp()
    return Record(TOPIC, 0, offset, b"19", value, tuple(headers), ts)


def test_a_backlog_accepted_in_time_counts_however_long_it_waited() -> None:
    records = [
        record("by-header", 0, accepted=ACCEPTED),
        record("by-kafka-timestamp", 1, timestamp=ACCEPTED),  # published straight to Kafka
        # The header wins over the record's timestamp (LogAppendTime, a late re-publish).
        record("header-first", 2, accepted=ACCEPTED, timestamp=READ),
    ]
    prepared = preparer().prepare(records, READ)
    assert prepared.dead_letters == [] and prepared.too_late == []
    assert counted_digests(prepared) == {
        digest(i) for i in ("by-header", "by-kafka-timestamp", "header-first")
    }


def test_an_event_already_beyond_the_grace_when_accepted_is_too_late() -> None:
    late = EVENT + GRACE + timedelta(minutes=1)
    records = [record("late-header", 0, accepted=late), record("late-ts", 1, timestamp=late)]
    prepared = preparer().prepare([*records, record("ok", 2, accepted=ACCEPTED)], late)
    assert [d.reason for d in prepared.dead_letters] == ["too-late", "too-late"]
    detail = dict(prepared.dead_letters[0].headers)["dlq_detail"].decode()
    assert "14-day grace period" in detail and late.isoformat() in detail
    assert counted_digests(prepared) == {digest("ok")}


def test_without_header_or_timestamp_the_worker_clock_is_all_there_is() -> None:
    assert preparer().prepare([record("x")], READ).too_late == ["vn.egov.document.issued"]
    assert counted_digests(preparer().prepare([record("x")], ACCEPTED)) == {digest("x")}


@pytest.mark.parametrize("value", [b"", b"soon", b"-5", b"1e9", b"9" * 40, None])
def test_a_malformed_acceptance_header_falls_back_to_the_kafka_timestamp(value: object) -> None:
    bad = dataclasses.replace(record("m", timestamp=ACCEPTED), headers=((ACCEPTED_HEADER, value),))
    prepared = preparer().prepare([bad], READ)
    assert prepared.dead_letters == [] and counted_digests(prepared) == {digest("m")}


def test_the_acceptance_header_rounds_down_so_a_worker_never_judges_later() -> None:
    at = datetime(2026, 2, 14, 9, 0, 0, 999_999, tzinfo=UTC)
    name, value = accepted_header(at)
    assert name == ACCEPTED_HEADER and value == str(int(at.timestamp()) * 1000 + 999).encode()
    parsed = accepted_at([(name, value)])
    assert parsed is not None and parsed <= at.timestamp()
    # Exactly at the horizon in ingest is counted in the worker.
    edge = [(name, value)]
    event_at = at - GRACE
    value_bytes = as_bytes(document("01843", event_at, "edge"))
    prepared = preparer().prepare([Record(TOPIC, 0, 0, b"19", value_bytes, tuple(edge))], READ)
    assert counted_digests(prepared) == {digest("edge")}


def ingest_made(events: list[dict[str, object]], accepted: datetime) -> list[Record]:
    """What ingest publishes for one request accepted at ``accepted``: validated against
    the shared grace, packed, stamped and signed by its own code."""
    limits = Limits(timedelta(seconds=300), horizon=GRACE)
    validator = EventValidator(contract(), registry(), limits, Summarizer(catalogue()))
    records, errors = validator.check(events, accepted)
    assert errors == []
    out = signed(pack(records), worker_signer(), accepted_header(accepted))
    return [
        Record(f"egov.{r.topic_family}", 0, offset, r.key, r.value, tuple(r.headers))
        for offset, r in enumerate(out)
    ]


def test_ingests_summarised_and_signed_records_count_after_a_long_backlog() -> None:
    events = [document("01843", EVENT + timedelta(minutes=i), f"s{i}") for i in range(5)]
    (packed,) = ingest_made(events, ACCEPTED)
    (single,) = ingest_made([document("01837", EVENT, "one")], ACCEPTED)
    prepared = preparer(worker_signer()).prepare([packed, single], READ)
    assert prepared.dead_letters == []
    assert prepared.paths == {"summary": 1, "signed": 1}
    assert counted_digests(prepared) == {digest(f"s{i}") for i in range(5)} | {digest("one")}


def test_ingest_refuses_what_is_older_than_the_grace_naming_field_and_horizon() -> None:
    validator = EventValidator(contract(), registry(), Limits(timedelta(seconds=300), GRACE))
    old = document("01843", ACCEPTED - GRACE - timedelta(seconds=1), "old")
    edge = document("01843", ACCEPTED - GRACE, "edge")
    records, errors = validator.check([old, edge], ACCEPTED)
    assert [r.index for r in records] == [1]
    (error,) = errors
    assert (error.index, error.pointer, error.code) == (0, "/time", "time-beyond-horizon")
    assert "14-day horizon" in error.reason and "backfill" in error.reason
    assert (ACCEPTED - GRACE).isoformat() in error.reason


def test_one_setting_for_every_service(monkeypatch: pytest.MonkeyPatch) -> None:
    default = CommonSettings.model_fields["counting_grace_days"].default
    assert default >= 10  # the Tết break, and the days after it to upload
    monkeypatch.setenv("EGOV_COUNTING_GRACE_DAYS", "21")
    assert IngestSettings().counting_grace_days == 21
    assert MetricsSettings().metrics_grace_days == 21  # what the worker reads
    monkeypatch.delenv("EGOV_COUNTING_GRACE_DAYS")
    monkeypatch.setenv("EGOV_METRICS_GRACE_DAYS", "12")  # the old name still works
    assert IngestSettings().counting_grace_days == MetricsSettings().metrics_grace_days == 12
    assert "horizon_days" not in IngestSettings.model_fields  # no second horizon
