"""What one dossier event says about its dossier, and the dossier's identity in dedup. Pure.

Shared by ingest (its summary carries each dossier event's fact and a dedup digest per
dossier, services/common/summaries.py) and the metrics workers (the on-time ledger,
services/metrics/dossiers.py, which keeps the rules of what a dossier's events mean).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Final

from services.common.timekeys import EPOCH_ORDINAL, VN_OFFSET_S, local_day_of_epoch

RECEIVED: Final = "vn.egov.dossier.received"
RESOLVED: Final = "vn.egov.dossier.resolved"
RESUBMITTED: Final = "vn.egov.dossier.resubmitted"
PAID: Final = "vn.egov.dossier.paid"
DOSSIER_TYPES: Final = frozenset({RECEIVED, RESOLVED, RESUBMITTED, PAID})
"""Types whose events carry ``data.dossier_id``: counted once per dossier, not per event."""
FACT_TYPES: Final = DOSSIER_TYPES - {PAID}
"""Types whose events have a :class:`Fact` (the ledger does not read payments)."""

FINAL_OUTCOMES: Final = frozenset({"approved", "rejected"})
KINDS: Final = frozenset({"received", "resubmitted", "returned", "withdrawn", "final", "rejected"})
"""Every ``Fact.kind``: ``final`` is an approval, ``rejected`` a refusal (a refusal of a
dossier back with the applicant is judged where its clock stopped)."""
KINDS_V2: Final = KINDS - {"rejected"}
"""The kinds of a version-2 summary, which said ``final`` for both final outcomes."""
_ONE_US: Final = 1e-6


@dataclass(frozen=True, slots=True)
class Due:
    """An appointment: its local date, and the last instant that is still on time."""

    day: date
    last_on_time: float
    """Epoch seconds: a date-time appointment itself; a date alone, its last microsecond."""

    @classmethod
    def parse(cls, text: str) -> Due:
        """``2024-03-20T17:00:00+07:00`` or ``2024-03-20`` (a Vietnam date); the contract
        guarantees one of the two shapes."""
        if len(text) == 10:
            return cls.of_day(date.fromisoformat(text))
        epoch = datetime.fromisoformat(text.upper()).timestamp()
        return cls(local_day_of_epoch(epoch), epoch)

    @classmethod
    def of_day(cls, day: date) -> Due:
        """An appointment of a whole Vietnam day: on time until its last microsecond."""
        end = (day.toordinal() - EPOCH_ORDINAL + 1) * 86400 - VN_OFFSET_S
        return cls(day, end - _ONE_US)

    def late(self, epoch: float) -> bool:
        return epoch > self.last_on_time

    def judge(self, epoch: float, day: date | None = None) -> str:
        """early, on_time or late for a resolution at ``epoch`` (``day``: its Vietnam
        date, when the caller has it already): early before the appointment date, on
        time on it (and not after its time)."""
        if epoch > self.last_on_time:
            return "late"
        if day is None:
            day = local_day_of_epoch(epoch)
        return "early" if day < self.day else "on_time"


@dataclass(frozen=True, slots=True)
class Fact:
    """What one dossier event says about its dossier (``kind``: one of :data:`KINDS`)."""

    dossier_id: str
    """The dossier's key in the on-time ledger (:func:`ledger_id`): the id the event
    carries, qualified by its publisher on a worker; the bare id in a summary's columns."""
    kind: str
    due: Due | None = None


PUBLISHER_MARK: Final = "\udfff"
"""Between a publisher's name and a dossier id in a ledger key, which lives in memory only
(the table splits it: :func:`split_key`). A lone surrogate, which no text from outside
holds: JSON parsing refuses one, a header decoded from UTF-8 cannot carry one, and
PostgreSQL cannot store one, so not even an id stored before the contract refused
control characters (2026-12-04) does (review 47: a stored id holding U+001F, the first
choice, was split in two). A dossier id PostgreSQL cannot store (NUL) still reaches it
as itself and is refused there (``refusals.REFUSED_BY_STORE``), never split."""


def ledger_id(dossier_id: str, publisher: str = "") -> str:
    """The dossier's key in the on-time ledger: its id within its publisher, as its dedup
    identity is (docs/ingest.md, "Dedup identity"). A publisher that sends another
    system's dossier ids then starts dossiers of its own, and never moves, withdraws or
    resolves the real ones (review 43). An unbound record (``publisher`` "": straight to
    Kafka, ``backfill --unbound``, events dated before the publishers' cut-over) keeps
    the bare id, which every row stored before publishers were bound holds. A key lives
    in memory only; the table splits it (:func:`split_key`)."""
    return f"{publisher}{PUBLISHER_MARK}{dossier_id}" if publisher else dossier_id


def split_key(key: str) -> tuple[str, str]:
    """(publisher, dossier id) of a ledger key: ("", the id) when unbound. The ledger's
    table keeps them in two columns (migration 0019_dossier_publishers)."""
    publisher, _, dossier_id = key.rpartition(PUBLISHER_MARK)
    return publisher, dossier_id


def bare_id(key: str) -> str:
    """The dossier id in a ledger key (itself when unbound)."""
    return key.rpartition(PUBLISHER_MARK)[2]


def fact_of(event_type: str, data: Mapping[str, Any], publisher: str = "") -> Fact | None:
    """The fact of a valid event of a dossier type, keyed in the ledger for ``publisher``
    (:func:`ledger_id`); None for other types and payments (which the ledger does not
    read)."""
    if event_type not in FACT_TYPES:
        return None
    raw_due = data.get("due_at")
    due = Due.parse(raw_due) if isinstance(raw_due, str) else None
    kind = event_type.rpartition(".")[2]
    if event_type == RESOLVED:
        outcome = data["outcome"]
        kind = outcome if outcome != "approved" else "final"  # rejected, returned, withdrawn
    return Fact(ledger_id(canonical_id(data["dossier_id"]), publisher), kind, due)


def canonical_id(text: str) -> str:
    """An id (an event's, a dossier's) as it is keyed: in Unicode NFC, so that the same
    id sent decomposed (NFD: "Nông" as "No\u0302ng", which some relays and editors
    write) is the same key, as canonically equivalent strings are one (Unicode C6). An
    ASCII id, and any id already NFC, is itself, so every key stored before ids were
    normalised (2026-12-06) still matches. Runs once per event: ``isascii`` spares the
    usual id the normalisation's own check."""
    if text.isascii():
        return text
    return unicodedata.normalize("NFC", text)


def event_identity(event_type: str, event_id: str, data: Mapping[str, Any]) -> str:
    """What stands for the event's ``id`` in its dedup digest: the ``id`` itself, except
    that a dossier's receipt, payment and final outcome are one per dossier and type,
    whatever their ids (a second approval of one dossier is a duplicate). Returns and
    resubmissions may repeat, so they keep their own ids. The NUL bytes keep a dossier's
    identity apart from any event id a publisher could send. Not yet in NFC: the digest
    normalises it (services/common/tally.py ``dedup_digest``)."""
    if event_type in DOSSIER_TYPES:
        if event_type == RESOLVED:
            if data.get("outcome") != "returned":
                return f"\0{event_type}\0final\0{data['dossier_id']}"
        elif event_type != RESUBMITTED:
            return f"\0{event_type}\0{data['dossier_id']}"
    return event_id
