"""Several instances on one venv (the demo built with --instances 2): upgraded together or not at all.

The code is installed once, by the first instance's session; each database is migrated by its own
instance's session; a wizard killed between the two takes up the second, and never runs the first again.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
from pathlib import Path

import pytest

from wizard.demo.catalog import CORE_REVISIONS, installed_packages

from ..helpers.processes import kill_tree_leftovers, wait_for
from ..helpers.sites import PYTHON, demo_host, run_cli

pytestmark = pytest.mark.slow

STEPS_WITH_CODE = ["stop-celery", "pip-core", "pip-plugins", "db-upgrade", "db-upgrade-plugins", "reload-uwsgi",
                   "start-celery"]  # fmt: skip
STEPS_OF_ITS_OWN = [step for step in STEPS_WITH_CODE if not step.startswith("pip-")]
RUN_TIMEOUT = 240  # two whole demo upgrades at pace 0.1 on a loaded 2-core machine


@pytest.fixture
def host(tmp_path):
    with demo_host(tmp_path) as folder:
        yield folder


def cli(folder: Path, *args: str, timeout: float = 120):
    return run_cli("--config", str(folder / "instances.toml"), "--state-dir", str(folder / "state"), *args,
                   timeout=timeout)  # fmt: skip


def session(folder: Path, name: str) -> dict:
    return json.loads((folder / "state" / name / "session.json").read_text())


def revision(database: Path) -> str:
    with sqlite3.connect(database) as conn:
        return conn.execute("SELECT version_num FROM alembic_version").fetchone()[0]


def healthy(health: dict | None) -> bool:
    return health is not None and all(finding["outcome"] != "failed" for finding in health["findings"])


def shared_record(folder: Path) -> dict:
    (record,) = (folder / "state" / ".venvs").glob("*/run.json")
    return json.loads(record.read_text())


def killed_once(folder: Path, ready, what: str, *args: str) -> None:
    """The wizard run with ``args``, killed with SIGKILL as soon as ``ready()`` holds (its output in a file beside)."""
    with open(folder.parent / "killed-wizard.out", "w") as output:
        wizard = subprocess.Popen(
            [PYTHON, "-m", "wizard", "--config", str(folder / "instances.toml"), "--state-dir", str(folder / "state"),
             *args],
            stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        wait_for(ready, RUN_TIMEOUT, what=what)
        wizard.send_signal(signal.SIGKILL)
        wizard.wait(timeout=30)
    finally:
        if wizard.poll() is None:
            wizard.kill()


def test_one_instance_of_a_shared_venv_is_refused_alone_and_nothing_changes(host):
    assert revision(host / "demo2" / "indico.sqlite3") == CORE_REVISIONS[0][0]  # one revision behind demo's
    plan = cli(host, "plan", "demo")
    out = " ".join(plan.stdout.split())
    assert plan.returncode == 2, plan.stdout + plan.stderr
    assert "the venv is shared with demo2: demo cannot be upgraded alone" in out
    assert "demo2 would run the new code over a database this upgrade does not migrate" in out
    assert "`upgrade-wizard run --yes demo demo2`" in out

    run = cli(host, "run", "--yes", "demo")
    assert run.returncode == 2, run.stdout + run.stderr
    assert "demo cannot be upgraded alone" in run.stdout
    assert not (host / "state" / "demo" / "session.json").exists()  # nothing begun
    assert installed_packages(host / "venv")["indico-demo"] == "3.2.5"

    # No instance named: the host's plan, the shared venv planned as `run --all` would upgrade it.
    whole = cli(host, "plan", timeout=240)
    out = " ".join(whole.stdout.split())
    assert whole.returncode == 0, whole.stdout + whole.stderr
    assert "7 steps planned (the new code is installed once, here, for demo and demo2)" in out
    assert "5 steps planned (the new code comes from demo's session)" in out
    assert "`upgrade-wizard plan demo demo2` shows them whole" in out
    both = cli(host, "plan", "demo", "demo2", timeout=240)
    out = " ".join(both.stdout.split())
    assert both.returncode == 0 and out.count("Upgrade the database schema") == 2, both.stdout + both.stderr
    assert out.count("Install the new release") == 1


def test_demo_with_two_instances_upgrades_code_once_each_database_by_its_own_session(tmp_path):
    """`demo --instances 2 --headless --yes`: both upgraded, every step recorded per instance, every line
    labelled with its instance, and both instances' services stopped when the demo ends."""
    host = tmp_path / "demo"
    try:
        result = run_cli("demo", "--dir", str(host), "--instances", "2", "--headless", "--yes", "--pace", "0.1",
                         timeout=RUN_TIMEOUT)  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr
        assert ", 2 instances on one venv" in result.stdout
        assert "upgrade of 'demo' finished: 3.2.5 -> 3.2.9" in result.stdout
        assert "upgrade of 'demo2' finished: 3.2.5 -> 3.2.9" in result.stdout
        assert "demo2's uwsgi (pid" in result.stdout  # both instances' services stopped when the demo ends
        first, second = session(host, "demo"), session(host, "demo2")
        assert [step["id"] for step in first["steps"]] == STEPS_WITH_CODE
        assert [step["id"] for step in second["steps"]] == STEPS_OF_ITS_OWN  # pip ran once, in demo's session
        for recorded in (first, second):
            assert all(step["status"] == "succeeded" and step["attempts"] == 1 for step in recorded["steps"]), recorded
            assert recorded["backup"]["kind"] == "taken" and recorded["finished"] and healthy(recorded["health"])
        # Every backup before the code changed.
        pip_started = first["steps"][1]["started"]
        assert first["backup"]["at"] < pip_started and second["backup"]["at"] < pip_started
        # Each database by its own session, with its own config: demo2's one migration further behind.
        assert revision(host / "indico.sqlite3") == revision(host / "demo2" / "indico.sqlite3") == CORE_REVISIONS[-1][0]
        assert "[demo/db-upgrade] starting: Upgrade the database schema (2 migrations" in result.stdout
        assert "[demo2/db-upgrade] starting: Upgrade the database schema (3 migrations" in result.stdout
        assert str(host / "demo2" / "indico.sqlite3") in Path(second["steps"][1]["log"]).read_text()
        assert result.stdout.count("Successfully installed") == 2  # pip-core and pip-plugins, each once
        assert "[demo2/pip" not in result.stdout

        record = shared_record(host)
        assert record["instances"] == ["demo", "demo2"] and record["finished"]
        assert record["sessions"] == {"demo": first["id"], "demo2": second["id"]}
        assert first["shared_run"] == second["shared_run"] == record["id"]

        again = cli(host, "run", "--yes", "--all", timeout=RUN_TIMEOUT)
        assert again.returncode == 0 and "is finished; pass --new" in again.stdout, again.stdout + again.stderr
        rollback = cli(host, "rollback", "demo2")
        assert rollback.returncode == 2 and "part of the upgrade of a shared venv" in rollback.stderr, rollback.stderr
        wrong = run_cli("demo", "--dir", str(host), "--instances", "3", "--headless", "--yes")
        assert wrong.returncode == 2 and "was built with 2 instances, not 3" in wrong.stderr, wrong.stderr
    finally:
        kill_tree_leftovers(tmp_path)


