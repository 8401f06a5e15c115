"""Sockets a fault test leaves open in the test process: found at the test's end, reported
with where they were opened.

An asyncio transport nobody closed warns (``ResourceWarning``) when the garbage collector
frees it, which happens whenever the collector runs: often during a later test, which
pytest then fails without saying where the socket came from. That failed CI twice in
``test_broker_restart_under_load``, and once in a `make test` here; it did not recur in
six runs of that test alone, seven of the fault suite (three under CPU load) or one of
every integration and fault test with a collection after each.

So every fault test now runs with the automatic collector off, tracking where each
transport is opened, and ends with a collection: a transport it left open is caught
then, with the stack that opened it, and listed at the end of the run. Any other
resource left open warns as before. Should the collector still free a transport while a
test runs (a test of the tools does it on purpose), pytest's warning fails that test,
and the listing says where the socket was opened.

Listed, not failed, at the end of a test: the services under test run in their own
processes, so these are sockets of the harness (its proxies, HTTP and Kafka clients),
not of the product; a listing says which to fix next instead of failing an unrelated
test at random. The price is the garbage of one test held until its end (the longest
runs ~40 s).
"""

from __future__ import annotations

import gc
import traceback
import warnings
from asyncio import selector_events
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

ORIGIN_FRAMES = 40
"""Frames of the opening stack kept per transport (opening one is rare: no cost)."""

_collecting = False
"""A report is collecting: what it frees is reported by ``collect``, not on deletion."""


@dataclass(frozen=True)
class Leak:
    test: str
    transport: str
    opened_at: str


@dataclass
class LeakReport:
    leaks: list[Leak] = field(default_factory=list)
    running: str | None = None
    """The fault test running now, to name it for a transport collected mid-test (None:
    no fault test runs, nothing is reported on deletion)."""

    @contextmanager
    def tracking_origins(self) -> Iterator[None]:
        """Remember the stack that opened each selector transport (TCP and Unix sockets),
        and report one collected unclosed whenever that happens."""
        cls: Any = selector_events._SelectorTransport
        original_init: Callable[..., None] = cls.__init__
        original_del: Callable[..., None] = cls.__del__

        def init(transport: Any, *args: Any, **kwargs: Any) -> None:
            original_init(transport, *args, **kwargs)
            transport._egov_opened_at = "".join(traceback.format_stack(limit=ORIGIN_FRAMES)[:-1])

        def delete(transport: Any, *args: Any) -> None:
            # Collected before its test ended (the collector runs when it likes): the
            # warning that follows still fails whichever test is running; this listing
            # says where the socket came from.
            reported = getattr(transport, "_egov_reported", False)  # by a nested report
            unclosed = getattr(transport, "_sock", None) is not None
            if unclosed and self.running is not None and not (_collecting or reported):
                origin = getattr(transport, "_egov_opened_at", "(opened before tracking)")
                self.leaks.append(Leak(self.running, describe(transport), origin))
                transport._egov_reported = True
            original_del(transport, *args)

        cls.__init__, cls.__del__ = init, delete
        try:
            yield
        finally:
            cls.__init__, cls.__del__ = original_init, original_del

    def collect(self, test: str) -> list[Leak]:
        """Free what ``test`` left unreachable; the transports among it that were still
        open are recorded (and returned) instead of warning later."""
        global _collecting
        _collecting = True  # for every report's hook: a test of this module makes its own
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", ResourceWarning)
                gc.collect()
        finally:
            _collecting = False
        found = []
        transports = [w for w in caught if isinstance(w.source, selector_events._SelectorTransport)]
        # A leaked transport's socket warns too: one leak, reported once.
        sockets = {id(w.source._sock) for w in transports if w.source._sock is not None}
        for warning in caught:
            if warning in transports:
                origin = getattr(warning.source, "_egov_opened_at", "(opened before tracking)")
                found.append(Leak(test, describe(warning.source), origin))
            elif id(warning.source) not in sockets:
                # Anything else (an unclosed file, loop or process) warns as it would have.
                warnings.warn_explicit(
                    warning.message,
                    warning.category,
                    warning.filename,
                    warning.lineno,
                    source=warning.source,
                )
        self.leaks += found
        return found

    def lines(self) -> list[str]:
        out = []
        for leak in self.leaks:
            out.append(f"{leak.test}: {leak.transport}, opened at:")
            out += ["    " + line for line in leak.opened_at.rstrip().splitlines()]
        return out


def describe(transport: Any) -> str:
    """The transport, its protocol and its two ends (the peer's port names the server)."""
    protocol = type(getattr(transport, "_protocol", None))
    extra = getattr(transport, "_extra", {})
    ends = f"{extra.get('sockname')} -> {extra.get('peername')}"
    kind = f"{protocol.__module__}.{protocol.__qualname__}"
    return f"unclosed transport {transport!r}, {kind}, {ends}"
