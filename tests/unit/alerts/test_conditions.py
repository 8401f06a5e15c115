"""Conditions: below target with hysteresis and volume guard, burn rate, silence, rejections."""

from datetime import datetime, timedelta

from services.alerts import conditions as c
from services.alerts.cadence import WORKDAY_S, Cadence
from services.alerts.directory import UnitDirectory
from services.alerts.model import Status
from services.common.calendar import VN_TZ, WorkingCalendar
from services.common.contract import kpi_families
from services.common.figures import Figure, Standing, classify
from services.common.rates import to_bp
from services.common.unit_info import UnitInfo


def fig(num: int, den: int, *, target: float = 0.95, window: str = "day", unit: str = "u1",
        min_volume: int = 20) -> Figure:  # fmt: skip
    return Figure("document_signing", unit, window, num, den, to_bp(target), min_volume,
                  unit_name="Xã Một", province="19")  # fmt: skip


def below(f: Figure, hysteresis_bp: int = 200) -> Status:
    (verdict,) = c.kpi_below_target([f], [f.window], hysteresis_bp, 300)
    return verdict.status


def test_below_target_with_volume_breaches() -> None:
    assert below(fig(80, 100)) is Status.BREACH


def test_low_volume_is_never_a_breach() -> None:
    assert below(fig(0, 19)) is Status.HOLD


def test_inside_the_hysteresis_margin_holds_and_above_it_clears() -> None:
    assert below(fig(96, 100)) is Status.HOLD
    assert below(fig(97, 100)) is Status.CLEAR


def test_a_breach_is_exactly_what_the_wall_shows_below_target() -> None:
    # One judgement (services.common.figures.classify) for the pager and the wall.
    for num, den in [(0, 0), (0, 19), (18, 19), (18, 20), (19, 20), (20, 20), (94, 100)]:
        f = fig(num, den)
        breach = below(f) is Status.BREACH
        assert breach == (classify(num, den, to_bp(f.target), f.min_volume) is Standing.BELOW)


def test_annotations_name_the_unit_rate_target_and_counts() -> None:
    (v,) = c.kpi_below_target([fig(80, 100)], ["day"], 200, 300)
    assert "Xã Một" in v.summary_vi and "80,00 %" in v.summary_vi and "95 %" in v.summary_vi
    assert "80.00% (80 / 100)" in v.summary_en
    assert v.labels()["province"] == "19"


def test_the_english_summary_names_the_unit_in_english() -> None:
    f = fig(80, 100)._replace(unit_name="Huyện Nông Cống", unit_name_en="Nong Cong District")
    (v,) = c.kpi_below_target([f], ["day"], 200, 300)
    assert v.summary_en.startswith("Nong Cong District (u1):")
    assert v.summary_vi.startswith("Huyện Nông Cống (u1):")


def test_severity_grows_with_the_gap_and_the_volume() -> None:
    assert c.below_target_severity(fig(50, 200)) == "critical"
    assert c.below_target_severity(fig(17, 20)) == "warning"
    assert c.below_target_severity(fig(19, 21)) == "info"


def burn_figures(bad_long: int, bad_short: int, den: int = 1000) -> list[Figure]:
    return [
        fig(den - bad_long, den, window="1h"), fig(den - bad_short, den, window="5m"),
        fig(den, den, window="6h"), fig(den, den, window="30m"),
    ]  # fmt: skip


def test_fast_burn_needs_both_windows() -> None:
    # budget 5%: 14.4x is 72% errors.
    verdicts = {v.key.window: v for v in c.kpi_budget_burn(burn_figures(800, 800), 0)}
    assert verdicts["1h"].status is Status.BREACH and verdicts["1h"].severity == "critical"
    assert verdicts["6h"].status is Status.CLEAR
    recovered = {v.key.window: v for v in c.kpi_budget_burn(burn_figures(800, 0), 0)}
    assert recovered["1h"].status is Status.CLEAR


def test_no_burn_rule_for_a_target_of_100_percent() -> None:
    figures = [fig(0, 100, target=1.0, window=w) for w in ("5m", "30m", "1h", "6h")]
    assert list(c.kpi_budget_burn(figures, 0)) == []


