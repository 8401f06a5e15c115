"""The alerts service's composition root: sources, conditions, book, journal, sinks.

Each step is a method the loops call and the tests call directly with an injected
time: :meth:`AlertsService.evaluate_once`, :meth:`flush`, :meth:`push_alertmanager`,
:meth:`deliver_outbox`. Start-up waits for PostgreSQL to load the open alerts (so a
restart never re-opens one as new); after that, PostgreSQL may come and go: the
evaluation continues in memory and the journal writes the backlog when it returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import orjson
from prometheus_client import CollectorRegistry

from services.alerts import conditions, store
from services.alerts.alertmanager import AlertmanagerClient, ResolvedSet, payload
from services.alerts.directory import UnitDirectory, from_units
from services.alerts.journal import UNAVAILABLE, Journal
from services.alerts.lifecycle import AlertBook
from services.alerts.model import Alert, State, Transition, Verdict
from services.alerts.outbox import Deliver, deliver_due
from services.alerts.settings import AlertsSettings
from services.alerts.sources import IngestSource
from services.alerts.telemetry import AlertsMetrics
from services.alerts.webhook import WebhookSender
from services.common.calendar import WorkingCalendar, load_calendar
from services.common.db import migrate
from services.common.figures_client import FiguresClient
from services.common.kafka import ensure_topics, make_producer
from services.common.units import UnitRegistry

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def load_directory() -> UnitDirectory:
    return from_units(UnitRegistry.from_dir().units("2025"))


class AlertsService:
    """Holds the state of one alerts process; loops are started by :meth:`start`."""

    def __init__(
        self,
        settings: AlertsSettings,
        *,
        clock: Clock = utc_now,
        directory: UnitDirectory | None = None,
        calendar: WorkingCalendar | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.metrics_registry = CollectorRegistry()
        self.book = AlertBook()
        self.metrics = AlertsMetrics(self.metrics_registry, lambda: list(self.book.open.values()))
        self.journal = Journal(self._outbox_rows)
        self.resolved = ResolvedSet(timedelta(seconds=settings.alert_resolved_resend_s))
        self.pool: asyncpg.Pool | None = None
        self.loaded = asyncio.Event()
        self.last_seen: dict[tuple[str, str], datetime] = {}
        self._dirty_seen: dict[tuple[str, str], datetime] = {}
        self._ingest_history: deque[tuple[datetime, dict[str, dict[str, float]]]] = deque()
        self._directory = directory
        self._calendar = calendar
        self._watch_start: datetime | None = None
        self._last_push: datetime | None = None
        self._last_burn: datetime | None = None
        self._push_needed = True
        self._last_done = time.time()
        self._tasks: list[asyncio.Task[None]] = []
        self._wake_flush = asyncio.Event()
        self._http = httpx.AsyncClient(timeout=settings.alert_http_timeout_s)
        self._figures = FiguresClient(
            self._http, settings.metrics_urls, settings.alert_http_timeout_s
        )
        self._producer: Any = None
        self.metrics.evaluation_lag.set_function(lambda: time.time() - self._last_done)

    # --- wiring -------------------------------------------------------------------

    @property
    def directory(self) -> UnitDirectory:
        if self._directory is None:
            self._directory = load_directory()
        return self._directory

    @property
    def calendar(self) -> WorkingCalendar:
        if self._calendar is None:
            self._calendar = load_calendar(
                self.settings.alert_holidays_file,
                always=self.settings.alert_silent_calendar == "always",
            )
        return self._calendar

    def _sinks(self) -> dict[str, Deliver]:
        sinks: dict[str, Deliver] = {}
        if self.settings.alert_webhook_url:
            sender = WebhookSender(
                self._http,
                self.settings.alert_webhook_url,
                self.settings.alert_webhook_secret.get_secret_value(),
            )

            async def webhook(msg_id: str, body: dict[str, Any]) -> None:
                await sender.send(msg_id, body, self.clock())

            sinks["webhook"] = webhook
        if self.settings.alert_kafka_enabled:
            sinks["kafka"] = self._send_kafka
        return sinks

    def _outbox_rows(self, t: Transition) -> list[tuple[str, dict[str, Any]]]:
        event = transition_event(t)
        rows: list[tuple[str, dict[str, Any]]] = []
        if self.settings.alert_kafka_enabled:
            rows.append(("kafka", event))
        notify = t.to_state is State.FIRING or (
            t.to_state is State.RESOLVED and t.alert.fired_at is not None
        )
        if self.settings.alert_webhook_url and notify:
            kind = "alert.firing" if t.to_state is State.FIRING else "alert.resolved"
            rows.append(("webhook", {"type": kind, "timestamp": t.at.isoformat(), "data": event}))
        return rows

    async def _send_kafka(self, transition_id: str, event: dict[str, Any]) -> None:
        timeout = self.settings.kafka_request_timeout_s
        if self._producer is None:
            await ensure_topics(self.settings, [self.settings.topic_alerts])
            producer = make_producer(self.settings)
            await asyncio.wait_for(producer.start(), timeout)
            self._producer = producer
        await asyncio.wait_for(
            self._producer.send_and_wait(
                self.settings.topic_alerts,
                key=event["identity"].encode(),
                value=orjson.dumps(event),
                headers=[("transition_id", transition_id.encode())],
            ),
            timeout,
        )

    # --- state ----------------------------------------------------------------------

    async def connect(self) -> None:
        """Connect, migrate, load the open alerts and last-seen table; retries forever."""
        delay = 0.5
        while True:
            try:
                pool = await store.create_pool(self.settings.database_url.get_secret_value())
                async with pool.acquire() as conn:
                    await migrate(conn)
                    open_alerts = await store.load_open(conn)
                    since = self.clock() - timedelta(seconds=self.settings.alert_resolved_resend_s)
                    resolved = await store.load_resolved_since(conn, since)
                    seen = await store.load_activity(conn)
                break
            except UNAVAILABLE as exc:
                log.warning("PostgreSQL unavailable (%r); retrying in %.1f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
        self.pool = pool
        self.book = AlertBook(open_alerts)
        for alert in resolved:
            self.resolved.add(alert)
        for key, at in seen.items():
            self.last_seen[key] = max(at, self.last_seen.get(key, at))
        self._watch_start = self.clock()
        self.loaded.set()
        log.info("loaded %d open alerts", len(self.book.open))

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        if self._producer is not None:
            with contextlib.suppress(Exception):
                await self._producer.stop()
        await self._http.aclose()
        if self.pool is not None:
            await self.pool.close()
            self.pool = None

    # --- one evaluation -------------------------------------------------------------

    async def evaluate_once(self, now: datetime | None = None) -> list[Transition]:
        now = now or self.clock()
        started = time.perf_counter()
        verdicts = await self._verdicts(now)
        transitions = self.book.observe(verdicts, now)
        self.journal.extend(transitions)
        for t in transitions:
            self.metrics.transitions.labels(t.alert.key.condition, t.to_state.value).inc()
            if t.to_state is State.RESOLVED:
                self.resolved.add(t.alert)
            if t.to_state in (State.FIRING, State.RESOLVED):
                self._push_needed = True
                log.info("%s %s: %s", t.to_state.value, t.alert.key,
                         t.alert.annotations.get("summary", ""))  # fmt: skip
        self.metrics.journal_backlog.set(len(self.journal))
        self.metrics.evaluation_seconds.observe(time.perf_counter() - started)
        self.metrics.last_evaluation.set(time.time())
        self._last_done = time.time()
        if transitions:
            self._wake_flush.set()
        return transitions

    def _burn_due(self, now: datetime) -> bool:
        """Burn windows are read every burn interval, and whenever a burn alert is due."""
        s = self.settings
        if not s.alert_burn_enabled:
            return False
        if self._last_burn is None or (now - self._last_burn).total_seconds() >= (
            s.alert_burn_interval_s
        ):
            return True
        last = self._last_burn
        return any(  # due since the last read (once: a pending one left unknown never spins)
            a.key.condition == conditions.BURN and last < self.due_at(a) <= now
            for a in self.book.open.values()
            if a.state is State.PENDING
        )

    def due_at(self, alert: Alert) -> datetime:
        """When a pending alert may fire if its breach holds until then."""
        s = self.settings
        hold = {conditions.BELOW: s.alert_for_s, conditions.BURN: s.alert_burn_for_s}
        return alert.pending_since + timedelta(seconds=hold.get(alert.key.condition, 0.0))

    def next_due(self) -> datetime | None:
        """The earliest moment a pending alert may fire: the loop evaluates then."""
        pending = [self.due_at(a) for a in self.book.open.values() if a.state is State.PENDING]
        return min(pending, default=None)

    async def _verdicts(self, now: datetime) -> list[Verdict]:
        s = self.settings
        burn = self._burn_due(now)
        windows = list(s.alert_windows)
        if burn:
            windows += [w for w in conditions.BURN_WINDOWS if w not in windows]
        reading = await self._figures.read(windows)
        if reading.errors:
            self.metrics.source_errors.inc(len(reading.errors))
            log.warning("metrics workers unavailable: %s", reading.errors)
        figures = reading.figures()
        tracked = self.book.open  # identities with an open alert: see conditions.py
        verdicts = list(
            conditions.kpi_below_target(figures, s.alert_windows, s.alert_hysteresis,
                                        s.alert_for_s, tracked)
        )  # fmt: skip
        if burn:
            # Cycles without the burn windows say nothing about burn alerts (unknown:
            # the lifecycle leaves them as they are).
            verdicts += conditions.kpi_budget_burn(figures, s.alert_burn_for_s, tracked)
            self._last_burn = now
        self._remember({(a.unit, a.family): a.last_event_time for a in reading.activity()})
        if not reading.errors and self._watch_start is not None:
            # A worker that did not answer would make its units look silent: skip.
            rule = conditions.SilenceRule(
                s.alert_silent_after_s, s.alert_silent_lookback_days, s.alert_silent_peer_share
            )
            verdicts += conditions.unit_silent(
                self.last_seen, now, self._watch_start, self.calendar, self.directory, rule
            )
        verdicts += await self._ingest_verdicts(now)
        return verdicts

    def _remember(self, seen: dict[tuple[str, str], datetime]) -> None:
        for key, at in seen.items():
            if key not in self.last_seen or at > self.last_seen[key]:
                self.last_seen[key] = at
                self._dirty_seen[key] = at

    async def _ingest_verdicts(self, now: datetime) -> list[Verdict]:
        s = self.settings
        if not s.ingest_url:
            return []
        counters = await IngestSource(self._http, s.ingest_url).read()
        if counters is None:
            return []
        history = self._ingest_history
        history.append((now, counters))
        window = timedelta(seconds=s.alert_rejection_window_s)
        while len(history) > 2 and now - history[1][0] >= window:
            history.popleft()
        if len(history) < 2:
            return []
        rule = conditions.RejectionRule(
            s.alert_rejection_share, s.alert_rejection_min_events,
            f"{int(s.alert_rejection_window_s // 60)}m",
        )  # fmt: skip
        return list(conditions.ingest_rejections(history[0][1], counters, rule))

    # --- writing and delivering -----------------------------------------------------

    async def flush(self) -> int:
        """Write the journal and the changed last-seen entries; raises if PG is away."""
        if self.pool is None:
            raise ConnectionError("PostgreSQL not connected yet")
        written = await self.journal.flush(self.pool)
        if self._dirty_seen:
            dirty, self._dirty_seen = self._dirty_seen, {}
            try:
                async with self.pool.acquire() as conn:
                    await store.save_activity(conn, dirty)
            except BaseException:
                for key, at in dirty.items():
                    self._dirty_seen.setdefault(key, at)
                raise
        self.metrics.journal_backlog.set(len(self.journal))
        return written

    def alertmanager_batch(self, now: datetime) -> list[dict[str, Any]]:
        expiry = timedelta(seconds=4 * self.settings.alert_resend_s)
        base = self.settings.alerts_public_url.rstrip("/")
        firing: list[Alert] = [a for a in self.book.open.values() if a.state is State.FIRING]
        return [payload(a, now, expiry, base) for a in [*firing, *self.resolved]]

    async def push_alertmanager(self, now: datetime | None = None, force: bool = False) -> bool:
        """Send the firing and recently resolved alerts if due; False if it failed."""
        if not self.settings.alertmanager_url:
            return True
        now = now or self.clock()
        resend = timedelta(seconds=self.settings.alert_resend_s)
        due = self._push_needed or self._last_push is None or now - self._last_push >= resend
        if not (due or force):
            return True
        batch = self.alertmanager_batch(now)
        try:
            sent = await AlertmanagerClient(self._http, self.settings.alertmanager_url).post(batch)
        except Exception as exc:
            log.warning("Alertmanager push failed: %r", exc)
            self.metrics.notifications.labels("alertmanager", "failed").inc()
            self._push_needed = True
            return False
        self.metrics.notifications.labels("alertmanager", "sent").inc(sent)
        self._last_push = now
        self._push_needed = False
        self.resolved.delivered(now)
        return True

    async def deliver_outbox(self) -> int:
        if self.pool is None:
            return 0
        return await deliver_due(self.pool, self._sinks(), self.metrics)

    # --- loops ----------------------------------------------------------------------

    def start_loops(self) -> None:
        self._tasks = [
            asyncio.create_task(self._run_connect_then_evaluate(), name="alerts-evaluate"),
            asyncio.create_task(self._run_flush(), name="alerts-flush"),
            asyncio.create_task(self._run_outbox(), name="alerts-outbox"),
        ]

    async def _run_connect_then_evaluate(self) -> None:
        await self.connect()
        interval = self.settings.alert_interval_s
        while True:
            started = time.monotonic()
            try:
                await self.evaluate_once()
                await self.push_alertmanager()
            except Exception:
                log.exception("evaluation failed")
            wait = interval - (time.monotonic() - started)
            due = self.next_due()
            if due is not None:
                # Evaluate again the moment a pending alert may fire rather than up to an
                # interval later (a hair after, so the elapsed time is not a hair short).
                # A due time already past (its unit unknown last cycle) waits the interval.
                until = (due - self.clock()).total_seconds() + 0.01
                if until > 0:
                    wait = min(wait, until)
            await asyncio.sleep(max(0.0, wait))

    async def _run_flush(self) -> None:
        await self.loaded.wait()
        delay = 0.5
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake_flush.wait(), 5)
            self._wake_flush.clear()
            try:
                await self.flush()
                delay = 0.5
            except UNAVAILABLE as exc:
                log.warning("PostgreSQL unavailable (%r): %d transitions kept; retry in %.1f s",
                            exc, len(self.journal), delay)  # fmt: skip
            except Exception:
                # Anything else (a full connection pool, a bad value) must not end this
                # loop: the journal would only grow and nothing more would be notified.
                log.exception("writing %d transitions failed; retry in %.1f s",
                              len(self.journal), delay)  # fmt: skip
            else:
                continue
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)
            self._wake_flush.set()

    async def _run_outbox(self) -> None:
        await self.loaded.wait()
        while True:
            try:
                await self.deliver_outbox()
            except UNAVAILABLE as exc:
                log.warning("outbox: PostgreSQL unavailable (%r)", exc)
            except Exception:
                log.exception("outbox round failed")
            await asyncio.sleep(1.0)

    async def database_ok(self) -> bool:
        if self.pool is None:
            return False
        try:
            async with asyncio.timeout(3):
                await self.pool.fetchval("SELECT 1")
        except UNAVAILABLE:
            return False
        except asyncpg.PostgresError:
            return False
        return True


def transition_event(t: Transition) -> dict[str, Any]:
    """A transition as published to Kafka and the webhook (consumers dedupe on its id)."""
    return {
        "transition_id": t.id,
        "identity": str(t.alert.key),
        "from": t.from_state.value if t.from_state else None,
        "to": t.to_state.value,
        "at": t.at.isoformat(),
        "values": t.values,
        "alert": store.alert_json(t.alert),
    }
