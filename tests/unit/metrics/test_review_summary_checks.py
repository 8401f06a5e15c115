"""Review of the sense check of signed version-2 summaries (services/metrics/sanity.py):
what a summary made with the signing key (a stolen key, or an ingest bug) could still
add wrongly after its MAC verified. Each case is one ingest made, changed in one place."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from services.common.summaries import SummaryError, SummaryReader
from services.metrics import sanity
from tests.unit.metrics.test_sanity import BOUNDS, summary_and_size
from tests.unit.metrics.test_signed_records import NOW
from tests.unit.metrics.test_summaries import dossier_events, ingest_records

Change = Callable[[dict[str, Any]], Any]


def _problem(summary: dict[str, Any], size: int) -> str | None:
    try:
        read = SummaryReader().read(orjson.dumps(summary))
    except SummaryError as exc:
        return str(exc)
    return sanity.problem(read, size, BOUNDS)


def documents_problem(change: Change) -> str | None:
    summary, size = summary_and_size()
    change(summary)
    return _problem(summary, size)


def dossiers_problem(change: Change) -> str | None:
    (record,) = ingest_records(dossier_events())
    raw = dict(record.headers)["egov_summary"]
    assert isinstance(raw, bytes)
    summary = orjson.loads(raw)
    change(summary)
    return _problem(summary, len(record.value or b""))


def test_unchanged_summaries_are_sound() -> None:
    assert documents_problem(lambda s: None) is None
    assert dossiers_problem(lambda s: None) is None


def test_group_event_counts_must_match_the_events_pointing_at_them() -> None:
    """Groups 0..3 hold one event each; the index moves group 1's event to group 0. The
    totals still agree, but counted as groups (every key new) group 0 adds its counts
    once, and event by event (after a duplicate) twice: one summary, two sums."""

    def move(s: dict[str, Any]) -> None:
        s["e"] = [0, 0, 2, 3]

    found = documents_problem(move)
    assert found is not None and "event counts" in found


def test_a_group_latest_time_ahead_of_the_clock_is_nonsense() -> None:
    """Each unit's last-event time is the groups' latest, which no check bounds."""

    def ahead(s: dict[str, Any]) -> None:
        s["g"][0][6] = NOW.timestamp() + 10 * 365 * 86400.0

    assert documents_problem(ahead) is not None


def test_a_group_bucket_must_be_its_events_bucket() -> None:
    """Figures go to the group's bucket (and day), its events' times are checked: a
    bucket three days before its event counts the event on another Vietnam day."""

    def elsewhere(s: dict[str, Any]) -> None:
        s["g"][0][3] -= 3 * 86400

    assert documents_problem(elsewhere) is not None


def test_a_bucket_off_the_five_minute_grid_is_nonsense() -> None:
    def off_grid(s: dict[str, Any]) -> None:
        s["g"][0][3] += 1

    assert documents_problem(off_grid) is not None


def test_a_unit_twice_in_one_chain_is_nonsense() -> None:
    """Every unit of a chain gets the group's counts: a unit listed twice counts twice."""

    def twice(s: dict[str, Any]) -> None:
        s["u"][0] = "01843,01843,19"

    assert documents_problem(twice) is not None


def test_an_event_index_must_be_an_integer() -> None:
    """A float group index passes the column checks and fails only in the flush
    (``select``, ``key_blocks``, ``event``): a TypeError there crashes the worker on
    the same record after every restart."""

    def floating(s: dict[str, Any]) -> None:
        s["e"] = [0.0, 1, 2, 3]

    assert documents_problem(floating) is not None


def test_a_fact_of_another_kind_than_its_event_type_is_nonsense() -> None:
    """Event 0 is a receipt: a 'final' fact on it closes a dossier nobody resolved."""

    def final_receipt(s: dict[str, Any]) -> None:
        s["f"]["k"][0] = "final"

    assert dossiers_problem(final_receipt) is not None


def test_kpi_counts_of_another_event_type_are_nonsense() -> None:
    """The document KPIs' counts on meeting events: every KPI is known, every count
    0..1, so each check passes, and a meeting adds to document_signing."""

    def meetings(s: dict[str, Any]) -> None:
        s["y"] = ["vn.egov.meeting.held"]

    assert documents_problem(meetings) is not None


def test_a_float_index_is_refused_before_a_flush_trips_on_it() -> None:
    """End to end: ingest's record, its summary's index made floats and signed again with
    the key. ``prepare`` counts it as groups; a flush that then meets a duplicate of one
    of its events narrows the batch (``tally.selected``) and raises TypeError, which is
    not infrastructure: the worker crashes, restarts at the same offsets, crashes again."""
    import dataclasses

    from services.common.signing import SUMMARY_HEADER, SUMMARY_MAC_HEADER, VALIDATED_HEADER
    from services.metrics import tally
    from tests.unit.metrics.test_signed_records import preparer
    from tests.unit.metrics.test_summaries import communes_events, worker_signer

    (record,) = ingest_records(communes_events(4))
    summary = orjson.loads(dict(record.headers)[SUMMARY_HEADER])
    summary["e"] = [float(g) for g in summary["e"]]
    signer = worker_signer()
    kept = [
        h
        for h in record.headers
        if h[0] not in (SUMMARY_HEADER, SUMMARY_MAC_HEADER, VALIDATED_HEADER)
    ]
    value, where = record.value or b"", {"topic": record.topic, "key": record.key}
    headers = kept + signer.summary_headers(value, orjson.dumps(summary), headers=kept, **where)  # type: ignore[arg-type]
    headers.append(signer.header(value, headers=headers, **where))  # type: ignore[arg-type]
    forged = dataclasses.replace(record, headers=tuple(headers))
    prepared = preparer(signer).prepare([forged], NOW)
    try:
        batches = list(prepared.batches.values())
        first, _ = tally.first_deliveries(batches)
        tally.selected(batches, list(first.values())[1:])  # as if event 0 were a duplicate
    except TypeError:
        crashed = True
    else:
        crashed = False
    assert [d.reason for d in prepared.dead_letters] == [sanity.NONSENSE]
    assert not crashed


def test_a_group_refers_to_its_tables_by_integers() -> None:
    """Type and chain references as floats (0.0) compare like integers but fail as list
    indexes when the step sums the record ahead, outside the per-record error handling
    of ``prepare``: a poison record the partition would never get past."""

    def floats(s: dict[str, Any]) -> None:
        for group in s["g"]:
            group[0], group[1] = float(group[0]), float(group[1])

    found = documents_problem(floats)
    assert found is not None and "not an integer" in found
