"""Adversarial review: how rates and counts are computed and shown after the store.

One figure, end to end: the metrics workers' figures (/v1/kpis items), the wall (page,
screens, scorecard), the exports and the alert texts. The domain's rules
(/work/shared/DOMAIN.md, "What makes a rate trustworthy", "Displaying a rate"): two
decimals, half up from the integer counts, the ends kept for the counts that earn them,
"." for thousands in Vietnamese and "," in English, the count beside the rate, no alert
below the minimum volume, secret documents and offline procedures out of the
denominators, calendar windows in Vietnam time, rollups adding counts.

Seven tests here were strict xfails, defects found by this review and fixed on
2026-12-04: an alert held inside its margin said "below target" of a rate meeting it;
the burn multiple was rounded from a float ("14,4" for 14.45) and said "0 times" of a
window with nothing counted; 766 points showed "20,00 / 20" with an item missing (and
"0,00" lost); a raised minimum volume was a float's ceiling (56 for 50 x 1.1); the
department level went untranslated in exports; fractional counts reached the wall. The
others check claims that held.
"""

from __future__ import annotations

import csv
import io
import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any

import orjson
import pytest

from services.alerts import conditions, text
from services.alerts.directory import UnitDirectory
from services.alerts.evaluation import Evaluator
from services.alerts.model import AlertKey, Status
from services.alerts.settings import AlertsSettings
from services.common.calendar import WorkingCalendar
from services.common.exports import Title, kpi_table, to_csv
from services.common.figures import AnswerFormatError, Figure, Standing, parse_figures
from services.common.rates import format_fraction, format_rate, rate_bp
from services.common.scorecard import Period, Scorecard, format_points, score
from services.common.tally import Deltas, TallyEvent
from services.common.units import VN_TZ
from services.metrics import api
from services.metrics.download import subject
from services.metrics.figures import Figures, PartitionFigures
from services.metrics.periods import Periods
from services.metrics.pipeline import Preparer, Record
from services.metrics.targets import Targets
from services.wall.render import rate_cell
from services.wall.screens import _score, rate_block
from services.wall.trend import points_from_json
from tests.unit.metrics.helpers import (
    as_bytes,
    catalogue,
    contract,
    decoder,
    document,
    envelope,
    province_key,
    registry,
)

NOW = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)  # 10:00 in Vietnam, Monday 23 Nov 2026
TP = ("egov.documents", 0)


def figure(
    num: int,
    den: int,
    *,
    target_bp: int = 10_000,
    window: str = "day",
    min_volume: int = 20,
    unit: str = "404",
) -> Figure:
    return Figure(
        "document_signing",
        unit,
        window,
        num,
        den,
        target_bp,
        min_volume,
        "Huyện Nông Cống",
        "Nong Cong District",
        "Tỷ lệ ký số",
        "Digital-signing rate",
        "district",
        "38",
        "38",
    )


def counted(events: list[dict[str, Any]], now: datetime = NOW) -> list[TallyEvent]:
    """The events as the validated path tallies them (no grace limit)."""
    preparer = Preparer(decoder(), contract(), catalogue(), timedelta(days=36_500))
    values = [as_bytes(e) for e in events]  # each keyed by its province, as the contract asks
    records = [Record("egov.any", 0, i, province_key(v), v) for i, v in enumerate(values)]
    prepared = preparer.prepare(records, now)
    assert prepared.dead_letters == []
    return [c for batch in prepared.batches.values() for c in batch.event_views()]


def served(events: list[dict[str, Any]], unit: str, window: str = "day") -> list[Figure]:
    """What /v1/kpis serves for ``unit`` after ``events``, read back as the wall reads it."""
    figures = Figures()
    figures.assign(TP, PartitionFigures())
    figures.apply(TP, Deltas.of(counted(events)), Periods.at(NOW))
    query = api.KpiQuery.parse({"unit": [unit], "window": [window]}, catalogue())
    items = api.kpi_items(query, figures, registry(), Targets(catalogue()), Periods.at(NOW))
    return parse_figures(orjson.dumps({"items": items}))


# ------------------------------------------------------------------ claims that hold


def test_nong_cong_reads_the_same_on_every_surface() -> None:
    f = figure(11_703, 11_710)
    assert f.rate_bp == 9994 and f.to_json()["rate_bp"] == 9994
    vi_cell, en_cell = rate_cell("vi", f), rate_cell("en", f)
    assert "99,94 %" in vi_cell and "11.703 / 11.710" in vi_cell
    assert "99.94%" in en_cell and "11,703 / 11,710" in en_cell
    assert "99,94 %" in rate_block("vi", 11_703, 11_710)
    vi, en = text.below_target(
        f.unit_name, f.unit, f.kpi_name_vi, f.kpi_name_en, "day", 11_703, 11_710, 10_000
    )
    assert "99,94 % (11.703 / 11.710)" in vi and "99.94% (11,703 / 11,710)" in en
    title = Title("Huyện Nông Cống (404)", NOW.date(), NOW)
    rows = list(csv.reader(io.StringIO(to_csv(kpi_table([f], "vi"), title, "vi")[3:].decode())))
    assert rows[2][6:10] == ["11703", "11710", "0.9994", "1.0000"]


