"""The four alert conditions as pure functions: figures and a time in, verdicts out.

Each yields one :class:`Verdict` per identity it has an opinion on; an identity left
out is *unknown* (no figure from any worker) and the lifecycle leaves its alert alone.

``tracked`` (the identities with an open alert) lets the KPI conditions skip the
wording of the tens of thousands of healthy figures per cycle: a verdict other than
BREACH for an identity with no open alert changes nothing in the lifecycle, so it is
not built. The status is still computed for every figure, every cycle, from the
figures of that cycle: nothing is cached across cycles.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from types import MappingProxyType

from services.alerts import text
from services.alerts.cadence import Cadence
from services.alerts.directory import UnitDirectory
from services.alerts.model import Alert, AlertKey, Severity, Status, Verdict
from services.common.calendar import VN_TZ, WorkingCalendar
from services.common.figures import Figure, Standing
from services.common.rates import BP_SCALE, meets, rate_bp
from services.common.targetdata import PROJECT_DEFAULT

NO_FAMILIES: Mapping[str, str] = MappingProxyType({})
"""KPI id -> event family unknown: the alerts carry no ``family`` label."""

BELOW = "KpiBelowTarget"
BURN = "KpiBudgetBurn"
SILENT = "UnitSilent"
REJECTIONS = "IngestRejectionsHigh"

BURN_WINDOWS = ("5m", "30m", "1h", "6h")


@dataclass(frozen=True, slots=True)
class BurnRule:
    """One multiwindow rule of the SRE workbook (chapter 5, "Alerting on SLOs").

    The factor is kept in tenths so that the comparison is on integers. A rule can fire
    only where factor x budget fits under 100% errors: burn = errors / (1 - target)
    reaches the factor at most when every item fails, so the target must be at least
    1 - 1/factor (:meth:`can_fire`; 93.06% for 14.4x, 83.34% for 6x).
    """

    long: str
    short: str
    tenths: int
    severity: Severity

    @property
    def factor(self) -> float:
        return self.tenths / 10

    def can_fire(self, target_bp: int) -> bool:
        """A 100% target has no budget to burn; below 1 - 1/factor none is fast enough."""
        return target_bp < BP_SCALE and self.tenths * (BP_SCALE - target_bp) <= 10 * BP_SCALE

    @property
    def lowest_target_bp(self) -> int:
        """The lowest target at which this rule can fire (documented in docs/alerts.md)."""
        return BP_SCALE - (10 * BP_SCALE) // self.tenths

    def burns(self, numerator: int, denominator: int, target_bp: int) -> bool:
        """errors / denominator >= factor x (1 - target), exactly."""
        errors = denominator - numerator
        return errors * 10 * BP_SCALE >= self.tenths * (BP_SCALE - target_bp) * denominator


BURN_RULES = (BurnRule("1h", "5m", 144, "critical"), BurnRule("6h", "30m", 60, "warning"))

CRITICAL_GAP_BP = 1000
"""10 points below the target, counted on the rate as shown (basis points, half up)."""
INFO_GAP_BP = 500


def below_target_severity(fig: Figure) -> Severity:
    """Critical when 10 points or more below on a large volume; info when under 5 on a thin one.

    Points are those a person reads: 85,00 % against a 95 % target is exactly 10 points
    below, and critical (in floats 0.95 - 0.85 is 0.0999...).

    A target no authority set (data/targets.json's ``project-default``: the project's
    own line where no national document gives one) never pages: at most a warning, a
    ticket for the team, until the province sets its own figure by override. Paged on it,
    on-call heard about every province at once for a gap nobody was held to (review 53:
    electronic results and population data, 100 % defaults, realistic rates of 50-90 %).
    """
    gap_bp = _target_bp(fig) - (rate_bp(fig.numerator, fig.denominator) or 0)
    if gap_bp >= CRITICAL_GAP_BP and fig.denominator >= 5 * fig.min_volume:
        return "warning" if _project_default(fig) else "critical"
    if gap_bp < INFO_GAP_BP and fig.denominator < 2 * fig.min_volume:
        return "info"
    return "warning"


def _project_default(fig: Figure) -> bool:
    basis = fig.target_basis
    return basis is not None and basis.origin == "default" and basis.source == PROJECT_DEFAULT


def _target_bp(fig: Figure) -> int:
    if fig.target_bp is None:  # never parsed: an item without a target is left out
        raise ValueError(f"{fig.kpi} of {fig.unit} has no target")
    return fig.target_bp


def clear_at_bp(target_bp: int, hysteresis_bp: int) -> int:
    """Where a firing KpiBelowTarget clears: target + margin, the margin at most half the
    way to 100%, so a 98% target with a 2-point margin clears at 99% (not only when every
    item counts); a 100% target clears at 100%."""
    return target_bp + min(hysteresis_bp, (BP_SCALE - target_bp) // 2)


def kpi_below_target(
    figures: Iterable[Figure],
    windows: Iterable[str],
    hysteresis_bp: int,
    hold_for_s: float,
    tracked: Container[AlertKey] | None = None,
    families: Mapping[str, str] = NO_FAMILIES,
) -> Iterator[Verdict]:
    """Below target with at least min_volume; clear only at :func:`clear_at_bp`.

    With ``tracked``, only breaches and identities in it get a verdict (see above).
    ``families`` (KPI id -> event family) gives each alert its family label.
    """
    wanted = frozenset(windows)
    for fig in figures:
        if fig.window not in wanted:
            continue
        status = _below_status(fig, hysteresis_bp)
        key = AlertKey(BELOW, fig.kpi, fig.unit, fig.window)
        if tracked is not None and status is not Status.BREACH and key not in tracked:
            continue
        # Held inside its margin: the figure meets its target, the alert clears later.
        # The text follows the figure's standing, not the verdict: a CLEAR (what the
        # resolution carries) meets its target, a HOLD on low volume is not judged.
        standing = fig.status
        holding = status is Status.HOLD and standing is Standing.MEETS
        vi, en = text.below_target(
            fig.unit_name or fig.unit,
            fig.unit,
            fig.kpi_name_vi or fig.kpi,
            fig.kpi_name_en or fig.kpi,
            fig.window,
            fig.numerator,
            fig.denominator,
            fig.target_bp,
            unit_name_en=fig.unit_name_en,
            clear_bp=clear_at_bp(_target_bp(fig), hysteresis_bp) if holding else None,
            basis=fig.target_basis,
            standing=standing,
        )
        yield Verdict(
            key,
            status,
            below_target_severity(fig),
            fig.province,
            _values(fig),
            vi,
            en,
            hold_for_s,
            family=families.get(fig.kpi, ""),
        )


def _below_status(fig: Figure, hysteresis_bp: int) -> Status:
    """Breach exactly when the shared judgement says below; clear only past the margin."""
    standing = fig.status
    if standing is Standing.BELOW:
        return Status.BREACH
    if standing is Standing.MEETS and meets(
        fig.numerator, fig.denominator, clear_at_bp(_target_bp(fig), hysteresis_bp)
    ):
        return Status.CLEAR
    return Status.HOLD  # low volume is shown, never alerted on, never "recovered" either


def _values(fig: Figure) -> dict[str, object]:
    return {
        "ratio": fig.ratio,
        "target": fig.target,
        "numerator": fig.numerator,
        "denominator": fig.denominator,
        "min_volume": fig.min_volume,
        "unit_name": fig.unit_name,
        "window": fig.window,
        "period": _period(fig),
    }


def _period(fig: Figure) -> str | None:
    """The local day the figure's period starts (for ``day``, its day), as the worker says."""
    start = fig.period_start
    return start.astimezone(VN_TZ).date().isoformat() if start is not None else None


