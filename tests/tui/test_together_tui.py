"""The TUI on a host with two instances on one venv (the demo, --instances 2): the host table, "all on its
venv", every instance's plan and backup first, then each one's steps, and the host table between them."""

from __future__ import annotations

import json

import pytest

from screens.app import make_app
from wizard.config.instance import load_instances
from wizard.demo.catalog import CORE_REVISIONS

from ..helpers.sites import demo_host
from ..helpers.tui import on_screen, screen_name, text_of, until

pytestmark = pytest.mark.slow

STEP_WAIT = 180.0  # one instance's demo steps at pace 0.1, on a loaded 2-core machine


@pytest.fixture
def host(tmp_path):
    with demo_host(tmp_path) as folder:
        yield folder


def session(folder, name: str) -> dict:
    return json.loads((folder / "state" / name / "session.json").read_text())


async def prepare(pilot, app, name: str) -> None:
    """Detection, the notes and the backup of one instance, as a person goes through them."""
    await until(pilot, lambda: screen_name(app) == "DetectScreen" and app.screen.plan is not None, 120,
                f"{name}'s plan")  # fmt: skip
    assert app.engine.instance.name == name
    await pilot.press("c")
    await until(pilot, on_screen(app, "NotesScreen"), what=f"{name}'s notes")
    await pilot.press("space", "space", "enter")
    await until(pilot, lambda: screen_name(app) == "BackupScreen" and app.screen.plan is not None, 60,
                f"{name}'s backup measured")  # fmt: skip
    await pilot.press("enter")


async def run_its_steps(pilot, app, name: str) -> None:
    await until(pilot, lambda: screen_name(app) == "ReadyScreen" and app.engine.instance.name == name, 120,
                f"{name}'s ready screen")  # fmt: skip
    await pilot.press("enter")
    await until(pilot, on_screen(app, "DoneScreen"), STEP_WAIT, f"{name}'s steps to finish")
    assert not app.screen.check_action("new", ())  # one instance of a shared venv is never planned alone
    # On to the next instance once this one's site is proven well (the health check kept with its session).
    await until(pilot, lambda: app.screen.check_action("host", ()), 120, f"{name}'s health check")
    assert app.engine.session.health is not None and app.engine.session.health.healthy
    await pilot.press("h")
    await until(pilot, on_screen(app, "PickerScreen"), what="the host table")


async def test_all_on_the_venv_prepares_both_then_runs_each_with_the_host_table_between(host):
    app = make_app(load_instances(host / "instances.toml"), host / "state")
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, on_screen(app, "PickerScreen"))
        await pilot.press("down", "down", "enter")  # demo, demo2, then "all on venv"
        await prepare(pilot, app, "demo")
        await prepare(pilot, app, "demo2")  # the second's backup before any code changes
        assert session(host, "demo")["backup"] and session(host, "demo2")["backup"]
        assert all(step["attempts"] == 0 for name in ("demo", "demo2") for step in session(host, name)["steps"])

        await run_its_steps(pilot, app, "demo")
        intro = str(app.screen.query_one(".intro").render())
        assert "next: demo2's steps" in intro, intro
        await pilot.press("enter")  # the cursor is on the shared venv's row: go on
        await run_its_steps(pilot, app, "demo2")
        assert "every instance on it is upgraded" in str(app.screen.query_one(".intro").render())
        await pilot.press("q")

    first, second = session(host, "demo"), session(host, "demo2")
    assert [step["id"] for step in first["steps"] if step["id"].startswith("pip-")] == ["pip-core", "pip-plugins"]
    assert not [step for step in second["steps"] if step["id"].startswith("pip-")]
    assert first["finished"] and second["finished"] and first["shared_run"] == second["shared_run"]
    (record,) = (host / "state" / ".venvs").glob("*/run.json")
    saved = json.loads(record.read_text())
    assert saved["finished"] and saved["sessions"] == {"demo": first["id"], "demo2": second["id"]}
    import sqlite3

    for database in (host / "indico.sqlite3", host / "demo2" / "indico.sqlite3"):
        with sqlite3.connect(database) as conn:
            assert conn.execute("SELECT version_num FROM alembic_version").fetchone()[0] == CORE_REVISIONS[-1][0]


