"""The PromQL behind every panel, in one place so that its series names are easy to audit.

Series come from the services' own /metrics (see docs/metrics-api.md and the ingest and
alerts telemetry modules) and from the recording rules in
deploy/prometheus/rules/egov-recording.yml and egov-scorecard.yml. Template variables
($province, $unit, $kpi, $level, $window, $silence, $__rate_interval) are substituted by
Grafana; the integration tests substitute concrete values and run every query against a
real Prometheus.
"""

from __future__ import annotations

RATE = "$__rate_interval"

# Recording rules (deploy/prometheus/rules/egov-recording.yml).
UNIT_PROVINCE_INFO = "unit:egov_unit_province:info"
UNIT_RATIO_DAY = "unit:egov_kpi_ratio:day"
UNIT_TARGET = "unit:egov_kpi_target:ratio"
UNIT_SILENCE = "unit:egov_silence:seconds"
PROVINCE_PREFIX = "province:egov_kpi"
# deploy/prometheus/rules/egov-scorecard.yml.
MIN_VOLUME = "kpi:egov_kpi_min_volume:count"

# Series of the metrics service (names from the metrics design, "Exposition").
LAST_EVENT = "egov_unit_last_event_timestamp_seconds"
TARGET_OVERRIDES = "egov_kpi_target_override_ratio"
EVENT_TIME_LAG = "egov_event_lag_seconds"
INGEST_TIME_LAG = "egov_ingest_lag_seconds"
DEAD_LETTERED = "egov_events_dead_lettered_total"

# Series of the alerts service (services/alerts/telemetry.py).
ALERTS_OPEN = "egov_alerts"
NOTIFICATIONS = "egov_alerts_notifications_total"
EVALUATION_LAG = "egov_alerts_evaluation_lag_seconds"


def shown_rate(numerator: str, denominator: str) -> str:
    """The rate as the wall, the alerts and the exports show it (services/common/rates.py
    ``rate_bp``), as a 0..1 ratio of whole basis points: half up from the integer counts,
    never 1 with an item missing, never 0 with one counted.

    Grafana formats the float it is given (``toFixed``): given the exported ratio, 19,999
    of 20,000 read "100.00%" there and "99,99 %" on the wall; given this, 99.99% on both.
    ``numerator`` and ``denominator`` are one series per row with the same labels; a row
    whose denominator is 0 is left out (no rate, as the wall's "–"). Exact in float64:
    the counts are integers far below 2^53 / 20,000, and so are the operands."""
    n, d = f"({numerator})", f"(({denominator}) > 0)"
    bp = f"floor((20000 * {n} + {d}) / (2 * {d}))"
    missing = f"({n} < bool {d})"  # an item missing: 10000 is not earned
    counted = f"({n} > bool 0)"  # an item counted: 0 is not earned
    return f"(({bp} - ({bp} + {missing} > bool 10000) + ({bp} == bool 0) * {counted}) / 10000)"


def shown_against(numerator: str, denominator: str, target_bp: int | str) -> str:
    """:func:`shown_rate` for a panel coloured by a target: a hair (1e-9, far below the
    two decimals shown) under the target when the counts miss it exactly, as
    ``rates.meets`` judges. 24,374 of 25,000 shows 97.50% and misses a 97.5% target:
    the panel shows 97.50% as a miss, as the wall marks it.

    ``target_bp`` is a whole number of basis points, or a PromQL expression of them per
    ``kpi`` and ``unit`` (:func:`target_in_force`): a row without a target has no value."""
    n, d = f"({numerator})", f"(({denominator}) > 0)"
    misses = f"({n} * 10000 < bool {_target_times(d, target_bp)})"
    return f"({shown_rate(numerator, denominator)} - 1e-9 * {misses})"


def compared(numerator: str, denominator: str, target_bp: int | str, meets: bool) -> str:
    """The rows whose counts meet ``target_bp`` (on it meets it: ``rates.meets``), or miss
    it, exactly in integers; a filter for ``and``, its value is not a rate."""
    n, d = f"({numerator})", f"(({denominator}) > 0)"
    test = ">=" if meets else "<"
    return f"({n} * 10000 {test} {_target_times(d, target_bp)})"


def _target_times(denominators: str, target_bp: int | str) -> str:
    """``target_bp`` x the denominators, row by row: an integer, or a series per (kpi,
    unit) matched to each row (which keeps its own labels)."""
    if isinstance(target_bp, int):
        return f"{target_bp} * {denominators}"
    return f"({denominators} * on (kpi, unit) group_left () {target_bp})"


POINTS_NUDGE = 1e-9
"""Added to points x 100 before Grafana's hundredths are floored: an exact half (17.705)
is a hair under in binary. One indicator's points max x n/d that are not a half are at
least 1/(2d) hundredths from one, so under 500 million items only the halves move; the
float itself is off by ~1e-12 hundredths at most (points are at most 100)."""


