"""Whether events can reach the metrics workers at all: ingest answering and accepting. Pure.

Ingest is the one door every publisher goes through. While it does not answer (the
alerts service cannot read its /metrics) or answers 503 to everyone (its broker away:
every event it counted between two scrapes was ``unavailable``, none accepted), nothing
any unit publishes can arrive: the pipeline is blind, as it is for a metrics worker's
units while that worker does not answer (:meth:`services.alerts.evaluation.Evaluator.
verdicts` treats both alike). What that holds (review 77):

* silence: the span is not any unit's silence (a :class:`conditions.Blind` covering every
  unit, recorded, kept and persisted as a worker outage's is); while it lasts no unit's
  silence is judged. Before, three hours without ingest paged UnitSilent for every
  province and commune, each blamed on its own system, beside the one correct
  EgovServiceDown{service="ingest"}.
* the KPIs whose figures move without events (:data:`CLOCK_KPIS`): their figures are left
  out of the judgement, as a worker's that does not answer: a firing alert is unknown
  (neither resolved nor paged again: blind is not healthy), a pending one is cancelled
  (its breach was not seen to last), none opens. Before, dossiers resolved on time whose
  events waited at the publisher were counted open overdue by the workers' sweep at
  their appointment time, and on-call was paged that on-time resolution collapsed.
  The other KPIs count events only: with none arriving their figures stand still (a
  rolling window empties to "too little volume"), so their judgement stands too.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from services.alerts import conditions
from services.common.figures import Figure

CLOCK_KPIS = frozenset({"dossier_on_time"})
"""KPIs whose figures move with the wall clock, without any event: the on-time resolution
rate counts a dossier open overdue once its appointment passes with no resolution seen
(the metrics workers' sweep, services/metrics/dossiers.py). With ingest away, that sweep
counts dossiers resolved on time, their events held at the publisher, as overdue."""

ACCEPTED = "accepted"
UNAVAILABLE = "unavailable"


def refused_everyone(counted: conditions.Counters) -> bool | None:
    """From what ingest counted between two scrapes: True when it answered 503 to every
    event (some ``unavailable``, none accepted), False when it accepted some, None when
    nobody published meanwhile (publishers back off after a 503: what held stands)."""
    accepted = sum(c.get(ACCEPTED, 0.0) for c in counted.values())
    refused = sum(c.get(UNAVAILABLE, 0.0) for c in counted.values())
    if accepted > 0:
        return False
    return True if refused > 0 else None


DOWN_AFTER_S = 30.0
"""How long ingest may not answer before the pipeline counts as blind: longer than a
restart (a deploy: a few seconds), so a rolling deploy cancels no pending alert across
the country (review 80); a first read at start that finds it away is blind at once,
as nothing says then that anything can arrive."""

REFUSING_AFTER_S = 60.0
"""How long ingest must refuse every event (503s, nothing accepted, quiet steps
between) before the pipeline counts as blind: one publisher's batch refused in a 2 s
step when nobody else published is no outage (review 80: it blinded the country and
cancelled every pending on-time alert)."""


class IngestWatch:
    """Whether the pipeline is blind this cycle, from what the cycle read of ingest.

    ``down``: ingest is watched (``EGOV_INGEST_URL``) and did not answer: blind once it
    has not answered for :data:`DOWN_AFTER_S`, or at once if it never answered since
    this service started. Answering, it is blind once it has refused every event for
    :data:`REFUSING_AFTER_S` (steps with no event at all change nothing), until the
    first step in which it accepted one.
    """

    def __init__(self) -> None:
        self._before: conditions.IngestScrape | None = None
        self._answered = False
        self._down_since: datetime | None = None
        self._refusing_since: datetime | None = None

    def blind(self, down: bool, scrape: conditions.IngestScrape | None, now: datetime) -> bool:
        if down:
            if self._down_since is None:
                self._down_since = now
            away_s = (now - self._down_since).total_seconds()
            return not self._answered or away_s >= DOWN_AFTER_S
        self._down_since = None
        if scrape is None:  # ingest not watched
            return False
        self._answered = True
        before, self._before = self._before, scrape
        if before is not None:
            counted, _ = conditions.counted_between(before, scrape)
            refused = refused_everyone(counted)
            if refused is False:
                self._refusing_since = None
            elif refused and self._refusing_since is None:
                self._refusing_since = now
        since = self._refusing_since
        return since is not None and (now - since).total_seconds() >= REFUSING_AFTER_S


def judged_figures(figures: Sequence[Figure], blind: bool) -> Sequence[Figure]:
    """The figures a blind pipeline may still judge: all but the clock-driven KPIs'."""
    if not blind:
        return figures
    return [f for f in figures if f.kpi not in CLOCK_KPIS]