def burn_rate(fig: Figure) -> float | None:
    """Observed error rate over the error budget (1 - target); None without events."""
    if fig.ratio is None or fig.target >= 1.0:
        return None
    return (1.0 - fig.ratio) / (1.0 - fig.target)


def kpi_budget_burn(
    figures: Iterable[Figure],
    hold_for_s: float,
    tracked: Container[AlertKey] | None = None,
    keep_firing_for_s: float = 0.0,
    families: Mapping[str, str] = NO_FAMILIES,
) -> Iterator[Verdict]:
    """Fast (14.4x over 1h and 5m) and slow (6x over 6h and 30m) burn, for targets < 1.

    With ``tracked``, only breaches and identities in it get a verdict (see above). A
    firing alert whose pair stops burning stays firing for ``keep_firing_for_s`` (the
    lifecycle ends it once CLEAR has lasted that long), so a burn hovering at the factor
    does not page, resolve and page again.
    """
    grouped: dict[tuple[str, str], dict[str, Figure]] = {}
    for fig in figures:
        if fig.window in BURN_WINDOWS:
            grouped.setdefault((fig.kpi, fig.unit), {})[fig.window] = fig
    for (kpi, unit), by_window in sorted(grouped.items()):
        for rule in BURN_RULES:
            verdict = _burn_verdict(
                kpi, unit, by_window, rule, hold_for_s, tracked, keep_firing_for_s,
                families.get(kpi, ""),
            )  # fmt: skip
            if verdict is not None:
                yield verdict


