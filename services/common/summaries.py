"""Ingest's summary of a packed record: what its events add, so that a worker need not
read them one by one.

In a replay a metrics worker spent ~15 µs per event parsing it, resolving its unit at
its time, evaluating its KPIs, hashing its dedup key and summing, against a target of
100,000 events/s per worker. Ingest has done all of it already when it validated the
event, so a record it packs (``pack`` in services/ingest/publisher.py) carries a summary
in the header ``egov_summary``: its events grouped by what they add (event type, unit
chain at the event's time, KPI counts, 5-minute bucket, and so day), and each event's
time, group and dedup key. The worker adds whole groups and inserts the keys as one
blob; it reads the events themselves only when something needs them one by one (a
duplicate, an event beyond the grace or ahead of its clock).

A summary is trusted only under its MAC (services/common/signing.py), keyed with the
record signing key and the :func:`summary_fingerprint` of what it was computed from: a
worker that loaded another contract, KPI catalogue or unit registry (a KPI changed, a
rolling upgrade) fails the check and reads the events. A summary can be unusable, never
believed when wrong.

The format (JSON, schemas/CONTRACT.md §5)::

    {"y": [event type, ...],
     "u": ["unit,parent,...,province", ...],     # unit chains at the events' times
     "c": ["kpi:numerator:denominator,...", ...],  # KPI counts of one event
     "g": [[type, chain, via_crosswalk, bucket_start, counts, events, latest_epoch], ...],
     "e": [group of each event, in record order],
     "t": [epoch seconds of each event],
     "k": "hex of the 16-byte dedup digests, in record order"}

``type``, ``chain`` and ``counts`` of a group index the tables ``y``, ``u`` and ``c``.

This module is the format's one home: ``encode`` writes it, ``SummaryReader.read``
reads it into a :class:`Summary` whose groups are named columns, so no other file
knows a group's field order. ``VERSION`` 1 is the only version written and read; a
summary of another version, or of none, cannot verify, because ``FORMAT`` (which names
the version) is part of :func:`summary_fingerprint` and so of the MAC: a worker reads
the events of a record whose summary is of a version it does not know. A new version
is added here beside the old one, read by both until every ingest writes it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from math import fsum
from operator import itemgetter
from typing import Any, Final

import orjson

from services.common.contract import Contract
from services.common.kpis import KpiCatalogue, KpiCount
from services.common.settings import CommonSettings
from services.common.signing import RecordSigner
from services.common.timekeys import bucket_of
from services.common.units import Resolution, UnitRegistry

VERSION: Final = 1
FORMAT: Final = f"egov-summary/{VERSION}".encode()
DIGEST_SIZE: Final = 16

# A group's fields on the wire, by position: known here only (``Summary`` names them).
_TYPE, _CHAIN, _CROSSWALKED, _BUCKET, _COUNTS, _EVENTS, _LATEST = range(_FIELDS := 7)


class SummaryError(ValueError):
    """A summary whose shape is wrong (its MAC verified: a bug, not an attack)."""


UNBOUND: Final = ""
"""The publisher of a record without the ``egov_publisher`` header (headers.py): written
straight to Kafka (``egov-pulse backfill``, an integrator with topic access) or before
publishers were bound. Its events keep the identity every event had then, (source, id),
so they still meet the dedup keys stored before the upgrade."""


def dedup_digest(source: str, event_id: str, publisher: str = UNBOUND) -> bytes:
    """16 bytes identifying (publisher, source, id): the same triple counts once however
    often it arrives, and one publisher's ids never suppress another's events.

    ``publisher`` is the stable name of the integrating system (its API key's name, kept
    across rotations), never the key id. ``UNBOUND`` gives the digest of (source, id)
    that every dedup key stored before publishers were bound holds.
    """
    # Length-prefixed, so no choice of characters in the parts can make them collide; a
    # bound identity starts with "p", an unbound one with a digit: the two never meet.
    text = f"{len(source)}:{source}{event_id}"
    if publisher:
        text = f"p{len(publisher)}:{publisher}{text}"
    return hashlib.blake2b(text.encode(), digest_size=DIGEST_SIZE).digest()


def summary_fingerprint(
    contract_fingerprint: bytes, catalogue: KpiCatalogue, registry: UnitRegistry
) -> bytes:
    """What a summary depends on: the contract, the KPI catalogue and the unit registry."""
    parts = (FORMAT, contract_fingerprint, catalogue.fingerprint, registry.fingerprint)
    return hashlib.sha256(b"|".join(parts)).digest()


def record_signer(
    settings: CommonSettings,
    contract: Contract,
    catalogue: KpiCatalogue,
    registry: UnitRegistry,
) -> RecordSigner | None:
    """The services' signer of records and summaries (None without a signing key): ingest
    and the metrics workers build it from what they loaded, and agree when that is equal."""
    if not settings.signs_records:  # spare the registry's fingerprint (~20 ms) at start-up
        return None
    fingerprint = summary_fingerprint(contract.fingerprint, catalogue, registry)
    return settings.record_signer(contract.fingerprint, fingerprint)


GroupKey = tuple[str, tuple[str, ...], bool, tuple[KpiCount, ...], int]
"""(event type, unit chain codes, via crosswalk, KPI counts, bucket start)."""

Entry = tuple[GroupKey, float, bytes]
"""One event as a summary needs it: its group, its epoch seconds, its dedup digest."""


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
        key = (event_type, chain, resolution.via_crosswalk, counts, bucket_of(epoch))
        return key, epoch, dedup_digest(event["source"], event["id"], publisher)


def encode(entries: Sequence[Entry]) -> bytes:
    """The summary of a record holding these events, in this order."""
    types: dict[str, int] = {}
    chains: dict[tuple[str, ...], int] = {}
    counts: dict[tuple[KpiCount, ...], int] = {}
    groups: dict[GroupKey, int] = {}
    rows: list[list[Any]] = []
    index: list[int] = []
    for key, epoch, _ in entries:
        g = groups.get(key)
        if g is None:
            event_type, chain, crosswalked, kpi_counts, bucket = key
            g = groups[key] = len(rows)
            rows.append(
                [
                    types.setdefault(event_type, len(types)),
                    chains.setdefault(chain, len(chains)),
                    crosswalked,
                    bucket,
                    counts.setdefault(kpi_counts, len(counts)),
                    0,
                    epoch,
                ]
            )
        row = rows[g]
        row[_EVENTS] += 1
        if epoch > row[_LATEST]:
            row[_LATEST] = epoch
        index.append(g)
    summary = {
        "y": list(types),
        "u": [",".join(chain) for chain in chains],
        "c": [",".join(f"{kpi}:{n}:{d}" for kpi, n, d in c) for c in counts],
        "g": rows,
        "e": index,
        "t": [epoch for _, epoch, _ in entries],
        "k": b"".join(digest for _, _, digest in entries).hex(),
    }
    return orjson.dumps(summary)


@dataclass(frozen=True, slots=True)
class Summary:
    """A decoded summary: its tables, its groups as columns (one entry per group, the
    group of an event being its position in them) and its events as columns.

    A group is one distinct (type, chain, crosswalk, bucket, counts) of a record, often
    one per event, so the columns are the lists JSON gives, transposed once: an object
    per group would cost what an object per event did.
    """

    types: list[str]
    chains: list[tuple[str, ...]]
    counts: list[tuple[KpiCount, ...]]
    group_type: Sequence[int]
    """Index into ``types`` of each group."""
    group_chain: Sequence[int]
    """Index into ``chains``: the unit chain at the events' time."""
    group_crosswalked: Sequence[bool]
    group_bucket: Sequence[int]
    """Start (epoch seconds) of the group's 5-minute bucket, and so of its local day."""
    group_counts: Sequence[int]
    """Index into ``counts``: the KPI counts of one of its events."""
    group_events: Sequence[int]
    group_latest: Sequence[float]
    """Epoch seconds of the group's latest event."""
    index: list[int]
    """The group of each event, in record order."""
    times: list[float]
    digests: bytes

    @property
    def groups(self) -> int:
        return len(self.group_type)


