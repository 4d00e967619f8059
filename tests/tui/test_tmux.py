"""The real program in a real terminal (tmux, 80x24): walk the demo, read its schema upgrade, lose the terminal
mid-step, come back."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from rich.cells import cell_len

from wizard.host.procs import alive

from ..helpers.processes import kill_tree_leftovers, wait_for
from ..helpers.terminal import Terminal

pytestmark = [pytest.mark.slow, pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")]


@pytest.fixture
def terminal(tmp_path):
    socket = f"uw-test-{uuid.uuid4().hex[:8]}"
    yield lambda name: Terminal(socket, name)
    subprocess.run(["tmux", "-L", socket, "kill-server"], capture_output=True)
    kill_tree_leftovers(tmp_path)


def walk_the_demo_to_its_run(term: Terminal, folder: Path) -> None:
    """Detection, the release notes, the backup the wizard takes and the ready screen, as a person goes."""
    term.wait_for("Press c to go on", timeout=60)
    term.keys("c")
    term.wait_for("acknowledge it with Space")
    term.keys("Space", "Space")
    term.wait_for("All warnings acknowledged")
    term.keys("Enter")  # the footer's Continue
    term.wait_for(" needed, ")  # measured: the "Take a backup now" button is focused and enabled
    term.keys("Enter")
    screen = term.wait_for("Start the upgrade")  # the ready screen: the key in the footer, nothing run yet
    assert "Upgrade the database schema" in screen and "celery stays stopped from step 1" in screen
    assert all(step["attempts"] == 0 for step in session_steps(folder).values())
    term.keys("Enter")


def session_steps(folder: Path) -> dict[str, dict]:
    data = json.loads((folder / "state" / "demo" / "session.json").read_text())
    return {step["id"]: step for step in data["steps"]}


def test_demo_survives_a_lost_terminal_and_reattaches(tmp_path, terminal):
    folder = tmp_path / "demo"
    wizard = [sys.executable, "-m", "wizard", "demo", "--dir", str(folder)]
    first = terminal("first")
    first.start(wizard)
    walk_the_demo_to_its_run(first, folder)
    first.wait_for("▶ 4/7 Upgrade the database schema", timeout=60)

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
    screen = second.wait_for("▶ 4/7 Upgrade the database schema")
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


def test_at_80x24_the_schema_upgrade_is_read_whole_and_the_lock_panel_offers_the_restart(tmp_path, terminal):
    """What Indico's guide tells the admin to watch, on an 80-column screen: every 'Running upgrade' line in full,
    the count of migrations, and, when uWSGI holds the table, the advice and the button without scrolling."""
    folder = tmp_path / "demo"
    term = terminal("narrow")
    term.start([sys.executable, "-m", "wizard", "demo", "--dir", str(folder)])
    walk_the_demo_to_its_run(term, folder)
    # Whole lines, wrapped inside the pane (text() reads across the wrap, as a person does).
    term.wait_for("Running upgrade 5d05eda06776 -> 9b3fc740b722, Fix user name_format values", timeout=90)
    term.wait_for("Running upgrade 9b3fc740b722 -> aba7935f9226, Add is_event_not_happening to EventLabel")
    term.wait_for("migration 2 of 2")  # counted above the log, against what the database had pending
    # The demo's uWSGI holds the table the second migration alters: the lock panel, its action first.
    screen = term.wait_for("Waiting on a database lock", timeout=90)
    for seen in ("Blocked by the uWSGI service", "Restarting uWSGI drops the app's database sessions",
                 "Restart uWSGI", "u Restart the app server"):  # fmt: skip
        assert seen in screen, f"{seen!r} is not on the 80x24 screen:\n{term.screen()}"
    assert all(len(row) <= 80 for row in term.screen().splitlines())
    term.keys("u")
    screen = term.wait_for("▶ 5/7 Upgrade the plugins' database tables", timeout=90)
    assert "the upgrade carries on once the lock is free" not in screen  # the last step's restart is not news here
    term.wait_for("Running upgrade 6ef9616e57cb -> d8e65cb6160d, Add attachment_id to queue", timeout=90)
    term.wait_for("Waiting on a database lock", timeout=90)  # the new uWSGI reads that table again
    term.keys("u")
    term.wait_for("is finished", timeout=120)
    # The done screen asks the site itself: the demo uWSGI's page names the version the restart loaded.
    screen = term.wait_for("health check: healthy: all 7 checks passed", timeout=120)
    assert "the site runs 3.2.9" in screen, screen
    assert "c Check again" in screen and "r Report" in screen and "q Quit" in screen, screen
    assert all(len(row) <= 80 for row in term.screen().splitlines())
    term.keys("q")
    wait_for(lambda: not (folder / "run" / "uwsgi.pid").exists(), 60, what="the demo, quit, to stop its services")
    term.leave()
    statuses = {step_id: step["status"] for step_id, step in session_steps(folder).items()}
    assert statuses.pop("reload-uwsgi") == "skipped", statuses  # uWSGI was restarted: it runs the new code
    assert set(statuses.values()) == {"succeeded"}, statuses


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


def test_the_demo_is_rolled_back_from_its_done_screen(tmp_path, terminal):
    """A person at 80x24 takes the upgrade back: b, reads the way back, Enter, types the name, and reads the
    rollback's own done screen, healthy on 3.2.5."""
    folder = tmp_path / "demo"
    built = subprocess.run([sys.executable, "-m", "wizard", "demo", "--dir", str(folder), "--headless", "--yes",
                            "--pace", "0.1"], capture_output=True, text=True, timeout=300)  # fmt: skip
    assert built.returncode == 0, built.stdout + built.stderr
    term = terminal("rollback")
    term.start([sys.executable, "-m", "wizard", "demo", "--dir", str(folder)])  # the sandbox again: its done screen
    term.wait_for("is finished", timeout=60)
    term.wait_for("b Roll back")
    term.keys("b")
    screen = term.wait_for("restores it from the backup", timeout=60)
    assert "Restore the database from the backup" in screen and "indico-demo==3.2.5" in screen, screen
    rows = term.screen().splitlines()
    assert all(cell_len(row) <= 80 for row in rows), [row for row in rows if cell_len(row) > 80]
    term.keys("Enter")
    term.wait_for("Type demo and Enter to confirm")
    term.keys(*"demo", "Enter")
    screen = term.wait_for("The rollback of demo is finished: 3.2.9 → 3.2.5", timeout=120)
    screen = term.wait_for("health check: healthy: all 8 checks passed", timeout=120)
    assert "the site runs 3.2.5" in screen, screen
    assert "b Roll back" not in screen  # a rollback is not rolled back
    term.keys("q")
    wait_for(lambda: not (folder / "run" / "uwsgi.pid").exists(), 60, what="the demo, quit, to stop its services")
    term.leave()
    statuses = {step_id: step["status"] for step_id, step in session_steps(folder).items()}
    assert set(statuses) >= {"rollback-packages", "rollback-database"} and set(statuses.values()) == {"succeeded"}


