"""Exported figures: calendar windows roll with the wall clock; late events land in their day."""

from __future__ import annotations

from datetime import UTC, date, datetime

from services.common.tally import Deltas, TallyEvent
from services.metrics.figures import Figures, PartitionFigures, Tally, partition_from_rows
from services.metrics.periods import Periods, local_day

TP = ("egov.documents", 0)


def c(at: datetime, num: int = 1, units: tuple[str, ...] = ("01843", "19")) -> TallyEvent:
    return TallyEvent(
        digest=b"x" * 16,
        type="vn.egov.document.issued",
        family="documents",
        epoch=at.timestamp(),
        day=local_day(at),
        units=units,
        counts=(("document_signing", num, 1),),
        crosswalked=False,
    )


def figures_with(*contributions: TallyEvent, now: datetime) -> Figures:
    figures = Figures()
    figures.assign(TP, PartitionFigures())
    figures.apply(TP, Deltas.of(contributions), Periods.at(now))
    return figures


def day_of(figures: Figures, now: datetime, window: str = "day") -> tuple[int, int]:
    fig = figures.window(window, Periods.at(now))[("01843", "document_signing")]
    return fig.numerator, fig.denominator


def test_just_after_local_midnight_today_is_empty_not_yesterday() -> None:
    evening = datetime(2026, 11, 22, 16, 50, tzinfo=UTC)  # 23:50 local on the 22nd
    figures = figures_with(c(evening), c(evening, 0), now=evening)
    assert day_of(figures, evening) == (1, 2)
    just_after = datetime(2026, 11, 22, 17, 0, 5, tzinfo=UTC)  # 00:00:05 on the 23rd
    assert day_of(figures, just_after) == (0, 0)
    assert day_of(figures, just_after, "month") == (1, 2)
    assert day_of(figures, just_after, "year") == (1, 2)
    assert figures.totals()[("01843", "document_signing")].denominator == 2


def test_a_late_event_counts_for_its_own_day_not_today() -> None:
    now = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)
    yesterday = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)
    figures = figures_with(c(now), now=now)
    figures.apply(TP, Deltas.of([c(yesterday, 0)]), Periods.at(now))
    assert day_of(figures, now) == (1, 1)
    assert day_of(figures, now, "month") == (1, 2)


def test_last_month_does_not_leak_into_this_month() -> None:
    now = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
    figures = figures_with(c(now), now=now)
    figures.apply(TP, Deltas.of([c(datetime(2026, 11, 30, 3, 0, tzinfo=UTC))]), Periods.at(now))
    assert day_of(figures, now, "month") == (1, 1)
    assert day_of(figures, now, "year") == (2, 2)


def test_new_year_resets_the_year_window() -> None:
    eve = datetime(2026, 12, 31, 16, 0, tzinfo=UTC)
    figures = figures_with(c(eve), now=eve)
    new_year = datetime(2026, 12, 31, 17, 0, 1, tzinfo=UTC)
    assert day_of(figures, new_year, "year") == (0, 0)
    assert day_of(figures, new_year, "month") == (0, 0)


def test_rolling_hour_excludes_older_buckets() -> None:
    now = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)
    old = datetime(2026, 11, 23, 1, 50, tzinfo=UTC)
    figures = figures_with(c(now), c(old), now=now)
    assert day_of(figures, now, "1h") == (1, 1)
    assert day_of(figures, now, "6h") == (2, 2)


def test_revoked_partition_exports_nothing() -> None:
    now = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)
    figures = figures_with(c(now), now=now)
    figures.revoke(TP)
    assert figures.window("day", Periods.at(now)) == {}
    assert figures.activity() == {}


def test_two_partitions_carrying_one_unit_are_summed() -> None:
    now = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)
    figures = figures_with(c(now), now=now)
    figures.assign(("egov.documents", 1), PartitionFigures())
    figures.apply(("egov.documents", 1), Deltas.of([c(now, 0)]), Periods.at(now))
    assert day_of(figures, now) == (1, 2)


def test_loading_folded_rows_gives_the_same_tallies_as_counting() -> None:
    days = [date(2025, 6, 1), date(2026, 2, 3), date(2026, 11, 1), date(2026, 11, 23)]
    counted = Tally(days[0])
    for day in days:
        counted.add(day, 1, 2)
    # The store folds: before this year -> eve of the year, earlier months -> 1 January,
    # earlier days of the month -> the 1st.
    folded = [
        ("u", "k", date(2025, 12, 31), 1, 2),
        ("u", "k", date(2026, 1, 1), 1, 2),
        ("u", "k", date(2026, 11, 1), 1, 2),
        ("u", "k", date(2026, 11, 23), 1, 2),
    ]
    loaded = partition_from_rows(reversed(folded), [], [])
    tally = loaded.tallies[("u", "k")]
    periods = Periods.at(datetime(2026, 11, 23, 3, 0, tzinfo=UTC))
    for window in ("day", "month", "year"):
        assert tally.calendar(window, periods) == counted.calendar(window, periods)
    assert tally.total == counted.total == (4, 8)
