"""Evaluation, pure: what one cycle read in, verdicts out. No I/O; time is an input.

:class:`Evaluator` applies the conditions of :mod:`services.alerts.conditions` with
the service's settings, and keeps the little they remember across cycles: when this
process began watching (a never-seen unit is silent from then), the units' usual
cadences (:mod:`services.alerts.cadence`), ingest's counters over the rejection window,
the spans a worker or ingest did not answer (:mod:`services.alerts.pipeline`) or a
province was quiet (:mod:`services.alerts.province`),
and when the slow windows were last read. It also says which
windows a cycle must read (:meth:`Evaluator.plan`) and when a pending alert becomes
due (:meth:`Evaluator.due_at`). Reading and state live elsewhere: the composition root
(:mod:`services.alerts.service`) reads, :mod:`services.alerts.state` keeps the alerts.
"""

from __future__ import annotations

import itertools
import math
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from types import MappingProxyType

from services.alerts import conditions, pipeline, province, workers
from services.alerts.cadence import WORKDAY_S, Cadence, Usual
from services.alerts.directory import UnitDirectory
from services.alerts.model import Alert, AlertKey, State, Status, Verdict
from services.alerts.settings import AlertsSettings
from services.alerts.silence_memory import SilenceMemory
from services.common.calendar import WorkingCalendar
from services.common.figures import Figure
from services.common.rates import to_bp

SLOW_WINDOWS = frozenset({"month", "year"})
"""Calendar windows read on slow cycles only: a month's rate moves by a fraction of a
point per minute, and each window costs a metrics worker about a second per read."""


@dataclass(frozen=True, slots=True)
class Plan:
    """The windows one cycle reads; ``slow`` when the slow ones (month, year, burn) are in."""

    windows: tuple[str, ...]
    slow: bool


@dataclass(frozen=True, slots=True)
class Observation:
    """What one cycle read: the figures of the planned windows, and ingest's counters.

    ``complete`` is False when a metrics worker did not answer: its units are unknown,
    so only the silence of units in the figures is judged that cycle (those trusted:
    :mod:`services.alerts.workers`). ``ingest`` is
    None when ingest did not answer or is not watched; ``ingest_down``: it is watched
    (``EGOV_INGEST_URL``) and did not answer, so nothing could be published
    (:mod:`services.alerts.pipeline`).
    """

    plan: Plan
    figures: Sequence[Figure]
    complete: bool
    ingest: conditions.IngestScrape | None = None
    ingest_down: bool = False


