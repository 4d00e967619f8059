"""P6: relaunching the TUI after kill -9 while a step runs, to its live log reattached.

A step (programs.py quiet) prints a few hundred lines and a mark, then sleeps:
the mark is its newest line.  `run --yes` starts it and is killed; a TUI
reattaches (Enter on the resume screen) and shows the mark; then each run
kills the TUI with SIGKILL and times a new `tui` from its spawn to the mark
painted in the log pane.  The wizard first shows its resume screen: Enter is
pressed as soon as the reattach choice is painted (both moments are printed).
The anchor is P1's wizard time from the same invocation.
"""

from __future__ import annotations

import signal
from pathlib import Path

from . import project
from .common import Row, Site, Step, load, make_site, median, nonce, phase, seed_running_step, stop_leftovers
from .terminal import Terminal

LOG_LINES = 500
TIMEOUT = 60.0


def relaunch(site: Site, mark: str, size: tuple[int, int]) -> tuple[float, float, Terminal]:
    """(seconds to the resume screen, seconds to the mark in the log pane) and the TUI, left running."""
    terminal = site.tui(size=size)
    try:
        resumed = terminal.wait_for(project.RESUME_TEXT, TIMEOUT, "the resume screen's reattach choice")
        terminal.press(project.RESUME_KEY)
        shown = terminal.wait_for(f"QUIET {mark}", TIMEOUT, "the step's newest line in the log pane")
    except BaseException:
        terminal.close()
        raise
    return resumed - terminal.started, shown - terminal.started, terminal


def measure(work: Path, tree: Path, runs: int, size: tuple[int, int], p1_seconds: list[float]) -> Row:
    mark = nonce()
    step = Step(
        "quiet", ["quiet", "--lines", str(LOG_LINES), "--mark", mark, "--seconds", "3600", "--owner", str(work)]
    )
    site = make_site(work, "p6", [step], tree)
    row = Row("P6", "relaunch after kill -9 of the TUI to the live log (Enter on the resume screen)", "s",
              target="≤ 1.5x P1", judge=lambda value, anchor: value <= 1.5 * anchor)  # fmt: skip
    row.anchors = list(p1_seconds)
    resumes: list[float] = []
    try:
        seed_running_step(site, "quiet", f"QUIET {mark}")
        phase("P6 warm-up: a TUI reattaches (not counted), then gets kill -9")
        *_, terminal = relaunch(site, mark, size)
        for run in range(1, runs + 1):
            terminal.kill(signal.SIGKILL)
            terminal.close()
            row.loads.append(load())
            resumed, shown, terminal = relaunch(site, mark, size)
            row.values.append(shown)
            resumes.append(resumed)
            phase(f"P6 run {run}/{runs}: resume screen at {resumed:.3f} s, the step's newest line at {shown:.3f} s "
                  f"(load {row.loads[-1]})")  # fmt: skip
        terminal.close()
    finally:
        stop_leftovers(site.root)
    row.note = f"the resume screen itself: {median(resumes):.3f} s (median)"
    return row
