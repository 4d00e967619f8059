"""The real program in a real terminal (tmux, 80x24): walk the demo, lose the terminal mid-step, come back."""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from wizard.host.procs import alive

from ..helpers.processes import kill_tree_leftovers, wait_for

BOX = re.compile("[\u2500-\u257f\u2580-\u259f]")

pytestmark = [pytest.mark.slow, pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")]


class Terminal:
    """One tmux session on a private tmux server, driven like a person at a keyboard."""

    def __init__(self, socket: str, name: str):
        self.socket, self.name = socket, name

    def tmux(self, *args: str) -> str:
        done = subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True, timeout=10)
        return done.stdout

    def start(self, argv: list[str], width: int = 80, height: int = 24) -> None:
        # tmux runs the command's arguments directly (no shell) when given more than one; the pane
        # stays after the program ends, so a failure shows its last screen instead of nothing.
        self.tmux("new-session", "-d", "-s", self.name, "-x", str(width), "-y", str(height), *argv,
                  ";", "set-option", "-t", self.name, "remain-on-exit", "on")  # fmt: skip

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", self.name)

    def keys(self, *keys: str) -> None:
        for key in keys:
            self.tmux("send-keys", "-t", self.name, key)
            time.sleep(0.15)

    def text(self) -> str:
        """The screen as a person reads it: across line wraps, without the panels' box lines."""
        return " ".join(BOX.sub(" ", self.screen()).split())

    def wait_for(self, text: str, timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            screen = self.text()
            if text in screen:
                return screen
            time.sleep(0.2)
        raise AssertionError(f"{text!r} never appeared; the screen shows:\n{self.screen()}")

    def hang_up(self) -> None:
        """What a dropped SSH link does: the terminal goes, its processes get SIGHUP."""
        self.tmux("kill-session", "-t", self.name)

    def leave(self) -> None:
        self.tmux("kill-session", "-t", self.name)


@pytest.fixture
def terminal(tmp_path):
    socket = f"uw-test-{uuid.uuid4().hex[:8]}"
    yield lambda name: Terminal(socket, name)
    subprocess.run(["tmux", "-L", socket, "kill-server"], capture_output=True)
    kill_tree_leftovers(tmp_path)


def session_steps(folder: Path) -> dict[str, dict]:
    data = json.loads((folder / "state" / "demo" / "session.json").read_text())
    return {step["id"]: step for step in data["steps"]}


def test_demo_survives_a_lost_terminal_and_reattaches(tmp_path, terminal):
    folder = tmp_path / "demo"
    wizard = [sys.executable, "-m", "wizard", "demo", "--dir", str(folder)]
    first = terminal("first")
    first.start(wizard)
    first.wait_for("Press c to go on", timeout=60)
    first.keys("c")
    first.wait_for("acknowledge it with Space")
    first.keys("Space", "Space")
    first.wait_for("All warnings acknowledged")
    first.keys("Enter")  # the footer's Continue
    first.wait_for(" needed, ")  # measured: the "Take a backup now" button is focused and enabled
    first.keys("Enter")
    screen = first.wait_for("Start the upgrade")  # the ready screen: the key in the footer, nothing run yet
    assert "Upgrade the database schema" in screen and "celery stays stopped from step 1" in screen
    assert all(step["attempts"] == 0 for step in session_steps(folder).values())
    first.keys("Enter")
    first.wait_for("about this step")
    first.wait_for("▶ Upgrade the database", timeout=60)

    first.hang_up()
    step = session_steps(folder)["db-upgrade"]
    assert step["status"] == "running"
    assert alive(step["pid"], step["start_ticks"]), "the schema upgrade must outlive the terminal"
    # The demo, hung up, stops its own services (its uWSGI no longer holds the lock); the step goes on.
    wait_for(lambda: not (folder / "run" / "uwsgi.pid").exists(), 60, what="the hung-up demo to stop its uWSGI")

    second = terminal("second")
    second.start(wizard)
    screen = second.wait_for("is under way")
    assert "still running" in screen
    second.keys("Enter")  # reattach
    screen = second.wait_for("log: Upgrade the database schema")
    assert "[upgrade-wizard] 20" in screen  # the log so far, shown again...
    second.wait_for("[alembic.runtime.migration]")  # ...then followed live
    second.wait_for("is finished", timeout=120)
    second.keys("q")
    wait_for(lambda: not (folder / "run" / "uwsgi.pid").exists(), 60, what="the demo, quit, to stop its services")
    second.leave()

    steps = session_steps(folder)
    assert all(s["status"] == "succeeded" for s in steps.values()), steps
    assert all(s["attempts"] == 1 for s in steps.values())  # nothing ran twice
    with sqlite3.connect(folder / "indico.sqlite3") as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone()[0] == "aba7935f9226"


def test_the_log_pane_keeps_painting_past_its_line_limit(tmp_path, terminal):
    """More lines than the pane keeps (it drops the oldest): the newest must still reach the screen."""
    from ..helpers.sites import make_site, step_toml

    go, done = tmp_path / "go", tmp_path / "done"
    code = f"""
        import os, sys, time
        print("waiting for the go", flush=True)
        while not os.path.exists({str(go)!r}):
            time.sleep(0.05)
        sys.stdout.write("".join("line %06d of the flood\\n" % n for n in range(25000)))
        print("the very last line", flush=True)
        while not os.path.exists({str(done)!r}):
            time.sleep(0.05)
    """
    site = make_site(tmp_path / "site", step_toml("flood", code))
    headless = site.spawn("run", "--yes", "--backup-done", str(site.root))
    wait_for(lambda: _step_log_has(site, "waiting for the go"), 60, what="the step to start under run --yes")
    headless.kill()  # the wizard dies (kill -9); the step goes on, and the TUI reattaches to it
    headless.wait(timeout=30)

    screen = terminal("flood")
    screen.start([sys.executable, "-m", "wizard", "--config", str(site.config), "--state-dir", str(site.state), "tui"])
    screen.wait_for("is under way")
    screen.keys("Enter")  # reattach
    screen.wait_for("waiting for the go")
    go.touch()
    screen.wait_for("the very last line", timeout=120)
    done.touch()
    screen.wait_for("is finished", timeout=60)
    screen.keys("q")
    screen.leave()


def _step_log_has(site, text: str) -> bool:
    try:
        steps = json.loads(site.session_file.read_text())["steps"]
        log = Path(steps[0]["log"]) if steps[0]["log"] else None
        return bool(log and log.exists() and text in log.read_text())
    except (OSError, ValueError, KeyError, IndexError):
        return False
