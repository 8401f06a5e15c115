"""The open alerts and the transitions not yet in PostgreSQL, on local disk.

PostgreSQL holds the alerts' history, but it can be away when the service restarts
(a deploy, a crash, an OOM during a database outage). Without a local copy, the
restarted service forgot what it had decided meanwhile (an alert resolved while the
database was away came back firing and paged again) and, while it waited for the
database, told Alertmanager nothing, which then expired the firing alerts (a
"resolved" for a unit still failing, then a second page).

The spool is one small JSON file, replaced whole and atomically (a temporary file,
fsync, rename, fsync of the folder) after every evaluation that changed something,
every flush, and at close. It holds the open alerts (with a held burn alert's
``clear_since``, which PostgreSQL's row does not have) and the unwritten journal, so:

- at start, before PostgreSQL answers, the service knows its open alerts and keeps
  Alertmanager told of the firing ones;
- once PostgreSQL answers, an unwritten journal is written first (idempotent on the
  transition ids) and the open alerts are those the journal led to, not the older rows.

``EGOV_ALERT_STATE_FILE`` names it (`make up`: var/alerts/state.json; docker-compose: a
volume); unset, the service keeps no local copy and says so at start.
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from services.alerts.model import Alert, AlertKey, State, Transition
from services.alerts.store import alert_json

log = logging.getLogger(__name__)

VERSION = 1


@dataclass(frozen=True, slots=True)
class Spooled:
    """What a previous run left: its open alerts and the transitions it had not written."""

    open: list[Alert]
    journal: list[Transition]
    written_at: datetime
    stale: bool = False
    """Set aside after a write failed: later decisions are missing, so its open alerts
    are not pushed to Alertmanager; its journal is still written (a no-op for what
    PostgreSQL has)."""


class SpoolUnreadable(OSError):
    """The file could be neither read nor set aside: this run must not write over it."""


def _when(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value is not None else None


def alert_from_json(d: dict[str, Any]) -> Alert:
    """The inverse of :func:`services.alerts.store.alert_json`."""
    pending_since, updated_at = _when(d["pending_since"]), _when(d["updated_at"])
    if pending_since is None or updated_at is None:
        raise ValueError(f"alert {d.get('id')} without pending_since or updated_at")
    return Alert(
        id=d["id"],
        key=AlertKey(d["condition"], d["kpi"], d["unit"], d["window"]),
        state=State(d["state"]),
        severity=d["severity"],
        province=d["province"],
        labels=d["labels"],
        annotations=d["annotations"],
        values=d["values"],
        pending_since=pending_since,
        updated_at=updated_at,
        fired_at=_when(d["fired_at"]),
        resolved_at=_when(d["resolved_at"]),
        acked_at=_when(d["acked_at"]),
        acked_by=d["acked_by"],
        clear_since=_when(d.get("clear_since")),  # open alerts only; older files lack it
    )


def _open_json(alert: Alert) -> dict[str, Any]:
    """An open alert as the file keeps it: its API view, and when a firing burn alert's
    hold began (not in the API view nor the row: it changes without a transition)."""
    since = alert.clear_since
    return {**alert_json(alert), "clear_since": since.isoformat() if since else None}


def _transition_json(t: Transition) -> dict[str, Any]:
    return {
        "id": t.id,
        "alert": alert_json(t.alert),
        "from": t.from_state.value if t.from_state is not None else None,
        "to": t.to_state.value,
        "at": t.at.isoformat(),
        "values": t.values,
    }


def _transition_from_json(d: dict[str, Any]) -> Transition:
    return Transition(
        id=d["id"],
        alert=alert_from_json(d["alert"]),
        from_state=State(d["from"]) if d["from"] is not None else None,
        to_state=State(d["to"]),
        at=datetime.fromisoformat(d["at"]),
        values=d["values"],
    )


def encode(open_alerts: list[Alert], journal: list[Transition], now: datetime) -> bytes:
    """The file's bytes; built on the event loop (a consistent snapshot), written off it."""
    return orjson.dumps(
        {
            "version": VERSION,
            "written_at": now.isoformat(),
            "open": [_open_json(a) for a in open_alerts],
            "journal": [_transition_json(t) for t in journal],
        }
    )


class Spool:
    """One file, replaced whole: never half written, whatever stops the process."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, data: bytes) -> None:
        """Replace the file with ``data`` atomically and durably (blocking: run it in a
        thread)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(prefix=".state-", dir=self.path.parent)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        self.stale_path.unlink(missing_ok=True)  # superseded
        folder = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)  # the rename itself survives a power cut
        finally:
            os.close(folder)

    @property
    def stale_path(self) -> Path:
        return self.path.with_name(self.path.name + ".stale")

    def set_stale(self) -> None:
        """After a failed write: the file no longer holds the latest decisions. Renamed
        (no space needed, unlike a write), so a restart does not push its open alerts."""
        try:
            os.replace(self.path, self.stale_path)
        except FileNotFoundError:
            pass
        except OSError:
            log.exception("the alert state file %s could not be set aside as stale", self.path)

    def read(self) -> Spooled | None:
        """What the file holds; None when there is none. A file this version cannot parse
        is set aside (renamed ``.unreadable``) and logged: PostgreSQL's rows are used.
        Raises SpoolUnreadable when it cannot be read (an I/O error, a permission) or
        set aside: the caller must then leave it as it is."""
        stale = False
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            try:
                raw, stale = self.stale_path.read_bytes(), True
            except FileNotFoundError:
                return None
            except OSError:
                return None  # a stale copy is only a fallback
        except OSError as exc:  # EIO, a permission, a path through a file
            # Its content may be fine and needed (an unwritten resolution): never set aside
            # nor written over on a read that failed; this run keeps no local copy.
            raise SpoolUnreadable(
                f"the alert state file {self.path} cannot be read: {exc!r}"
            ) from exc

        try:
            body = orjson.loads(raw)
            if not isinstance(body, dict):
                raise ValueError(f"a JSON {type(body).__name__}, not an object")
            if body.get("version") != VERSION:
                raise ValueError(f"version {body.get('version')!r}, this service reads {VERSION}")
            written_at = datetime.fromisoformat(body["written_at"])
            return Spooled(
                [alert_from_json(a) for a in body["open"]],
                [_transition_from_json(t) for t in body["journal"]],
                written_at,
                stale,
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            self._set_aside(exc, self.stale_path if stale else self.path)
            return None

    def _set_aside(self, why: Exception, path: Path | None = None) -> None:
        path = path or self.path
        aside = path.with_name(path.name + ".unreadable")
        try:
            os.replace(path, aside)
        except OSError as exc:
            raise SpoolUnreadable(
                f"the alert state file {path} can be neither read ({why!r}) nor set aside ({exc!r})"
            ) from exc
        log.error("the alert state file %s is unreadable (%r): set aside as %s; the open "
                  "alerts are PostgreSQL's", path, why, aside)  # fmt: skip
