"""A dossier's stored history (``dossier_state.history``, migration 0016) keeps its bytes'
meaning: each kind and outcome has a code written out in services/metrics/dossierstore.py,
so a kind added later cannot shift the codes of the histories already stored (they were
derived from ``sorted(KINDS)`` until 2026-12-05: a new kind sorted before "returned"
would have read every stored return as something else)."""

from __future__ import annotations

import struct
from datetime import date

from services.common.dossierfacts import KINDS
from services.metrics import dossiers, dossierstore

HEAD, ENTRY = struct.Struct("<BBid"), struct.Struct("<dBid")
DUE_DAY, DUE_LAST = date(2026, 11, 22).toordinal(), 1_763_830_800.0


def stored() -> bytes:
    """What the release of 2026-12-05 stored for a dossier received with an appointment,
    returned, resubmitted and rejected, judged on time (format 1; codes as it wrote them:
    on_time 2; received 2, returned 5, resubmitted 4, rejected 3)."""
    return (
        HEAD.pack(1, 2, DUE_DAY, DUE_LAST)
        + ENTRY.pack(1_763_600_000.0, 2, DUE_DAY, DUE_LAST)
        + ENTRY.pack(1_763_700_000.0, 5, 0, 0.0)
        + ENTRY.pack(1_763_800_000.0, 4, DUE_DAY + 2, DUE_LAST + 2 * 86_400)
        + ENTRY.pack(1_763_900_000.0, 3, 0, 0.0)
    )


def test_every_kind_and_outcome_has_a_stored_code_of_its_own() -> None:
    assert set(dossierstore._KIND_CODES) == KINDS
    assert set(dossierstore._OUTCOME_CODES) == set(dossiers.OUTCOMES)
    assert len(set(dossierstore._KIND_CODES.values())) == len(KINDS)
    assert len(set(dossierstore._OUTCOME_CODES.values())) == len(dossiers.OUTCOMES)


def test_a_history_stored_by_an_earlier_release_reads_as_written() -> None:
    entries, verdict = dossierstore.history_of(stored())
    assert [e.kind for e in entries] == ["received", "returned", "resubmitted", "rejected"]
    assert [e.due.day if e.due else None for e in entries] == [
        date(2026, 11, 22),
        None,
        date(2026, 11, 24),
        None,
    ]
    assert verdict == dossiers.Verdict("on_time", date(2026, 11, 22), DUE_LAST)
