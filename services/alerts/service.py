"""The alerts service's composition root: sources, evaluation, alert state, delivery, loops.

Three parts, wired here and nowhere else:

- evaluation (:mod:`services.alerts.evaluation`): pure, figures in, verdicts out;
- alert state (:mod:`services.alerts.state`): the lifecycle and its persistence;
- delivery (:mod:`services.alerts.delivery`): Alertmanager, webhook, Kafka.

Each step is a method the loops call and the tests call directly with an injected
time: :meth:`AlertsService.evaluate_once`, :meth:`flush`, :meth:`push_alertmanager`,
:meth:`deliver_outbox`.

The loops (:meth:`AlertsService.start_loops`, what ``egov-pulse alerts`` runs) run only
while this process holds the database's alerts lock (:mod:`services.alerts.lease`):
until then it is a standby, and a lock lost stops them at once and makes it one again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, date, datetime, timedelta

import asyncpg
import httpx
from prometheus_client import CollectorRegistry

from services.alerts import cadence, lease, loops, silence_memory, sources, store
from services.alerts.delivery import Delivery
from services.alerts.directory import UnitDirectory, from_units
from services.alerts.evaluation import Evaluator, Observation
from services.alerts.journal import UNAVAILABLE
from services.alerts.model import State, Transition
from services.alerts.settings import AlertsSettings
from services.alerts.silence_memory import SilenceMemory
from services.alerts.sources import IngestSource
from services.alerts.spool import Spool
from services.alerts.state import AlertState
from services.alerts.telemetry import AlertsMetrics
from services.common.calendar import VN_TZ, WorkingCalendar, load_calendar
from services.common.contract import kpi_families
from services.common.db import outage_cause
from services.common.figures_client import FiguresClient
from services.common.pglease import AdvisoryLease
from services.common.units import UnitRegistry

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]

KEYS_WAIT_S = 1.0
"""How long an evaluation waits for the ingest keys' names before it goes on with the
last ones known: the read is a few rows, so only a lock or an outage makes it longer,
and a cycle must not wait for either (alerts evaluate every few seconds)."""

CLOSING_FLUSH_S = 5.0
"""How long closing waits for the last flush: well inside a container's stop grace
(10 s by default), and a PostgreSQL that does not answer by then is away."""

LOCK_CHECK_S = 2.0
"""How often the active service pings its lock's session between write steps (each
cycle, flush and outbox round also confirms it first): with the ping's own 2 s bound, a
lost lock is noticed within about 4 s, well before the server's keepalives free it
(about 25 s) for another service to take."""


def utc_now() -> datetime:
    return datetime.now(UTC)


def load_directory() -> UnitDirectory:
    return from_units(UnitRegistry.from_dir().units("2025"))


class AlertsService:
    """One alerts process: its three parts, the sources they read, and the loops."""

    def __init__(
        self,
        settings: AlertsSettings,
        *,
        clock: Clock = utc_now,
        directory: UnitDirectory | None = None,
        calendar: WorkingCalendar | None = None,
        families: Mapping[str, str] | None = None,
    ) -> None:
        self.settings = settings
        self._families = dict(families) if families is not None else kpi_families()
        self.clock = clock
        self.metrics_registry = CollectorRegistry()
        self._http = httpx.AsyncClient(timeout=settings.alert_http_timeout_s)
        self.metrics = AlertsMetrics(self.metrics_registry, lambda: list(self.state.open.values()))
        self._calendar = calendar or load_calendar(
            settings.alert_holidays_file, always=settings.alert_silent_calendar == "always"
        )
        self._directory = directory if directory is not None else load_directory()
        self.delivery, self.state, self.evaluator = self._parts()
        self._figures = FiguresClient(
            self._http, settings.metrics_urls, settings.alert_http_timeout_s
        )
        self._ingest: IngestSource | None = None
        if settings.ingest_url:
            self._ingest = IngestSource(self._http, settings.ingest_url)
        self._learned_on: date | None = None
        self._last_done = time.time()
        self._tasks: list[asyncio.Task[None]] = []
        self._keys_read: asyncio.Task[None] | None = None
        """The ingest keys' read in flight (:meth:`_learn_keys`), if any."""
        self._wake_flush = asyncio.Event()
        self._restored_current = False
        """Whether every firing alert has been judged on figures read since start: until
        then some carry the figures they were stored with (:meth:`_may_push`)."""
        self._connected_at: datetime | None = None
        self._unwritten_silence: SilenceMemory | None = None
        """The silence memory of a term that lost the lock, kept until the next load
        merges it with PostgreSQL's: the flush may not have written its spans yet."""
        self.metrics.evaluation_lag.set_function(lambda: time.time() - self._last_done)
        self._lease: AdvisoryLease | None = None
        """The database's alerts lock, once the loops run (None: connected directly)."""
        self.role = "standby"
        """"active" while the loops hold the lock; "standby" until then (/healthz)."""
        self.metrics.active.set_function(lambda: float(self.role == "active"))

    def _parts(self) -> tuple[Delivery, AlertState, Evaluator]:
        """Delivery, alert state and evaluator as a fresh start has them."""
        settings = self.settings
        delivery = Delivery(settings, self._http, self.metrics, lambda: self.clock())
        spool = Spool(settings.alert_state_file) if settings.alert_state_file else None
        state = AlertState(
            delivery.outbox_rows, spool, nobody_to_tell=not settings.alertmanager_url
        )
        evaluator = Evaluator(settings, self._calendar, self._directory, self._families)
        return delivery, state, evaluator

    @property
    def pool(self) -> asyncpg.Pool | None:
        """The database pool once connected (the HTTP API reads and writes through it)."""
        return self.state.pool

    # --- start and stop -------------------------------------------------------------

    async def connect(self, held: AdvisoryLease | None = None) -> None:
        """Connect, migrate, load the open alerts and last-seen table; retries forever.

        With ``held`` (the loops' lock), first stand by until it is held: a process that
        finds another holding it forgets what it restored from the state file (the other
        keeps that file) and restores it again once it takes over."""
        self._restore()
        keep_told = asyncio.create_task(self._tell_alertmanager_while_waiting())

        def standing() -> None:
            # Another holds the lock: it tells Alertmanager, and the alerts restored are
            # its own; kept, /metrics would count each of them twice (review 92).
            keep_told.cancel()
            self._forget_restored()

        try:
            if held is not None:
                if await lease.stand_by(held, self.settings.alert_standby_retry_s,
                                        standing):  # fmt: skip
                    await self._fresh_start()
                    self._restore()
                self.role = "active"
            since = self.clock() - timedelta(seconds=self.settings.alert_resolved_resend_s)
            dsn = self.settings.database_url.get_secret_value()
            resolved = await self.state.load(dsn, since, self.clock())
        finally:
            keep_told.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keep_told
        self.delivery.recall(resolved)
        # The file matches PostgreSQL from now on, whatever the last run left (nothing,
        # a stale or a torn file): a crash before the first transition loses nothing.
        await self.state.save(self.clock())
        self.evaluator.start_watching(self.state.watch_start or self.clock())
        recalled = silence_memory.merged(self.state.silence, self._unwritten_silence)
        if recalled is not None:
            self.evaluator.recall(recalled)
        self._unwritten_silence = None  # in the evaluator, written by the next flush
        self._connected_at = self.clock()
        self.role = "active"  # with the lock held, or connected directly (tests, tools)
        await self._try_learn()

    def _forget_restored(self) -> None:
        """A standby holds no alerts: what :meth:`_restore` read is the active service's.
        Nothing was started yet (no pool, no producer): new parts replace the old."""
        self.delivery, self.state, self.evaluator = self._parts()

    def _restore(self) -> None:
        spooled = self.state.restore()
        if spooled is not None:
            self.delivery.recall(t.alert for t in spooled.journal if t.to_state is State.RESOLVED)

    async def _tell_alertmanager_while_waiting(self) -> None:
        """While start-up waits for PostgreSQL: the firing alerts restored from local disk
        are pushed every resend interval, or Alertmanager, hearing nothing, expires them
        (endsAt) and says "resolved" for units still failing, then pages again."""
        if not self.state.firing():
            return
        while True:
            # One resend interval first: the last run pushed at most that long ago, and a
            # PostgreSQL that answers meanwhile is the better source.
            await asyncio.sleep(self.settings.alert_resend_s)
            await self.push_alertmanager(force=True)

    async def learn_cadence(self, now: datetime | None = None) -> int:
        """Learn every unit's usual cadence again from the daily figures; raises if PG is away."""
        if self.state.pool is None:
            raise ConnectionError("PostgreSQL not connected yet")
        now = now or self.clock()
        calendar = self.evaluator.calendar
        today = now.astimezone(VN_TZ).date()
        first = calendar.working_days_back(now, self.settings.alert_silent_cadence_days).date()
        async with self.state.pool.acquire() as conn:
            rows = await sources.daily_history(conn, self._families, first, today)
        last_seen = self.state.last_seen  # a unit's current silence is no habit to learn
        self.evaluator.learned(cadence.learn(rows, calendar, first, today, last_seen))
        self._learned_on = today
        return len(rows)

    async def _try_learn(self) -> None:
        """Learn once per local day: only completed days count, so within a day the
        cadences cannot change (and the query scans the daily figures of every unit)."""
        if self._learned_on == self.clock().astimezone(VN_TZ).date():
            return
        try:
            learned = await self.learn_cadence()
        except UNAVAILABLE as exc:
            log.warning("cadences not learned: %s", outage_cause(exc))
        except Exception:
            # The previous cadences (or the family floors) stay: silence is still judged.
            log.exception("learning the cadences failed")
        else:
            log.info("learned the usual cadence of %d (unit, family) pairs", learned)

    async def close(self) -> None:
        await self._stop_tasks()
        if self._lease is None or self._lease.held:
            await self._last_flush()
        # After the last flush: a standby takes over only once our writes are in.
        if self._lease is not None:
            await self._lease.release()
        await self.delivery.close()
        await self._http.aclose()
        await self.state.close()

    async def _stop_tasks(self) -> None:
        if self._keys_read is not None:
            self._tasks.append(self._keys_read)
            self._keys_read = None
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()

    async def _last_flush(self) -> None:
        # A standby never loaded anything: it has nothing to write, and must not write
        # the state file the active service (on the same volume) keeps.
        if self.state.pool is None:
            return
        # The last cycles' journal and silence memory to PostgreSQL if it answers soon: a
        # deploy's SIGTERM would otherwise forget what the flush loop had not written yet
        # (the memory is kept nowhere else). Away, the state file keeps the journal.
        try:
            await asyncio.wait_for(self.flush(), CLOSING_FLUSH_S)
        except UNAVAILABLE as exc:
            log.warning("last flush at close not written: %s", outage_cause(exc))
        await self.state.save(self.clock())  # what the journal still holds survives us

    # --- one evaluation -------------------------------------------------------------

    async def evaluate_once(self, now: datetime | None = None) -> list[Transition]:
        now = now or self.clock()
        started = time.perf_counter()
        seen = await self._observe(now)
        verdicts = self.evaluator.verdicts(seen, self.state.open, self.state.last_seen, now)
        transitions = self.state.apply(verdicts, now)
        self.state.remember_silence(self.evaluator.memory())
        if transitions or self.state.book.holds_changed:
            # On disk before anyone is told; a burn alert's hold too, so a restart keeps it.
            await self.state.save(now)
        self.delivery.note(transitions)
        for t in transitions:
            self.metrics.transitions.labels(t.alert.key.condition, t.to_state.value).inc()
            if t.to_state in (State.FIRING, State.RESOLVED):
                log.info("%s %s: %s", t.to_state.value, t.alert.key,
                         t.alert.annotations.get("summary", ""))  # fmt: skip
        self.metrics.journal_backlog.set(len(self.state.journal))
        self.metrics.evaluation_seconds.observe(time.perf_counter() - started)
        self.metrics.last_evaluation.set(time.time())
        self._last_done = time.time()
        if transitions:
            self._wake_flush.set()
        return transitions

    async def _observe(self, now: datetime) -> Observation:
        """Read what the plan asks from every worker and from ingest."""
        plan = self.evaluator.plan(self.state.open, now)
        reading = await self._figures.read(plan.windows)
        if reading.errors:
            self.metrics.source_errors.inc(len(reading.errors))
            log.warning("metrics workers unavailable: %s", reading.errors)
        self.state.remember({(a.unit, a.family): a.last_event_time for a in reading.activity()})
        ingest = await self._ingest.read() if self._ingest is not None else None
        if ingest is not None:
            await self._learn_keys()
        down = self._ingest is not None and ingest is None
        return Observation(plan, reading.figures(), not reading.errors, ingest, down)

    async def _learn_keys(self) -> None:
        """The ingest keys' names and provinces, read again each cycle (a few rows; a key
        issued a minute ago is named in its first alert). Never stops the evaluation: the
        read runs as a task of its own, waited for ``KEYS_WAIT_S`` at most; past that (an
        operator's lock on ingest_api_keys) this cycle and the next go on with the last
        names known while the read ends on its own (lock_timeout), and a new read starts
        only once it has."""
        pool = self.state.pool
        if pool is None or (self._keys_read is not None and not self._keys_read.done()):
            return
        self._keys_read = asyncio.create_task(self._read_keys(pool), name="alerts-ingest-keys")
        done, _ = await asyncio.wait({self._keys_read}, timeout=KEYS_WAIT_S)
        if not done:
            log.warning("ingest keys: PostgreSQL has not answered in %.1f s (waiting for a "
                        "lock on ingest_api_keys?); evaluating with the last names known",
                        KEYS_WAIT_S)  # fmt: skip

    async def _read_keys(self, pool: asyncpg.Pool) -> None:
        """Read the keys' names; whatever fails, the last ones stay and it is said why."""
        try:
            async with pool.acquire() as conn:
                self.evaluator.known_keys(await sources.ingest_keys(conn))
        except UNAVAILABLE as exc:
            log.warning("ingest keys not read, the last names known stay: %s", outage_cause(exc))
        except Exception:
            log.exception("ingest keys not read, the last names known stay")

    def next_due(self) -> datetime | None:
        return self.evaluator.next_due(self.state.open.values())

    # --- writing and delivering -----------------------------------------------------

    async def flush(self) -> int:
        """Write the journal and the changed last-seen entries; raises if PG is away."""
        written = await self.state.flush()
        self.metrics.journal_backlog.set(len(self.state.journal))
        if written:
            await self.state.save(self.clock())
        return written

    async def push_alertmanager(self, now: datetime | None = None, force: bool = False) -> bool:
        """Send the firing and recently resolved alerts if due; False if it failed."""
        loaded = self.state.loaded.is_set()
        pushed = await self.delivery.push(self.state.firing(), now or self.clock(), force, loaded)
        await self._mark_told()
        return pushed

    async def _mark_told(self) -> None:
        """Mark the resolutions Alertmanager accepted; PostgreSQL away: at the next push."""
        told = self.delivery.told
        if not told or self.state.pool is None:
            return
        ids = sorted(told)
        try:
            async with self.state.pool.acquire() as conn:
                await store.mark_resolutions_told(conn, ids, self.clock())
        except UNAVAILABLE as exc:
            log.warning("resolutions told not marked (at the next push): %s", outage_cause(exc))
            return
        told.difference_update(ids)

    async def deliver_outbox(self) -> int:
        return await self.delivery.deliver_outbox(self.state.pool)

    # --- loops ----------------------------------------------------------------------

    def start_loops(self) -> None:
        """Stand by until this process holds the alerts lock, then run the loops until
        it closes or loses the lock (then stand by again)."""
        dsn = self.settings.database_url.get_secret_value()
        self._lease = lease.alerts_lease(dsn)
        self._tasks = [asyncio.create_task(self._run(self._lease), name="alerts-run")]

    async def _run(self, held: AdvisoryLease) -> None:
        retry = self.settings.alert_standby_retry_s
        while True:
            self.role = "standby"
            try:
                if await self._until_lost(held, self.connect(held)):
                    await self._serve(held)
                else:
                    log.error("the alerts lock was lost while loading: standing by")
            except Exception:
                # Anything unforeseen (a database not created yet): stand by and retry,
                # never end with no loop running and nothing said.
                log.exception("the alerts service stopped; standing by")
            self.role = "standby"
            await self._fresh_start()
            await held.release()
            await asyncio.sleep(retry)

    @staticmethod
    async def _until_lost(held: AdvisoryLease, work: Awaitable[None]) -> bool:
        """``work`` (the start: stand by, then load) unless the lock, once taken, is lost
        meanwhile (a PostgreSQL restart during the load): then it is stopped at once, and
        False returned."""
        task = asyncio.ensure_future(work)
        lost = asyncio.create_task(held.lost.wait())
        try:
            await asyncio.wait({task, lost}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            lost.cancel()
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if task.cancelled():
            return False
        task.result()  # raises what the start raised
        return True

    async def _serve(self, held: AdvisoryLease) -> None:
        """The loops, from a fresh load, until the lock is lost (a loop that ends on an
        error ends them all: the caller stands by and starts again)."""

        def backlog() -> int:
            return len(self.state.journal)

        refresh = self.settings.alert_silent_cadence_refresh_s
        steps = [
            asyncio.create_task(
                loops.evaluate(self._cycle, self.settings.alert_interval_s, self.next_due,
                               self.clock),
                name="alerts-evaluate",
            ),
            asyncio.create_task(
                loops.write(self._held(self.flush), self._wake_flush, backlog),
                name="alerts-flush",
            ),
            asyncio.create_task(
                loops.every(self._held(self.deliver_outbox), 1.0, "outbox"),
                name="alerts-outbox",
            ),
            asyncio.create_task(
                loops.every(self._try_learn, refresh, "cadence", first_wait=True),
                name="alerts-cadence",
            ),
        ]  # fmt: skip
        watch = asyncio.create_task(self._watch(held), name="alerts-lock-watch")
        try:
            done, _ = await asyncio.wait({watch, *steps}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (watch, *steps):
                task.cancel()
            for task in (watch, *steps):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        if watch not in done:
            for task in done:
                task.result()  # a loop's unforeseen end, raised to the caller
        log.error("the alerts lock is lost: stopped evaluating, writing and delivering; "
                  "standing by to take it again and load the state afresh")  # fmt: skip

    @staticmethod
    async def _watch(held: AdvisoryLease) -> None:
        """Return once the lock is known lost: told by asyncpg, or a ping that fails."""
        while await held.confirm():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(held.lost.wait(), LOCK_CHECK_S)

    def _held(self, step: Callable[[], Awaitable[int]]) -> Callable[[], Awaitable[int]]:
        """``step`` only while the lock is held: a write step confirms it first."""

        async def guarded() -> int:
            if self._lease is not None and not await self._lease.confirm():
                return 0  # the watcher stops every loop at once
            return await step()

        return guarded

    async def _fresh_start(self) -> None:
        """Forget what the lost term held in memory: the next holder of the lock (maybe
        another service) decides from PostgreSQL, and so does this one when it takes the
        lock back (:meth:`connect`, as a start does). Unwritten transitions are in the
        state file, which that load writes first; the silence memory's spans are kept
        (``_unwritten_silence``) and merged with PostgreSQL's at that load."""
        if self._keys_read is not None:
            self._keys_read.cancel()
            self._keys_read = None
        if self.state.pool is not None:
            self.state.pool.terminate()  # PostgreSQL may be away: no graceful close
            self.state.pool = None
        with contextlib.suppress(Exception):
            await self.delivery.close()
        if self.state.loaded.is_set():
            # The spans observed since the last flush (a worker outage that just ended)
            # are kept nowhere else, and the outage that ended the lock's session is
            # often PostgreSQL's, when no flush writes (review 92).
            self._unwritten_silence = silence_memory.merged(
                self._unwritten_silence, self.evaluator.memory()
            )
        self.delivery, self.state, self.evaluator = self._parts()
        self._learned_on = None
        self._restored_current = False
        self._connected_at = None
        self._wake_flush = asyncio.Event()

    async def _cycle(self) -> None:
        if self._lease is not None and not await self._lease.confirm():
            return  # the watcher stops every loop at once
        transitions = await self.evaluate_once()
        if self._may_push(transitions):
            await self.push_alertmanager()

    def _may_push(self, transitions: list[Transition]) -> bool:
        """Whether this cycle may push. Just after a start the open alerts hold the
        figures they were stored with (the firing's, or the last transition's); while the
        workers do not answer yet (or answer before their figures are in), pushing them
        made Alertmanager tell on-call those old figures as current (review 57: "10 / 20"
        sent while the wall read 30 / 40). So until every firing alert was judged again,
        only a transition is pushed, or the resend interval since start running out
        (Alertmanager must not expire what still fires).
        """
        started = self._connected_at
        if self._restored_current or started is None:
            return True
        if all(a.updated_at >= started for a in self.state.firing()):
            # Each now carries figures read since start: Alertmanager hears them at once
            # rather than at the next resend.
            self._restored_current = True
            self.delivery.request_push()
            return True
        if transitions or self.delivery.acknowledgement_due:
            return True  # news (a page, an acknowledgement's silence) goes out at once
        waited = (self.clock() - started).total_seconds()
        return waited >= self.settings.alert_resend_s
