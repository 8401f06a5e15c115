"""What the silence judgement remembers across a restart of the alerts service. Pure.

A unit's silence is its working time since its last event, less the spans in which that
time was not its silence (:class:`services.alerts.conditions.Blind`): a metrics worker
that did not answer, ingest away or refusing everyone (every unit), or its province
quiet in the family (:mod:`services.alerts.province`). Those spans and the provinces'
last judged state lived in memory only: a restart (a deploy, a crash) forgot them, and
every commune not yet heard from after its province's outage, or whose worker had been
down, was judged from its own last event again and paged one by one (the storm the
inhibit rule exists to prevent).

Kept in PostgreSQL (``alert_silence_memory``, one row), written with the last-seen
entries when it changed:

* the spans that ended (a fact: they were observed to start and to end), pruned to the
  silence lookback as in memory; among them the gaps of units a live worker answers for
  again while another worker is still down (:mod:`services.alerts.workers`), which
  ended although the outage goes on;
* each province's last event of a family when last judged and whether it was quiet then,
  so a quiet span that ends after the restart is seen from its start.

Not kept: a span still going on when the service stopped (a worker not answering). The
restarted service starts its own at its first cycle, as before: the time it was away
must not turn into a span that hides a real silence for days. Nor does a province's
quiet span: one found ended after the restart ends, as a blind span, no later than the
last cycle before the stop (``until``), since when the province came back within the time
the service was away is unknown (review 74).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from services.alerts.conditions import Blind

VERSION = 1


@dataclass(frozen=True, slots=True)
class Heard:
    """A province's last event of a family when last judged, and its state then."""

    last: datetime
    quiet_after_s: float
    """QUIET_SHARE of its threshold: when its units' alerts count as its outage's."""
    quiet: bool
    until: datetime | None = None
    """Recalled from a previous run: the last time it was judged (the run's last cycle).
    A quiet span found ended later is blind up to then only."""


@dataclass(frozen=True, slots=True)
class SilenceMemory:
    """The ended spans of both kinds and the provinces' last judged state."""

    blind: tuple[Blind, ...] = ()
    """Spans some worker did not answer."""
    quiet: tuple[Blind, ...] = ()
    """Provinces' quiet spans that ended."""
    heard: Mapping[tuple[str, str], Heard] | None = None
    until: datetime | None = None
    """The last cycle the memory reflects."""

    def encode(self) -> bytes:
        return orjson.dumps(
            {
                "version": VERSION,
                "until": self.until.isoformat() if self.until is not None else None,
                "blind": [_span_json(b) for b in self.blind],
                "quiet": [_span_json(b) for b in self.quiet],
                "heard": [
                    {
                        "province": province,
                        "family": family,
                        "last": h.last.isoformat(),
                        "quiet_after_s": h.quiet_after_s,
                        "quiet": h.quiet,
                    }
                    for (province, family), h in sorted((self.heard or {}).items())
                ],
            }
        )

    @classmethod
    def decode(cls, raw: bytes | str) -> SilenceMemory:
        """The inverse of :meth:`encode`; raises ValueError on anything else (the caller
        starts with an empty memory, as before this was kept)."""
        try:
            body = orjson.loads(raw)
            if not isinstance(body, dict) or body.get("version") != VERSION:
                raise ValueError(f"not a version {VERSION} silence memory")
            return cls(
                tuple(_span(d) for d in body["blind"]),
                tuple(_span(d) for d in body["quiet"]),
                {
                    (d["province"], d["family"]): Heard(
                        datetime.fromisoformat(d["last"]),
                        float(d["quiet_after_s"]),
                        bool(d["quiet"]),
                    )
                    for d in body["heard"]
                },
                _time(body.get("until")),
            )
        except (KeyError, TypeError, AttributeError, orjson.JSONDecodeError) as exc:
            raise ValueError(f"unreadable silence memory: {exc!r}") from exc


def _span_json(span: Blind) -> dict[str, Any]:
    return {
        "start": span.start.isoformat(),
        "end": span.end.isoformat(),
        "seen": sorted(span.seen),
        "province": span.province,
        "family": span.family,
        "units": sorted(span.units),
    }


def _span(d: Mapping[str, Any]) -> Blind:
    start, end = datetime.fromisoformat(d["start"]), datetime.fromisoformat(d["end"])
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("a span without its time zone")
    # A row written before spans of some units alone has no "units": every unit, as then.
    units = frozenset(d.get("units", ()))
    return Blind(start, end, frozenset(d["seen"]), str(d["province"]), str(d["family"]), units)


def _time(value: object) -> datetime | None:
    if value is None:
        return None
    at = datetime.fromisoformat(str(value))
    if at.tzinfo is None:
        raise ValueError("a time without its time zone")
    return at


def after(spans: Iterable[Blind], oldest: datetime) -> tuple[Blind, ...]:
    """The spans ending after ``oldest``: older ones can no longer shorten a silence."""
    return tuple(b for b in spans if b.end > oldest)


def merged(first: SilenceMemory | None, second: SilenceMemory | None) -> SilenceMemory | None:
    """Both memories as one (None: neither). Every span either holds, once: a span is an
    observation of blindness, so keeping one the other lacks hides no silence anyone
    saw. The provinces' judged state and ``until`` are those of the later memory (a
    memory without ``until``: the older), as they go together.

    What a term that lost the alerts lock held in memory, merged at the next load with
    what PostgreSQL holds (review 92): its last spans may never have been flushed."""
    if first is None or second is None:
        return second if first is None else first
    newer = first if _older(second.until, first.until) else second
    return SilenceMemory(
        tuple(dict.fromkeys((*first.blind, *second.blind))),
        tuple(dict.fromkeys((*first.quiet, *second.quiet))),
        newer.heard,
        newer.until,
    )


def _older(at: datetime | None, than: datetime | None) -> bool:
    if at is None:
        return than is not None
    return than is not None and at < than
