"""Pilot tests of the way through the gate: release notes of every severity, then the ready screen.

Info notes need no acknowledging but are shown before the backup gate; after the gate, nothing runs
before the operator has seen what will run and pressed Enter, and a wizard quit there comes back there.
The site's steps are played by the stand-in (tests/helpers/fakes.py).
"""

from __future__ import annotations

import json

import pytest
from textual.widgets import Input

from screens.ready import steps_text
from steps import load_recipe
from wizard.session.state import Session, StepRecord, StepStatus
from wizard.views.services import nothing_started, service_uses

from ..helpers.fakes import FakeSteps
from ..helpers.sites import make_site, step_toml
from ..helpers.tui import on_screen, screen_name, site_app, until

pytestmark = pytest.mark.slow

INFO = (
    '[[notes]]\nid = "new-setuptools"\nversion = "1.5"\nseverity = "info"\n'
    'title = "1.5 pins setuptools below 82"\ntext = "pip installs setuptools<82 with it; nothing to do."\n'
    'when = { python = "<99" }\n'
)
WARNING = (
    '[[notes]]\nid = "stop-the-worker"\nversion = "1.2"\nseverity = "warning"\n'
    'title = "The worker must stay stopped"\ntext = "Until the schema is upgraded."\n'
    'when = { python = "<99" }\n'
)
TWO_STEPS = step_toml("first", "print('first')") + step_toml("second", "print('second')")


def footer_keys(app) -> dict[str, str]:
    return {key: b.binding.description for key, b in app.screen.active_bindings.items() if b.binding.show}


async def to_notes(pilot, app) -> None:
    await until(pilot, lambda: screen_name(app) == "DetectScreen" and app.screen.plan, what="detection")
    await pilot.press("c")
    await until(pilot, on_screen(app, "NotesScreen"), what="the release notes")


async def declare(pilot, app, where) -> None:
    """On the backup screen: say where one's own backup is, and confirm with the instance's name."""
    await until(pilot, on_screen(app, "BackupScreen"), what="the backup screen")
    app.screen.query_one("#path", Input).value = str(where)
    app.screen.query_one("#typed", Input).focus()
    await pilot.press(*app.engine.instance.name, "enter")
    await until(pilot, on_screen(app, "ReadyScreen"), what="the declared backup and the ready screen")


# -- release notes --------------------------------------------------------------------------------


async def test_info_notes_alone_are_shown_before_the_gate_and_need_no_acknowledging(site_root):
    site = make_site(site_root, TWO_STEPS + INFO)
    app = site_app(site, processes=FakeSteps())
    async with app.run_test(size=(80, 24)) as pilot:
        await to_notes(pilot, app)
        verdict = str(app.screen.query_one("#verdict").render())
        assert verdict == "1 note to read, none to acknowledge: Enter goes on to the backup."
        assert "setuptools<82" in str(app.screen.query_one("#detail").render())
        assert footer_keys(app) == {"enter": "Continue to the backup", "q": "Quit"}  # no Space: nothing to acknowledge
        await pilot.press("space")
        assert app.engine.session.acknowledged == {}  # nothing recorded for an info note
        await pilot.press("enter")
        await until(pilot, on_screen(app, "BackupScreen"), what="Enter to go on to the backup")


async def test_info_notes_come_again_before_the_gate_on_resume_but_not_after_it(site_root):
    site = make_site(site_root, TWO_STEPS + INFO)
    app = site_app(site, processes=FakeSteps())
    async with app.run_test(size=(80, 24)) as pilot:
        await to_notes(pilot, app)
        await pilot.press("enter")
        await until(pilot, on_screen(app, "BackupScreen"))
        await pilot.press("ctrl+q")
    again = site_app(site, processes=FakeSteps())
    async with again.run_test(size=(80, 24)) as pilot:
        await until(pilot, on_screen(again, "ResumeScreen"), what="the resume screen (gate still closed)")
        await pilot.press("enter")  # continue where it stopped
        await until(pilot, on_screen(again, "NotesScreen"), what="the notes, once more before the gate")
        await pilot.press("enter")
        await declare(pilot, again, site_root)
        await pilot.press("q")
    last = site_app(site, processes=FakeSteps())
    async with last.run_test(size=(80, 24)) as pilot:
        await until(pilot, on_screen(last, "ReadyScreen"), what="the ready screen, the notes being behind the gate")