DIRECTORY = UnitDirectory(
    [UnitInfo(f"c{i}", f"Xã {i}", f"Commune {i}", "commune", "19") for i in range(4)]
)
RULE = c.SilenceRule(Cadence(3600, 5 * WORKDAY_S, 5, 9 * WORKDAY_S), lookback_days=10,
                     peer_share=0.5)  # fmt: skip
CAL = WorkingCalendar()


def vn(*args: int) -> datetime:
    return datetime(*args, tzinfo=VN_TZ)


def silent(
    seen: dict[tuple[str, str], datetime], now: datetime, watch: datetime
) -> dict[str, Status]:
    return {v.key.unit: v.status for v in c.unit_silent(seen, now, watch, CAL, DIRECTORY, RULE)}


def test_a_unit_that_stopped_publishing_is_silent_in_working_hours_only() -> None:
    monday_8 = vn(2026, 11, 23, 8)
    seen = {("c0", "documents"): monday_8, ("c1", "documents"): monday_8 + timedelta(hours=3)}
    at_11 = silent(seen, monday_8 + timedelta(hours=3), monday_8)
    assert at_11["c0"] is Status.BREACH and at_11["c1"] is Status.CLEAR
    evening = silent(seen, vn(2026, 11, 23, 20), monday_8)
    assert evening["c0"] is Status.HOLD


def test_peers_make_a_never_seen_commune_expected_from_the_watch_start() -> None:
    start = vn(2026, 11, 23, 8)
    seen = {(f"c{i}", "documents"): start + timedelta(hours=2) for i in (0, 1)}
    status = silent(seen, start + timedelta(hours=2), start)
    assert status["c3"] is Status.BREACH
    assert (
        silent(seen, start + timedelta(minutes=30), start + timedelta(minutes=10))["c3"]
        is Status.CLEAR
    )


def test_without_enough_peers_a_never_seen_unit_is_not_expected() -> None:
    start = vn(2026, 11, 23, 8)
    seen = {("c0", "documents"): start + timedelta(hours=2)}
    assert "c3" not in silent(seen, start + timedelta(hours=2), start)


def test_rejections_per_key_with_reset_and_volume_guard() -> None:
    rule = c.RejectionRule(share=0.2, min_events=20, window_s=600.0)
    old = c.IngestScrape({"k1": {"accepted": 100.0, "rejected": 0.0}, "k2": {"accepted": 5.0}})
    new = c.IngestScrape(
        {"k1": {"accepted": 110.0, "rejected": 30.0}, "k2": {"accepted": 10.0, "rejected": 5}}
    )
    counted, restarted = c.counted_between(old, new)
    assert counted == {
        "k1": {"accepted": 10.0, "rejected": 30.0},
        "k2": {"accepted": 5.0, "rejected": 5},
    }
    assert restarted == set()
    verdicts = {v.key.unit: v for v in c.ingest_rejections(counted, rule)}
    assert verdicts["k1"].status is Status.BREACH and verdicts["k1"].values["total"] == 40
    assert verdicts["k2"].status is Status.HOLD  # 10 events: too few to judge
    # A value that went down: ingest restarted, and counted 50 since.
    counted, restarted = c.counted_between(new, c.IngestScrape({"k1": {"accepted": 50.0}}))
    assert counted == {"k1": {"accepted": 50.0}} and restarted == {"k1"}
    reset = {v.key.unit: v for v in c.ingest_rejections(counted, rule)}
    assert reset["k1"].status is Status.CLEAR


def test_a_restart_is_read_from_the_counters_start_not_only_from_their_values() -> None:
    """Ingest restarted and its new counters passed their old values before the next
    scrape (a publisher sending hundreds a minute): by value alone, 150 - 100 = 50 of
    the 150 rejections since the restart were seen, and the alert was judged on a third."""
    rule = c.RejectionRule(share=0.2, min_events=20, window_s=600.0)
    old = c.IngestScrape(
        {"k1": {"accepted": 400.0, "rejected": 100.0}},
        {"k1": {"accepted": 1_000.0, "rejected": 1_000.0}},
    )
    new = c.IngestScrape(
        {"k1": {"accepted": 410.0, "rejected": 150.0}},
        {"k1": {"accepted": 2_000.0, "rejected": 2_000.0}},  # began again at 2,000 s
    )
    counted, restarted = c.counted_between(old, new)
    assert counted == {"k1": {"accepted": 410.0, "rejected": 150.0}}
    assert restarted == {"k1"}
    (verdict,) = c.ingest_rejections(counted, rule)
    assert verdict.values["rejected"] == 150 and verdict.values["total"] == 560
    # The same start: the difference, as before.
    same = c.IngestScrape(new.events, old.started)
    assert c.counted_between(old, same) == ({"k1": {"accepted": 10.0, "rejected": 50.0}}, set())


