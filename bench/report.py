"""Writes a run's report: Markdown with PNG plots, the raw rows as JSON, the README figures."""

from __future__ import annotations

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
