"""Ingest's summary of a packed record: the record's :class:`~services.common.tally.TallyBatch`
serialised, so that a worker need not read its events one by one.

In a replay a metrics worker spent ~15 µs per event parsing it, resolving its unit at
its time, evaluating its KPIs, hashing its dedup key and summing, against a target of
100,000 events/s per worker. Ingest has done all of it already when it validated the
event, so a record it packs (``pack`` in services/ingest/publisher.py) carries a summary
in the header ``egov_summary``: its tally batch (services/common/tally.py) on the wire.
The worker adds whole groups, inserts the keys as one blob and hands dossier facts to
the on-time ledger; it reads the events themselves only when something needs them one
by one (a duplicate, an event beyond the grace or ahead of its clock).

A summary is trusted only under its MAC (services/common/signing.py), keyed with the
record signing key and the :func:`summary_fingerprint` of what it was computed from and
of its version: a worker that loaded another contract, KPI catalogue or unit registry
(a KPI changed, a rolling upgrade) fails the check and reads the events. A summary can
be unusable, never believed when wrong.

The format (JSON, schemas/CONTRACT.md §5), version 3::

    {"y": [event type, ...],
     "u": ["unit,parent,...,province", ...],     # unit chains at the events' times
     "c": ["kpi:numerator:denominator,...", ...],  # KPI counts of one event
     "g": [[type, chain, via_crosswalk, bucket_start, counts, events, latest_epoch], ...],
     "e": [group of each event, in record order],
     "t": [epoch seconds of each event],
     "k": "hex of the 16-byte dedup digests, in record order",
     "f": {"e": [event index of each dossier fact, ascending],
           "d": [dossier id], "k": [kind],
           "a": [appointment's day (proleptic ordinal) or null],
           "l": [appointment's last on-time epoch seconds or null]}}

``type``, ``chain`` and ``counts`` of a group index the tables ``y``, ``u`` and ``c``.
A dossier event's digest is its dossier's identity (services/common/dossierfacts.py
``event_identity``), and every dossier event but a payment has its fact in ``f``.
Version 2 is the same, but its kind ``final`` stands for both final outcomes (version 3
says ``rejected`` for a refusal: a dossier refused while back with the applicant is judged
where its clock stopped). Version 1 is the same without ``f``, its digests per event (not
per dossier). A worker still reads both (records in the topics when ingest is upgraded:
upgrade the workers first), and reads the events one by one of a version-2 record holding
a final outcome and of a version-1 record holding dossier events.

This module is the format's one home: ``encode`` writes a batch, ``SummaryReader.read``
reads one back, so no other file knows a group's field order. ``FORMAT`` names the
version and is part of :func:`summary_fingerprint` and so of the MAC: a summary is read
as the version it was signed under (``RecordSigner.check_summary`` says which), never
mistaken for another. A new version is added here beside the old one, read by both
until every ingest writes it.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from itertools import pairwise
from math import fsum
from operator import itemgetter
from typing import Any, Final

import orjson

from services.common.contract import Contract
from services.common.dossierfacts import KINDS, KINDS_V2, Due, Fact, fact_of, ledger_id
from services.common.kpis import KpiCatalogue, KpiCount
from services.common.settings import CommonSettings
from services.common.signing import RecordSigner
from services.common.tally import DIGEST_SIZE as DIGEST_SIZE
from services.common.tally import UNBOUND as UNBOUND
from services.common.tally import GroupKey as GroupKey
from services.common.tally import TallyBatch, TallyBuilder, event_digest, group_key
from services.common.tally import dedup_digest as dedup_digest
from services.common.units import Resolution, UnitRegistry

VERSION: Final = 3
"""The version ingest writes."""
READ_VERSIONS: Final = (3, 2, 1)
"""The versions a worker reads."""
FORMAT: Final = f"egov-summary/{VERSION}".encode()


def format_of(version: int) -> bytes:
    return f"egov-summary/{version}".encode()


# A group's fields on the wire, by position: known here only (``TallyBatch`` names them).
_TYPE, _CHAIN, _CROSSWALKED, _BUCKET, _COUNTS, _EVENTS, _LATEST = range(_FIELDS := 7)


class SummaryError(ValueError):
    """A summary whose shape is wrong (its MAC verified: a bug, not an attack)."""


def summary_fingerprint(
    contract_fingerprint: bytes,
    catalogue: KpiCatalogue,
    registry: UnitRegistry,
    version: int = VERSION,
) -> bytes:
    """What a summary depends on: its version, the contract, the KPI catalogue and the
    unit registry."""
    parts = (format_of(version), contract_fingerprint, catalogue.fingerprint, registry.fingerprint)
    return hashlib.sha256(b"|".join(parts)).digest()


def record_signer(
    settings: CommonSettings,
    contract: Contract,
    catalogue: KpiCatalogue,
    registry: UnitRegistry,
) -> RecordSigner | None:
    """The services' signer of records and summaries (None without a signing key): ingest
    and the metrics workers build it from what they loaded, and agree when that is equal.
    It writes summaries of ``VERSION`` and verifies those of every ``READ_VERSIONS``."""
    if not settings.signs_records:  # spare the registry's fingerprint (~20 ms) at start-up
        return None
    fingerprint = summary_fingerprint(contract.fingerprint, catalogue, registry)
    signer = settings.record_signer(contract.fingerprint, fingerprint)
    if signer is not None:
        for version in READ_VERSIONS:
            if version != VERSION:
                older = summary_fingerprint(contract.fingerprint, catalogue, registry, version)
                signer.verifies_summaries_of(version, older)
    return signer


Entry = tuple[GroupKey, float, bytes, Fact | None]
"""One event as a summary needs it: its group, its epoch seconds, its dedup digest and,
for a dossier event, its fact."""


class Summarizer:
    """Ingest's side: the summary entry of each valid event, then the summary of a record."""

    def __init__(self, catalogue: KpiCatalogue) -> None:
        self._catalogue = catalogue
        # (code as published, era it resolved in) -> chain codes: a few thousand at most.
        self._chains: dict[tuple[str, str], tuple[str, ...]] = {}

    def entry(
        self,
        event: Mapping[str, Any],
        at: datetime,
        resolution: Resolution,
        publisher: str = UNBOUND,
    ) -> Entry:
        """``event`` passed the contract and resolved to ``resolution`` at ``at``; its dedup
        digest is ``publisher``'s (the record carries the same ``egov_publisher``)."""
        slot = (resolution.original_code, resolution.unit.era)
        chain = self._chains.get(slot)
        if chain is None:
            chain = self._chains[slot] = tuple(unit.code for unit in resolution.chain)
        epoch = at.timestamp()
        event_type: str = event["type"]
        counts = self._catalogue.counts_of_envelope(event, at)
        key = group_key(event_type, chain, resolution.via_crosswalk, counts, epoch)
        data = event.get("data") or {}
        digest = event_digest(event["source"], event_type, event["id"], data, publisher)
        return key, epoch, digest, fact_of(event_type, data)