def shown_points(points: str, maximum: str) -> str:
    """Decision 766 points as the wall and the exports show them (services/common/
    scorecard.py ``points_hundredths``), in whole hundredths: half up, never the maximum
    while a point is missing, never 0.00 while one is earned (or, for lost points, lost).

    Grafana rounds the float it is given: 19.9998 of 20 read "20.00" there beside the
    wall's "19,99" until 2026-12-05. ``points`` and ``maximum`` are one series per row
    with the same labels (the recording rules of egov-scorecard.yml). The ends compare
    the float points with their integer maximum and with 0: a missing item moves points
    by at least maximum / items, far above the float's error."""
    p, m = f"({points})", f"({maximum})"
    hundredths = f"floor(100 * {p} + (0.5 + {POINTS_NUDGE!r}))"
    earned = f"(({hundredths} == bool 0) * ({p} > bool 0))"
    raised = f"({hundredths} + {earned})"
    capped = f"(({raised} >= bool 100 * {m}) * ({p} < bool {m}))"
    return f"(({raised} - {capped} * ({raised} - (100 * {m} - 1))) / 100)"


def province_figure(figure: str, window: str, kpi: str) -> str:
    """A province's own numerator, denominator or ratio (already rolled up by the worker)."""
    return f'{PROVINCE_PREFIX}_{figure}:{window}{{unit="$province", kpi="{kpi}"}}'


def target(unit: str, kpi: str = "") -> str:
    kpi_match = f', kpi="{kpi}"' if kpi else ', kpi=~"$kpi"'
    return f'{UNIT_TARGET}{{unit="{unit}"{kpi_match}}}'


def target_in_force(unit: str, kpi: str) -> str:
    """The target in force of ``unit`` and ``kpi`` in whole basis points, as /v1/kpis'
    ``target_bp``: the recording rule reads the workers' effective target, operators'
    overrides included (docs/targets.md), not the catalogue's default."""
    return f"round(10000 * {target(unit, kpi)})"


def unit_figure(figure: str, window: str) -> str:
    """One unit's figure per KPI: `max by` keeps one copy when two workers export it."""
    return f'max by (kpi) (egov_kpi_{figure}{{unit="$unit", window="{window}", kpi=~"$kpi"}})'


def unit_rate(window: str) -> str:
    """``$unit``'s rate per KPI in ``window``, as the wall shows it."""
    return shown_rate(unit_figure("numerator", window), unit_figure("denominator", window))


def province_rate(window: str, kpi: str) -> str:
    """``$province``'s own rate of ``kpi`` in ``window`` (day, month), as the wall shows
    it, against the target in force (:func:`shown_against`, :func:`target_in_force`)."""
    return shown_against(
        province_figure("numerator", window, kpi),
        province_figure("denominator", window, kpi),
        target_in_force("$province", kpi),
    )


def province_rate_named(window: str, kpi: str, names: tuple[str, str, str]) -> str:
    """:func:`province_rate` with a ``shown`` label for the panel's legend (``{{shown}}``),
    which the panel colours by: when the day's or month's volume is at least the KPI's
    min_volume (a judged rate), ``names[0]`` if the counts meet the target in force of
    the province (``rates.meets``: operators' overrides included) and ``names[1]`` if they
    miss it; ``names[2]`` below min_volume (shown, never judged, whatever the target: the
    wall's "Chưa đủ số liệu để đánh giá"). A judged rate with no target in force has no
    name (the wall judges none: ``Figure.status``)."""
    num = province_figure("numerator", window, kpi)
    volume = province_figure("denominator", window, kpi)
    target_bp = target_in_force("$province", kpi)
    rate = province_rate(window, kpi)
    meets_name, misses_name, low_name = names

    def judged_as(meets: bool, name: str) -> str:
        rows = f"{judged(volume)} and on (kpi, unit) {compared(num, volume, target_bp, meets)}"
        return f'label_replace({rate} and on (kpi, unit) {rows}, "shown", "{name}", "", "")'

    low = f"{shown_rate(num, volume)} and on (kpi) {judged(volume, at_least=False)}"
    return (
        f"{judged_as(True, meets_name)} or {judged_as(False, misses_name)} "
        f'or label_replace({low}, "shown", "{low_name}", "", "")'
    )


def hourly_rate() -> str:
    """``$province``'s rate per KPI over the last rolling hour, as the wall shows it."""
    figure = 'max by (kpi) (egov_kpi_{}{{unit="$province", window="1h"}})'
    return shown_rate(figure.format("numerator"), figure.format("denominator"))