def _burn_verdict(
    kpi: str,
    unit: str,
    by_window: Mapping[str, Figure],
    rule: BurnRule,
    hold_for_s: float,
    tracked: Container[AlertKey] | None = None,
    keep_firing_for_s: float = 0.0,
    family: str = "",
) -> Verdict | None:
    long, short = by_window.get(rule.long), by_window.get(rule.short)
    if long is None or short is None:
        return None
    key = AlertKey(BURN, kpi, unit, rule.long)
    target_bp = _target_bp(long)
    if not rule.can_fire(target_bp):
        # Evaluated only where it can fire; an alert opened under an earlier, higher
        # target cannot hold any more and clears at once: no burn could keep it firing.
        if tracked is None or key not in tracked:
            return None
        status = Status.CLEAR
        keep_firing_for_s = 0.0
    elif not short.denominator or long.denominator < max(long.min_volume, 1):
        status = Status.HOLD
    elif rule.burns(long.numerator, long.denominator, target_bp) and rule.burns(
        short.numerator, short.denominator, target_bp
    ):
        status = Status.BREACH
    else:
        status = Status.CLEAR
    if tracked is not None and status is not Status.BREACH and key not in tracked:
        return None
    burn_long, burn_short = burn_rate(long), burn_rate(short)
    vi, en = text.burn(
        long.unit_name or unit,
        unit,
        long.kpi_name_vi or kpi,
        long.kpi_name_en or kpi,
        rule.long,
        rule.short,
        (long.numerator, long.denominator),
        (short.numerator, short.denominator),
        rule.tenths,
        long.target_bp,
        unit_name_en=long.unit_name_en,
        basis=long.target_basis,
        status=status,  # a resolution must not say "is falling fast"
    )
    values = {
        **_values(long),
        "burn_long": burn_long,
        "burn_short": burn_short,
        "short_numerator": short.numerator,
        "short_denominator": short.denominator,
        "factor": rule.factor,
    }
    return Verdict(
        key,
        status,
        rule.severity,
        long.province,
        values,
        vi,
        en,
        hold_for_s,
        keep_firing_for_s,
        family,
    )


@dataclass(frozen=True, slots=True)
class Blind:
    """A span whose working time is not silence for the units it covers.

    Either some metrics worker did not answer (what the units it owns published then
    was not seen; ``seen``: the units in every answer meanwhile, their workers answered
    all along), or ingest did not answer or refused everyone (nothing could be
    published: ``seen`` empty, every unit; :mod:`services.alerts.pipeline`), or a
    province was quiet in a ``family`` (:mod:`services.alerts.province`: its shared
    system was down, so its units could not publish; ``seen``: the province and the
    units already silent on their own). A span with ``units`` is a gap of those units
    alone: a live worker answers for them again while another is still down
    (:mod:`services.alerts.workers`)."""

    start: datetime
    end: datetime
    seen: frozenset[str] = frozenset()
    province: str = ""
    """Only that province's units; "": every unit."""
    family: str = ""
    """Only that family; "": every family."""
    units: frozenset[str] = frozenset()
    """Only these units; empty: every unit (a span written before there were such)."""

    def covers(self, unit: str, family: str, province: str) -> bool:
        return (
            unit not in self.seen
            and (not self.units or unit in self.units)
            and (not self.family or family == self.family)
            and (not self.province or province == self.province)
        )