def encode_entries(entries: Sequence[Entry]) -> bytes:
    """The summary of a record holding these events, in this order."""
    builder = TallyBuilder()
    add = builder.add
    for key, epoch, digest, fact in entries:
        add(key, epoch, digest, fact)
    return encode(builder.build())


def encode(batch: TallyBatch) -> bytes:
    """``batch`` on the wire (``VERSION``; its ``backfill`` and ``families`` are not
    carried: the record's header says the one, the worker's contract the other)."""
    facts = sorted(batch.facts.items())
    dues = [f.due for _, f in facts]
    summary = {
        "y": batch.types,
        "u": [",".join(chain) for chain in batch.chains],
        "c": [",".join(f"{kpi}:{n}:{d}" for kpi, n, d in c) for c in batch.counts],
        "g": list(
            map(
                list,
                zip(
                    batch.group_type,
                    batch.group_chain,
                    batch.group_crosswalked,
                    batch.group_bucket,
                    batch.group_counts,
                    batch.group_events,
                    batch.group_latest,
                    strict=True,
                ),
            )
        ),
        "e": batch.index,
        "t": batch.epochs,
        "k": batch.digests.hex(),
        "f": {
            "e": [i for i, _ in facts],
            "d": [f.dossier_id for _, f in facts],
            "k": [f.kind for _, f in facts],
            "a": [None if due is None else due.day.toordinal() for due in dues],
            "l": [None if due is None else due.last_on_time for due in dues],
        },
    }
    return orjson.dumps(summary)