def overrides_in_force() -> str:
    """The operators' targets in force in ``$province``, with their bases (one copy: every
    metrics worker writes them all)."""
    return f'max by (kpi, scope, level, unit, basis) ({TARGET_OVERRIDES}{{province="$province"}})'


def day_volume() -> str:
    """Each unit's denominator today per KPI (one worker's copy while a partition moves)."""
    return _chosen("denominator", window="day", kpi=None)


def shortfall() -> str:
    """Units of the province below target today, by how far (target - rate > 0).

    Only judged rates, as on the wall (``board.worst_units``, ``Standing.BELOW``): the
    province's units, never the province itself (the recording gives a province its own
    code as ``province``), and only at or above the KPI's min_volume (1 of 2 is shown on
    the wall as too few to judge, never listed below target)."""
    return (
        f"({UNIT_TARGET} - on (kpi, unit) group_right () "
        f'{UNIT_RATIO_DAY}{{province="$province", level!="province"}}) > 0 '
        f"and on (kpi, unit) {judged(day_volume())}"
    )


def beside_shortfall(expr: str) -> str:
    """``expr`` for exactly the rows of :func:`shortfall`, carrying the same labels."""
    return f"{expr} * on (kpi, unit) group_right () (0 * ({shortfall()}) + 1)"


def silent_units() -> str:
    return (
        f"({UNIT_SILENCE} > $silence) * on (unit) group_left (name, level, province) "
        f'{UNIT_PROVINCE_INFO}{{province="$province"}}'
    )


def dead_letters(span: str = "24h") -> str:
    """The province's records dead-lettered over the last ``span``, by reason (none: no
    row). A series born within the span (a worker's first dead letter of a reason and
    province since it started) counts whole: increase() takes its first sample, already
    1, as the start and missed the very first dead letter (review 41); an older series
    counts its increase()."""
    series = f'{DEAD_LETTERED}{{province="$province"}}'
    born = f"({series} unless {series} offset {span})"
    return f"sum by (reason) ({born} or increase({series}[{span}])) > 0"


def last_event_ms() -> str:
    """Milliseconds since the epoch, the unit Grafana's date formats expect."""
    return f'max by (family) ({LAST_EVENT}{{unit="$unit"}}) * 1000'


def rate_by(metric: str, label: str, selector: str = "") -> str:
    return f"sum by ({label}) (rate({metric}{{{selector}}}[{RATE}]))"


def quantile(q: float, histogram: str) -> str:
    return f"histogram_quantile({q}, sum by (le) (rate({histogram}_bucket[{RATE}])))"


def score(level: str, figure: str, period: str) -> str:
    """Decision 766 points of ``$unit``: ``level`` unit, unit_group or unit_indicator;
    ``figure`` points, max_points (the measured maximum) or lost_points; ``period`` month
    or year (the year to date, the window's name)."""
    return f'{level}:egov_scorecard_{figure}:{period}{{unit="$unit"}}'


def shown_score(level: str, period: str) -> str:
    """:func:`score`'s points as the wall and the exports show them: an indicator's
    rounded out of its maximum, a group's or the unit's total the sum of its indicators'
    shown points (``GroupScore.shown``: a subtotal is what its rows add up to)."""
    indicators = shown_points(
        score("unit_indicator", "points", period), score("unit_indicator", "max_points", period)
    )
    if level == "unit_indicator":
        return indicators
    by = "unit, group" if level == "unit_group" else "unit"
    return f"sum by ({by}) ({indicators})"


def costliest(period: str) -> str:
    """The measured indicator of ``$unit`` that loses the most points (none when none loses
    any, like Score.costliest), its lost points as the wall shows them: the maximum less
    the points shown (``IndicatorScore.lost_shown``), so that the two add up."""
    points = score("unit_indicator", "points", period)
    maximum = score("unit_indicator", "max_points", period)
    lost = f"topk(1, {score('unit_indicator', 'lost_points', period)} > 0)"
    return f"(({maximum}) - {shown_points(points, maximum)}) and on (indicator) {lost}"


def dossiers(window: str, outcome: str) -> str:
    """``$unit``'s dossiers of one outcome behind the on-time rate (one copy of two)."""
    return f'max(egov_dossiers{{unit="$unit", window="{window}", outcome="{outcome}"}})'


def _chosen(figure: str, window: str = "$window", kpi: str | None = "$kpi") -> str:
    """Each unit's ``figure`` per KPI in ``window``; ``kpi`` a regex on
    the KPI, None for every KPI. ``max``: one worker's copy while a partition moves."""
    kpi_match = "" if kpi is None else f', kpi=~"{kpi}"'
    return f'max by (kpi, unit) (egov_kpi_{figure}{{window="{window}"{kpi_match}}})'


def _of_level(expr: str) -> str:
    """``expr`` for the units of ``$level`` in ``$province``, with their names."""
    return (
        f"{expr} * on (unit) group_left (name) "
        f'{UNIT_PROVINCE_INFO}{{province="$province", level="$level"}}'
    )