def blind_seconds(
    calendar: WorkingCalendar, start: datetime, end: datetime, spans: Iterable[Blind]
) -> float:
    """Working seconds of [start, end] inside any of ``spans``, overlaps counted once (a
    worker outage and a province's quiet can overlap: counted twice, a silence went
    negative)."""
    parts = sorted((max(b.start, start), min(b.end, end)) for b in spans)
    total, reach = 0.0, start
    for lo, hi in parts:
        lo = max(lo, reach)
        if hi > lo:
            total += calendar.working_seconds(lo, hi)
            reach = hi
    return total


@dataclass(frozen=True, slots=True)
class SilenceRule:
    """``cadence`` says after how long each unit is silent in each family."""

    cadence: Cadence
    lookback_days: int
    peer_share: float


def unit_silent(
    last_seen: Mapping[tuple[str, str], datetime],
    now: datetime,
    watch_start: datetime,
    calendar: WorkingCalendar,
    directory: UnitDirectory,
    rule: SilenceRule,
    still_silent: Iterable[tuple[str, str]] = (),
    blind: Sequence[Blind] = (),
    fired_after_s: Mapping[tuple[str, str], float] = MappingProxyType({}),
    answered: Container[str] | None = None,
) -> Iterator[Verdict]:
    """Units expected to publish a family that published none for their usual gap.

    The working seconds without an event after which a unit is silent are its own
    (:meth:`Cadence.silent_after`: learned from its daily figures, a family floor).

    Expected: published the family within the lookback (``last_seen``, kept across
    restarts), or enough of its peers (same province and level) did, or it has an open
    UnitSilent alert (``still_silent``: a unit silent past the lookback stays judged, its
    alert's figures keep up instead of freezing at the last verdict). A never-seen unit
    is silent since ``watch_start`` (when this service began watching), so a fresh
    start does not page for every commune at once; a unit seen before, since its last
    event. Working time inside a ``blind`` span (a worker did not answer: what its units
    published was not seen; a province's quiet span, for its units) is not counted, for
    the units it covers (:meth:`Blind.covers`). With
    ``answered`` (a worker is down this cycle) only those units are judged: the others
    are unknown (:class:`services.alerts.workers.WorkerWatch` says which: the units in
    every answer since the outage began, and those a live worker has answered for again
    long enough since).

    An open alert is judged against the threshold it fired with (``fired_after_s``, the
    ``silent_after_s`` of its values) whenever today's is longer: the cadences are
    learned again each day, and a longer usual gap must not end a silence nothing ended
    (review 65: relearned from the unit's own silence, it resolved "no longer silent"
    with nothing received, then paged again). Only an event, or the unit leaving the
    directory, resolves it.
    """
    since = calendar.working_days_back(now, rule.lookback_days)
    recent = {k for k, t in last_seen.items() if t >= since}
    expected = _expected(recent, directory, rule.peer_share) | set(still_silent)
    for unit, family in sorted(expected):
        if answered is not None and unit not in answered:
            continue
        last = last_seen.get((unit, family))
        start = last if last is not None else max(watch_start, since)
        info = directory.get(unit)
        province = info.province if info else ""
        covering = [b for b in blind if b.covers(unit, family, province)]
        silent_s = calendar.working_seconds(start, now) - blind_seconds(
            calendar, start, now, covering
        )
        # Its province's system back after its last event: its silence counts from then.
        back = max((b.end for b in covering if b.province and b.end > start), default=None)
        after_s = rule.cadence.silent_after(unit, family)
        if (unit, family) in fired_after_s:
            after_s = min(after_s, fired_after_s[(unit, family)])
        name, name_en = (info.name, info.name_en) if info else (unit, "")
        gone = bool(directory) and info is None
        if gone:
            status = Status.CLEAR  # an open alert of a unit dissolved since resolves
            vi, en = text.unit_gone(name, unit, family, name_en)
        elif silent_s < after_s:
            status = Status.CLEAR  # the text a resolution carries: not "no data for ..."
            vi, en = text.silence_over(name, unit, family, silent_s, after_s, last, name_en, back)
        else:
            # Pages only in working hours; outside them a firing alert stays (HOLD).
            status = Status.BREACH if calendar.is_working(now) else Status.HOLD
            vi, en = text.silent(name, unit, family, silent_s, last, unit_name_en=name_en)
        seen = last.isoformat() if last is not None else None
        values = {
            "silent_working_s": silent_s,
            "last_event_time": seen,
            "family": family,
            "unit_name": name,
            "silent_after_s": after_s,
        }
        if back is not None:
            values["province_back"] = back.isoformat()
        yield Verdict(
            AlertKey(SILENT, family, unit, "working-hours"),
            status,
            "warning",
            info.province if info else "",
            values,
            vi,
            en,
            0.0,
            family=family,
            level=info.level if info else "",
        )


