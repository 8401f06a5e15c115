"""Kiosk mode: which screen of which province a wall shows, and for how long. Pure.

``/wall/kiosk?provinces=19,38&screens=province,rankings&every=30`` shows each screen of
each province in turn (province by province), ``every`` seconds each, forever. Each stop
is a whole page that names the next one (an HTTP refresh): nothing to click, no script
to fail, and a page that failed to load is replaced at the next stop anyway.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlencode

SCREENS: Final = ("province", "rankings")
"""The screens a kiosk can show, in their default order."""
EVERY_DEFAULT_S: Final = 30
EVERY_MIN_S: Final = 1
EVERY_MAX_S: Final = 3600
MAX_PROVINCES: Final = 64
"""Provinces a kiosk URL may name (34 today, 63 before 2025); the rest are ignored."""
_CODE: Final = re.compile(r"[0-9A-Za-z._-]{1,32}")


@dataclass(frozen=True, slots=True)
class Stop:
    """One screen of one province, the ``index``-th of the rotation."""

    index: int
    province: str
    screen: str


@dataclass(frozen=True, slots=True)
class Kiosk:
    """A rotation through ``provinces`` × ``screens``, ``every_s`` seconds a stop.

    ``provinces`` are those shown now (the asked ones that have figures); ``asked`` are
    those the URL named, written back into every next stop's URL unchanged."""

    provinces: tuple[str, ...]
    screens: tuple[str, ...]
    every_s: int
    lang: str
    asked: tuple[str, ...] = ()

    @property
    def stops(self) -> tuple[Stop, ...]:
        pairs = [(p, s) for p in self.provinces for s in self.screens]
        return tuple(Stop(i, p, s) for i, (p, s) in enumerate(pairs))

    def stop(self, index: int) -> Stop | None:
        """The stop at ``index`` (wrapping); None when there is nothing to show."""
        stops = self.stops
        return stops[index % len(stops)] if stops else None

    def url(self, index: int) -> str:
        """The kiosk URL of the stop at ``index`` (wrapped: the rotation never ends)."""
        count = len(self.stops) or 1
        params = {
            # What was asked, not what has figures now: a province missing for a moment
            # (its worker not answering yet) comes back at a following stop.
            "provinces": ",".join(self.asked),
            "screens": ",".join(self.screens),
            "every": str(self.every_s),
            "lang": self.lang,
            "at": str(index % count),
        }
        return "/wall/kiosk?" + urlencode({k: v for k, v in params.items() if v})


def parse_kiosk(query: Mapping[str, str], known: Sequence[str], default_lang: str) -> Kiosk:
    """The rotation a URL asks for. Provinces without figures (``known``) and unknown
    screens are left out of the stops; no province given means every province with
    figures. The asked provinces stay in the next stops' URLs even while none of them has
    figures (an empty stop then): until 2026-12-05 the kiosk of Thái Nguyên rewrote its
    URL to every other province when Thái Nguyên's worker had not answered yet after a
    restart, and never came back to it (review 55)."""
    named = (p.strip() for p in query.get("provinces", "").split(","))
    asked = tuple(dict.fromkeys(p for p in named if _CODE.fullmatch(p)))[:MAX_PROVINCES]
    provinces = tuple(p for p in asked if p in known) if asked else tuple(known)
    wanted = [s.strip() for s in query.get("screens", "").split(",") if s.strip()]
    screens = tuple(s for s in wanted if s in SCREENS) or SCREENS
    every = _int(query.get("every"), EVERY_DEFAULT_S)
    lang = query.get("lang", default_lang)
    return Kiosk(
        provinces,
        screens,
        min(max(every, EVERY_MIN_S), EVERY_MAX_S),
        lang if lang in ("vi", "en") else default_lang,
        asked,
    )


def position(query: Mapping[str, str]) -> int:
    """The ``at`` of a kiosk URL: the index of the stop to show (0 when absent)."""
    return max(_int(query.get("at"), 0), 0)


def _int(value: str | None, default: int) -> int:
    try:
        return int(value) if value is not None else default
    except ValueError:
        return default