class SummaryReader:
    """The worker's side: decodes summaries, remembering the chains and counts it has seen
    (a few thousand recur across records: one dictionary lookup each, not a parse)."""

    CACHE_LIMIT: Final = 65_536
    """Entries kept per table; past it the cache starts again (a registry has ~15,000
    codes, and KPI outcomes are few)."""

    def __init__(self) -> None:
        self._chains: dict[str, tuple[str, ...]] = {}
        self._counts: dict[str, tuple[KpiCount, ...]] = {}

    def read(self, raw: bytes) -> Summary:
        """Parse a summary; raises :class:`SummaryError` when its parts do not agree.

        Its MAC verified, so a disagreement is a bug in ingest, not an attack; it is
        caught here (whole columns at a time, not per group) so that no index fails later.
        """
        try:
            parsed = orjson.loads(raw)
            types = [str(t) for t in parsed["y"]]
            known_chains, known_counts = self._chains, self._counts
            chains = [known_chains.get(c) or self._chain(c) for c in parsed["u"]]
            counts = [known_counts.get(c) or self._kpi_counts(c) for c in parsed["c"]]
            groups, index, times = parsed["g"], parsed["e"], parsed["t"]
            digests = bytes.fromhex(parsed["k"])
            _check(types, chains, counts, groups, index, times, digests)
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise SummaryError(f"malformed summary: {exc!r}") from exc
        # _check saw every group hold _FIELDS fields: the transpose is exact.
        columns: list[Sequence[Any]] = list(zip(*groups, strict=True)) if groups else [()] * _FIELDS
        return Summary(
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
            times=times,
            digests=digests,
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
    if sum(map(itemgetter(_EVENTS), groups)) != len(index):
        raise ValueError("its groups do not add up to its events")
    fsum(map(itemgetter(_LATEST), groups))
    sum(map(itemgetter(_BUCKET), groups))
    for values, table in (
        (list(map(itemgetter(_TYPE), groups)), types),
        (list(map(itemgetter(_CHAIN), groups)), chains),
        (list(map(itemgetter(_COUNTS), groups)), counts),
        (index, groups),
    ):
        if values and not (0 <= min(values) and max(values) < len(table)):
            raise ValueError("it refers to a group or table entry it does not have")