def test_tracked_skips_only_verdicts_the_lifecycle_would_ignore() -> None:
    from datetime import UTC, datetime

    from services.alerts.lifecycle import AlertBook

    now = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)
    figures = [fig(99, 100, unit="ok"), fig(50, 100, unit="bad"), fig(96, 100, unit="mid"),
               fig(1, 5, unit="thin")]  # fmt: skip
    full, lean = AlertBook(new_id=lambda: "x"), AlertBook(new_id=lambda: "x")
    for ratio_mid in (50, 96, 99):  # mid: breach, then inside the margin, then clear
        figures[2] = fig(ratio_mid, 100, unit="mid")
        everything = list(c.kpi_below_target(figures, ["day"], 200, 0))
        tracked = list(c.kpi_below_target(figures, ["day"], 200, 0, lean.open))
        assert len(tracked) < len(everything)
        a, b = full.observe(everything, now), lean.observe(tracked, now)
        assert [(t.alert.key, t.to_state) for t in a] == [(t.alert.key, t.to_state) for t in b]
        assert full.open.keys() == lean.open.keys()
    assert {k.unit for k in lean.open} == {"bad"}


# --- alerts worth waking for (issue 16, item 3) ----------------------------------------


def test_critical_at_exactly_ten_points_below() -> None:
    # 85,00 % against 95 %: exactly 10 points, which 0.95 - 0.85 in floats misses.
    assert c.below_target_severity(fig(85, 100)) == "critical"
    assert c.below_target_severity(fig(851, 1000, min_volume=200)) == "warning"


def test_a_98_percent_alert_clears_below_100_percent() -> None:
    # Margin 2 points, capped at half the way to 100 %: clears at 99 %, not only at 100 %.
    assert c.clear_at_bp(9800, 200) == 9900
    assert below(fig(99, 100, target=0.98)) is Status.CLEAR
    assert below(fig(989, 1000, target=0.98)) is Status.HOLD
    # A 95 % target keeps the full margin; a 100 % target clears only at 100 %.
    assert c.clear_at_bp(9500, 200) == 9700 and c.clear_at_bp(10000, 200) == 10000


def test_burn_rules_are_evaluated_only_where_they_can_fire() -> None:
    fast, slow = c.BURN_RULES
    assert (fast.lowest_target_bp, slow.lowest_target_bp) == (9306, 8334)
    everything_fails = [fig(0, 100, target=0.90, window=w) for w in c.BURN_WINDOWS]
    windows = {v.key.window: v.status for v in c.kpi_budget_burn(everything_fails, 0)}
    assert windows == {"6h": Status.BREACH}  # 14.4x of a 10 % budget is beyond 100 %
    at_93 = [fig(0, 100, target=0.93, window=w) for w in c.BURN_WINDOWS]
    assert {v.key.window for v in c.kpi_budget_burn(at_93, 0)} == {"6h"}
    at_9306 = [fig(0, 100, target=0.9306, window=w) for w in c.BURN_WINDOWS]
    assert {v.key.window for v in c.kpi_budget_burn(at_9306, 0)} == {"1h", "6h"}
    below_both = [fig(0, 100, target=0.80, window=w) for w in c.BURN_WINDOWS]
    assert list(c.kpi_budget_burn(below_both, 0)) == []


def test_a_burn_alert_whose_target_fell_below_where_it_can_fire_clears() -> None:
    key = c.AlertKey(c.BURN, "document_signing", "u1", "1h")
    figures = [fig(0, 100, target=0.90, window=w) for w in c.BURN_WINDOWS]
    verdicts = {v.key: v.status for v in c.kpi_budget_burn(figures, 0, {key})}
    assert verdicts[key] is Status.CLEAR