class Evaluator:
    """The conditions with this service's settings, and their memory across cycles."""

    def __init__(
        self,
        settings: AlertsSettings,
        calendar: WorkingCalendar,
        directory: UnitDirectory,
        families: Mapping[str, str] = MappingProxyType({}),
    ) -> None:
        self.settings = settings
        self.calendar = calendar
        self.directory = directory
        self.families = families
        """KPI id -> its event family, a label of its alerts (``Verdict.family``)."""
        self.watch_start: datetime | None = None
        self.key_owners: Mapping[str, conditions.KeyOwner] = {}
        """Ingest keys' names and provinces (:meth:`known_keys`), for their alerts."""
        self.usual: Mapping[tuple[str, str], Usual] = {}
        self._hysteresis_bp = to_bp(settings.alert_hysteresis)
        self._last_slow: datetime | None = None
        self._ingest: deque[tuple[datetime, conditions.Counters]] = deque()
        """What each key counted between a scrape and the one before (the first: nothing,
        a baseline), for the scrapes of the rejection window."""
        self._last_scrape: conditions.IngestScrape | None = None
        self._counting_since: dict[str, datetime] = {}
        """Since when each publisher key's counters have counted without a break
        (``_note_restarts``): a key clears on "no events" only after a whole window."""
        self._pipeline_ok: datetime | None = None
        """The last cycle the pipeline was not blind; before the first, this process's
        first cycle (a service started while ingest is away is blind from its start)."""
        self._workers = workers.WorkerWatch()
        """Which units the metrics workers answered for while one does not answer."""
        self._arriving: frozenset[str] | None = None
        """While the pipeline is blind (ingest away): the units whose events arrive all the
        same (published straight to Kafka), judged as usual; None when it is not."""
        self._blind: list[conditions.Blind] = []
        """Spans in which some worker did not answer: the units it owns published
        unseen, so that time is not silence (``conditions.unit_silent``)."""
        self._quiet = province.QuietSpans(calendar)
        self._ingest_watch = pipeline.IngestWatch()
        self.pipeline_blind = False
        """Whether the last cycle found ingest away or refusing everyone: no event could
        arrive (:mod:`services.alerts.pipeline`)."""
        self._last_cycle: datetime | None = None
        """When the last cycle judged: what the silence memory reflects."""
        """Provinces' quiet spans in a family: not their units' silence either."""

    def known_keys(self, keys: Iterable[tuple[str, str, Sequence[str]]]) -> None:
        """The ingest keys as (key id, name, unit scope): a key's province is the one
        every unit of its scope lies in, else none (a national or cross-province key
        goes to the generic on-call, as before)."""
        owners: dict[str, conditions.KeyOwner] = {}
        for key_id, name, units in keys:
            provinces = {self.directory.province(u) for u in units}
            province = provinces.pop() if len(provinces) == 1 else ""
            owners[key_id] = conditions.KeyOwner(name, province)
        self.key_owners = owners

    def memory(self) -> SilenceMemory:
        """What the silence judgement must not forget on a restart: the spans that ended
        and the quiet provinces' last judged state (:mod:`services.alerts.silence_memory`).
        A province not quiet needs nothing kept: its first cycle after a restart records
        it as the cycles before would have (and the row changes only when spans do)."""
        heard = {k: replace(h, until=None) for k, h in self._quiet.heard().items() if h.quiet}
        spans = tuple(self._quiet.spans)
        return SilenceMemory(tuple(self._blind), spans, heard, self._last_cycle)

    def recall(self, memory: SilenceMemory) -> None:
        """A previous run's memory, before the first cycle of this one."""
        self._blind = [*memory.blind, *self._blind]
        self._quiet.recall(memory.quiet, memory.heard or {}, memory.until)
        # Until this run judges, what it would save is what it recalled, as of then.
        self._last_cycle = self._last_cycle or memory.until

    def start_watching(self, at: datetime) -> None:
        """Silence is judged from here on (a never-seen unit is silent since ``at``)."""
        self.watch_start = at

    # --- scheduling -----------------------------------------------------------------

    def learned(self, usual: Mapping[tuple[str, str], Usual]) -> None:
        """The units' usual cadences, learned again from their daily figures."""
        self.usual = usual

    def plan(self, open_alerts: Mapping[AlertKey, Alert], now: datetime) -> Plan:
        s = self.settings
        windows = [w for w in s.alert_windows if w not in SLOW_WINDOWS]
        slow = self._slow_due(open_alerts, now)
        if slow:
            windows += [w for w in s.alert_windows if w in SLOW_WINDOWS]
            if s.alert_burn_enabled:
                windows += [w for w in conditions.BURN_WINDOWS if w not in windows]
        return Plan(tuple(windows), slow)

    def _slow_due(self, open_alerts: Mapping[AlertKey, Alert], now: datetime) -> bool:
        """Slow windows are read every burn interval, and whenever one of their alerts is due."""
        s = self.settings
        if not s.alert_burn_enabled and SLOW_WINDOWS.isdisjoint(s.alert_windows):
            return False
        last = self._last_slow
        if last is None or (now - last).total_seconds() >= s.alert_burn_interval_s:
            return True
        return any(  # due since the last read (once: a pending one left unknown never spins)
            _slow(a.key) and last < self.due_at(a) <= now
            for a in open_alerts.values()
            if a.state is State.PENDING
        )

    def due_at(self, alert: Alert) -> datetime:
        """When a pending alert may fire if its breach holds until then."""
        s = self.settings
        hold = {conditions.BELOW: s.alert_for_s, conditions.BURN: s.alert_burn_for_s}
        return alert.pending_since + timedelta(seconds=hold.get(alert.key.condition, 0.0))

    def next_due(self, open_alerts: Iterable[Alert]) -> datetime | None:
        """The earliest moment a pending alert may fire: the loop evaluates then."""
        pending = [self.due_at(a) for a in open_alerts if a.state is State.PENDING]
        return min(pending, default=None)

    # --- one cycle ------------------------------------------------------------------

    def verdicts(
        self,
        seen: Observation,
        open_alerts: Mapping[AlertKey, Alert],
        last_seen: Mapping[tuple[str, str], datetime],
        now: datetime,
    ) -> list[Verdict]:
        """Every condition's verdicts for this cycle (identities left out are unknown)."""
        s = self.settings
        self._last_cycle = now
        tracked = open_alerts  # identities with an open alert: see conditions.py
        # Ingest away or refusing everyone: nothing could be published, so the figures
        # that move on the wall clock alone (open overdue dossiers) are unknown, as a
        # worker's that does not answer, and so is every unit's silence (below).
        ingest_blind = self._ingest_watch.blind(seen.ingest_down, seen.ingest, now)
        self.pipeline_blind = ingest_blind
        figures = pipeline.judged_figures(seen.figures, ingest_blind)
        # A window not read this cycle is unknown: the lifecycle leaves its alerts alone.
        # The burn windows read beside them are for KpiBudgetBurn only.
        windows = [w for w in seen.plan.windows if w in s.alert_windows]
        verdicts = list(
            conditions.kpi_below_target(self._volume_floors(figures), windows,
                                        self._hysteresis_bp, s.alert_for_s, tracked,
                                        self.families)
        )  # fmt: skip
        verdicts = conditions.period_ended(verdicts, open_alerts, now, windows, seen.complete)
        if seen.plan.slow:
            self._last_slow = now
            if s.alert_burn_enabled:
                verdicts += conditions.kpi_budget_burn(
                    figures,
                    s.alert_burn_for_s,
                    tracked,
                    s.alert_burn_keep_firing_s,
                    self.families,
                )
        answered = self._track_blind(seen, now, ingest_blind, last_seen)
        if (answered is None or answered) and self.watch_start is not None:
            # A worker that did not answer would make its units look silent: only the
            # units answered for (all along, or again for long enough) are judged, and
            # the time nobody answered for a unit does not count as its silence (it
            # published meanwhile; the backlog is still being counted). Ingest away: no
            # unit is judged, and the span is no unit's silence (they could not publish).
            rule = conditions.SilenceRule(
                self.cadence(), s.alert_silent_lookback_days, s.alert_silent_peer_share
            )
            silent = [(k.unit, k.kpi) for k in open_alerts if k.condition == conditions.SILENT]
            # A province heard from again after a quiet span: that span is not its
            # units' silence, in this very cycle (they resolve with the province).
            self._quiet.recovered(last_seen, open_alerts)
            blind = [*self._blind, *self._quiet.spans]
            judged = list(conditions.unit_silent(
                last_seen, now, self.watch_start, self.calendar, self.directory, rule, silent,
                blind, _fired_after_s(open_alerts), answered,
            ))  # fmt: skip
            self._quiet.judged(judged, last_seen)
            verdicts += province.hold_units(judged, open_alerts)
        if seen.ingest is not None:
            verdicts += self._rejections(seen.ingest, open_alerts, now)
        verdicts = conditions.units_gone(verdicts, open_alerts, self.directory, seen.complete)
        verdicts = conditions.kpis_retired(verdicts, open_alerts, self.families, seen.complete)
        burn_read = seen.plan.slow and s.alert_burn_enabled
        unseen = _unseen_pending(verdicts, open_alerts, windows, burn_read)
        if ingest_blind:  # say why: the pipeline, not the unit's figures
            unseen = [_ingest_blind(v) if v.key.kpi in pipeline.CLOCK_KPIS else v
                      for v in unseen]  # fmt: skip
        return verdicts + unseen

    def _track_blind(
        self,
        seen: Observation,
        now: datetime,
        pipeline_blind: bool = False,
        last_seen: Mapping[tuple[str, str], datetime] | None = None,
    ) -> frozenset[str] | None:
        """The units whose silence may be judged this cycle (None: all of them).

        Records the spans whose time is not silence for some units. A metrics worker not
        answering: :class:`workers.WorkerWatch` judges the units in every answer since
        the last complete cycle, and those a live worker has answered for again long
        enough after a gap (a partition failed over: review 85), each blind only for its
        gap; the others from the last complete cycle to the next one. A cycle with the
        pipeline blind (ingest away or refusing everyone) judges only the units whose
        events arrive all the same: the units of a province one of whose units was heard
        from since the span began (its integrator publishes straight to Kafka,
        schemas/CONTRACT.md section 5; review 80: a direct unit gone silent never paged
        while ingest was away); the span, to the first cycle it is not, covers the others.
        Spans older than the lookback go. A freshly started service has no complete
        observation yet: its spans start at its first cycle, or a worker down at the
        start (a deploy, a host reboot) made every unit it owns page at its first answer
        (review 65). Until then one worker down hid the silence of every unit, those of
        the workers that answered too."""
        if self._pipeline_ok is None:
            self._pipeline_ok = now
        units = () if seen.complete else (f.unit for f in seen.figures)
        self._blind += self._workers.observe(seen.complete, units, now)
        if pipeline_blind:
            # Cumulative by construction: a unit heard since the span began stays so.
            self._arriving = self._heard_since(self._pipeline_ok, last_seen or {})
            return self._judgeable()
        if self._arriving is not None:
            self._blind.append(conditions.Blind(self._pipeline_ok, now, self._arriving))
        self._pipeline_ok, self._arriving = now, None
        if not seen.complete:
            return self._judgeable()
        oldest = self.calendar.working_days_back(now, self.settings.alert_silent_lookback_days)
        self._blind = [b for b in self._blind if b.end > oldest]
        self._quiet.prune(oldest)
        return None

    def _judgeable(self) -> frozenset[str] | None:
        """The units both the workers' answers and the pipeline let be judged (None: all)."""
        answered = self._workers.judgeable()
        if answered is None:
            return self._arriving
        if self._arriving is None:
            return answered
        return answered & self._arriving

    def _heard_since(
        self, since: datetime, last_seen: Mapping[tuple[str, str], datetime]
    ) -> frozenset[str]:
        """Every unit of each province one of whose units sent an event after ``since``."""
        directory = self.directory
        provinces = {directory.province(u) for (u, _), at in last_seen.items() if at > since}
        provinces.discard("")
        return frozenset(u for p in provinces for u in directory.in_province(p))

    def cadence(self) -> Cadence:
        s = self.settings
        day_s = 86_400.0 if self.calendar.always else WORKDAY_S
        return Cadence(
            s.alert_silent_after_s,
            s.alert_silent_weekly_after_s,
            s.alert_silent_gap_factor,
            # Never so long that the unit leaves the lookback (and "expected") first.
            max(s.alert_silent_lookback_days - 1, 1) * day_s,
            self.usual,
        )

    def _volume_floors(self, figures: Sequence[Figure]) -> Sequence[Figure]:
        """Figures of a window with a min-volume factor judged on their raised minimum."""
        factors = {w: f for w, f in self.settings.alert_min_volume.items() if f != 1}
        if not factors:
            return figures
        return [
            fig._replace(min_volume=math.ceil(fig.min_volume * factors[fig.window]))
            if fig.window in factors else fig
            for fig in figures
        ]  # fmt: skip

    def _rejections(
        self,
        scrape: conditions.IngestScrape,
        open_alerts: Mapping[AlertKey, Alert],
        now: datetime,
    ) -> list[Verdict]:
        s = self.settings
        history = self._ingest
        window = timedelta(seconds=s.alert_rejection_window_s)
        # Judged even when ingest no longer reports the key: else its alert never ends.
        still_open = [k.unit for k in open_alerts if k.condition == conditions.REJECTIONS]
        before, self._last_scrape = self._last_scrape, scrape
        counted: conditions.Counters = {}
        restarted: set[str] = set()
        if before is not None:
            counted, restarted = conditions.counted_between(before, scrape)
        if history and now - history[-1][0] >= window:
            # No scrape for a whole window (ingest away, or the clock stepped forward):
            # what the keys did in it is summed, but was not watched; none has counted
            # a whole window without a break, so none clears on "no rejection" yet.
            restarted |= set(scrape.events) | set(still_open)
        self._note_restarts(before, scrape, restarted, still_open, now)
        history.append((now, counted))
        # Summed from the newest scrape at least a window old (kept as the baseline).
        while len(history) > 2 and now - history[1][0] >= window:
            history.popleft()
        if len(history) < 2:
            return []
        rule = conditions.RejectionRule(
            s.alert_rejection_share, s.alert_rejection_min_events, s.alert_rejection_window_s
        )
        covered = {k for k, since in self._counting_since.items() if now - since >= window}
        summed: dict[str, dict[str, float]] = {}
        for _, step in itertools.islice(history, 1, None):
            for key, counts in step.items():
                total = summed.setdefault(key, {})
                for outcome, value in counts.items():
                    total[outcome] = total.get(outcome, 0.0) + value
        return list(
            conditions.ingest_rejections(summed, rule, covered, still_open, self.key_owners)
        )

    def _note_restarts(
        self,
        before: conditions.IngestScrape | None,
        scrape: conditions.IngestScrape,
        restarted: set[str],
        still_open: Iterable[str],
        now: datetime,
    ) -> None:
        """Since when each key's counters have counted without a break, as far as this
        service saw: from the first scrape, from a restart of ingest (``restarted``), or
        from when the key appeared or went missing (gone with a restart, or revoked)."""
        since = self._counting_since
        old, new = (before.events if before else {}), scrape.events
        for key in set(new) | set(old) | set(still_open):
            if key not in since or key in restarted or ((key in old) != (key in new)):
                since[key] = now
        for key in set(since) - set(new) - set(still_open):
            if now - since[key] > timedelta(days=1):
                del since[key]  # a key gone for good, with no alert left: forget it


