"""What one event counts for: KPI denominators, rollups at the event's time, crosswalk."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from services.common.tally import Deltas, TallyEvent, dedup_digest
from services.metrics.decoding import Counted, Rejected
from services.metrics.pipeline import Preparer, Record
from tests.unit.metrics.helpers import (
    as_bytes,
    catalogue,
    contract,
    decoder,
    document,
    envelope,
)

AT_2024 = datetime(2024, 3, 12, 9, 0, tzinfo=UTC)
AT_2026 = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)
CHO_DON = "064"  # Huyện Chợ Đồn, Bắc Kạn (06), before the reform


def contribution(event: dict[str, object]) -> TallyEvent:
    """The event as the validated path tallies it (no signer: read and checked in full)."""
    outcome = decoder().decode(as_bytes(event))
    assert isinstance(outcome, Counted), outcome
    preparer = Preparer(decoder(), contract(), catalogue(), timedelta(days=36_500))
    record = Record("egov.any", 0, 0, outcome.resolution.province.code.encode(), as_bytes(event))
    prepared = preparer.prepare([record], AT_2026 + timedelta(days=1))
    assert prepared.dead_letters == []
    (counted,) = prepared.batches[("egov.any", 0)].event_views()
    return counted


def a_commune_of(district: str) -> str:
    from tests.unit.metrics.helpers import registry

    return registry().children(district, "2024")[0].code


def test_a_2024_event_counts_for_commune_district_and_province() -> None:
    commune = a_commune_of(CHO_DON)
    c = contribution(document(commune, AT_2024))
    assert c.units == (commune, CHO_DON, "06")
    assert not c.crosswalked
    deltas = Deltas.of([c])
    for unit in c.units:
        assert deltas.daily[(unit, "document_signing", date(2024, 3, 12))] == [1, 1]


def test_a_2026_event_counts_for_commune_and_province_only() -> None:
    c = contribution(document("01843", AT_2026))
    assert c.units == ("01843", "19")


def test_an_old_code_dated_2026_counts_for_its_successor() -> None:
    # Xã Thăng Bình (16351, Nông Cống) went into the new xã Thăng Bình (16342, Thanh Hóa).
    c = contribution(document("16351", AT_2026))
    assert c.units == ("16342", "38")
    assert c.crosswalked
    assert ("16351", "document_signing", date(2026, 11, 23)) not in Deltas.of([c]).daily


def test_a_district_code_dated_2026_is_rejected_with_the_reason() -> None:
    outcome = decoder().decode(as_bytes(document(CHO_DON, AT_2026)))
    assert isinstance(outcome, Rejected)
    assert outcome.reason == "unit-unknown"
    assert "district" in outcome.detail


def test_an_ambiguous_code_names_the_candidates() -> None:
    from tests.unit.metrics.helpers import registry

    old = [u for u in registry().units("2024") if u.level == "commune"]
    for unit in old:
        outcome = decoder().decode(as_bytes(document(unit.code, AT_2026)))
        if isinstance(outcome, Rejected) and outcome.reason == "unit-ambiguous":
            assert "candidates:" in outcome.detail
            return
    raise AssertionError("the unit data has no ambiguous commune code")


def test_classified_documents_leave_both_sides_of_document_rates() -> None:
    c = contribution(document("01843", AT_2026, classified=True, signed=False))
    assert c.counts == ()
    assert Deltas.of([c]).daily == {}
    # ... but the unit still showed signs of life.
    assert Deltas.of([c]).activity[("01843", "documents")] == AT_2026.timestamp()


def test_unsigned_electronic_document_counts_in_the_denominator_only() -> None:
    c = contribution(document("01843", AT_2026, signed=False))
    assert dict((k, (n, d)) for k, n, d in c.counts) == {
        "document_signing": (0, 1),
        "document_electronic": (1, 1),
    }


def test_offline_procedures_leave_the_online_dossier_rate() -> None:
    partial = envelope(
        "vn.egov.dossier.received", "01843", AT_2026, service_level="partial", channel="counter"
    )
    full_online = envelope(
        "vn.egov.dossier.received", "01843", AT_2026, "e2", service_level="full", channel="online"
    )
    assert contribution(partial).counts == ()
    assert contribution(full_online).counts == (("dossier_online", 1, 1),)


def test_same_source_and_id_have_the_same_digest() -> None:
    assert dedup_digest("urn:a", "1") == dedup_digest("urn:a", "1")
    assert dedup_digest("urn:a", "1") != dedup_digest("urn:b", "1")
    assert dedup_digest("urn:a\x001", "") != dedup_digest("urn:a", "1\x00")
    assert len(dedup_digest("urn:a", "1")) == 16


def test_event_time_in_another_offset_lands_in_its_vietnam_day() -> None:
    # 23:30 on the 22nd in Vietnam, written in UTC as 16:30.
    c = contribution(document("01843", datetime(2026, 11, 22, 16, 30, tzinfo=UTC)))
    assert c.day == date(2026, 11, 22)
    c = contribution(document("01843", datetime(2026, 11, 22, 17, 30, tzinfo=UTC)))
    assert c.day == date(2026, 11, 23)


def test_a_batch_record_rejects_only_its_invalid_elements() -> None:
    good = document("01843", AT_2026, "ok")
    bad = document("01843", AT_2026, "bad")
    del bad["source"]
    outcomes = decoder().decode_record(as_bytes(good, bad, document("99999", AT_2026, "u")))
    assert isinstance(outcomes[0], Counted)
    assert isinstance(outcomes[1], Rejected) and outcomes[1].reason == "schema-violation"
    assert outcomes[1].index == 1 and outcomes[1].raw is not None and b'"bad"' in outcomes[1].raw
    assert isinstance(outcomes[2], Rejected) and outcomes[2].reason == "unit-unknown"


def test_unreadable_records_are_rejected_whole() -> None:
    (outcome,) = decoder().decode_record(b"{not json")
    assert isinstance(outcome, Rejected) and outcome.reason == "malformed-json"
    assert outcome.index is None
    (outcome,) = decoder().decode_record(b"[]")
    assert isinstance(outcome, Rejected) and outcome.reason == "empty"
