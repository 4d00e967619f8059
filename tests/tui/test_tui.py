"""Pilot tests of every screen and transition, over the real engine and real step processes.

Where a test only needs steps to end to reach a screen, tests/helpers/fakes.py stands in for the process.
"""

from __future__ import annotations

import asyncio
import errno
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from textual.widgets import Input, Static

from screens.app import make_app
from screens.done import DoneScreen
from screens.logpane import LogPane
from screens.widgets import GLYPH, NowLine, StepList
from wizard.config.instance import load_instances
from wizard.demo.sandbox import build, start_services
from wizard.execution.runner import Alive, inspect
from wizard.headless import Choices, run_upgrade
from wizard.plainlines import PlainOutput
from wizard.session.state import StepStatus
from wizard.session.store import StateStore

from ..helpers.fakes import Attempt, FakeSteps
from ..helpers.headless import counting_steps, kill_step_and_wizard, start_and_kill
from ..helpers.processes import kill_tree_leftovers, wait_for
from ..helpers.sites import make_site, step_toml, toml_str
from ..helpers.tui import on_screen, screen_name, site_app, straight_to_run, text_of, until
from ..helpers.wheels import build_wheel, next_python_minor, offline_pip_env, venv_with

pytestmark = pytest.mark.slow


@pytest.fixture
def sandbox(tmp_path):
    folder = tmp_path / "demo"
    build(folder, pace=0.05)
    start_services(folder)
    yield folder
    kill_tree_leftovers(tmp_path)


def demo_app(folder: Path):
    """The demo as `upgrade-wizard demo` builds it: the engine takes the backup (SQLite, per its indico.conf)."""
    instance = load_instances(folder / "instances.toml")["demo"]
    return make_app({"demo": instance}, folder / "state", "demo")


async def test_the_demo_from_detection_to_done_with_the_keyboard(sandbox):
    app = demo_app(sandbox)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: screen_name(app) == "DetectScreen" and app.screen.plan, what="detection")
        assert "3.2.5 → 3.2.9" in str(app.screen.query_one("#summary").render())
        await pilot.press("c")
        await until(pilot, on_screen(app, "NotesScreen"))
        await pilot.press("c")  # two warnings are not acknowledged yet: nothing happens
        assert screen_name(app) == "NotesScreen"
        await pilot.press("space")
        saved = StateStore(sandbox / "state", "demo").load()
        assert list(saved.acknowledged) == ["demo-labels-lock"]  # saved at once, one by one
        await pilot.press("space", "c")
        await until(pilot, lambda: screen_name(app) == "BackupScreen" and app.screen.plan, what="the backup's measure")
        await pilot.press("enter")  # the focused "Take a backup now" button
        await until(pilot, on_screen(app, "ReadyScreen"), what="the backup and the ready screen")
        assert all(step.attempts == 0 for step in app.engine.session.steps)  # nothing runs before Enter here
        await pilot.press("enter")  # "Start the upgrade"
        await until(pilot, on_screen(app, "RunScreen"), what="the run screen")
        backup = app.engine.session.backup
        assert backup.kind == "taken" and Path(backup.path).parent == sandbox / "state" / "demo" / "backups"
        assert backup.contents == ["indico.sqlite3 (integrity checked)", "config/indico.conf"]
        await until(pilot, on_screen(app, "DoneScreen"), timeout=60, what="the upgrade to finish")
        assert all(step.status == "succeeded" for step in app.engine.session.steps)
        # The done screen checks the site at once (the demo uWSGI answers with the version it loaded) and keeps it.
        session = app.engine.session
        await until(pilot, lambda: session.health is not None, timeout=90, what="the done screen's health check")
        first = session.health
        assert first.healthy and not first.unknown, first.findings
        shown = text_of(app.screen.query_one("#health", Static))
        assert "healthy: all 7 checks passed" in shown and "the site runs 3.2.9" in shown, shown
        assert StateStore(sandbox / "state", "demo").load().health == first  # saved with the session
        await pilot.press("c")  # again, on demand
        await until(pilot, lambda: session.health is not first, timeout=90, what="the health check run again")
        await until(pilot, lambda: "healthy: all 7" in text_of(app.screen.query_one("#health", Static)),
                    what="the new check's verdict on screen")  # fmt: skip
        done = app.screen
        await pilot.press("r")  # the report archive, listed under where things are
        await until(pilot, lambda: done.report is not None, timeout=60, what="the report to be written")
        archive = Path(done.report.split(" (")[0])
        assert archive.parent == sandbox / "state" / "demo" / "reports"
        assert str(archive) in text_of(done.query_one("#where-text", Static)).replace("\n", "")
        await pilot.press("q")
    assert app.return_code == 0
    assert await asyncio.to_thread(lambda: archive.stat().st_size) > 0


