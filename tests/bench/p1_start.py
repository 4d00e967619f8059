"""P1: cold start to the first painted screen, the wizard against a bare Textual app with the same widgets.

Each run starts a new process on a fresh pty and times from the spawn to the
first read after which the first screen's text is on the screen (pyte's
view).  The wizard runs `tui site` on an instances file with one instance and
an empty state folder, so its first screen is detection, whose intro is
painted before detection ends; the bare app (bare_app.py first-screen) shows
the same widgets with the same intro.  The two alternate, after one unmeasured
warm-up of each (so both read their files from the page cache).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from . import project
from .common import BARE_APP, PYTHON, Row, Site, Step, load, make_site, phase, stop_leftovers
from .terminal import Terminal

TIMEOUT = 60.0


def time_to_text(terminal: Terminal, text: str, what: str) -> float:
    """Seconds from the spawn to ``text`` painted; the program is killed afterwards."""
    try:
        seen = terminal.wait_for(text, TIMEOUT, what)
        return seen - terminal.started
    finally:
        terminal.close()


def wizard_start(site: Site, size: tuple[int, int]) -> float:
    shutil.rmtree(site.state, ignore_errors=True)  # a new upgrade every time: detection is the first screen
    return time_to_text(site.tui(size=size), project.FIRST_SCREEN_TEXT, "the wizard's detection screen")


def bare_start(tree: Path, size: tuple[int, int]) -> float:
    terminal = Terminal([PYTHON, str(BARE_APP), "first-screen"], cwd=tree, env=project.cli_env(tree),
                        columns=size[0], rows=size[1])  # fmt: skip
    return time_to_text(terminal, project.FIRST_SCREEN_TEXT, "the bare app's first screen")


def measure(work: Path, tree: Path, runs: int, size: tuple[int, int]) -> Row:
    site = make_site(work, "p1", [Step("one", ["quiet", "--mark", "p1", "--seconds", "0", "--owner", str(work)])], tree)
    row = Row("P1", f"cold start to the first painted screen (pty {size[0]}x{size[1]})", "s",
              target="≤ 1.25x the bare app", judge=lambda value, anchor: value <= 1.25 * anchor)  # fmt: skip
    try:
        phase("P1 warm-up: one start of each, not counted")
        wizard_start(site, size)
        bare_start(tree, size)
        for run in range(1, runs + 1):
            row.loads.append(load())
            anchor = bare_start(tree, size)
            value = wizard_start(site, size)
            row.anchors.append(anchor)
            row.values.append(value)
            phase(f"P1 run {run}/{runs}: wizard {value:.3f} s, bare app {anchor:.3f} s (load {row.loads[-1]})")
            time.sleep(0.5)
    finally:
        stop_leftovers(work)
    return row