def test_killed_between_the_instances_the_second_finishes_and_the_first_is_not_run_again(host):
    state = host / "state" / "demo" / "session.json"
    killed_once(host, lambda: state.exists() and session(host, "demo").get("finished"), "demo's session to finish",
                "run", "--yes", "--all")  # fmt: skip
    before = session(host, "demo")
    assert shared_record(host)["finished"] is None

    alone = cli(host, "run", "--yes", "demo2")
    assert alone.returncode == 2 and "is being upgraded together" in alone.stderr, alone.stdout + alone.stderr

    resumed = cli(host, "run", "--yes", "--all", timeout=RUN_TIMEOUT)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "[demo] finished earlier in this run: not run again" in resumed.stdout
    assert "[demo/" not in resumed.stdout  # no step of demo's started, followed or reported again
    after = session(host, "demo")
    assert [step["attempts"] for step in after["steps"]] == [step["attempts"] for step in before["steps"]]
    assert after["steps"] == before["steps"]
    second = session(host, "demo2")
    assert second["finished"] and all(step["status"] == "succeeded" for step in second["steps"])
    assert revision(host / "demo2" / "indico.sqlite3") == CORE_REVISIONS[-1][0]
    assert shared_record(host)["finished"]


def test_a_shared_venvs_upgrade_is_taken_back_together_and_a_killed_rollback_goes_on(host):
    """rollback --all: the old code put back once (by demo's rollback), each database restored from its own backup
    by its own rollback session; one instance alone is refused, before and during; the plan changes nothing; a
    wizard killed once demo's rollback has finished takes up demo2's and never runs demo's again."""
    before = {"demo": revision(host / "indico.sqlite3"), "demo2": revision(host / "demo2" / "indico.sqlite3")}
    upgraded = cli(host, "run", "--yes", "--all", timeout=RUN_TIMEOUT)
    assert upgraded.returncode == 0, upgraded.stdout + upgraded.stderr
    upgrades = {name: session(host, name)["id"] for name in ("demo", "demo2")}

    alone = cli(host, "rollback", "demo2", "--restore-database")
    assert alone.returncode == 2 and "part of the upgrade of a shared venv" in alone.stderr, alone.stderr
    assert "`upgrade-wizard rollback --all`" in alone.stderr
    unsaid = cli(host, "rollback", "--all", "--yes")
    assert unsaid.returncode == 2 and "demo: the upgrade changed the database" in unsaid.stderr, (
        unsaid.stdout + unsaid.stderr
    )
    shown = cli(host, "rollback", "demo", "demo2", "--restore-database")
    out = shown.stdout
    assert shown.returncode == 0 and "nothing was changed: add --yes" in out, shown.stdout + shown.stderr
    assert "[demo]   3. Install the 2 recorded packages again (2 differ)" in out
    assert "[demo2] the venv's packages are put back by demo's rollback, before this one" in out
    assert "Install the" not in "".join(line for line in out.splitlines() if "[demo2]" in line)
    assert installed_packages(host / "venv")["indico-demo"] == "3.2.9"  # nothing changed by the plan
    assert {name: session(host, name)["id"] for name in upgrades} == upgrades

    killed_once(host, lambda: session(host, "demo").get("kind") == "rollback" and session(host, "demo").get("finished"),
                "demo's rollback to finish", "rollback", "--all", "--restore-database", "--yes")  # fmt: skip
    first = session(host, "demo")
    record = shared_record(host)
    assert record["rollbacks"]["demo"] == first["id"] and first["undoes"] == upgrades["demo"]
    assert installed_packages(host / "venv")["indico-demo"] == "3.2.5"
    assert revision(host / "indico.sqlite3") == before["demo"]

    second = session(host, "demo2")
    if not second.get("finished"):  # killed before demo2's rollback ended: it goes on with the others only
        alone = cli(host, "rollback", "demo2", "--yes")
        assert alone.returncode == 2 and "its part of the rollback of the shared venv" in alone.stderr, alone.stderr
        assert "rollback --yes --all" in alone.stderr
    anew = cli(host, "run", "--yes", "--all", "--new", timeout=RUN_TIMEOUT)  # nothing new starts meanwhile
    assert anew.returncode == 2 and "rollback of the last upgrade of the shared venv" in anew.stderr, anew.stderr
    resumed = cli(host, "rollback", "--all", "--yes", timeout=RUN_TIMEOUT)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "[demo] its rollback finished earlier: not run again" in resumed.stdout
    assert "[demo/" not in resumed.stdout  # no step of demo's started or followed again
    assert session(host, "demo")["steps"] == first["steps"]
    second = session(host, "demo2")
    assert second["kind"] == "rollback" and second["undoes"] == upgrades["demo2"] and second["finished"]
    assert record["rollbacks"]["demo2"] == second["id"]
    assert [step["id"] for step in second["steps"]] == ["rollback-stop-celery", "rollback-stop-uwsgi",
                                                        "rollback-database", "rollback-start-uwsgi",
                                                        "rollback-start-celery"]  # fmt: skip
    assert all(step["status"] == "succeeded" and step["attempts"] == 1 for step in second["steps"]), second["steps"]
    assert revision(host / "demo2" / "indico.sqlite3") == before["demo2"]
    assert second["restores"] == first["restores"]  # both checked against the set demo's rollback put back

    after = cli(host, "run", "--yes", "--all", timeout=RUN_TIMEOUT)
    assert after.returncode == 0 and "was taken back; pass --new" in after.stdout, after.stdout + after.stderr
    again = cli(host, "rollback", "--all", "--yes")
    assert again.returncode == 0 and "every instance's rollback is finished" in again.stdout, again.stdout
