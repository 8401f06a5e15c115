"""The runbooks as on-call opens them: docs/runbooks.md served as a page by the alerts
service (``GET /runbooks``), and every alert's ``runbook`` annotation a URL to its section.

Until 2026-12-05 the annotation was the repository path ``docs/runbooks.md#name``: not a
link a notification or Alertmanager's UI can open (review 56). The page is rendered from
the same file the repository keeps, so what on-call reads is what the tests check.
"""

from __future__ import annotations

import html
from functools import cache
from pathlib import Path

from markdown_it import MarkdownIt
from markdown_it.rules_core import StateCore

from services.common.paths import REPO_ROOT

RUNBOOKS_FILE = REPO_ROOT / "docs" / "runbooks.md"
"""The source: a ``### AlertName`` section per alert (tests/unit/test_runbooks.py)."""

RUNBOOKS_PATH = "/runbooks"
"""Where the alerts service serves them."""

REPO_PATH = "docs/runbooks.md"
"""How Prometheus's health rules name them in deploy/ (a site's rules link to its own
copy; `make up` rewrites them to this service's page: services/monitoring.py)."""


def anchor(alertname: str) -> str:
    """An alert's section anchor: its name in lower case."""
    return alertname.lower()


def runbook_url(base: str, alertname: str) -> str:
    """The ``runbook`` annotation: ``base`` (the page's URL) and the alert's section."""
    return f"{base}#{anchor(alertname)}"


def _section_ids(state: StateCore) -> None:
    """Give each ``###`` heading the id its alerts link to (``#kpibelowtarget``)."""
    tokens = state.tokens
    for i, token in enumerate(tokens):
        if token.type == "heading_open" and token.tag == "h3" and i + 1 < len(tokens):
            title = tokens[i + 1].content.strip()
            if title.isidentifier():
                token.attrSet("id", anchor(title))


def render(markdown: str) -> str:
    """The whole runbook page, HTML. The source is the project's own file: raw HTML in
    it is escaped all the same (``html=False``)."""
    md = MarkdownIt("commonmark", {"html": False}).enable("table")
    md.core.ruler.push("section_ids", _section_ids)
    body = md.render(markdown)
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape('egov-pulse runbooks')}</title>"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<style>body{font:16px/1.5 system-ui,sans-serif;max-width:52rem;margin:2rem auto;"
        "padding:0 1rem}h3{margin-top:2rem;border-top:1px solid #ccc;padding-top:1rem}"
        "code{background:#f3f3f3;padding:0 .2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:.2em .5em}:target{background:#fff6d5}"
        f"</style></head><body>\n{body}</body></html>\n"
    )


@cache
def page(path: Path = RUNBOOKS_FILE) -> bytes:
    """The rendered page, once per process (the file ships with the service)."""
    return render(path.read_text("utf-8")).encode()
