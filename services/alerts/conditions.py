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

from collections.abc import Container, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime

from services.alerts import text
from services.alerts.directory import UnitDirectory
from services.alerts.model import AlertKey, Severity, Status, Verdict
from services.common.calendar import WorkingCalendar
from services.common.figures import Figure, Standing

BELOW = "KpiBelowTarget"
BURN = "KpiBudgetBurn"
SILENT = "UnitSilent"
REJECTIONS = "IngestRejectionsHigh"

BURN_WINDOWS = ("5m", "30m", "1h", "6h")


@dataclass(frozen=True, slots=True)
class BurnRule:
    """One multiwindow rule of the SRE workbook (chapter 5, "Alerting on SLOs")."""

    long: str
    short: str
    factor: float
    severity: Severity


BURN_RULES = (BurnRule("1h", "5m", 14.4, "critical"), BurnRule("6h", "30m", 6.0, "warning"))


def below_target_severity(fig: Figure) -> Severity:
    """Critical when far below (10 points) on a large volume; info on a thin one."""
    ratio = fig.ratio or 0.0
    gap = fig.target - ratio
    if gap >= 0.10 and fig.denominator >= 5 * fig.min_volume:
        return "critical"
    if gap < 0.05 and fig.denominator < 2 * fig.min_volume:
        return "info"
    return "warning"


def kpi_below_target(
    figures: Iterable[Figure],
    windows: Iterable[str],
    hysteresis: float,
    hold_for_s: float,
    tracked: Container[AlertKey] | None = None,
) -> Iterator[Verdict]:
    """Below target with at least min_volume; clear only at target + hysteresis.

    With ``tracked``, only breaches and identities in it get a verdict (see above).
    """
    wanted = frozenset(windows)
    for fig in figures:
        if fig.window not in wanted:
            continue
        status = _below_status(fig, hysteresis)
        key = AlertKey(BELOW, fig.kpi, fig.unit, fig.window)
        if tracked is not None and status is not Status.BREACH and key not in tracked:
            continue
        vi, en = text.below_target(
            fig.unit_name or fig.unit,
            fig.unit,
            fig.kpi_name_vi or fig.kpi,
            fig.kpi_name_en or fig.kpi,
            fig.window,
            fig.numerator,
            fig.denominator,
            fig.target_bp,
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
        )


def _below_status(fig: Figure, hysteresis: float) -> Status:
    """Breach exactly when the shared judgement says below; clear only past the margin."""
    standing = fig.status
    if standing is Standing.BELOW:
        return Status.BREACH
    if standing is Standing.MEETS and fig.numerator / fig.denominator >= min(
        fig.target + hysteresis, 1.0
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
    }


def burn_rate(fig: Figure) -> float | None:
    """Observed error rate over the error budget (1 - target); None without events."""
    if fig.ratio is None or fig.target >= 1.0:
        return None
    return (1.0 - fig.ratio) / (1.0 - fig.target)


def kpi_budget_burn(
    figures: Iterable[Figure], hold_for_s: float, tracked: Container[AlertKey] | None = None
) -> Iterator[Verdict]:
    """Fast (14.4x over 1h and 5m) and slow (6x over 6h and 30m) burn, for targets < 1.

    With ``tracked``, only breaches and identities in it get a verdict (see above).
    """
    grouped: dict[tuple[str, str], dict[str, Figure]] = {}
    for fig in figures:
        if fig.window in BURN_WINDOWS:
            grouped.setdefault((fig.kpi, fig.unit), {})[fig.window] = fig
    for (kpi, unit), by_window in sorted(grouped.items()):
        for rule in BURN_RULES:
            verdict = _burn_verdict(kpi, unit, by_window, rule, hold_for_s, tracked)
            if verdict is not None:
                yield verdict


