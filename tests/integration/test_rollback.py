"""`rollback` on the demo sandbox, headless: the refusals, the dry run, and the way back with and without the
database, proven by what the venv and the SQLite file hold afterwards and by `check`."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from wizard.demo.catalog import CORE, PLUGIN, installed_packages
from wizard.demo.sandbox import resume_services, stop_services
from wizard.host.procs import alive

from ..helpers.processes import kill_tree_leftovers, wait_for
from ..helpers.sites import make_site, run_cli, step_toml, toml_str
from ..helpers.wheels import build_wheel, offline_pip_env, venv_with

pytestmark = pytest.mark.slow


@pytest.fixture
def upgraded(tmp_path):
    """The demo upgraded 3.2.5 -> 3.2.9 headless, its services running again, and a row written since."""
    folder = tmp_path / "demo"
    done = run_cli("demo", "--dir", str(folder), "--headless", "--yes", "--pace", "0.1", timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    assert resume_services(folder)
    with sqlite3.connect(folder / "indico.sqlite3") as conn:
        conn.execute("CREATE TABLE written_since (note TEXT)")
        conn.execute("INSERT INTO written_since VALUES ('after the upgrade')")
    conn.close()
    yield folder
    stop_services(folder)
    kill_tree_leftovers(tmp_path)


def wizard(folder: Path, *args: str):
    return run_cli("--config", str(folder / "instances.toml"), "--state-dir", str(folder / "state"), *args,
                   timeout=180)  # fmt: skip


def status(folder: Path) -> dict:
    return json.loads(wizard(folder, "status", "--json").stdout)


def rows(database: Path) -> list[str]:
    conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        return list(conn.iterdump())
    finally:
        conn.close()


def test_rollback_restores_the_recorded_packages_and_the_backups_rows(upgraded):
    upgrade = status(upgraded)
    refused = wizard(upgraded, "rollback", "--yes")
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "step 'db-upgrade' ran" in refused.stderr and "--restore-database" in refused.stderr
    dry = wizard(upgraded, "rollback", "--restore-database")
    assert dry.returncode == 0 and "nothing was changed: add --yes" in dry.stdout, dry.stdout + dry.stderr
    assert "indico-demo==3.2.5" in dry.stdout and "4. Restore the database from the backup" in dry.stdout
    assert installed_packages(upgraded / "venv") == {CORE: "3.2.9", PLUGIN: "3.2.2"}  # nothing was done
    assert status(upgraded)["id"] == upgrade["id"]

    done = wizard(upgraded, "rollback", "--yes", "--restore-database")
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    assert "rollback of 'demo' finished: 3.2.9 -> 3.2.5, 6 steps" in out
    assert "health check: healthy: all 8 checks passed" in out
    assert "ok     the venv holds exactly the 2 packages recorded before the upgrade" in out
    assert "ok     the site runs 3.2.5" in out  # the demo uWSGI, started again on the old code
    assert installed_packages(upgraded / "venv") == {CORE: "3.2.5", PLUGIN: "3.2.1"}
    backup = Path(upgrade["backup"]["path"]) / "indico.sqlite3"
    assert rows(upgraded / "indico.sqlite3") == rows(backup)  # the row written since is gone with its table

    rollback = status(upgraded)
    assert rollback["kind"] == "rollback" and rollback["undoes"] == upgrade["id"]
    assert rollback["restores"] == upgrade["packages_before"]
    kept = upgraded / "state" / "demo" / f"session-{upgrade['id']}.json"
    assert json.loads(kept.read_text())["id"] == upgrade["id"]  # the upgrade's session is kept beside it
    assert wizard(upgraded, "check", "--wait", "10").returncode == 0

    again = wizard(upgraded, "rollback", "--yes", "--restore-database")
    assert again.returncode == 2 and "is a rollback already" in again.stderr, again.stdout + again.stderr
    report = wizard(upgraded, "report")
    assert report.returncode == 0 and "report written:" in report.stdout, report.stdout + report.stderr


def test_keeping_the_database_puts_the_packages_back_and_the_check_says_the_schema_is_ahead(upgraded):
    # A dump that is not the file verified when the backup was taken is never restored.
    dump = Path(status(upgraded)["backup"]["path"]) / "indico.sqlite3"
    kept = dump.read_bytes()
    dump.write_bytes(kept + b"\0")
    tampered = wizard(upgraded, "rollback", "--yes", "--restore-database")
    assert tampered.returncode == 2, tampered.stdout + tampered.stderr
    assert "is no longer the file that was verified" in tampered.stderr and "--keep-database" in tampered.stderr
    dump.write_bytes(kept)
    assert status(upgraded)["kind"] == "upgrade"  # nothing was begun

    done = wizard(upgraded, "rollback", "--yes", "--keep-database")
    out = done.stdout + done.stderr
    assert done.returncode == 0, out  # every step finished: the check's verdict is `check`'s to exit with
    assert "warning: the database stays as step 'db-upgrade' left it" in out
    assert [s["id"] for s in status(upgraded)["steps"]] == [
        "rollback-stop-celery", "rollback-stop-uwsgi", "rollback-packages", "rollback-start-uwsgi",
        "rollback-start-celery",
    ]  # fmt: skip
    assert installed_packages(upgraded / "venv") == {CORE: "3.2.5", PLUGIN: "3.2.1"}
    with sqlite3.connect(upgraded / "indico.sqlite3") as conn:
        assert conn.execute("SELECT note FROM written_since").fetchall() == [("after the upgrade",)]
    conn.close()
    check = wizard(upgraded, "check", "--json", "--wait", "10")
    assert check.returncode == 1, check.stdout + check.stderr
    schema = next(f for f in json.loads(check.stdout)["findings"] if f["kind"] == "schema")
    assert schema["outcome"] == "failed", schema


def test_a_rollback_whose_wizard_was_killed_is_taken_up_again_and_nothing_runs_twice(upgraded):
    """The wizard dies (SIGKILL) while the rollback reinstalls the packages: the step goes on without it, and
    `rollback --yes` reattaches, waits for it and finishes the rest (no database flag is asked again)."""
    instances = upgraded / "instances.toml"
    instances.write_text(instances.read_text().replace('pace = "0.1"', 'pace = "2"'))  # a pip stand-in slow to kill
    argv = [sys.executable, "-m", "wizard", "--config", str(instances), "--state-dir", str(upgraded / "state"),
            "rollback", "--yes", "--restore-database"]  # fmt: skip
    first = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)  # fmt: skip

    def packages_running() -> dict | None:
        session = json.loads((upgraded / "state" / "demo" / "session.json").read_text())  # never missing
        step = next((s for s in session["steps"] if s["id"] == "rollback-packages"), None)
        return (
            step if session.get("kind") == "rollback" and step and step["status"] == "running" and step["pid"] else None
        )

    step = wait_for(packages_running, 120, what="the rollback's package step to run")
    first.kill()
    first.wait(timeout=30)
    assert alive(step["pid"], step["start_ticks"]), "the step must outlive the wizard"

    again = wizard(upgraded, "rollback", "--yes")
    out = again.stdout + again.stderr
    assert again.returncode == 0, out
    assert "going on with the rollback" in out, out
    steps = {s["id"]: s for s in status(upgraded)["steps"]}
    assert all(s["status"] == "succeeded" and s["attempts"] == 1 for s in steps.values()), steps
    assert installed_packages(upgraded / "venv") == {CORE: "3.2.5", PLUGIN: "3.2.1"}


def test_a_real_pip_venv_gets_its_exact_set_back_and_a_release_pip_cannot_find_stops_the_plan(tmp_path):
    """Real pip in a real venv: 2.0 brought a new dependency; the rollback puts 1.0 back and removes it (pip freeze
    equal to the record). With the old wheel gone from where pip looks, the rollback is refused before anything."""
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    build_wheel(wheels, "indico-demo", "1.0")
    build_wheel(wheels, "indico-demo", "2.0", requires=("newdep",))
    build_wheel(wheels, "newdep", "1.0")
    root = tmp_path / "site"
    root.mkdir()
    venv = venv_with(root, wheels, "indico-demo==1.0")
    python = str(venv / "bin" / "python")
    install = f"import subprocess, sys; sys.exit(subprocess.call([{python!r}, '-m', 'pip', 'install', '-q', " \
              "'indico-demo==2.0']))"  # fmt: skip
    site = make_site(root, step_toml("install", install))
    env = "".join(f"{key} = {toml_str(value)}\n" for key, value in offline_pip_env(wheels).items())
    site.config.write_text(site.config.read_text() + f"[instances.site.env]\n{env}")
    assert site.cli("run", "--yes", "--backup-done", str(tmp_path)).returncode == 0
    recorded = site.session()["packages_before"]["requirements"]

    def freeze() -> list[str]:
        done = subprocess.run([python, "-m", "pip", "freeze", "--all"], capture_output=True, text=True, check=True,
                              env={"PATH": "/usr/bin:/bin", **offline_pip_env(wheels)})  # fmt: skip
        return sorted(done.stdout.splitlines())

    assert "newdep==1.0" in freeze() and "indico-demo==2.0" in freeze()

    (wheels / "indico_demo-1.0-py3-none-any.whl").rename(tmp_path / "away.whl")
    refused = site.cli("rollback", "--yes")
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "pip cannot find every recorded release" in refused.stderr
    assert "indico-demo==1.0" in refused.stderr and "nothing was changed" in refused.stderr
    assert site.session()["kind"] == "upgrade" and "indico-demo==2.0" in freeze()  # nothing was done

    (tmp_path / "away.whl").rename(wheels / "indico_demo-1.0-py3-none-any.whl")
    done = site.cli("rollback", "--yes")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "packages removed, added by the upgrade (1): newdep" in done.stdout
    assert freeze() == sorted(recorded)
    assert "the venv holds exactly the" in done.stdout and "health check: healthy" in done.stdout
