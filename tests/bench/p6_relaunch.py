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

from .common import Row, Site, Step, load, make_site, median, nonce, phase, reattach, seed_running_step, stop_leftovers
from .terminal import Terminal

LOG_LINES = 500
TIMEOUT = 60.0


def relaunch(site: Site, mark: str, size: tuple[int, int]) -> tuple[float | None, float, Terminal]:
    """(seconds to the resume screen if one shows, seconds to the mark in the log pane) and the TUI, left running."""
    terminal = site.tui(size=size)
    try:
        resumed, shown = reattach(terminal, f"QUIET {mark}", TIMEOUT)
    except BaseException:
        terminal.close()
        raise
    return None if resumed is None else resumed - terminal.started, shown - terminal.started, terminal


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
            if resumed is not None:
                resumes.append(resumed)
            screen = "no resume screen" if resumed is None else f"resume screen at {resumed:.3f} s"
            phase(f"P6 run {run}/{runs}: {screen}, the step's newest line at {shown:.3f} s "
                  f"(load {row.loads[-1]})")  # fmt: skip
        terminal.close()
    finally:
        stop_leftovers(work)  # the step names this folder (--owner), its wrapper the site's
    row.note = (f"the resume screen itself: {median(resumes):.3f} s (median); Enter pressed on it as soon as painted"
                if resumes else "no resume screen: the wizard went straight to the step's log")  # fmt: skip
    return row
