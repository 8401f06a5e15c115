"""Writes a run's report: Markdown with PNG plots, the raw rows as JSON, the README figures.

The report's figures are the rows of the run; its targets table (issue 18) judges some
of them against a reference row measured in the same run on the same broker, or against
a limit, so that a target is met or not in one run, never against a figure typed in.
"""

from __future__ import annotations

import math
import re
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from bench.common import KAFKA_SUFFIX, Row, dump_json

README_START: Final = "<!-- bench:start -->"
README_END: Final = "<!-- bench:end -->"
RATE_UNITS: Final = frozenset({"msg/s", "events/s", "req/s", "requests/s"})


@dataclass
class Outcome:
    """How one benchmark module's run ended."""

    name: str
    status: str  # "ok" | "failed" | "timed out" | "missing" | "skipped"
    seconds: float
    detail: str = ""


@dataclass
class Run:
    """Everything the report says about one run."""

    mode: str
    command: str
    started_utc: str
    seconds: float
    machine: dict[str, str]
    outcomes: list[Outcome]
    rows: list[Row]


def fill_references(rows: list[Row]) -> list[Row]:
    """Give rows that name a reference measured in this run its value and their ratio."""
    # Each broker's rows against that broker's references (bench/common.py KAFKA_SUFFIX).
    measured = {
        (r["benchmark"].removeprefix("references"), r["metric"]): r["value"]
        for r in rows
        if r["benchmark"].startswith("references")
    }
    filled = []
    for r in rows:
        ref = r["reference"]
        on = KAFKA_SUFFIX if r["benchmark"].endswith(KAFKA_SUFFIX) else ""
        if ref and r["reference_value"] is None and (on, ref) in measured:
            value = measured[(on, ref)]
            r = Row(**{**r, "reference_value": value, "ratio": _ratio(r["value"], value)})
        filled.append(r)
    return filled


def _ratio(value: float, reference: float) -> float | None:
    return round(value / reference, 4) if reference else None


# --- Targets of issue 18 --------------------------------------------------------------------

MET: Final = "met"
NOT_MET: Final = "not met"
NOT_MEASURED: Final = "not measured"
BROKERS: Final = {"tansu": "", "Apache Kafka": KAFKA_SUFFIX}
"""Each broker as the targets table names it, and the suffix of its rows' benchmark."""


@dataclass(frozen=True)
class Figure:
    """A row of the run by module and metric. The module is the rows' benchmark without
    the broker: ``metrics`` finds ``metrics [Apache Kafka]`` rows on Apache Kafka."""

    module: str
    metric: str

    def find(self, rows: Iterable[Row], broker: str) -> Row | None:
        """This figure's row among ``rows`` measured on ``broker`` (a BROKERS name)."""
        benchmark, metric = _key(self.module + BROKERS[broker]), _key(self.metric)
        return next(
            (r for r in rows if _key(r["benchmark"]) == benchmark and _key(r["metric"]) == metric),
            None,
        )

    def on(self, broker: str) -> str:
        """The row's name as the report's figures show it."""
        return f"{self.module}{BROKERS[broker]}: {self.metric}"

    def __str__(self) -> str:
        return f"{self.module}: {self.metric}"


def _key(name: str) -> str:
    """Names compared as a reader reads them: case and runs of spaces do not matter."""
    return " ".join(name.split()).casefold()


@dataclass(frozen=True)
class Target:
    """A figure of the run held to a ratio (at least ``at_least`` × its reference) or, with
    ``under`` set, to a limit in ``unit`` (a row in another unit is not judged).

    The reference is another row of the run on the same broker (``reference``, e.g. the
    references module's faust-noop), or, when that is None, the reference the figure's
    row carries, measured beside it by its module (the raw consumer on the replay's own
    topics). ``worded`` is the limit as the issue words it, when it is not in ``unit``.
    """

    name: str
    figure: Figure
    reference: Figure | None = None
    at_least: float = 0.0
    under: float | None = None
    unit: str = ""
    worded: str = ""

    def __post_init__(self) -> None:
        if (self.under is None) == (self.at_least <= 0):
            raise ValueError(f"{self.name}: a target is a ratio (at_least) or a limit (under)")

    def __str__(self) -> str:
        if self.under is None:
            return f"≥ {self.at_least:g}×"
        return self.worded or f"< {fmt(self.under)} {self.unit}"

    def reference_of(self, found: Row, rows: Sequence[Row], broker: str) -> tuple[str, Row | None]:
        """The reference's name and a row holding its value and unit, None if not measured."""
        if self.reference is None:
            value = found["reference_value"]
            carried = None if value is None else Row(**{**found, "value": value})
            return found["reference"] or "", carried
        return str(self.reference), self.reference.find(rows, broker)