def test_burn_exactly_at_the_factor_breaches() -> None:
    # Target 95 %, 30 % errors: exactly 6x the budget (in floats 5.999...).
    figures = [fig(700, 1000, window=w) for w in c.BURN_WINDOWS]
    windows = {v.key.window: v.status for v in c.kpi_budget_burn(figures, 0)}
    assert windows["6h"] is Status.BREACH


def test_every_unit_alert_names_its_event_family() -> None:
    """Alertmanager mutes a silent unit's KPI alerts of the same family only (review 34):
    each KPI alert carries its KPI's family, UnitSilent the family it is silent in."""
    families = kpi_families()
    assert families["document_signing"] == "documents"
    (low,) = c.kpi_below_target([fig(80, 100)], ["day"], 200, 300, families=families)
    assert low.labels()["family"] == "documents"
    burns = c.kpi_budget_burn(burn_figures(800, 800), 0, families=families)
    assert {v.labels()["family"] for v in burns} == {"documents"}
    monday_8 = vn(2026, 11, 23, 8)
    seen = {("c0", "meetings"): monday_8 - timedelta(days=3)}
    verdicts = c.unit_silent(seen, monday_8 + timedelta(hours=3), monday_8, CAL, DIRECTORY, RULE)
    assert {v.labels()["family"] for v in verdicts} == {"meetings"}
    # A publisher's rejections are about no family: no label rather than an empty one.
    rule = c.RejectionRule(0.2, 10, 600)
    (rejected,) = c.ingest_rejections({"k1": {"accepted": 0, "rejected": 20}}, rule)
    assert "family" not in rejected.labels()


def test_a_keys_rejection_alert_carries_the_province_of_its_scope_and_its_name() -> None:
    from services.alerts.evaluation import Evaluator
    from services.alerts.service import load_directory
    from services.alerts.settings import AlertsSettings

    evaluator = Evaluator(AlertsSettings(), WorkingCalendar(), load_directory())
    evaluator.known_keys([
        ("k-thai-nguyen", "tdoffice-thai-nguyen", ["19"]),  # the province itself
        ("k-communes", "dvc-xa", ["14758", "14797"]),  # Hàm Rồng, Hạc Thành (Thanh Hóa)
        ("k-national", "vdms", ["01", "19"]),  # two provinces: the generic on-call
        ("k-unknown", "old", ["99999"]),
    ])  # fmt: skip
    owners = evaluator.key_owners
    assert owners["k-thai-nguyen"] == c.KeyOwner("tdoffice-thai-nguyen", "19")
    assert owners["k-communes"].province == "38"
    assert owners["k-national"].province == "" and owners["k-unknown"].province == ""
    rule = c.RejectionRule(0.2, 20, 600)
    counted = {"k-thai-nguyen": {"accepted": 20.0, "rejected": 80.0}}
    (v,) = c.ingest_rejections(counted, rule, owners=owners)
    assert v.status is Status.BREACH and v.province == "19" and v.labels()["province"] == "19"
    assert v.summary_en.startswith("Publisher (tdoffice-thai-nguyen, key k-thai-nguyen)")
    (anonymous,) = c.ingest_rejections(counted, rule)
    assert anonymous.province == "" and "(key k-thai-nguyen)" in anonymous.summary_en


def test_a_gone_units_kpi_alert_resolves_only_when_every_worker_answered() -> None:
    from datetime import UTC

    from services.alerts.model import Alert, AlertKey, State

    directory = UnitDirectory([UnitInfo("c1", "Xã 1", "Commune 1", "commune", "19")])
    at = datetime(2025, 7, 2, 3, tzinfo=UTC)
    gone = AlertKey(c.BELOW, "document_signing", "06", "year")
    here = AlertKey(c.BURN, "document_signing", "c1", "6h")
    alerts = {
        k: Alert("a-" + k.unit, k, State.FIRING, "critical", "06", {"family": "documents"},
                 {}, {"unit_name": "Bắc Kạn"}, at, at, fired_at=at)
        for k in (gone, here)
    }  # fmt: skip
    assert c.units_gone([], alerts, directory, complete=False) == []
    (v,) = c.units_gone([], alerts, directory, complete=True)
    assert v.key == gone and v.status is Status.CLEAR and v.values["gone"] is True
    assert v.family == "documents" and "Bắc Kạn (06)" in v.summary_vi
    judged = c.units_gone([v], alerts, directory, complete=True)
    assert judged == [v]  # judged on figures this cycle: left as judged