async def test_picking_one_instance_of_a_shared_venv_shows_why_it_cannot_go_alone(host):
    app = make_app(load_instances(host / "instances.toml"), host / "state")
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, on_screen(app, "PickerScreen"))
        await pilot.press("enter")  # demo alone
        await until(pilot, lambda: screen_name(app) == "DetectScreen" and app.screen.plan is not None, 120,
                    "demo's plan")  # fmt: skip
        assert app.screen.plan.blocked
        assert any(note.id == "check-shared-venv" and note.severity == "blocker" for note in app.screen.plan.notes)
        await pilot.press("q")


async def test_an_instances_part_of_a_shared_rollback_under_way_is_not_opened_alone(host, capsys):
    """demo2's rollback begun as part of its shared venv's (the record names it): picked alone in the host table,
    the wizard does not open it, and says to carry on with every instance on the venv."""
    from wizard.config.context import InstanceContext
    from wizard.rollback.plan import SharedCode, plan_rollback
    from wizard.session.engine import Engine
    from wizard.session.store import StateStore
    from wizard.together.record import SharedRunStore

    from ..helpers.sites import run_cli

    upgraded = run_cli("--config", str(host / "instances.toml"), "--state-dir", str(host / "state"),
                       "run", "--yes", "--all", timeout=STEP_WAIT)  # fmt: skip
    assert upgraded.returncode == 0, upgraded.stdout + upgraded.stderr
    instances = load_instances(host / "instances.toml")
    code = StateStore(host / "state", "demo").load()
    assert code is not None
    with Engine(InstanceContext.open(instances["demo2"]), StateStore(host / "state", "demo2")) as engine:
        shared = SharedCode("demo", code.packages_before, code.installed_version, puts_back=False)
        begun = engine.begin_rollback(plan_rollback(engine.context, engine.session, True, shared))
    store = SharedRunStore(host / "state", instances["demo2"].venv)
    record = store.load()
    assert record is not None
    record.rollbacks["demo2"] = begun.id
    store.save(record)

    app = make_app(instances, host / "state")
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, on_screen(app, "PickerScreen"))
        await pilot.press("down", "enter")  # demo2 alone
        await until(pilot, lambda: app.return_code is not None, 60, "the wizard to stop")
    assert app.return_code == 2
    assert all(step.attempts == 0 for step in StateStore(host / "state", "demo2").load().steps)  # nothing ran
    said = " ".join(capsys.readouterr().err.split())  # what the wizard printed as it stopped
    assert "its part of the rollback of the shared venv" in said and "rollback --yes --all" in said, said


async def test_a_shared_upgrade_found_unwell_names_the_rollback_of_every_instance(host):
    """After both instances are upgraded together, demo2's database is found behind its code: its done screen says
    the instances on the venv go back together, and how (b, one instance's rollback, is not offered)."""
    import sqlite3

    from ..helpers.sites import run_cli

    upgraded = run_cli("--config", str(host / "instances.toml"), "--state-dir", str(host / "state"),
                       "run", "--yes", "--all", timeout=STEP_WAIT)  # fmt: skip
    assert upgraded.returncode == 0, upgraded.stdout + upgraded.stderr
    with sqlite3.connect(host / "demo2" / "indico.sqlite3") as conn:  # as if its migration had been undone
        conn.execute("UPDATE alembic_version SET version_num = ?", (CORE_REVISIONS[0][0],))
    app = make_app(load_instances(host / "instances.toml"), host / "state")
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, on_screen(app, "PickerScreen"))
        await pilot.press("down", "enter")  # demo2
        await until(pilot, on_screen(app, "DoneScreen"), 60, "demo2's done screen")
        await pilot.press("c")

        def health() -> str:
            return " ".join(text_of(app.screen.query_one("#health")).split())

        await until(pilot, lambda: not app.screen.checking and "NOT healthy" in health(), 120, "the check's answer")
        said = health()
        assert "NOT healthy" in said and "`upgrade-wizard rollback --all` shows the way" in said, said
        assert not app.screen.check_action("roll_back", ())
        await pilot.press("q")
