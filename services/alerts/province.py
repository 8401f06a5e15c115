"""A province gone quiet in a family: its units' silences wait on the province's. Pure.

A province's figures are the rollup of all its units, so its last event of a family is
the latest of theirs, and its own UnitSilent (labelled ``level="province"``) inhibits
its units' of that family in Alertmanager: the system the province shares is down, one
notification (deploy/alertmanager/alertmanager.yml). That rule alone did not hold
(review 66): each busy commune reached its threshold counted from its own, earlier, last
event, and paged before the province's alert existed to inhibit it; and the province's
first event after the outage resolved its alert while its communes not yet heard from
still fired, no longer inhibited. Two rules close both:

* *Held*: while a province is quiet in a family (:func:`is_quiet`: its silence has
  reached :data:`QUIET_SHARE` of its own threshold), a unit of it reaching its own
  threshold is held (HOLD, no alert opened) until the province decides: the province
  fires (its units fire with it, inhibited) or sends again (a unit still silent is
  silent on its own and fires as before). :func:`hold_units`.
* *Blind*: once such a quiet span ends (the province's last event moves on), its working
  time is not its units' silence in that family, as a worker outage's is not
  (:class:`services.alerts.conditions.Blind`): a commune's silence after the system came
  back counts from the province's recovery. Not for the province itself, nor for the
  units already firing on their own before the province was quiet. :class:`QuietSpans`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime

from services.alerts.conditions import SILENT, Blind
from services.alerts.model import Alert, AlertKey, State, Status, Verdict
from services.alerts.silence_memory import Heard
from services.common.calendar import WorkingCalendar

QUIET_SHARE = 0.5
"""A province is quiet once its silence reaches this share of its own threshold (the
family's floor, 2 working hours, for a busy one: quiet after 1 h). A busy commune
reaches its threshold (at least the floor) at least half the floor after the province
went quiet when its last event came less than that before the province's: every busy
commune of a system that went down is held, not paged first. Smaller, a province's
ordinary lulls (and early mornings) would hold and blind its units more often; its rollup
of all its units quiet for half its own threshold (2.5 of its usual gaps, and never
under an hour) is already rare outside an outage."""


def _is_province(verdict: Verdict) -> bool:
    return verdict.key.condition == SILENT and verdict.key.unit == verdict.province


def is_quiet(verdict: Verdict) -> bool:
    """A province's UnitSilent verdict says it has been quiet for QUIET_SHARE of its
    threshold (its silence net of the spans its worker did not answer)."""
    silent = verdict.values.get("silent_working_s")
    after = verdict.values.get("silent_after_s")
    return (
        isinstance(silent, int | float)
        and isinstance(after, int | float)
        and silent >= QUIET_SHARE * after
    )


def hold_units(verdicts: Sequence[Verdict], open_alerts: Mapping[AlertKey, Alert]) -> list[Verdict]:
    """The units' UnitSilent breaches held (HOLD) while their province is quiet in the
    family and not breaching itself: when it breaches they fire with it, inhibited. A
    unit whose alert is already open keeps its verdict (it fired on its own, or with the
    province). A province unknown this cycle (no verdict) holds nothing: as before."""
    quiet = {
        (v.key.unit, v.family)
        for v in verdicts
        if _is_province(v) and v.status is not Status.BREACH and is_quiet(v)
    }
    if not quiet:
        return list(verdicts)
    return [
        replace(v, status=Status.HOLD)
        if v.status is Status.BREACH
        and v.key.condition == SILENT
        and (v.province, v.family) in quiet
        and not _is_province(v)
        and v.key not in open_alerts
        else v
        for v in verdicts
    ]  # fmt: skip


class QuietSpans:
    """The provinces' quiet spans that ended, as blind spans for their units.

    The ended spans and the provinces' last judged state outlive a restart of this
    service (:mod:`services.alerts.silence_memory`: :meth:`heard`, :meth:`recall`)."""

    def __init__(self, calendar: WorkingCalendar) -> None:
        self.calendar = calendar
        self.spans: list[Blind] = []
        self._heard: dict[tuple[str, str], Heard] = {}

    def recovered(
        self,
        last_seen: Mapping[tuple[str, str], datetime],
        open_alerts: Mapping[AlertKey, Alert],
    ) -> None:
        """Before the units are judged: a quiet province heard from again ends a span
        (from its last event before, to its first after), blind for its units but those
        whose alert fired before the province had been quiet QUIET_SHARE of its
        threshold (silent on their own: its recovery is not theirs)."""
        for (province, family), heard in list(self._heard.items()):
            last = last_seen.get((province, family))
            if last is None or last <= heard.last:
                continue
            self._heard[(province, family)] = replace(heard, last=last, quiet=False, until=None)
            if heard.quiet:
                # Recalled from before a restart: back when, within the time this service
                # was away, is unknown: blind only up to its last cycle before the stop.
                end = last if heard.until is None else min(last, max(heard.until, heard.last))
                own = self._on_their_own(province, family, heard, open_alerts.values())
                self.spans.append(Blind(heard.last, end, own | {province}, province, family))

    def _on_their_own(
        self, province: str, family: str, heard: Heard, alerts: Iterable[Alert]
    ) -> frozenset[str]:
        return frozenset(
            a.key.unit
            for a in alerts
            if a.key.condition == SILENT
            and a.key.kpi == family
            and a.province == province
            and a.state is State.FIRING
            and a.fired_at is not None
            and self.calendar.working_seconds(heard.last, a.fired_at) < heard.quiet_after_s
        )

    def judged(
        self, verdicts: Iterable[Verdict], last_seen: Mapping[tuple[str, str], datetime]
    ) -> None:
        """Remember each province judged this cycle: its last event, whether quiet."""
        for v in verdicts:
            last = last_seen.get((v.key.unit, v.family))
            if _is_province(v) and last is not None:
                after = v.values.get("silent_after_s")
                quiet_after_s = QUIET_SHARE * after if isinstance(after, int | float) else 0.0
                self._heard[(v.key.unit, v.family)] = Heard(last, quiet_after_s, is_quiet(v))

    def heard(self) -> dict[tuple[str, str], Heard]:
        """Each province's last event of a family when last judged, and whether quiet."""
        return dict(self._heard)

    def recall(
        self,
        spans: Iterable[Blind],
        heard: Mapping[tuple[str, str], Heard],
        until: datetime | None = None,
    ) -> None:
        """What a previous run of this service remembered (its ended spans, its provinces'
        last judged state as of ``until``, its last cycle), before this one judged
        anything."""
        self.spans = [*spans, *self.spans]
        recalled = {k: replace(h, until=until) for k, h in heard.items()}
        self._heard = {**recalled, **self._heard}

    def prune(self, oldest: datetime) -> None:
        """Spans ended before the lookback can no longer shorten a silence judged."""
        self.spans = [b for b in self.spans if b.end > oldest]