async def test_warnings_then_info_ask_for_each_warning_and_then_go_on_with_enter(site_root):
    site = make_site(site_root, TWO_STEPS + WARNING + INFO)
    app = site_app(site, processes=FakeSteps())
    async with app.run_test(size=(80, 24)) as pilot:
        await to_notes(pilot, app)
        assert "acknowledge it with Space (1 left)" in str(app.screen.query_one("#verdict").render())
        assert footer_keys(app) == {"space": "Acknowledge", "q": "Quit"}  # Enter does not skip a warning
        await pilot.press("enter")
        assert screen_name(app) == "NotesScreen"
        await pilot.press("space")
        await until(pilot, lambda: "All warnings acknowledged" in str(app.screen.query_one("#verdict").render()))
        assert footer_keys(app) == {"enter": "Continue to the backup", "q": "Quit"}
        await pilot.press("enter")
        await until(pilot, on_screen(app, "BackupScreen"), what="the backup, the notes not shown twice")
    assert list(app.engine.session.acknowledged) == ["stop-the-worker"]


# -- the ready screen --------------------------------------------------------------------------------


async def test_the_ready_screen_shows_what_will_run_and_starts_only_on_enter(site_root):
    site = make_site(site_root, TWO_STEPS)
    fake = FakeSteps()
    app = site_app(site, processes=fake)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: screen_name(app) == "DetectScreen" and app.screen.plan, what="detection")
        await pilot.press("c")
        await declare(pilot, app, site_root)
        screen = app.screen
        steps = str(screen.query_one("#steps").render())
        assert steps.splitlines() == ["1. Step first", "2. Step second"]
        assert "No service is stopped" in str(screen.query_one("#services").render())
        assert "cannot be measured beforehand" in str(screen.query_one("#services").render())
        assert str(site_root) in str(screen.query_one("#backup").render())
        assert "declared by the operator" in str(screen.query_one("#backup").render())
        assert footer_keys(app) == {"enter": "Start the upgrade", "b": "Back: plan again", "q": "Quit"}
        assert fake.launched == [] and nothing_started(app.engine.session)  # shown: nothing has run
        await pilot.press("enter")
        await until(pilot, on_screen(app, "DoneScreen"), what="both steps")
    assert fake.launched == ["first", "second"]


async def test_quit_on_the_ready_screen_comes_back_to_it(site_root):
    site = make_site(site_root, TWO_STEPS)
    app = site_app(site, processes=FakeSteps())
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: screen_name(app) == "DetectScreen" and app.screen.plan, what="detection")
        await pilot.press("c")
        await declare(pilot, app, site_root)
        await pilot.press("q")
    assert app.return_code == 0
    fake = FakeSteps()
    again = site_app(site, processes=fake)
    async with again.run_test(size=(80, 24)) as pilot:
        await until(pilot, on_screen(again, "ReadyScreen"), what="the ready screen, not the resume screen")
        assert fake.launched == []
        await pilot.press("enter")
        await until(pilot, on_screen(again, "DoneScreen"), what="both steps")
    assert fake.launched == ["first", "second"]


async def test_back_on_the_ready_screen_puts_the_session_aside_and_plans_again(site_root):
    site = make_site(site_root, TWO_STEPS)
    fake = FakeSteps()
    app = site_app(site, processes=fake)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: screen_name(app) == "DetectScreen" and app.screen.plan, what="detection")
        await pilot.press("c")
        await declare(pilot, app, site_root)
        await pilot.press("b")
        await until(pilot, on_screen(app, "ConfirmDialog"))
        await pilot.press("n")  # not after all
        await until(pilot, on_screen(app, "ReadyScreen"))
        await pilot.press("b")
        await until(pilot, on_screen(app, "ConfirmDialog"))
        await pilot.press("y")
        await until(pilot, on_screen(app, "DetectScreen"), what="detection again")
    kept = list((site.state / site.name).glob("session-*.json"))
    assert len(kept) == 1 and json.loads(kept[0].read_text())["abandoned"] and fake.launched == []