async def test_the_done_screen_shows_a_failed_check_in_red_with_its_way_out(sandbox, monkeypatch):
    """The demo upgraded, then its uWSGI stopped: the done screen's check finds the site refusing connections."""
    monkeypatch.setattr(DoneScreen, "check_wait", 3.0)  # the site refuses: no need to give it a minute to start
    app = demo_app(sandbox)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: screen_name(app) == "DetectScreen" and app.screen.plan, what="detection")
        app.engine.begin(app.screen.plan)
        for note in app.engine.session.unacknowledged:
            app.engine.acknowledge(note.id)
        app.engine.declare_backup(str(sandbox), "demo")
        await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "wizard.demo.svc", "--dir", str(sandbox), "stop",
                                                 "uwsgi"], check=True, capture_output=True, timeout=60)  # fmt: skip
        app.route()  # straight to the run screen, which starts the steps
        await until(pilot, on_screen(app, "DoneScreen"), timeout=90, what="the upgrade to finish")
        session = app.engine.session
        await until(pilot, lambda: session.health is not None, timeout=120, what="the done screen's health check")
        failed = [f.title for f in session.health.failed]
        assert failed == ["the site does not answer as it should"], session.health.findings
        shown = text_of(app.screen.query_one("#health", Static))
        assert "NOT healthy" in shown and "connection refused" in shown, shown
        assert "what to do: is the app server running" in shown
        await pilot.press("q")
    assert app.return_code == 0  # the upgrade itself finished: `check` is the command that exits 1


async def test_the_done_screen_rolls_the_demo_back_after_the_name_is_typed(sandbox):
    """b on the done screen: the way back is worked out and shown; Esc returns; Enter asks for the instance's name
    (the database is restored), then the rollback runs like an upgrade and its own done screen checks the site."""
    instance = load_instances(sandbox / "instances.toml")["demo"]
    out = io.StringIO()
    # headless first (signal handlers need the main thread, and the app is not running yet)
    exit_code = run_upgrade(instance, StateStore(sandbox / "state", "demo"), PlainOutput(out), Choices())
    assert exit_code == 0, out.getvalue()
    upgrade = StateStore(sandbox / "state", "demo").load()
    app = demo_app(sandbox)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, on_screen(app, "DoneScreen"))
        await pilot.press("b")
        await until(pilot, lambda: screen_name(app) == "RollbackScreen" and app.screen.ways is not None,
                    timeout=60, what="the way back worked out")  # fmt: skip
        plan = text_of(app.screen.query_one("#plan", Static))
        assert "Restore the database from the backup" in plan and "indico-demo==3.2.5" in plan, plan
        database = " ".join(text_of(app.screen.query_one("#database", Static)).split())
        assert "restores it from the backup" in database and "k keeps it" in database, database
        await pilot.press("escape")  # nothing done: back where we were
        await until(pilot, on_screen(app, "DoneScreen"))
        assert app.engine.session.id == upgrade.id
        await pilot.press("b")
        await until(pilot, lambda: screen_name(app) == "RollbackScreen" and app.screen.ways is not None,
                    timeout=60, what="the way back worked out again")  # fmt: skip
        await pilot.press("enter")
        await until(pilot, on_screen(app, "TypeToConfirmDialog"))
        await pilot.press(*"dem", "enter")  # not the name: refused
        assert screen_name(app) == "TypeToConfirmDialog"
        await pilot.press("backspace", "backspace", "backspace", *"demo", "enter")
        await until(pilot, on_screen(app, "RunScreen"), what="the rollback to start")
        await until(pilot, on_screen(app, "DoneScreen"), timeout=90, what="the rollback to finish")
        session = app.engine.session
        assert session.is_rollback and session.undoes == upgrade.id
        assert [s.id for s in session.steps] == ["rollback-stop-celery", "rollback-stop-uwsgi", "rollback-packages",
                                                 "rollback-database", "rollback-start-uwsgi", "rollback-start-celery"]  # fmt: skip
        assert all(s.status == "succeeded" for s in session.steps)
        await until(pilot, lambda: session.health is not None, timeout=90, what="the rollback's health check")
        assert session.health.healthy, session.health.findings
        shown = text_of(app.screen.query_one("#health", Static))
        assert "the site runs 3.2.5" in shown and "exactly the 2 packages recorded" in shown, shown
        assert "The rollback of demo is finished: 3.2.9 → 3.2.5" in text_of(app.screen.query_one(".intro", Static))
        assert "b" not in {key for key, b in app.screen.active_bindings.items() if b.enabled}  # no rollback of it
        await pilot.press("q")
    assert app.return_code == 0


