"""The measures of issue 13, in one run and one table: ``python -m tests.bench``.

    .venv/bin/python -m tests.bench [--tree PATH] [--runs 3] [--quick] [--only P1 P2 P5 P6] [--line-length N]

Each measure is the real program (`python -m wizard`, from the checkout given
with --tree) against an anchor measured in the same run, as a median of
--runs; see docs/benchmarks.md for what each one does.  These are
measurements, not tests: nothing here asserts, and pytest collects none of it.
The older benches (bench_backup, bench_lockwatch, bench_pretalx) stay
separate and run on their own.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.table import Table

from . import p1_start, p2_flood, p5_idle, p6_relaunch, project
from .common import Row, load, phase, stop_leftovers

REPO = Path(__file__).resolve().parents[2]
MEASURES = ("P1", "P2", "P5", "P6")
NOT_INCLUDED = {
    "bench_backup": "dump tools against the wizard's verified backup (PostgreSQL, MariaDB, SQLite)",
    "bench_lockwatch": "time from a step's last line to the lock verdict (real PostgreSQL)",
    "bench_pretalx": "a real pretalx upgrade, script against run --yes (root, wheelhouse)",
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument(
        "--tree", type=Path, default=REPO, help="the checkout whose wizard is measured (default: this one)"
    )
    parser.add_argument("--runs", type=int, default=3, help="runs per measure; the table shows medians (default 3)")
    parser.add_argument("--lines", type=int,
                        help="P2: lines the step prints (default 1,000,000; with --line-length, as many as make "
                             "the same 51 MB)")  # fmt: skip
    parser.add_argument("--line-length", type=int, default=0, metavar="N",
                        help="P2: each line padded to N characters with pip-like words, so that a pane that "
                             f"wraps breaks them at spaces (default: {p2_flood.FLOOD_LINE_LENGTH}, pip's "
                             "Downloading line alone)")  # fmt: skip
    parser.add_argument("--silent-seconds", type=float, default=60.0, help="P5: the silent window (default 60)")
    parser.add_argument("--size", default="80x24", help="the pty's columns x rows (default 80x24; 120x40 also fits)")
    parser.add_argument("--only", nargs="+", choices=MEASURES, default=list(MEASURES), metavar="P",
                        help="measure only these (P6 brings P1, its anchor)")  # fmt: skip
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: 1 run, 100,000 lines, 10 silent seconds (figures are rough)")  # fmt: skip
    parser.add_argument("--json", type=Path, help="also write the rows, every sample included, to this file")
    parser.add_argument("--markdown", type=Path, help="also write the table as Markdown to this file")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (sites, logs, outputs)")
    args = parser.parse_args(argv)
    if args.quick:
        args.runs, args.lines, args.silent_seconds = 1, 100_000, 10.0
    if 0 < args.line_length < p2_flood.FLOOD_LINE_LENGTH:
        parser.error(f"--line-length: at least {p2_flood.FLOOD_LINE_LENGTH} (a flood line's own length)")
    if args.lines is None:
        args.lines = p2_flood.default_lines(args.line_length)
    if args.lines > p2_flood.lines_that_fit(args.line_length):
        parser.error(f"--lines: {args.lines:,} lines of {p2_flood.line_bytes(args.line_length)} bytes do not fit "
                     f"in the part of a step's log the wizard writes as it comes; at most "
                     f"{p2_flood.lines_that_fit(args.line_length):,}")  # fmt: skip
    args.tree = args.tree.resolve()
    columns, _, rows = args.size.partition("x")
    args.size = (int(columns), int(rows))
    if "P6" in args.only and "P1" not in args.only:
        args.only.append("P1")
    return args


# -- the table --------------------------------------------------------------------------


def shown(number: float, unit: str) -> str:
    if number != number:  # NaN: nothing measured
        return "—"
    if unit == "lines/s":
        return f"{number:,.0f}"
    if unit == "s":
        return f"{number:.3f} s"
    if unit == "ms":
        return f"{number:.0f} ms"
    if unit == "MB":
        return f"{number:.1f} MB"
    return f"{number:.2f} %"


def load_span(loads: list[str]) -> str:
    ones = [float(text.split()[0]) for text in loads]
    if not ones:
        return ""
    return f"{min(ones):.2f}" if min(ones) == max(ones) else f"{min(ones):.2f}-{max(ones):.2f}"


def table(rows: list[Row], title: str) -> Table:
    out = Table(title=title, title_justify="left", show_lines=False)
    for name, justify in (("", "left"), ("measure", "left"), ("value", "right"), ("anchor", "right"),
                          ("ratio", "right"), ("target", "left"), ("met?", "center"), ("load 1 min", "right")):  # fmt: skip
        out.add_column(name, justify=justify)  # type: ignore[arg-type]
    for row in rows:
        ratio = row.ratio
        met = {True: "[green]yes[/]", False: "[bold red]no[/]", None: "—"}[row.met]
        out.add_row(row.id, row.measure, shown(row.value, row.unit), shown(row.anchor, row.unit),
                    "—" if ratio is None else f"{ratio:.2f}x", row.target, met, load_span(row.loads))  # fmt: skip
    return out


def markdown(rows: list[Row], title: str) -> str:
    """The same table for docs/benchmarks.md."""
    lines = [f"**{title}**", "", "| | measure | value | anchor | ratio | target | met? | load 1 min |",
             "|---|---|--:|--:|--:|---|:-:|--:|"]  # fmt: skip
    for row in rows:
        ratio = "—" if row.ratio is None else f"{row.ratio:.2f}x"
        met = {True: "yes", False: "**no**", None: "—"}[row.met]
        lines.append(f"| {row.id} | {row.measure} | {shown(row.value, row.unit)} | {shown(row.anchor, row.unit)} | "
                     f"{ratio} | {row.target} | {met} | {load_span(row.loads)} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())  # fmt: skip
    return f"{os.cpu_count()} x {cpu}, {platform.system()} {platform.release()}, Python {platform.python_version()}"


def tree_commit(tree: Path) -> str:
    done = subprocess.run(["git", "-C", str(tree), "describe", "--always", "--dirty"], capture_output=True, text=True)
    return done.stdout.strip() or "not a git checkout"


# -- running the measures ------------------------------------------------------------------


def attempt(name: str, measure: Callable[[], list[Row]], failures: dict[str, str]) -> list[Row]:
    """One measure; when it gives up, say why loudly and let the others run."""
    try:
        return measure()
    except Exception as exc:
        traceback.print_exc()
        failures[name] = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        phase(f"{name} FAILED: {failures[name]}")
        return []


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="uw-bench-"))
    phase(f"measuring the wizard of {args.tree} ({tree_commit(args.tree)}): {project.which_wizard(args.tree)}")
    phase(f"machine: {machine()}; load {load()}; work folder {work}")
    rows: list[Row] = []
    failures: dict[str, str] = {}
    started = time.monotonic()
    try:
        p1: list[Row] = []
        if "P1" in args.only:
            phase(f"P1: cold start to the first painted screen, wizard against a bare app, {args.runs} runs")
            p1 = attempt("P1", lambda: [p1_start.measure(work, args.tree, args.runs, args.size)], failures)
            rows += p1
        if "P6" in args.only:
            phase(f"P6: relaunch after kill -9 to the live log, {args.runs} runs")
            anchor = p1[0].values if p1 else []
            rows += attempt(
                "P6", lambda: [p6_relaunch.measure(work, args.tree, args.runs, args.size, anchor)], failures
            )
        if "P2" in args.only:
            phase(f"P2: {args.lines:,} lines of step output ({p2_flood.line_bytes(args.line_length)} bytes each), "
                  f"TUI and headless, {args.runs} runs")  # fmt: skip
            rows += attempt("P2", lambda: p2_flood.measure(work, args.tree, args.runs, args.lines, args.size,
                                                           args.line_length), failures)  # fmt: skip
        if "P5" in args.only:
            phase(f"P5: the wizard's CPU while a step is silent for {args.silent_seconds:.0f} s, {args.runs} runs")
            rows += attempt("P5", lambda: p5_idle.measure(work, args.tree, args.runs, args.silent_seconds, args.size),
                            failures)  # fmt: skip
    finally:
        stop_leftovers(work)  # whatever a measure that gave up left running
        if args.keep:
            phase(f"the work folder is kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    order = {"P1": 0, "P2": 1, "P5": 2, "P6": 3}
    rows.sort(key=lambda row: (order[row.id[:2]], row.id))
    console = Console(width=max(Console().width, 150))
    console.print()
    long = f", P2 lines of {args.line_length} characters" if args.line_length > p2_flood.FLOOD_LINE_LENGTH else ""
    title = (f"issue 13 measures — {tree_commit(args.tree)}, medians of {args.runs}, pty {args.size[0]}x{args.size[1]}"
             f"{long}, {time.strftime('%Y-%m-%d %H:%M')}, took {(time.monotonic() - started) / 60:.1f} min")  # fmt: skip
    console.print(table(rows, title))
    for row in rows:
        if row.note:
            console.print(f"  {row.id}: {row.note}")
    for row in rows:
        if row.failure:
            failures.setdefault(row.id, row.failure)
    for name, why in failures.items():
        console.print(f"  [bold red]{name} not measured[/]: {why}")
    console.print("  Not included (separate, on demand): "
                  + "; ".join(f"python -m tests.bench.{name} ({what})" for name, what in NOT_INCLUDED.items()))  # fmt: skip
    if args.markdown:
        args.markdown.write_text(markdown(rows, title))
    if args.json:
        args.json.write_text(json.dumps({"tree": str(args.tree), "commit": tree_commit(args.tree), "machine": machine(),
                                         "runs": args.runs, "lines": args.lines, "line_length": args.line_length,
                                         "rows": [row.as_dict() for row in rows],
                                         "failures": failures}, indent=2))  # fmt: skip
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