def _expected(
    recent: set[tuple[str, str]], directory: UnitDirectory, peer_share: float
) -> set[tuple[str, str]]:
    """(unit, family) pairs expected to publish: recent publishers and their peers."""
    # A unit not in today's directory no longer exists (a reform dissolved it; its events
    # now arrive under its successor's code): it cannot be silent. Without a directory
    # (none loaded) every recent publisher stays expected.
    expected = {(u, f) for u, f in recent if not directory or directory.get(u) is not None}
    groups: dict[tuple[str, str, str], set[str]] = {}
    for unit, family in recent:
        info = directory.get(unit)
        if info is not None:
            groups.setdefault((info.province, info.level, family), set()).add(unit)
    for (province, level, family), publishing in groups.items():
        peers = directory.peers(province, level)
        if peers and len(publishing) / len(peers) >= peer_share:
            expected.update((code, family) for code in peers)
    return expected


CALENDAR_WINDOWS = ("day", "month", "year")


def period_ended(
    verdicts: list[Verdict],
    open_alerts: Mapping[AlertKey, Alert],
    now: datetime,
    read: Container[str],
    complete: bool,
) -> list[Verdict]:
    """KpiBelowTarget alerts of a calendar window whose period is over resolve.

    After midnight the day window starts again at 0 of 0 ("no data"), which alone would
    hold a firing alert all night with yesterday's text (a month alert all through the
    1st, a year alert through 1 January). The period it was about has ended and cannot
    recover (a day's shortfall stays visible in the month and year windows), so it
    resolves, keeping that period's text and figures, with ``ended: <window>`` in its
    values. Relabelling it to the old date instead would be a new label set, so
    Alertmanager would page again for a period already over. An alert whose unit
    breaches again in the new period goes on with the new figures. A unit missing from
    the answers resolves only when every worker answered for that window (``read`` this
    cycle, ``complete``); else it is unknown.
    """
    fresh = {v.key: i for i, v in enumerate(verdicts)}
    out = list(verdicts)
    for key, alert in open_alerts.items():
        if key.condition != BELOW or key.window not in CALENDAR_WINDOWS:
            continue
        i = fresh.get(key)
        if i is None and not (complete and key.window in read):
            continue
        current = _start(key.window, now) if i is None else _period_of(out[i], now)
        if current <= _period_of(alert, alert.updated_at):
            continue
        if i is not None and out[i].status is Status.BREACH:
            continue
        ended = _ended(alert)
        if i is None:
            out.append(ended)
        else:
            out[i] = ended
    return out


def _period_of(held: Verdict | Alert, at: datetime) -> date:
    """The period a verdict or an alert is about: as the worker said, else that of ``at``."""
    period = held.values.get("period")
    if isinstance(period, str):
        return date.fromisoformat(period)
    return _start(held.key.window, at)


def _start(window: str, at: datetime) -> date:
    day = at.astimezone(VN_TZ).date()
    if window == "month":
        return day.replace(day=1)
    if window == "year":
        return day.replace(month=1, day=1)
    return day