async def test_the_backup_gate_wants_the_instance_name_typed(site_root):
    site = make_site(site_root, step_toml("one", "print('one')"))
    app = site_app(site, processes=FakeSteps())
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: screen_name(app) == "DetectScreen" and app.screen.plan)
        await pilot.press("c")
        await until(pilot, on_screen(app, "BackupScreen"))
        app.screen.query_one("#path", Input).value = str(site_root)
        app.screen.query_one("#typed", Input).value = "not-the-name"
        app.screen.query_one("#typed", Input).focus()
        await pilot.press("enter")
        assert "type the instance name, 'site'" in str(app.screen.query_one("#problem").render())
        assert app.engine.session.backup is None and screen_name(app) == "BackupScreen"
        app.screen.query_one("#typed", Input).value = "site"
        await pilot.press("enter")
        await until(pilot, on_screen(app, "ReadyScreen"), what="the declared backup and the ready screen")
        await pilot.press("enter")
        await until(pilot, on_screen(app, "DoneScreen"), what="the single step to run")
        assert app.engine.session.backup.kind == "declared"


async def test_a_blocker_stops_the_flow(site_root):
    blocker = (
        '[[notes]]\nid = "needs-new-python"\nversion = "1.5"\nseverity = "blocker"\n'
        'title = "Needs a newer Python"\ntext = "This release cannot run here."\nway_out = "Rebuild the venv."\n'
        'when = { python = "<99" }\n'
    )
    site = make_site(site_root, step_toml("one", "print('one')") + blocker)
    app = site_app(site)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: screen_name(app) == "DetectScreen" and app.screen.plan)
        await pilot.press("c")
        await until(pilot, on_screen(app, "NotesScreen"))
        assert "cannot go on" in str(app.screen.query_one("#verdict").render())
        assert "Rebuild the venv." in str(app.screen.query_one("#detail").render())
        await pilot.press("c")
        assert screen_name(app) == "NotesScreen"
        await pilot.press("q")
    assert app.return_code == 2


async def test_nothing_pip_can_do_shows_the_way_to_the_newer_release(site_root):
    wheels = site_root / "wheels"
    build_wheel(wheels, "indico-demo", "1.0")
    build_wheel(wheels, "indico-demo", "2.0", requires_python=next_python_minor())
    venv_with(site_root, wheels, "indico-demo==1.0")
    site = make_site(site_root, step_toml("one", "print('one')"))
    env = "".join(f"{key} = {toml_str(value)}\n" for key, value in offline_pip_env(wheels).items())
    text = site.config.read_text().replace('target = "2.0"\n', "")
    site.config.write_text(text + f"[instances.site.env]\n{env}")
    app = site_app(site)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: screen_name(app) == "DetectScreen" and app.screen.plan, timeout=60)
        summary = str(app.screen.query_one("#summary").render())
        assert "pip would install nothing here" in summary and "1.0 is the newest release" in summary
        below = str(app.screen.query_one("#steps").render())
        assert f"indico-demo 2.0 needs Python {next_python_minor()}" in below and "Way out" in below
        await pilot.press("c")
        assert screen_name(app) == "DetectScreen"  # nothing to continue to
        await pilot.press("q")
    assert app.return_code == 2


