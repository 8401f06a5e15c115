"""Runs the simulator: builds the plan, then generates and posts one batch per interval."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any, Final

import httpx

from services.common.calendar import HOLIDAYS_FILE, WorkingCalendar, load_calendar
from services.common.contract import Contract
from services.common.units import VN_TZ, UnitRegistry, era_at
from services.simulator.daily import traffic_factor
from services.simulator.generator import EVENT_TYPES, EventGenerator
from services.simulator.profiles import SimulationPlan, build_plan, group_by_province
from services.simulator.publisher import Publisher
from services.simulator.settings import SimulatorSettings
from services.simulator.stats import SimulatorStats

log = logging.getLogger(__name__)

# After a long stall (ingest down, laptop asleep) catch up at most this much traffic.
MAX_CATCH_UP_S: Final = 60.0
# Past traffic (``history_s``) is generated a slice of this many seconds at a time.
HISTORY_SLICE_S: Final = 60.0
# Unset ``history_s``: a day, but no more than about this many events (rate x span), so
# that `make up --simulator-rate 200` does not start with millions of past events.
AUTO_HISTORY_S: Final = 86400.0
AUTO_HISTORY_EVENTS: Final = 30_000

Clock = Callable[[], datetime]


def vietnam_now() -> datetime:
    return datetime.now(VN_TZ)


async def run(
    settings: SimulatorSettings,
    stop: asyncio.Event,
    *,
    client: httpx.AsyncClient | None = None,
    clock: Clock = vietnam_now,
) -> SimulatorStats:
    """Publish realistic traffic until ``stop`` is set; returns what was done.

    ``client`` and ``clock`` are for tests; by default a client with explicit timeouts
    is created here and time is the wall clock in Vietnam.
    """
    started = clock()
    plan = make_plan(settings, UnitRegistry.from_dir(), started)
    log_plan(plan)
    contract = Contract.load()
    calendar = office_calendar(settings)
    generator = EventGenerator(
        plan,
        # The seed fixes the plan; the start time keeps ids of separate runs apart.
        random.Random(f"{settings.seed}:{started.isoformat()}"),  # noqa: S311 - not crypto
        {event_type: contract.dataschema_uri(event_type) for event_type in EVENT_TYPES},
        late_fraction=settings.late_fraction,
        duplicate_fraction=settings.duplicate_fraction,
        calendar=calendar,
    )
    stats = SimulatorStats()
    async with contextlib.AsyncExitStack() as stack:
        if client is None:
            timeout = httpx.Timeout(settings.request_timeout_s, connect=3.0)
            client = await stack.enter_async_context(httpx.AsyncClient(timeout=timeout))
        publisher = Publisher(
            client,
            settings.ingest_url,
            stats,
            api_key=settings.api_key,
            max_attempts=settings.max_attempts,
            timeout=httpx.Timeout(settings.request_timeout_s, connect=3.0),
        )
        log.info(
            "simulating %g events/s (weekly average, profile %s) to %s for provinces %s",
            settings.rate,
            settings.profile,
            settings.ingest_url,
            ",".join(settings.provinces),
        )
        if history_span(settings):
            await _history(settings, stop, generator, publisher, clock())
        await _loop(settings, stop, generator, publisher, clock)
    stats.generated = generator.events_total
    stats.late = generator.late_total
    stats.duplicates = generator.duplicates_total
    return stats


def office_calendar(settings: SimulatorSettings) -> WorkingCalendar | None:
    """The calendar the traffic follows (public holidays included); None when flat."""
    return load_calendar(HOLIDAYS_FILE) if settings.profile == "office" else None


def history_span(settings: SimulatorSettings) -> float:
    """Seconds of past traffic to publish first (``history_s``, else the automatic span)."""
    if settings.history_s is not None:
        return settings.history_s
    return min(AUTO_HISTORY_S, AUTO_HISTORY_EVENTS / settings.rate)


def rate_at(settings: SimulatorSettings, calendar: WorkingCalendar | None, at: datetime) -> float:
    """Events per second to send at ``at``: the weekly average shaped by the calendar."""
    return settings.rate * (traffic_factor(at, calendar) if calendar is not None else 1.0)


def make_plan(settings: SimulatorSettings, registry: UnitRegistry, now: datetime) -> SimulationPlan:
    """The plan for the units in force at ``now`` of the configured provinces."""
    era = era_at(now)
    grouped = group_by_province(registry.units(era), settings.provinces)
    for province, units in grouped.items():
        if not units:
            log.warning("province %s has no units in era %s; it publishes nothing", province, era)
    plan = build_plan(
        grouped,
        random.Random(settings.seed),  # noqa: S311 - a simulation, not a secret
        silent_unit=settings.silent_unit,
        below_target_count=settings.below_target_units,
    )
    if settings.silent_unit is not None and plan.silent is None:
        log.warning("silent unit %s is not among the simulated units", settings.silent_unit)
    return plan


def log_plan(plan: SimulationPlan) -> None:
    levels: dict[str, int] = {}
    for profile in plan.profiles:
        levels[profile.level] = levels.get(profile.level, 0) + 1
    log.info("simulated units: %s", ", ".join(f"{n} {lvl}" for lvl, n in sorted(levels.items())))
    if plan.silent is not None:
        silent = plan.silent
        log.info(
            "silent unit (publishes nothing): %s %s (%s)", silent.code, silent.name, silent.province
        )
    for p in plan.below_target:
        kpi = p.below_target or ""
        rate = 100 * getattr(p.rates, kpi)
        log.info("below target: %s %s (%s) %s ~ %.0f%%", p.code, p.name, p.province, kpi, rate)


async def _history(
    settings: SimulatorSettings,
    stop: asyncio.Event,
    generator: EventGenerator,
    publisher: Publisher,
    now: datetime,
) -> None:
    """The ``history_span`` seconds before ``now`` at ``rate`` (shaped by the calendar, as
    live traffic is), oldest slice first, unpaced."""
    span = history_span(settings)
    log.info("publishing %.0f s of past traffic before going live", span)
    calendar = office_calendar(settings)
    slices = max(1, round(span / HISTORY_SLICE_S))
    width = span / slices
    owed = 0.0
    published = 0
    for i in range(slices, 0, -1):
        if stop.is_set():
            return
        end = now - timedelta(seconds=width * (i - 1))
        owed += rate_at(settings, calendar, end - timedelta(seconds=width / 2)) * width
        count = int(owed)
        owed -= count
        events = generator.generate(end, count, timedelta(seconds=width))
        for chunk in chunked(events, settings.max_batch_events):
            await publisher.publish(chunk)
        published += count
    # The soak benchmark waits for this line (bench/soak.py): keep its wording.
    log.info("past traffic published: %d events", published)


async def _loop(
    settings: SimulatorSettings,
    stop: asyncio.Event,
    generator: EventGenerator,
    publisher: Publisher,
    clock: Clock,
) -> None:
    loop = asyncio.get_running_loop()
    calendar = office_calendar(settings)
    last = loop.time()
    owed = 0.0  # fractional events carried to the next batch
    while not await _stopped_within(stop, settings.batch_interval_s):
        now = loop.time()
        elapsed = min(now - last, MAX_CATCH_UP_S)
        last = now
        at = clock()
        owed += rate_at(settings, calendar, at) * elapsed
        count = int(owed)
        owed -= count
        events = generator.generate(at, count, timedelta(seconds=elapsed))
        for chunk in chunked(events, settings.max_batch_events):
            await publisher.publish(chunk)


async def _stopped_within(stop: asyncio.Event, seconds: float) -> bool:
    """True once ``stop`` is set; False after ``seconds`` without it."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await stop.wait()
    return stop.is_set()


def chunked(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