@dataclass(frozen=True)
class Verdict:
    """One target judged on one broker's rows of a run; ``missing`` says what a target
    not measured lacks."""

    target: Target
    broker: str
    status: str
    found: Row | None = None
    reference: str = ""
    measured: Row | None = None  # the reference's value and unit
    missing: str = ""

    @property
    def ratio(self) -> float | None:
        if self.found is None or not self.measured or not self.measured["value"]:
            return None
        return self.found["value"] / self.measured["value"]


_RSS_LIMIT_MIB: Final = 300e6 / 2**20  # the 300 MB; the row is in MiB
TARGETS: Final = (
    Target(
        "one event per message, peers benchmark",
        Figure("peers", "ours: document_signing throughput"),
        Figure("peers", "quix: document_signing throughput"),
        at_least=1.5,
    ),
    Target(
        "one event per message",
        Figure("metrics", "one event per message"),
        Figure("references", "faust-noop"),
        at_least=4.0,
    ),
    Target("backlog replay", Figure("metrics", "backlog replay"), at_least=0.4),
    Target(
        "in-process counting",
        Figure("metrics", "counting pipeline in-process vs ceiling"),
        at_least=0.6,
    ),
    Target(
        "worker RSS at 10,000 units",
        Figure("metrics", "worker RSS, all units populated"),
        under=_RSS_LIMIT_MIB,
        unit="MiB",
        worded=f"< 300 MB ({_RSS_LIMIT_MIB:.1f} MiB)",
    ),
    Target(
        "live p99, ingest's 202 to /metrics",
        Figure("metrics", "live p99 ingest 202 -> /metrics"),
        under=1.0,
        unit="s",
    ),
    Target(
        "failover after SIGKILL", Figure("metrics", "failover after SIGKILL"), under=15, unit="s"
    ),
)
"""Issue 18's targets, in the issue's order."""


def judge(target: Target, rows: Sequence[Row], broker: str) -> Verdict:
    """``target`` on the rows of the run measured on ``broker`` (a BROKERS name)."""
    found = target.figure.find(rows, broker)
    if found is None:
        return Verdict(target, broker, NOT_MEASURED, missing=f"no row `{target.figure.on(broker)}`")
    if target.under is not None and found["unit"] != target.unit:
        missing = f"the row is in {found['unit']}, the target in {target.unit}"
        return Verdict(target, broker, NOT_MEASURED, found, missing=missing)
    if target.under is not None:
        return Verdict(target, broker, _met(found["value"] < target.under), found)
    name, measured = target.reference_of(found, rows, broker)
    if measured is None or not measured["value"]:
        missing = (
            f"no row `{target.reference.on(broker)}`"
            if target.reference
            else "its row carries no reference value"
        )
        return Verdict(target, broker, NOT_MEASURED, found, name, missing=missing)
    met = found["value"] / measured["value"] >= target.at_least
    return Verdict(target, broker, _met(met), found, name, measured)


def _met(met: bool) -> str:
    return MET if met else NOT_MET


def judge_all(rows: Sequence[Row], targets: Sequence[Target] = TARGETS) -> list[Verdict]:
    """Every target on every broker the run has rows from, broker by broker."""
    return [judge(t, rows, broker) for broker in brokers_of(rows) for t in targets]


def brokers_of(rows: Sequence[Row]) -> list[str]:
    """The BROKERS the run measured anything on."""
    on_kafka = [r["benchmark"].endswith(KAFKA_SUFFIX) for r in rows]
    ran = {"tansu": not all(on_kafka), "Apache Kafka": any(on_kafka)}
    return [broker for broker in BROKERS if ran[broker]]