@pytest.mark.parametrize(
    ("num", "den", "vi", "en"),
    [
        (10**15 - 1, 10**15, "99,99 %", "99.99%"),
        (1, 10**15, "0,01 %", "0.01%"),
        (10**15, 10**15, "100,00 %", "100.00%"),
        (0, 10**15, "0,00 %", "0.00%"),
        (0, 0, "–", "–"),
        (19_999, 20_000, "99,99 %", "99.99%"),
    ],
)
def test_the_ends_are_kept_for_the_counts_that_earn_them(
    num: int, den: int, vi: str, en: str
) -> None:
    assert format_rate(num, den, "vi") == vi
    assert format_rate(num, den, "en") == en
    # The file shows the same two decimals as the wall (never 100 % with an item missing).
    (row,) = kpi_table([figure(num, den)], "en").rows
    bp = rate_bp(num, den)
    assert row[8] == (None if bp is None else Decimal(bp) / 10_000)


def test_huge_counts_keep_their_thousands_separators() -> None:
    assert format_fraction(1_234_567_890_123, 1_234_567_890_124, "vi") == (
        "1.234.567.890.123 / 1.234.567.890.124"
    )
    assert format_fraction(1_234_567_890_123, 1_234_567_890_124, "en") == (
        "1,234,567,890,123 / 1,234,567,890,124"
    )


@pytest.mark.parametrize(("num", "den", "shown"), [(1, 32, "3,13 %"), (29, 100, "29,00 %")])
def test_half_up_from_the_integer_counts_not_a_float(num: int, den: int, shown: str) -> None:
    # round() on the float gives 3.12 for 1 of 32 (3.125 is exact in binary, half-even).
    assert format_rate(num, den, "vi") == shown


def test_a_numerator_above_its_denominator_is_never_displayable() -> None:
    with pytest.raises(ValueError):
        format_rate(11, 10, "vi")
    with pytest.raises(ValueError):
        rate_block("vi", 11, 10)
    item = figure(1, 1).to_json() | {"numerator": 11, "denominator": 10}
    with pytest.raises(AnswerFormatError):
        parse_figures(orjson.dumps({"items": [item]}))
    with pytest.raises(ValueError):
        points_from_json([{"day": "2026-11-23", "numerator": 11, "denominator": 10}])


def test_a_province_adds_its_communes_counts_never_averages_their_rates() -> None:
    # Phường Bắc Kạn 1 of 1 (100 %), Xã Phong Quang 9 of 10 (90 %): Thái Nguyên is
    # 10 of 11 (90,91 %), not the mean of the rates (95 %).
    events = [document("01843", NOW, "a0")]
    events += [document("01849", NOW, f"b{i}", signed=i < 9) for i in range(10)]
    (province,) = [f for f in served(events, "19") if f.kpi == "document_signing"]
    assert (province.numerator, province.denominator) == (10, 11)
    cell = rate_cell("vi", province)
    assert "90,91 %" in cell and "10 / 11" in cell


def test_the_day_window_starts_at_midnight_in_vietnam_not_utc() -> None:
    late_22nd = datetime(2026, 11, 22, 16, 59, 59, tzinfo=UTC)  # 23:59:59 on the 22nd
    early_23rd = datetime(2026, 11, 22, 17, 0, 0, tzinfo=UTC)  # 00:00:00 on the 23rd
    events = [document("01843", late_22nd, "x1"), document("01843", early_23rd, "x2")]
    (day,) = [f for f in served(events, "01843") if f.kpi == "document_signing"]
    assert (day.numerator, day.denominator) == (1, 1)
    assert day.period_start == datetime(2026, 11, 23, tzinfo=VN_TZ)
    (month,) = [f for f in served(events, "01843", "month") if f.kpi == "document_signing"]
    assert month.denominator == 2


def test_the_reform_starts_at_midnight_in_vietnam_for_the_hierarchy() -> None:
    # 01843 was a ward of Bắc Kạn city (058, province 06) until 30 June 2025, and is a
    # ward of Thái Nguyên (19) from 1 July 2025 00:00 +07:00 (30 June 17:00 UTC).
    before = datetime(2025, 6, 30, 16, 59, 59, tzinfo=UTC)
    after = datetime(2025, 6, 30, 17, 0, 0, tzinfo=UTC)
    old, new = counted([document("01843", before, "r1"), document("01843", after, "r2")])
    assert old.units == ("01843", "058", "06")
    assert new.units == ("01843", "19")


def test_secret_documents_leave_both_sides_of_the_signing_rate() -> None:
    secret_signed = document("01843", NOW, "s1", classified=True, signed=True)
    unsigned = document("01843", NOW, "s2", signed=False)
    kinds = {c.counts for c in counted([secret_signed, unsigned])}
    # The secret document counts for no document KPI; the unsigned one is 0 of 1.
    assert () in kinds
    assert (("document_electronic", 1, 1), ("document_signing", 0, 1)) in {
        tuple(sorted(k)) for k in kinds
    }


