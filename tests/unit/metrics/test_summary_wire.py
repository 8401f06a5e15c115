"""The summary's wire format round trip: what ingest encodes, a worker reads back whole.

Every event's group (type, unit chain, crosswalk, KPI counts, bucket), epoch, dedup
digest and dossier fact come back from ``SummaryReader.read`` through the named columns
of ``TallyBatch``, in record order, and the groups' event counts and latest times are
those of their events: no field is lost, swapped or merged on the way. Version 1 (no
facts) is still read.
"""

from __future__ import annotations

from datetime import date

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.common.dossierfacts import KINDS, Due, Fact
from services.common.summaries import (
    DIGEST_SIZE,
    FORMAT,
    READ_VERSIONS,
    VERSION,
    Entry,
    GroupKey,
    SummaryError,
    SummaryReader,
    encode,
    encode_entries,
)
from services.common.tally import TallyBuilder, group_key
from services.common.timekeys import BUCKET_S

_codes = st.text("0123456789", min_size=2, max_size=5)
_kpi_counts = st.lists(
    st.tuples(st.sampled_from(["kpi_a", "kpi_b", "kpi_c"]), st.integers(0, 1), st.integers(0, 1)),
    max_size=3,
    unique_by=lambda c: c[0],
).map(lambda counts: tuple((k, min(n, d), d) for k, n, d in counts))
_group_keys = st.tuples(
    st.sampled_from(["document_signing", "dossier_received", "meeting_held"]),
    st.lists(_codes, min_size=1, max_size=3).map(tuple),
    st.booleans(),
    _kpi_counts,
    st.integers(1_600_000_000 // BUCKET_S, 1_900_000_000 // BUCKET_S).map(lambda b: b * BUCKET_S),
)


@st.composite
def entries(draw: st.DrawFn) -> list[Entry]:
    """Events of one record; a few distinct groups, so that events share them."""
    keys: list[GroupKey] = draw(st.lists(_group_keys, min_size=1, max_size=4))
    chosen = draw(st.lists(st.sampled_from(keys), max_size=30))
    out: list[Entry] = []
    for key in chosen:
        epoch = key[4] + draw(st.floats(0, BUCKET_S - 0.001))
        digest = draw(st.binary(min_size=DIGEST_SIZE, max_size=DIGEST_SIZE))
        out.append((key, epoch, digest, draw(st.none() | _facts)))
    return out


_dues = st.builds(
    Due,
    st.dates(date(2020, 1, 1), date(2030, 12, 31)),
    st.floats(1_600_000_000, 1_900_000_000),
)
_facts = st.builds(
    Fact, st.text(min_size=1, max_size=8), st.sampled_from(sorted(KINDS)), st.none() | _dues
)


@given(entries())
@settings(max_examples=200, deadline=None)
def test_a_summary_reads_back_what_was_encoded(record: list[Entry]) -> None:
    summary = SummaryReader().read(encode_entries(record))
    back: list[Entry] = []
    for i, (g, epoch) in enumerate(zip(summary.index, summary.epochs, strict=True)):
        key = (
            summary.types[summary.group_type[g]],
            summary.chains[summary.group_chain[g]],
            bool(summary.group_crosswalked[g]),
            summary.counts[summary.group_counts[g]],
            summary.group_bucket[g],
        )
        digest = summary.digests[i * DIGEST_SIZE : (i + 1) * DIGEST_SIZE]
        back.append((key, epoch, digest, summary.facts.get(i)))
    assert back == record
    groups = len(summary.group_type)
    assert groups == len({key for key, _, _, _ in record})
    for g in range(groups):
        mine = [epoch for i, epoch in enumerate(summary.epochs) if summary.index[i] == g]
        assert summary.group_events[g] == len(mine)
        assert summary.group_latest[g] == max(mine)


@given(entries())
@settings(max_examples=100, deadline=None)
def test_a_batch_reads_back_as_the_batch_that_was_encoded(record: list[Entry]) -> None:
    """The tally batch a builder makes goes over the wire and comes back column for
    column (sequences compared as lists: JSON gives lists, zip tuples)."""
    builder = TallyBuilder()
    for entry in record:
        builder.add(*entry)
    sent = builder.build()
    back = SummaryReader().read(encode(sent))
    for name in TallyBuilder.COLUMNS:
        assert list(getattr(back, name)) == list(getattr(sent, name)), name
    assert back.digests == sent.digests and back.facts == sent.facts


@given(entries())
@settings(max_examples=50, deadline=None)
def test_a_version_1_summary_is_still_read(record: list[Entry]) -> None:
    """What ingest wrote before version 2 (no facts): read as it was, without facts."""
    v2 = orjson.loads(encode_entries(record))
    del v2["f"]
    v1 = SummaryReader().read(orjson.dumps(v2), version=1)
    assert v1.facts == {} and v1.index == v2["e"] and v1.epochs == v2["t"]
    assert 1 in READ_VERSIONS


def test_the_format_names_its_version() -> None:
    """The version is in the MAC's fingerprint: another version's summary never verifies."""
    assert FORMAT == f"egov-summary/{VERSION}".encode() and VERSION == 3


def test_a_version_2_summary_is_read_and_says_final_for_both_outcomes() -> None:
    """Version 3 added the kind ``rejected`` (a refusal is judged where a paused clock
    stopped); a version-2 summary still reads, and one saying ``rejected`` is malformed."""
    key = group_key("vn.egov.dossier.resolved", ("01843", "19"), False, (), 1_764_000_000)
    entries = [
        (key, 1_764_000_000.0, bytes(16), Fact("H1", "rejected")),
        (key, 1_764_000_001.0, bytes(range(16)), Fact("H2", "final")),
    ]
    raw = encode_entries(entries)
    assert [f.kind for f in SummaryReader().read(raw).facts.values()] == ["rejected", "final"]
    with pytest.raises(SummaryError, match="unknown kind"):
        SummaryReader().read(raw, version=2)
    as_v2 = raw.replace(b'"rejected"', b'"final"')
    assert [f.kind for f in SummaryReader().read(as_v2, version=2).facts.values()] == [
        "final",
        "final",
    ]
    assert 2 in READ_VERSIONS