async def test_a_failed_step_offers_retry_and_skip_with_a_reason(site_root):
    flag = site_root / "fixed"
    site = make_site(
        site_root,
        step_toml("flaky", f"import os, sys\nprint('checking')\nsys.exit(0 if os.path.exists({str(flag)!r}) else 3)")
        + step_toml("broken", "import sys\nprint('cannot')\nsys.exit(5)")
        + step_toml("last", "print('last')"),
    )
    assert site.cli("run", "--yes", "--backup-done", str(site_root)).returncode == 1  # flaky fails
    # In the wizard below, the stand-in plays the steps: flaky fails once more, then (as if fixed) succeeds.
    fake = FakeSteps({"flaky": [Attempt(["checking"], 3), Attempt(["checking"])],
                      "broken": Attempt(["cannot"], 5), "last": Attempt(["last"])})  # fmt: skip
    app = site_app(site, processes=fake)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, on_screen(app, "ResumeScreen"))
        await pilot.press("enter")  # "Run it again" comes first for a failed step
        await until(pilot, lambda: screen_name(app) == "RunScreen"
                    and app.engine.session.step("flaky").status == "failed" and app.engine.session.step("flaky").attempts == 2)  # fmt: skip
        assert "It failed (exit code 3)" in app.screen.query_one(NowLine).plain
        await pilot.press("r")
        await until(pilot, lambda: app.engine.session.step("broken").status == "failed", what="the broken step to fail")
        await pilot.press("s")
        await until(pilot, on_screen(app, "ReasonDialog"))
        await pilot.press("enter")  # an empty reason is refused
        assert screen_name(app) == "ReasonDialog"
        await pilot.press(*"fixed by hand", "enter")
        await until(pilot, on_screen(app, "DoneScreen"), what="the last step")
        steps = {s.id: s for s in app.engine.session.steps}
        assert steps["flaky"].status == "succeeded" and steps["flaky"].attempts == 3
        assert steps["broken"].status == "skipped" and steps["broken"].skip_reason == "fixed by hand"
        assert steps["last"].status == "succeeded"
    assert fake.launched == ["flaky", "flaky", "broken", "last"]


def failed_once(site_root):
    """A site whose only step failed in an earlier headless run, and the app that resumes it."""
    site = make_site(site_root, step_toml("broken", "import sys\nsys.exit(4)"))
    site.cli("run", "--yes", "--backup-done", str(site_root))
    return site, site_app(site)


async def test_abort_after_a_failure_keeps_the_session(site_root):
    site, app = failed_once(site_root)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, on_screen(app, "ResumeScreen"))
        await pilot.press("down", "enter")  # "Skip it", then change our mind
        await until(pilot, on_screen(app, "ReasonDialog"))
        await pilot.press("escape")
        await until(pilot, on_screen(app, "ResumeScreen"))
        await pilot.press("down", "enter")  # "Read its log first"
        await until(pilot, on_screen(app, "RunScreen"))
        assert any("exited with code 4" in line for line in app.screen.query_one(LogPane).given)
        await pilot.press("a")
    assert app.return_code == 1
    assert json.loads(site.session_file.read_text())["steps"][0]["status"] == "failed"


async def test_resume_reattaches_to_a_step_still_running(site_root):
    runs = site_root / "runs.txt"
    site = make_site(site_root, counting_steps(runs, slow_seconds=4))
    start_and_kill(site, signal.SIGKILL)
    app = site_app(site)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, on_screen(app, "ResumeScreen"))
        assert "still running" in str(app.screen.query_one("#where").render())
        assert "Abandon" not in str(app.screen.query_one("#choices").get_option_at_index(0).prompt)
        await pilot.press("enter")
        await until(pilot, on_screen(app, "RunScreen"))
        log = app.screen.query_one(LogPane)
        await until(pilot, lambda: any("begin" in line for line in log.given), what="the live log, reattached")
        await until(pilot, on_screen(app, "DoneScreen"), what="the steps to finish")
    assert runs.read_text().splitlines() == ["first", "slow", "last"]


async def test_resume_records_a_step_that_finished_while_away(site_root):
    runs = site_root / "runs.txt"
    site = make_site(site_root, counting_steps(runs, slow_seconds=1))
    step = start_and_kill(site, signal.SIGKILL)
    wait_for(lambda: "slow" in runs.read_text(), what="the slow step to finish on its own")
    app = site_app(site)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, on_screen(app, "ResumeScreen"))
        assert app.engine.session.step("slow").status == "succeeded"  # recorded while resuming
        assert app.engine.session.step("slow").pid == step["pid"]
        await pilot.press("enter")  # continue
        await until(pilot, on_screen(app, "DoneScreen"))
    assert runs.read_text().splitlines() == ["first", "slow", "last"]