def targets_table(verdicts: Sequence[Verdict]) -> str:
    lines = [
        "| broker | target (row) | value | reference, same run and broker | ratio | target "
        "| result |",
        "|---|---|---:|---|---:|---|---|",
    ]
    for v in verdicts:
        cells = [
            v.broker,
            f"{v.target.name} (`{v.target.figure}`)",
            _quantity(v.found),
            f"{v.reference}: {_quantity(v.measured)}" if v.measured else "—",
            "—" if v.ratio is None else _cut(v.ratio),
            str(v.target),
            f"{v.status} ({v.missing})" if v.missing else v.status,
        ]
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    return "\n".join(lines)


def _quantity(found: Row | None) -> str:
    return f"{fmt(found['value'])} {found['unit']}" if found else "—"


def _cut(ratio: float) -> str:
    """A ratio cut, not rounded, to 3 decimals: 1.4996 shows 1.499, never a met-looking 1.5."""
    return f"{math.floor(ratio * 1000) / 1000:,.3f}".rstrip("0").rstrip(".")


def targets_section(rows: Sequence[Row]) -> str:
    """The targets table, then per broker how many are met, and the brokers not run."""
    verdicts = judge_all(rows)
    if not verdicts:
        return "No figures, so no target measured."
    lines = [targets_table(verdicts), ""]
    for broker in brokers_of(rows):
        mine = [v for v in verdicts if v.broker == broker]
        met = sum(v.status == MET for v in mine)
        unmeasured = sum(v.status == NOT_MEASURED for v in mine)
        lines.append(f"{broker}: {met} of {len(mine)} met, {unmeasured} not measured.  ")
    absent = [broker for broker in BROKERS if broker not in brokers_of(rows)]
    if absent:
        lines.append(f"Not run on {' or '.join(absent)}: no rows from it in this run.")
    return "\n".join(lines).rstrip()


def fmt(value: float | None) -> str:
    """Figures as a reader wants them: thousands separated, few decimals, '—' for none."""
    if value is None:
        return "—"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 1:
        return f"{value:,.2f}".rstrip("0").rstrip(".")
    return f"{value:.3g}"


def rows_table(rows: Iterable[Row], with_notes: bool = True) -> str:
    head = "| benchmark | metric | value | unit | reference | reference value | ratio |"
    rule = "|---|---|---:|---|---|---:|---:|"
    if with_notes:
        head += " notes |"
        rule += "---|"
    lines = [head, rule]
    for r in rows:
        cells = [
            r["benchmark"],
            r["metric"],
            fmt(r["value"]),
            r["unit"],
            r["reference"] or "—",
            fmt(r["reference_value"]),
            fmt(r["ratio"]),
        ]
        if with_notes:
            cells.append(r["notes"].replace("|", "/").replace("\n", " "))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def outcomes_table(outcomes: Sequence[Outcome]) -> str:
    lines = ["| module | status | seconds | detail |", "|---|---|---:|---|"]
    for o in outcomes:
        detail = o.detail.strip().splitlines()[-1][:300] if o.detail.strip() else ""
        lines.append(f"| {o.name} | {o.status} | {o.seconds:.1f} | {detail.replace('|', '/')} |")
    return "\n".join(lines)


def machine_table(machine: dict[str, str]) -> str:
    lines = ["| fact | value |", "|---|---|"]
    lines += [f"| {key} | {value} |" for key, value in machine.items()]
    return "\n".join(lines)