def _burn_verdict(
    kpi: str,
    unit: str,
    by_window: Mapping[str, Figure],
    rule: BurnRule,
    hold_for_s: float,
    tracked: Container[AlertKey] | None = None,
) -> Verdict | None:
    long, short = by_window.get(rule.long), by_window.get(rule.short)
    if long is None or short is None or long.target >= 1.0:
        return None
    burn_long, burn_short = burn_rate(long), burn_rate(short)
    if burn_long is None or burn_short is None or long.denominator < long.min_volume:
        status = Status.HOLD
    elif burn_long >= rule.factor and burn_short >= rule.factor:
        status = Status.BREACH
    else:
        status = Status.CLEAR
    key = AlertKey(BURN, kpi, unit, rule.long)
    if tracked is not None and status is not Status.BREACH and key not in tracked:
        return None
    vi, en = text.burn(
        long.unit_name or unit,
        unit,
        long.kpi_name_vi or kpi,
        long.kpi_name_en or kpi,
        rule.long,
        rule.short,
        burn_long or 0.0,
        burn_short or 0.0,
        rule.factor,
        long.target_bp,
        long.numerator,
        long.denominator,
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
    )


@dataclass(frozen=True, slots=True)
class SilenceRule:
    after_s: float
    lookback_days: int
    peer_share: float


def unit_silent(
    last_seen: Mapping[tuple[str, str], datetime],
    now: datetime,
    watch_start: datetime,
    calendar: WorkingCalendar,
    directory: UnitDirectory,
    rule: SilenceRule,
) -> Iterator[Verdict]:
    """Units expected to publish a family that published none for ``after_s`` working s.

    Expected: published the family within the lookback (``last_seen``, kept across
    restarts), or enough of its peers (same province and level) did. A never-seen unit
    is silent since ``watch_start`` (when this service began watching), so a fresh
    start does not page for every commune at once.
    """
    since = calendar.working_days_back(now, rule.lookback_days)
    recent = {k for k, t in last_seen.items() if t >= since}
    for unit, family in sorted(_expected(recent, directory, rule.peer_share)):
        last = last_seen.get((unit, family))
        start = max(last if last is not None else watch_start, since)
        silent_s = calendar.working_seconds(start, now)
        if silent_s < rule.after_s:
            status = Status.CLEAR
        elif calendar.is_working(now):
            status = Status.BREACH
        else:
            status = Status.HOLD  # pages only in working hours; a firing alert stays
        info = directory.get(unit)
        name = info.name if info else unit
        seen = last.isoformat() if last is not None else None
        vi, en = text.silent(name, unit, family, silent_s, last)
        values = {
            "silent_working_s": silent_s,
            "last_event_time": seen,
            "family": family,
            "unit_name": name,
        }
        yield Verdict(
            AlertKey(SILENT, family, unit, "working-hours"),
            status,
            "warning",
            info.province if info else "",
            values,
            vi,
            en,
            0.0,
        )


def _expected(
    recent: set[tuple[str, str]], directory: UnitDirectory, peer_share: float
) -> set[tuple[str, str]]:
    """(unit, family) pairs expected to publish: recent publishers and their peers."""
    expected = set(recent)
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


Counters = Mapping[str, Mapping[str, float]]
"""key_id -> outcome -> cumulative events (``all`` when ingest has no per-key label)."""


@dataclass(frozen=True, slots=True)
class RejectionRule:
    share: float
    min_events: int
    window: str


def ingest_rejections(old: Counters, new: Counters, rule: RejectionRule) -> Iterator[Verdict]:
    """Share of a publisher's events rejected between two scrapes of ingest's counters."""
    for key_id in sorted(new):
        delta = {o: _delta(old.get(key_id, {}).get(o, 0.0), v) for o, v in new[key_id].items()}
        rejected = int(delta.get("rejected", 0.0))
        total = int(sum(v for o, v in delta.items() if o != "unavailable"))
        if total < rule.min_events:
            status, share = Status.HOLD, (rejected / total if total else 0.0)
        else:
            share = rejected / total
            if share >= rule.share:
                status = Status.BREACH
            elif share < rule.share / 2:  # hysteresis: a share at the line does not flap
                status = Status.CLEAR
            else:
                status = Status.HOLD
        severity: Severity = "critical" if share >= 0.5 and total >= rule.min_events else "warning"
        vi, en = text.rejections(key_id, rejected, total, rule.window)
        values = {"share": share, "rejected": rejected, "total": total, "key_id": key_id}
        yield Verdict(
            AlertKey(REJECTIONS, "", key_id, rule.window),
            status,
            severity,
            "",
            values,
            vi,
            en,
            0.0,
        )


def _delta(old: float, new: float) -> float:
    return new if new < old else new - old  # a counter that went down was reset (restart)