async def test_resume_offers_a_rerun_first_for_an_interrupted_safe_step(site_root):
    runs = site_root / "runs.txt"
    site = make_site(
        site_root, counting_steps(runs, slow_seconds=6)
    )  # the kill must land before it ends, loaded or not
    kill_step_and_wizard(site)
    app = site_app(site)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, on_screen(app, "ResumeScreen"))
        assert "interrupted" in str(app.screen.query_one("#where").render())
        first = str(app.screen.query_one("#choices").get_option_at_index(0).prompt)
        assert first.startswith("Run it again (it is marked safe")
        await pilot.press("enter")
        await until(pilot, on_screen(app, "DoneScreen"))
    assert runs.read_text().splitlines() == ["first", "slow", "last"]
    assert app.engine.session.step("slow").attempts == 2


async def test_coming_back_to_a_failure_offers_the_way_back_before_abandoning(site_root):
    """The resume screen of a failed upgrade whose packages were recorded: "Take the upgrade back" comes just before
    abandoning (an abandoned upgrade is put aside, where no rollback finds it), and opens the rollback screen."""
    _, app = failed_once(site_root)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, on_screen(app, "ResumeScreen"))
        labels = [str(option.prompt) for option in app.screen.query_one("#choices").options]
        assert labels[-2:] == ["Take the upgrade back: see what that runs first",
                               "Abandon this session (it is kept on disk)"]  # fmt: skip
        await pilot.press("end", "up", "enter")
        await until(pilot, on_screen(app, "RollbackScreen"), what="the rollback screen")
        assert not app.engine.session.is_rollback  # nothing begun before the operator says so there


async def test_abandon_keeps_the_session_on_disk_and_plans_anew(site_root):
    site, app = failed_once(site_root)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, on_screen(app, "ResumeScreen"))
        await pilot.press("end", "enter")  # the last choice: abandon
        await until(pilot, on_screen(app, "ConfirmDialog"))
        await pilot.press("y")
        await until(pilot, on_screen(app, "DetectScreen"))
    kept = list((site.state / site.name).glob("session-*.json"))
    assert len(kept) == 1 and json.loads(kept[0].read_text())["abandoned"]
    assert not site.session_file.exists()


async def test_the_picker_opens_the_chosen_instance(tmp_path):
    first = make_site(tmp_path / "a", step_toml("one", "print(1)"), name="alpha")
    second = make_site(tmp_path / "b", step_toml("one", "print(1)"), name="beta")
    config = tmp_path / "instances.toml"
    config.write_text(first.config.read_text() + second.config.read_text())
    app = make_app(load_instances(config), tmp_path / "state")
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, on_screen(app, "PickerScreen"))
        await pilot.press("down", "enter")
        await until(pilot, on_screen(app, "DetectScreen"))
        assert app.engine.instance.name == "beta"


async def test_the_stand_in_s_failure_shows_its_exit_code_and_offers_retry_and_skip(site_root):
    site = make_site(site_root, step_toml("one", "print('one')") + step_toml("two", "print('two')"))
    fake = FakeSteps({"one": [Attempt(["about to fail"], 7), Attempt(["fine now"])]})
    app = site_app(site, processes=fake)
    async with app.run_test(size=(80, 24)) as pilot:
        await straight_to_run(pilot, app, site_root)
        await until(pilot, lambda: screen_name(app) == "RunScreen" and app.screen.check_action("retry", ()),
                    what="the decision after the failure")  # fmt: skip
        assert app.screen.check_action("skip", ()) and app.engine.session.step("one").status == "failed"
        assert "It failed (exit code 7)" in app.screen.query_one(NowLine).plain
        assert str(app.screen.query_one(StepList).get_cell("one", "exit")).strip() == "7"
        lines = app.screen.query_one(LogPane).given
        assert "about to fail" in lines and "the command exited with code 7 after" in lines[-1]
        await pilot.press("r")
        await until(pilot, on_screen(app, "DoneScreen"), what="the retry and the second step")
    saved = StateStore(site.state, site.name).load()
    assert [(s.id, s.status, s.exit_code, s.attempts) for s in saved.steps] == [
        ("one", "succeeded", 0, 2),
        ("two", "succeeded", 0, 1),
    ]
    assert fake.launched == ["one", "one", "two"]
    assert not list(site.state.rglob("*.wrapper.err"))  # no wrapper was started