class SummaryReader:
    """The worker's side: decodes summaries, remembering the chains and counts it has seen
    (a few thousand recur across records: one dictionary lookup each, not a parse)."""

    CACHE_LIMIT: Final = 65_536
    """Entries kept per table; past it the cache starts again (a registry has ~15,000
    codes, and KPI outcomes are few)."""

    def __init__(self) -> None:
        self._chains: dict[str, tuple[str, ...]] = {}
        self._counts: dict[str, tuple[KpiCount, ...]] = {}

    def read(
        self, raw: bytes, version: int = VERSION, backfill: bool = False, publisher: str = ""
    ) -> TallyBatch:
        """Parse a summary of ``version`` (the one its MAC verified under), of a record of
        ``publisher`` (its dossier facts are keyed for it); raises :class:`SummaryError`
        when its parts do not agree.

        Its MAC verified, so a disagreement is a bug in ingest, not an attack; it is
        caught here (whole columns at a time, not per group) so that no index fails later.
        Version 1 carries no facts: its dossier events' digests are per event.
        """
        if version not in READ_VERSIONS:
            raise SummaryError(f"summary version {version} is not read here")
        try:
            parsed = orjson.loads(raw)
            types = [str(t) for t in parsed["y"]]
            known_chains, known_counts = self._chains, self._counts
            chains = [known_chains.get(c) or self._chain(c) for c in parsed["u"]]
            counts = [known_counts.get(c) or self._kpi_counts(c) for c in parsed["c"]]
            groups, index, times = parsed["g"], parsed["e"], parsed["t"]
            digests = bytes.fromhex(parsed["k"])
            _check(types, chains, counts, groups, index, times, digests)
            facts = _facts(parsed["f"], len(index), version, publisher) if version >= 2 else {}
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise SummaryError(f"malformed summary: {exc!r}") from exc
        # _check saw every group hold _FIELDS fields: the transpose is exact.
        columns: list[Sequence[Any]] = list(zip(*groups, strict=True)) if groups else [()] * _FIELDS
        return TallyBatch(
            types,
            chains,
            counts,
            group_type=columns[_TYPE],
            group_chain=columns[_CHAIN],
            group_crosswalked=columns[_CROSSWALKED],
            group_bucket=columns[_BUCKET],
            group_counts=columns[_COUNTS],
            group_events=columns[_EVENTS],
            group_latest=columns[_LATEST],
            index=index,
            epochs=times,
            digests=digests,
            facts=facts,
            backfill=backfill,
        )

    def _chain(self, text: str) -> tuple[str, ...]:
        if len(self._chains) >= self.CACHE_LIMIT:
            self._chains.clear()
        chain = self._chains[text] = tuple(text.split(","))
        return chain

    def _kpi_counts(self, text: str) -> tuple[KpiCount, ...]:
        if len(self._counts) >= self.CACHE_LIMIT:
            self._counts.clear()
        counts = []
        for part in text.split(",") if text else ():
            kpi, n, d = part.split(":")
            counts.append((kpi, int(n), int(d)))
        found = self._counts[text] = tuple(counts)
        return found


