"""What a target rests on, in words: the document a default cites (data/targets.json), or
the operator's override, and since when. Pure, apart from reading data/targets.json once.

A bare "100 %" on a wall reads as a national target whether a directive sets it, a
province chose it, or no document sets one and the project had to pick a value: the
wall's pages and the files cite the basis of every target they show."""

from __future__ import annotations

import functools
from typing import Final

from services.common.figures import TargetBasis
from services.common.rates import Lang, format_date
from services.common.targetdata import TargetData

_OVERRIDES: Final[dict[str, dict[str, str]]] = {
    "vi": {
        "unit": "Mục tiêu riêng đặt cho đơn vị",
        "province_level": "Mục tiêu của tỉnh cho cấp đơn vị này",
        "province": "Mục tiêu của tỉnh",
    },
    "en": {
        "unit": "A target set for this unit",
        "province_level": "The province's target for this level",
        "province": "The province's target",
    },
}
_SINCE: Final = {"vi": "áp dụng từ", "en": "from"}
_UNTIL: Final = {"vi": "đến", "en": "until"}


@functools.cache
def _targets() -> TargetData:
    return TargetData.load()


def cite(basis: TargetBasis | None, lang: Lang) -> str:
    """One line naming what ``basis`` rests on and the days it holds ("" for none: a
    figure from a worker older than the basis, or without a target)."""
    if basis is None:
        return ""
    if basis.origin == "default":
        source = _targets().sources.get(basis.source or "")
        if source is None:  # a source this reader's data/targets.json does not have
            what = basis.source or ""
        elif lang == "vi":
            what = source.document or source.title_vi
        else:
            what = source.title_en
    else:
        what = _OVERRIDES[lang].get(basis.origin, basis.origin)
        if basis.reason:
            what = f"{what}: {basis.reason}"
    if basis.valid_from is not None:
        what = f"{what} ({_SINCE[lang]} {format_date(basis.valid_from, lang)}"
        if basis.valid_until is not None:
            what += f" {_UNTIL[lang]} {format_date(basis.valid_until, lang)}"
        what += ")"
    return what