async def test_a_step_the_stand_in_holds_runs_until_released(site_root):
    site = make_site(site_root, step_toml("slow", "print('begin')"))
    fake = FakeSteps({"slow": Attempt(["begin"], hold=True)})
    app = site_app(site, processes=fake)
    async with app.run_test(size=(80, 24)) as pilot:
        await straight_to_run(pilot, app, site_root)
        await until(pilot, on_screen(app, "RunScreen"))
        log = app.screen.query_one(LogPane)
        await until(pilot, lambda: "begin" in log.given, what="the held step's output")
        step = app.engine.session.step("slow")
        assert step.status == "running" and step.pid == os.getpid() and inspect(step) == Alive(os.getpid())
        assert str(app.screen.query_one(StepList).get_cell("slow", "mark")).strip() == GLYPH[StepStatus.RUNNING][0]
        await pilot.pause(0.5)
        assert screen_name(app) == "RunScreen" and fake.running() == ["slow"]
        fake.release("slow")
        await until(pilot, on_screen(app, "DoneScreen"), what="the released step to end")
    assert StateStore(site.state, site.name).load().step("slow").exit_code == 0


async def test_scrolling_back_is_not_undone_by_new_output_and_f_follows_again(site_root):
    stop = site_root / "stop"
    chatty = (f"import os, time\ni = 0\nwhile not os.path.exists({str(stop)!r}) and i < 20000:\n"
              "    print('line', i, flush=True)\n    i += 1\n    time.sleep(0.01)")  # fmt: skip
    site = make_site(site_root, step_toml("chatty", chatty))
    app = site_app(site)
    async with app.run_test(size=(80, 24)) as pilot:
        await straight_to_run(pilot, app, site_root)
        await until(pilot, on_screen(app, "RunScreen"))
        log = app.screen.query_one(LogPane)
        await until(pilot, lambda: log.line_count > 100, what="output")
        log.focus()
        await pilot.pause()
        await pilot.press("home")
        await pilot.pause()
        assert log.scroll_y == 0
        seen = log.line_count
        await until(pilot, lambda: log.line_count > seen + 50, what="more output")
        assert log.scroll_y == 0  # more lines came, the view stayed where the reader put it
        await pilot.press("f")
        await pilot.pause(0.2)
        assert log.is_vertical_scroll_end
        stop.touch()
        await until(pilot, on_screen(app, "DoneScreen"), what="the chatty step to stop")


async def test_quitting_while_a_step_runs_leaves_it_running(site_root):
    site = make_site(site_root, step_toml("slow", "import time\nprint('begin', flush=True)\ntime.sleep(5)"))
    app = site_app(site)
    async with app.run_test(size=(80, 24)) as pilot:
        await straight_to_run(pilot, app, site_root)
        await until(pilot, lambda: app.engine.session.running is not None and app.engine.session.running.pid)
        pid = app.engine.session.running.pid
        await pilot.press("q")
        await until(pilot, on_screen(app, "ConfirmDialog"))
        await pilot.press("y")
    assert app.return_code == 130
    assert psutil.pid_exists(pid)


def test_the_tui_refuses_without_a_terminal(site_root):
    site = make_site(site_root, step_toml("one", "print(1)"))
    result = site.cli("tui")
    assert result.returncode == 2
    assert "needs a terminal" in result.stderr and "ssh -t" in result.stderr
    assert "\x1b[" not in result.stdout + result.stderr


async def test_an_instance_held_by_another_wizard_exits_3(site_root):
    site = make_site(site_root, step_toml("one", "print(1)"))
    with StateStore(site.state, site.name).lock():  # another wizard holds it (a second flock conflicts)
        app = site_app(site)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause(0.2)
    assert app.return_code == 3