def plot_rates(rows: Sequence[Row], path: Path) -> bool:
    """Throughput of every rate row beside its reference, log scale; False when none."""
    rates = [r for r in rows if r["unit"] in RATE_UNITS]
    if not rates:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{r['benchmark']}: {r['metric']}" for r in rates]
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(rates) + 1.5))
    positions = range(len(rates))
    ax.barh(list(positions), [r["value"] for r in rates], color="#2b6cb0", label="measured")
    refs = [r["reference_value"] or 0 for r in rates]
    ax.scatter(refs, list(positions), marker="|", s=300, color="#c53030", label="reference")
    ax.set_yticks(list(positions), labels, fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("per second (log scale)")
    ax.invert_yaxis()
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def plot_ratios(rows: Sequence[Row], path: Path) -> bool:
    """Each figure as a ratio of its reference (1.0 = as fast as the reference)."""
    rated = [r for r in rows if r["ratio"] is not None]
    if not rated:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{r['benchmark']}: {r['metric']} / {r['reference']}" for r in rated]
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(rated) + 1.5))
    ax.barh(range(len(rated)), [r["ratio"] or 0 for r in rated], color="#2f855a")
    ax.axvline(1.0, color="#c53030", linewidth=1)
    ax.set_yticks(range(len(rated)), labels, fontsize=8)
    ax.set_xlabel("ratio to reference")
    ax.invert_yaxis()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def render(run: Run, images: Sequence[str]) -> str:
    ok = sum(o.status == "ok" for o in run.outcomes)
    parts = [
        f"# Benchmark report ({run.mode} mode)",
        "",
        f"Command: `{run.command}`  ",
        f"Started {run.started_utc} UTC; took {run.seconds:.0f} s; "
        f"{ok} of {len(run.outcomes)} modules ran to completion.",
        "",
        "## Figures",
        "",
        rows_table(run.rows) if run.rows else "No figures: every module failed.",
        "",
        "A ratio is value / reference value, both measured in this run on this machine.",
        "",
        "## Targets (issue 18)",
        "",
        targets_section(run.rows),
        "",
        "## Modules",
        "",
        outcomes_table(run.outcomes),
        "",
        "## Machine",
        "",
        machine_table(run.machine),
        "",
    ]
    if images:
        parts += ["## Plots", ""]
        parts += [f"![{Path(name).stem}]({name})\n" for name in images]
    failures = [o for o in run.outcomes if o.status in {"failed", "timed out"} and o.detail]
    for o in failures:
        parts += [f"### {o.name}: {o.status}", "", "```", o.detail.strip()[-3000:], "```", ""]
    return "\n".join(parts)


def write(run: Run, folder: Path) -> Path:
    """report.md, rows.json and plots in ``folder``; latest.md beside it. Returns report.md."""
    folder.mkdir(parents=True, exist_ok=True)
    plot_rates(run.rows, folder / "throughput.png")
    plot_ratios(run.rows, folder / "ratios.png")
    images = sorted(p.name for p in folder.glob("*.png"))
    dump_json(
        folder / "rows.json",
        {
            "mode": run.mode,
            "command": run.command,
            "started_utc": run.started_utc,
            "seconds": run.seconds,
            "machine": run.machine,
            "outcomes": [o.__dict__ for o in run.outcomes],
            "rows": run.rows,
        },
    )
    report = folder / "report.md"
    report.write_text(render(run, images))
    # latest.md sits one folder up: point its images into the run's folder.
    latest = render(run, [f"{folder.name}/{name}" for name in images])
    (folder.parent / "latest.md").write_text(latest)
    return report


def readme_section(run: Run, report: Path) -> str:
    """The README's performance figures: the command, the machine, the key rows."""
    m = run.machine
    relative = report.as_posix().split("/bench/results/")[-1]
    lines = [
        README_START,
        f"Latest figures from `{run.command}` ({run.started_utc} UTC, {run.seconds:.0f} s; "
        f"{m.get('cores', '?')} cores, {m.get('cpu', '?')}, Python {m.get('python', '?')}, "
        f"faust-streaming {m.get('faust-streaming', '?')}, aiokafka {m.get('aiokafka', '?')}, "
        f"{m.get('tansu', 'tansu')}). Full report: `bench/results/{relative}`; "
        "the newest is always `bench/results/latest.md`.",
        "",
        rows_table(run.rows, with_notes=False) if run.rows else "No figures in the last run.",
        "",
        "Targets of issue 18, each against a reference measured in the same run:",
        "",
        targets_section(run.rows),
        "",
        README_END,
    ]
    return "\n".join(lines)


def update_readme(readme: Path, section: str) -> None:
    """Replace the text between the bench markers (appended at the end when absent)."""
    text = readme.read_text()
    pattern = re.compile(re.escape(README_START) + ".*?" + re.escape(README_END), re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: section, text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    readme.write_text(text)


def copy_file(source: Path, target: Path) -> None:
    shutil.copyfile(source, target)