def judged(denominators: str, at_least: bool = True) -> str:
    """``denominators`` (one series per row, with a ``kpi`` label) at or above their KPI's
    min_volume, the rates that are judged (ranked, coloured, listed below target), or
    above 0 and below it (shown, never judged: the wall's "Chưa đủ số liệu để đánh giá")."""
    test = ">=" if at_least else "> 0 <"
    return f"({denominators} {test} on (kpi) group_left () {MIN_VOLUME})"


def _eligible(at_least: bool) -> str:
    """The chosen denominators at or above the KPI's min_volume, or above 0 and below it."""
    return judged(_chosen("denominator"), at_least)


HALF_UP_NUDGE = 1e-12
"""Added to a float ratio that Grafana rounds: an exact half of a basis point (9 of 4,000
is 0.225%) is a hair under in binary, and Grafana's Math.round took it down (0.22%)
where the wall rounds the counts half up (0.23%). A ratio num/den that is not an exact
half is at least 1/(2 x 10,000 x den) from one: 1.25e-12 at 40 million, so under that
only the halves move (at 50 million the margin is gone: review 30 found cells read
0.01 high from 49.99 million). The ends are value mappings (panels.rate_ends)."""


def nudged(ratio: str) -> str:
    """A float ratio Grafana will round as the wall does (see :data:`HALF_UP_NUDGE`)."""
    return f"({ratio} + {HALF_UP_NUDGE!r})"


def _rate_of(denominators: str) -> str:
    """The float ratio, not :func:`shown_rate`: over every unit of a level (10,000 at
    national scale) the wall's rounding inlined in PromQL cost 6-7x the query (42 s
    against 5.7 s, beyond Grafana's timeout; review 12, docs/dashboards.md), and ranking
    by whole basis points broke the wall's order of ties. Nudged for the halves; the
    ends are the panels' value mappings."""
    return _of_level(nudged(f"{_chosen('numerator')} / on (kpi, unit) {denominators}"))


def ranked_volume() -> str:
    """The denominators of the units ranked: at least the KPI's min_volume."""
    return _of_level(_eligible(at_least=True))


def ranked_rate() -> str:
    """The rates of the units ranked, best first (the rows of :func:`ranked_volume`)."""
    return f"sort_desc({_rate_of(_eligible(at_least=True))})"


def lowest_ranked(k: int) -> str:
    """The ``k`` lowest rates among the units ranked, per KPI, worst first."""
    return f"sort(bottomk by (kpi) ({k}, {_rate_of(_eligible(at_least=True))}))"


def beside_lowest(k: int, expr: str) -> str:
    """``expr`` for exactly the rows of :func:`lowest_ranked`."""
    return f"{expr} and on (kpi, unit) {lowest_ranked(k)}"


def unranked_volume() -> str:
    """Units with some volume but below the KPI's min_volume: listed apart, not ranked."""
    return _of_level(_eligible(at_least=False))


def unranked_rate() -> str:
    return _rate_of(_eligible(at_least=False))


def _score_share() -> str:
    """Each unit's share of its measured 766 points in ``$window`` (month or year)."""
    return "unit:egov_scorecard_points:$window / unit:egov_scorecard_max_points:$window"


def _low_volume_units() -> str:
    """Units any of whose measured indicators is below its KPI's min_volume."""
    volumes = "unit_indicator:egov_scorecard_volume:$window"
    return f"count by (unit) ({volumes} < on (kpi) group_left () {MIN_VOLUME})"


def score_ranked() -> str:
    """Units of ``$level`` ranked by the share of their measured points, best first."""
    return f"sort_desc({_of_level(f'({_score_share()} unless on (unit) {_low_volume_units()})')})"


def score_apart() -> str:
    """Units with points whose volume is too low to rank: listed apart."""
    return _of_level(f"({_score_share()} and on (unit) {_low_volume_units()})")


def beside_score(expr: str, ranked: bool) -> str:
    """``expr`` (one series per unit) for the rows of :func:`score_ranked` or
    :func:`score_apart`."""
    rows = score_ranked() if ranked else score_apart()
    return f"{_of_level(f'({expr})')} and on (unit) {rows}"


def ranked_points() -> str:
    """Each unit's points in ``$window`` as the wall's ranking shows them: the sum of its
    indicators' shown points."""
    indicators = shown_points(
        "unit_indicator:egov_scorecard_points:$window",
        "unit_indicator:egov_scorecard_max_points:$window",
    )
    return f"sum by (unit) ({indicators})"


def score_volume() -> str:
    """The items behind a unit's measured indicators (the wall's volume of a score)."""
    return "sum by (unit) (unit_indicator:egov_scorecard_volume:$window)"