def units_gone(
    verdicts: list[Verdict],
    open_alerts: Mapping[AlertKey, Alert],
    directory: UnitDirectory,
    complete: bool,
) -> list[Verdict]:
    """KpiBelowTarget and KpiBudgetBurn alerts of a unit no longer in today's directory
    resolve, once every worker answered and none judged it.

    A reform dissolved or merged the unit: no worker serves it any more, its events count
    under its successor's code, so its alerts would stay open as unknown. A year alert of
    Bắc Kạn (06) fired on 30 June 2025 stayed firing until 1 January 2026, owned by a
    province no operator's scope can name (review 59), as UnitSilent's did until it got
    the same rule. A unit that still has figures (a backfill of its era) is judged on them.
    """
    if not complete or not directory:
        return verdicts
    return _resolve_unjudged(
        verdicts,
        open_alerts,
        lambda key: directory.get(key.unit) is None,
        lambda key, name: text.kpi_unit_gone(name, key.unit),
        "gone",
    )


def kpis_retired(
    verdicts: list[Verdict],
    open_alerts: Mapping[AlertKey, Alert],
    catalogue: Container[str],
    complete: bool,
) -> list[Verdict]:
    """KpiBelowTarget and KpiBudgetBurn alerts of a KPI no longer in the catalogue
    resolve, once every worker answered and none judged it: the KPI counterpart of
    :func:`units_gone`.

    The owners retired the KPI from data/kpis.json: its items carry no target and are
    left out, so its alerts would stay open as unknown, a year alert until 1 January
    (review 63). ``catalogue`` is the evaluator's KPI ids; empty (none loaded) resolves
    nothing, as an empty directory does in :func:`units_gone`.
    """
    if not complete or not catalogue:
        return verdicts
    return _resolve_unjudged(
        verdicts,
        open_alerts,
        lambda key: key.kpi not in catalogue,
        lambda key, name: text.kpi_retired(name, key.unit, key.kpi),
        "retired",
    )


def _resolve_unjudged(
    verdicts: list[Verdict],
    open_alerts: Mapping[AlertKey, Alert],
    ended: Callable[[AlertKey], bool],
    texts: Callable[[AlertKey, str], tuple[str, str]],
    flag: str,
) -> list[Verdict]:
    """``verdicts`` and a CLEAR for each open KPI alert no verdict judged whose identity
    has ``ended``, its texts from ``texts(key, unit name)``, ``flag`` set in its values."""
    judged = {v.key for v in verdicts}
    out = list(verdicts)
    for key, alert in open_alerts.items():
        if key.condition not in (BELOW, BURN) or key in judged or not ended(key):
            continue
        vi, en = texts(key, str(alert.values.get("unit_name") or key.unit))
        out.append(
            Verdict(
                key,
                Status.CLEAR,
                alert.severity,
                alert.province,
                {**alert.values, flag: True},
                vi,
                en,
                0.0,
                family=alert.labels.get("family", ""),
            )
        )
    return out


def _ended(alert: Alert) -> Verdict:
    return Verdict(
        alert.key,
        Status.CLEAR,
        alert.severity,
        alert.province,
        {**alert.values, "ended": alert.key.window},
        alert.annotations.get("summary_vi", ""),
        alert.annotations.get("summary_en", ""),
        0.0,
    )


Counters = Mapping[str, Mapping[str, float]]
"""key_id -> outcome -> events (``all`` when ingest has no per-key label)."""


@dataclass(frozen=True, slots=True)
class IngestScrape:
    """One read of ingest's counters (``services.alerts.sources``)."""

    events: Counters
    """Cumulative events since each counter began."""
    started: Counters = field(default_factory=dict)
    """When each counter began (Unix seconds: its ``_created``, the earliest of those
    summed), where ingest says: a restarted ingest's counters begin again, and one that
    has counted past its old value before the next scrape cannot be told by its value."""


