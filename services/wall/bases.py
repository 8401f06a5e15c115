"""Footnotes citing what each target on a page rests on (services/common/citations.py):
a numbered mark beside the target, the citation under the table."""

from __future__ import annotations

from html import escape

from services.common.citations import cite
from services.common.figures import TargetBasis
from services.wall.i18n import text
from services.wall.settings import Lang


class Bases:
    """The distinct citations of one table, numbered in the order their targets appear."""

    def __init__(self, lang: Lang) -> None:
        self.lang = lang
        self._numbers: dict[str, int] = {}

    def mark(self, basis: TargetBasis | None) -> str:
        """The mark to put after a target ("" when the figure carries no basis)."""
        cited = cite(basis, self.lang)
        if not cited:
            return ""
        number = self._numbers.setdefault(cited, len(self._numbers) + 1)
        return f'<sup class="basis" title="{escape(cited)}">{number}</sup>'

    def notes(self) -> str:
        """The citations, to follow the table ("" when no target had one)."""
        if not self._numbers:
            return ""
        items = "".join(f"<li>{escape(cited)}</li>" for cited in self._numbers)
        return (
            f'<div class="bases"><p>{escape(text(self.lang, "target_bases"))}</p>'
            f"<ol>{items}</ol></div>"
        )