async def test_the_demo_lock_wait_shows_the_panel_and_restart_releases_it(tmp_path):
    folder = tmp_path / "slow demo"
    build(folder, pace=2)  # its uWSGI's requests last 40 s: only a restart ends one soon
    start_services(folder)
    try:
        app = demo_app(folder)
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, lambda: screen_name(app) == "DetectScreen" and app.screen.plan)
            engine = app.engine
            engine.begin(app.screen.plan)
            for note in engine.session.unacknowledged:
                engine.acknowledge(note.id)
            engine.pass_gate(engine.backups.take())
            for step in engine.session.steps[:3]:
                engine.skip(step, "not needed for this test")
            app.route()
            seen = []

            def panel_shown() -> bool:
                verdict = getattr(app.screen, "verdict", None)
                if verdict is not None and verdict.kind == "lock_wait":
                    seen.append((verdict, str(app.screen.query_one("#lock-head").render())))
                return bool(seen)

            await until(pilot, panel_shown, timeout=30, what="the lock panel")
            verdict, panel = seen[0]  # as the operator saw it (the demo's request may also end by itself later)
            assert verdict.app_server_blocks and "Blocked by the uWSGI service" in panel
            await pilot.press("u")
            await until(pilot, lambda: engine.session.step("db-upgrade").status == "succeeded", timeout=20)
            deadline = time.monotonic() + 60
            while screen_name(app) != "DoneScreen" and time.monotonic() < deadline:
                screen = app.screen  # the plugins' step waits on the new uWSGI's request: restart again
                if screen_name(app) == "RunScreen" and screen.check_action("restart_app_server", ()):
                    await pilot.press("u")
                await pilot.pause(0.2)
            assert screen_name(app) == "DoneScreen"
            await pilot.pause(0.2)  # let the screen finish mounting before the app is torn down
            assert engine.session.side_jobs and all(job.run.exit_code == 0 for job in engine.session.side_jobs)
            reload = engine.session.step("reload-uwsgi")
            assert reload.status == "skipped" and "uwsgi was restarted" in reload.skip_reason
    finally:
        kill_tree_leftovers(tmp_path)


async def test_a_fast_failing_step_s_last_lines_reach_the_log_pane(site_root):
    code = ("import sys\nw = sys.stdout.write\nfor n in range(300000): w('line %d ' % n + 'x' * 40 + '\\n')\n"
            "print('FATAL the end', flush=True)\nsys.exit(3)")  # fmt: skip
    site = make_site(site_root, step_toml("flood", code))
    app = site_app(site)
    async with app.run_test(size=(80, 24)) as pilot:
        await straight_to_run(pilot, app, site_root)
        await until(pilot, on_screen(app, "RunScreen"))
        await until(pilot, lambda: app.engine.session.steps[0].status == "failed", timeout=60, what="the step to fail")
        log = app.screen.query_one(LogPane)
        await until(pilot, lambda: "the command exited with code 3" in (log.given or [""])[-1], timeout=60,
                    what="the wrapper's closing line in the pane")  # fmt: skip
        assert log.given[-2] == "FATAL the end"  # the step's own last line, where the error is
        assert log.given[-3].startswith("line 299999 ") and log.given[-3].endswith("x" * 40)  # whole, in order


def full_disk(path, data, mode=0o600):
    """write_atomic on a full disk (its tmp file is removed: the session on disk is as it was)."""
    raise OSError(errno.ENOSPC, "No space left on device", str(path))


async def stopped_saying(app) -> str:
    """Wait (without the pilot: the app is going) until the wizard stops; what it says as it goes."""
    deadline = time.monotonic() + 60
    while app.return_code is None:
        assert time.monotonic() < deadline, "waited 60 s for the wizard to stop after the failed save"
        await asyncio.sleep(0.05)
    return " ".join(str(part) for part in app._exit_renderables)  # printed once the app is gone


async def test_a_full_disk_while_saving_ends_the_wizard_saying_the_session_is_intact(site_root, monkeypatch):
    site = make_site(site_root, step_toml("one", "print('one')"))
    app = site_app(site)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: screen_name(app) == "DetectScreen" and app.screen.plan, what="detection")
        monkeypatch.setattr("wizard.session.store.write_atomic", full_disk)
        app.simulate_key("c")  # begins the session: its first save fails, and the wizard stops
        said = await stopped_saying(app)
    assert app.return_code == 2
    assert "could not save the session" in said and "No space left on device" in said and "intact" in said
    assert not site.session_file.exists()


async def test_a_full_disk_when_a_step_starts_ends_the_wizard_before_the_step_runs(site_root, monkeypatch):
    ran = site_root / "ran"
    site = make_site(site_root, step_toml("one", f"open({str(ran)!r}, 'w')"))
    app = site_app(site)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: screen_name(app) == "DetectScreen" and app.screen.plan, what="detection")
        app.engine.begin(app.screen.plan)
        app.engine.declare_backup(str(site_root), "site")
        monkeypatch.setattr("wizard.session.store.write_atomic", full_disk)
        app.route()  # the run screen starts the step: its save fails first
        said = await stopped_saying(app)
    assert app.return_code == 2 and "could not save the session" in said and "intact" in said
    assert not ran.exists() and site.steps()["one"]["status"] == "pending"  # on disk as it was: nothing launched