def test_offline_procedures_leave_the_online_dossier_rate() -> None:
    def received(i: int, level: str, channel: str) -> dict[str, Any]:
        return envelope(
            "vn.egov.dossier.received", "01843", NOW, f"d{i}",
            dossier_id=f"H19-{i}", service_level=level, channel=channel,
        )  # fmt: skip

    events = [received(1, "full", "online"), received(2, "full", "counter")]
    events += [received(3, "offline", "counter"), received(4, "offline", "postal")]
    (online,) = [f for f in served(events, "01843") if f.kpi == "dossier_online"]
    assert (online.numerator, online.denominator) == (1, 2)


@pytest.mark.parametrize(("num", "den", "status"), [(0, 19, Status.HOLD), (0, 20, Status.BREACH)])
def test_small_volumes_never_alert(num: int, den: int, status: Status) -> None:
    f = figure(num, den, min_volume=20)
    (verdict,) = conditions.kpi_below_target([f], ["day"], 200, 0)
    assert verdict.status is status
    assert (f.status is Standing.LOW_VOLUME) == (status is Status.HOLD)


# ------------------------------------------------------------------ defects


def test_an_alert_held_inside_its_margin_does_not_say_the_rate_is_below_target() -> None:
    f = figure(9_850, 10_000, target_bp=9_800)
    assert f.status is Standing.MEETS  # the wall shows "Đạt mục tiêu"
    key = AlertKey(conditions.BELOW, f.kpi, f.unit, f.window)
    (verdict,) = conditions.kpi_below_target([f], ["day"], 200, 0, tracked={key})
    assert verdict.status is Status.HOLD  # still firing: clears only at 99 %
    assert "98,50 %" in verdict.summary_vi
    assert "thấp hơn mục tiêu" not in verdict.summary_vi
    assert "below the" not in verdict.summary_en


def test_the_burn_multiple_is_rounded_half_up_from_the_counts() -> None:
    figs = [figure(2_775, 10_000, target_bp=9_500, window=w) for w in ("1h", "5m")]
    (verdict,) = conditions.kpi_budget_burn(figs, 0)
    exact = Fraction(10_000 - 2_775, 10_000) / Fraction(500, 10_000)
    assert exact == Fraction(1445, 100)
    assert verdict.status is Status.BREACH
    assert "gấp 14,5 lần" in verdict.summary_vi


def test_a_burn_text_with_nothing_counted_does_not_claim_zero_times() -> None:
    figs = [figure(2_775, 10_000, target_bp=9_500, window="1h")]
    figs.append(figure(0, 0, target_bp=9_500, window="5m"))
    key = AlertKey(conditions.BURN, "document_signing", "404", "1h")
    (verdict,) = conditions.kpi_budget_burn(figs, 0, tracked={key})
    assert verdict.status is Status.HOLD
    assert "0 lần" not in verdict.summary_vi
    assert "0 times" not in verdict.summary_en


def test_points_never_claim_the_maximum_while_an_item_is_missing() -> None:
    card = Scorecard.load()
    period = Period("month", 2026, 11)
    on_time = Figure(
        "dossier_on_time", "19", "month", 99_999, 100_000, 9_500, 10, "Thái Nguyên",
        level="province", province="19", period_start=datetime(2026, 11, 1, tzinfo=VN_TZ),
    )  # fmt: skip
    s = score(card, [on_time], "19", period)
    assert s.points < 20
    assert format_points(s.points, "vi", s.measured_max) != "20,00"
    board = _score("vi", s)
    assert "mất 0,00 điểm" not in board


def test_a_raised_minimum_volume_is_exact() -> None:
    ev = Evaluator(
        AlertsSettings(alert_min_volume="day=1.1", alert_for_s=0, alert_burn_enabled=False),
        WorkingCalendar(always=True),
        UnitDirectory([]),
    )
    (raised,) = ev._volume_floors([figure(0, 55, min_volume=50)])
    assert raised.min_volume == math.ceil(Fraction(11, 10) * 50) == 55


def test_a_department_level_is_named_in_the_language_of_the_file() -> None:
    dept = figure(1, 2, unit="19-SNV")._replace(level="department", province="19")
    (row_en,) = kpi_table([dept], "en").rows
    assert row_en[2] == "Department"
    query = api.KpiQuery.parse({"level": ["department"]}, catalogue())
    now = datetime(2026, 12, 5, 10, tzinfo=UTC)
    assert "department" not in subject(query, [dept], "vi", registry(), now)


def test_fractional_counts_are_refused_by_the_reader() -> None:
    item = figure(1, 3).to_json() | {"numerator": 1.5, "denominator": 3}
    with pytest.raises(AnswerFormatError):
        parse_figures(orjson.dumps({"items": [item]}))