def counted_between(before: IngestScrape, after: IngestScrape) -> tuple[Counters, set[str]]:
    """Events each key counted between two scrapes, per outcome, and the keys whose
    counters began again in between (ingest restarted): a counter that began again (a
    later start, or a lower value) counted its whole value since, as Prometheus's
    ``increase()`` reads a reset; what the old process counted after ``before`` is lost
    with it. A key or outcome first seen in ``after`` counted its whole value."""
    counted: dict[str, dict[str, float]] = {}
    restarted: set[str] = set()
    for key, counts in after.events.items():
        old, old_start = before.events.get(key, {}), before.started.get(key, {})
        new_start = after.started.get(key, {})
        steps = counted[key] = {}
        for outcome, value in counts.items():
            previous = old.get(outcome)
            began = new_start.get(outcome)
            was = old_start.get(outcome)
            if previous is None:
                steps[outcome] = value
            elif value < previous or (began is not None and was is not None and began > was):
                steps[outcome] = value
                restarted.add(key)
            else:
                steps[outcome] = value - previous
    return counted, restarted


REFUSED_OUTCOMES = ("rejected", "out_of_scope")
"""Events ingest refused for what they are (422) or for whom they claim to be (403, outside
the key's scope): not counted until published again, corrected; the share's numerator."""
RETRIED_OUTCOMES = ("unavailable", "rate_limited")
"""503 and 429: nothing was wrong with the events, which the publisher sends again (each
retry counts the batch again); out of the share altogether, or retries would dilute it."""


@dataclass(frozen=True, slots=True)
class RejectionRule:
    share: float
    min_events: int
    window_s: float
    """``EGOV_ALERT_REJECTION_WINDOW_S``: the texts say it in words from these seconds."""

    @property
    def window(self) -> str:
        """The alert's window label ("10m"): part of its identity, so never reworded."""
        return f"{int(self.window_s // 60)}m"


@dataclass(frozen=True, slots=True)
class KeyOwner:
    """Who publishes through an ingest key (its name), and the province its scope lies
    in ("" when its units span several, or none the registry knows)."""

    name: str
    province: str


def ingest_rejections(
    counted: Counters,
    rule: RejectionRule,
    covered: Container[str] = frozenset(),
    still_open: Iterable[str] = (),
    owners: Mapping[str, KeyOwner] = MappingProxyType({}),
) -> Iterator[Verdict]:
    """Share of a publisher's events rejected over the window, from what each key
    ``counted`` (per outcome, summed over the scrapes in it: ``counted_between``).

    Too few events is HOLD (a share of 3 events says little), except none rejected at
    all for a key whose counters have counted a whole window (``covered``): nothing is
    being rejected, so an open alert clears. Held instead, the alert of a key revoked, or of a
    system switched off, fired forever. A key with an open alert (``still_open``) that
    ingest no longer reports counts as no events, for the same reason, once it has been
    missing for a whole window: just after an ingest restart its counters are simply
    not there yet, and a firing alert resolved then paged again a minute later.

    A key's alert carries its province (``owners``), so Alertmanager routes it to that
    province's rota, and its texts name the key: a 12-hex id alone said nothing to the
    person paged.
    """
    for key_id in sorted(set(counted) | set(still_open)):
        owner = owners.get(key_id)
        delta = counted.get(key_id, {})
        rejected = int(sum(delta.get(outcome, 0.0) for outcome in REFUSED_OUTCOMES))
        total = int(sum(v for o, v in delta.items() if o not in RETRIED_OUTCOMES))
        share = rejected / total if total else 0.0
        if rejected == 0 and key_id in covered:
            # A whole window without a single rejection (or event), however few events:
            # held instead, a publisher that came back sending a few an hour, every one
            # accepted, kept its alert firing for as long as it sent them.
            status = Status.CLEAR
        elif total < rule.min_events:
            status = Status.HOLD
        elif share >= rule.share:
            status = Status.BREACH
        elif share < rule.share / 2:  # hysteresis: a share at the line does not flap
            status = Status.CLEAR
        else:
            status = Status.HOLD
        severity: Severity = "critical" if share >= 0.5 and total >= rule.min_events else "warning"
        vi, en = text.rejections(
            key_id,
            rejected,
            total,
            rule.window_s,
            cleared=status is Status.CLEAR,
            key_name=owner.name if owner else "",
        )
        values = {"share": share, "rejected": rejected, "total": total, "key_id": key_id}
        if owner is not None:
            values["key_name"] = owner.name
        yield Verdict(
            AlertKey(REJECTIONS, "", key_id, rule.window),
            status,
            severity,
            owner.province if owner else "",
            values,
            vi,
            en,
            0.0,
        )