def _fired_after_s(open_alerts: Mapping[AlertKey, Alert]) -> dict[tuple[str, str], float]:
    """(unit, family) -> the ``silent_after_s`` each open UnitSilent was last judged
    against (an alert stored before it carried one is judged on today's alone)."""
    held: dict[tuple[str, str], float] = {}
    for key, alert in open_alerts.items():
        after = alert.values.get("silent_after_s")
        if key.condition == conditions.SILENT and isinstance(after, int | float):
            held[(key.unit, key.kpi)] = float(after)
    return held


def _unseen_pending(
    verdicts: Sequence[Verdict],
    open_alerts: Mapping[AlertKey, Alert],
    windows: Sequence[str],
    burn_read: bool,
) -> list[Verdict]:
    """A HOLD for each pending alert whose window was read but whose figures were not in
    the answers (its worker did not answer, its unit left a rolling window): the lifecycle
    cancels it, as Prometheus drops a pending alert whose series is absent, and the next
    breach seen opens it again. Its breach was not seen to last "without a break": left
    pending, a worker back from an outage longer than the duration fired it at its first
    answer, on figures nobody had watched. Windows not read this cycle stay unknown."""
    judged = {v.key for v in verdicts}
    unseen = []
    for alert in open_alerts.values():
        key = alert.key
        if alert.state is not State.PENDING or key in judged:
            continue
        read = (key.condition == conditions.BELOW and key.window in windows) or (
            key.condition == conditions.BURN and burn_read
        )
        if read:
            values = {**alert.values, "unseen": True}
            texts = (
                alert.annotations.get("summary_vi", ""),
                alert.annotations.get("summary_en", ""),
            )
            unseen.append(
                Verdict(key, Status.HOLD, alert.severity, alert.province, values, *texts, 0.0)
            )
    return unseen


def _ingest_blind(verdict: Verdict) -> Verdict:
    return replace(verdict, values={**verdict.values, "ingest_blind": True})


def _slow(key: AlertKey) -> bool:
    return key.condition == conditions.BURN or (
        key.condition == conditions.BELOW and key.window in SLOW_WINDOWS
    )