# -- what the ready screen derives from the plan ----------------------------------------------------------


def indico_session(step_ids: list[str], path: list[str] | None = None) -> Session:
    titles = {spec.id: spec.title for spec in load_recipe("indico").steps}
    steps = [StepRecord(id=step_id, title=titles[step_id.split("-3.")[0]], argv=["true"]) for step_id in step_ids]
    return Session(id="s", instance="main", recipe="indico", steps=steps, path=path or ["3.2.9"],
                   services={"celery": "indico-celery.service", "uwsgi": "indico-uwsgi.service"})  # fmt: skip


def test_the_services_come_from_the_recipe_steps_with_their_units_and_step_numbers():
    session = indico_session(["stop-celery", "pip-core", "db-upgrade", "reload-uwsgi", "start-celery"])
    uses = service_uses(session, load_recipe("indico"))
    assert [use.line() for use in uses] == [
        "celery (indico-celery.service): stopped at step 1, started again at step 5",
        "uwsgi (indico-uwsgi.service): reloaded at step 4",
    ]
    assert uses[0].stopped_spans() == [(1, 5)] and uses[1].stopped_spans() == []


def test_a_later_hops_steps_are_found_by_their_suffix_and_a_skipped_step_stops_nothing():
    session = indico_session(["stop-celery", "pip-core", "start-celery", "stop-celery-3.3", "start-celery-3.3"],
                             path=["3.2.9", "3.3"])  # fmt: skip
    session.steps[0].status = StepStatus.SKIPPED
    session.steps[0].skip_reason = "the instance has no celery service"
    uses = service_uses(session, load_recipe("indico"))
    assert [use.acts for use in uses] == [[(3, "start"), (4, "stop"), (5, "start")]]
    assert uses[0].stopped_spans() == [(4, 5)]
    lines = steps_text(session).plain.splitlines()
    assert lines[0].strip().startswith("Stop the Celery worker — skipped: the instance has no celery")
    assert lines[1] == "2. Install the new Indico release"


async def test_a_long_plan_scrolls_in_its_box_and_what_is_stopped_and_the_backup_stay_in_view(site_root):
    site = make_site(site_root, "".join(step_toml(f"s{n:02d}", "print(1)") for n in range(1, 25)))
    app = site_app(site, processes=FakeSteps())
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: screen_name(app) == "DetectScreen" and app.screen.plan, what="detection")
        await pilot.press("c")
        await declare(pilot, app, site_root)
        screen = app.screen
        box = screen.query_one("#steps-box")
        await until(pilot, lambda: box.max_scroll_y > 0, what="the steps' box to be fitted")
        for name in ("#services", "#backup"):
            shown = screen.query_one(name).region
            assert shown.height > 2 and shown.bottom <= 23, f"{name} is not in full on the 80x24 screen: {shown}"
        assert footer_keys(app) == {"enter": "Start the upgrade", "down": "More steps", "b": "Back: plan again",
                                    "q": "Quit"}  # fmt: skip
        await pilot.press("down", "down")
        assert box.scroll_y == 2
        await pilot.press("up")
        assert box.scroll_y == 1


def test_run_yes_says_the_info_notes_before_the_gate_as_the_wizard_shows_them(site_root):
    site = make_site(site_root, TWO_STEPS + INFO)
    run = site.cli("run", "--yes", "--backup-done", str(site_root))
    assert run.returncode == 0, run.stdout + run.stderr
    lines = [line.split(" ", 2)[2] for line in run.stdout.splitlines()]
    said = lines.index("INFO (1.5) 1.5 pins setuptools below 82")
    assert lines[said + 1].strip() == "pip installs setuptools<82 with it; nothing to do."
    assert lines[said + 2].startswith("backup gate passed: declared backup at")