def _facts(
    columns: Mapping[str, list[Any]], events: int, version: int, publisher: str
) -> dict[int, Fact]:
    """The facts of a version-2 or -3 summary, keyed in the ledger for the record's
    ``publisher`` (the columns hold bare dossier ids); ValueError or TypeError unless
    they make sense as columns (what they say is checked by services/metrics/sanity.py)."""
    at, ids, kinds, days, lasts = (columns[k] for k in ("e", "d", "k", "a", "l"))
    if not (len(at) == len(ids) == len(kinds) == len(days) == len(lasts)):
        raise ValueError("its fact columns differ in length")
    if at and not (0 <= at[0] and at[-1] < events):
        raise ValueError("a fact of an event it does not have")
    if any(b <= a for a, b in pairwise(at)):
        raise ValueError("its facts are not in event order")
    if not (set(map(type, at)) <= {int} and set(map(type, ids)) <= {str}):
        raise TypeError("a fact's event or dossier id")
    if not set(kinds) <= (KINDS if version >= 3 else KINDS_V2):
        raise ValueError("a fact of an unknown kind")
    # Appointments recur (a day's receipts share their due date): one Due each.
    dues: dict[tuple[int | None, float | None], Due | None] = {(None, None): None}
    for slot in zip(days, lasts, strict=True):
        if slot not in dues:
            day, last = slot
            dues[slot] = Due(date.fromordinal(day), float(last))
    due_list = list(map(dues.__getitem__, zip(days, lasts, strict=True)))
    if publisher:  # ledger_id's keys, made here without a call per fact
        mark = ledger_id("", publisher)
        ids = [mark + i for i in ids]
    return dict(zip(at, map(Fact, ids, kinds, due_list), strict=True))


def _check(
    types: list[str],
    chains: list[tuple[str, ...]],
    counts: list[tuple[KpiCount, ...]],
    groups: list[list[Any]],
    index: list[int],
    times: list[float],
    digests: bytes,
) -> None:
    """Raise ValueError or TypeError unless the parts agree (C-level passes over columns)."""
    if not (len(index) == len(times) == len(digests) // DIGEST_SIZE) or len(digests) % 16:
        raise ValueError("its events, times and keys differ in number")
    fsum(times)  # all numbers, or TypeError
    if not groups:
        if index:
            raise ValueError("it has events but no groups")
        return
    if min(map(len, groups)) != _FIELDS or max(map(len, groups)) != _FIELDS:
        raise ValueError(f"a group is not {_FIELDS} fields")
    fsum(map(itemgetter(_LATEST), groups))
    # References are integers, not merely numbers: 0.0 compares like 0 but fails as a list
    # index later, in the step or the flush, outside any one record's error handling (a
    # worker that crashes on it would crash again on the same offset after its restart).
    for values, table in (
        (list(map(itemgetter(_TYPE), groups)), types),
        (list(map(itemgetter(_CHAIN), groups)), chains),
        (list(map(itemgetter(_COUNTS), groups)), counts),
        (index, groups),
    ):
        if not set(map(type, values)) <= {int}:
            raise TypeError("it refers to a group or table entry by something not an integer")
        if values and not (0 <= min(values) and max(values) < len(table)):
            raise ValueError("it refers to a group or table entry it does not have")
    if not set(map(type, map(itemgetter(_CROSSWALKED), groups))) <= {bool}:
        raise TypeError("a group's crosswalk flag is not true or false")
    if not set(map(type, map(itemgetter(_BUCKET), groups))) <= {int}:
        raise TypeError("a group's bucket is not whole seconds")
    # Each group adds exactly the events that point at it: counted as groups (every key
    # new) or event by event (a duplicate in the flush), a record adds the same figures.
    per_group = Counter(index)
    if list(map(per_group.__getitem__, range(len(groups)))) != list(
        map(itemgetter(_EVENTS), groups)
    ):
        raise ValueError("its groups' event counts differ from the events that point at them")