def test_two_instances_on_one_venv_walked_at_80x24_with_the_host_table_between(tmp_path, terminal):
    """`demo --instances 2` in a real 80x24 terminal: the host table whole, "all on venv", each instance's plan,
    notes and backup, then each one's steps, back at the host table in between."""
    folder = tmp_path / "host"
    term = terminal("host")
    term.start([sys.executable, "-m", "wizard", "demo", "--dir", str(folder), "--instances", "2", "--pace", "0.1"])
    screen = term.wait_for("all on venv", timeout=60)
    term.wait_for("at head")  # each instance's database read in the background: demo's at the head of 3.2.5
    term.wait_for("to apply")  # demo2's one migration further behind
    screen = term.screen()
    assert all(cell_len(row) <= 80 for row in screen.splitlines()), screen
    assert "7551bd1, 1 to apply" in screen and "no session" in screen, screen
    term.keys("Down", "Down", "Enter")
    for name in ("demo", "demo2"):  # every backup before anything changes
        term.wait_for(f"{name} (demo)")
        term.wait_for("Press c to go on", timeout=60)
        term.keys("c")
        term.wait_for("acknowledge it with Space")
        term.keys("Space", "Space")
        term.wait_for("All warnings acknowledged")
        term.keys("Enter")
        term.wait_for(" needed, ")
        term.keys("Enter")
    for name, after in (("demo", "next: demo2's steps"), ("demo2", "every instance on it is upgraded")):
        term.wait_for("Start the upgrade", timeout=60)
        term.keys("Enter")
        term.wait_for("is finished", timeout=120)
        term.wait_for("h Host table", timeout=120)  # once the health check has answered
        screen = term.screen()
        assert "health check: healthy" in screen and "b Roll back" not in screen, screen
        term.keys("h")
        term.wait_for(after)
        screen = term.screen()
        assert all(cell_len(row) <= 80 for row in screen.splitlines()), screen
        if name == "demo":
            term.keys("Enter")  # the cursor is on the shared venv's row
    term.keys("q")
    pid_files = [folder / "run" / "uwsgi.pid", folder / "demo2" / "run" / "uwsgi.pid"]
    wait_for(lambda: not any(path.exists() for path in pid_files), 60,
             what="the demo, quit, to stop both instances' uWSGI")  # fmt: skip
    term.leave()
    for name in ("demo", "demo2"):
        saved = json.loads((folder / "state" / name / "session.json").read_text())
        assert saved["finished"] and all(step["status"] in ("succeeded", "skipped") for step in saved["steps"])
