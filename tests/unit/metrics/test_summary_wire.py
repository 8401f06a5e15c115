"""The summary's wire format round trip: what ingest encodes, a worker reads back whole.

Every event's group (type, unit chain, crosswalk, KPI counts, bucket), epoch and dedup
digest come back from ``SummaryReader.read`` through the named columns of ``Summary``,
in record order, and the groups' event counts and latest times are those of their
events: no field is lost, swapped or merged on the way.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from services.common.summaries import (
    DIGEST_SIZE,
    FORMAT,
    VERSION,
    Entry,
    GroupKey,
    SummaryReader,
    encode,
)
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
        out.append((key, epoch, draw(st.binary(min_size=DIGEST_SIZE, max_size=DIGEST_SIZE))))
    return out


@given(entries())
@settings(max_examples=200, deadline=None)
def test_a_summary_reads_back_what_was_encoded(record: list[Entry]) -> None:
    summary = SummaryReader().read(encode(record))
    back: list[Entry] = []
    for i, (g, epoch) in enumerate(zip(summary.index, summary.times, strict=True)):
        key = (
            summary.types[summary.group_type[g]],
            summary.chains[summary.group_chain[g]],
            bool(summary.group_crosswalked[g]),
            summary.counts[summary.group_counts[g]],
            summary.group_bucket[g],
        )
        back.append((key, epoch, summary.digests[i * DIGEST_SIZE : (i + 1) * DIGEST_SIZE]))
    assert back == record
    assert summary.groups == len({key for key, _, _ in record})
    for g in range(summary.groups):
        mine = [epoch for i, epoch in enumerate(summary.times) if summary.index[i] == g]
        assert summary.group_events[g] == len(mine)
        assert summary.group_latest[g] == max(mine)


def test_the_format_names_its_version() -> None:
    """The version is in the MAC's fingerprint: another version's summary never verifies."""
    assert FORMAT == f"egov-summary/{VERSION}".encode() and VERSION == 1
