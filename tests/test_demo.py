"""The demo sandbox: a whole upgrade headless, resume on the same folder, and a real lock wait."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time

import psutil
import pytest

from wizard.demo.catalog import CORE_REVISIONS
from wizard.demo.sandbox import build, start_services, stop_services

from .conftest import kill_tree_leftovers, run_cli, wait_for_line

pytestmark = pytest.mark.slow

STEP_FIELDS = {"id", "status", "pid", "exit_code", "started", "ended", "log"}


@pytest.fixture
def sandbox(tmp_path):
    folder = tmp_path / "demo sandbox"
    yield folder
    kill_tree_leftovers(tmp_path)


def test_demo_headless_completes_and_every_step_is_recorded(sandbox):
    result = run_cli("demo", "--dir", str(sandbox), "--headless", "--yes", "--pace", "0.1", timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "upgrade of 'demo' finished: 3.2.5 -> 3.2.9" in result.stdout

    status = run_cli("--config", str(sandbox / "instances.toml"), "--state-dir", str(sandbox / "state"), "status", "--json")
    session = json.loads(status.stdout)
    assert session["backup"]["kind"] == "taken" and session["backup"]["checksum"].startswith("sha256:")
    assert [s["id"] for s in session["steps"]] == [
        "stop-celery", "pip-core", "pip-plugins", "db-upgrade", "db-upgrade-plugins", "reload-uwsgi", "start-celery",
    ]  # fmt: skip
    for step in session["steps"]:
        assert STEP_FIELDS <= step.keys()
        assert step["status"] == "succeeded" and step["exit_code"] == 0, step
        assert step["pid"] and step["started"] and step["ended"]
        assert "exited with code 0" in open(step["log"]).read()

    with sqlite3.connect(sandbox / "indico.sqlite3") as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone()[0] == CORE_REVISIONS[-1][0]
        columns = [row[1] for row in conn.execute("PRAGMA table_info(events_labels)")]
    assert "is_event_not_happening" in columns

    again = run_cli("demo", "--dir", str(sandbox), "--headless", "--yes", timeout=60)
    assert again.returncode == 0
    assert "resuming the demo sandbox" in again.stdout and "this upgrade is finished" in again.stdout

    plan = run_cli("--config", str(sandbox / "instances.toml"), "plan")
    assert plan.returncode == 0 and "nothing to upgrade" in plan.stdout  # detection sees the new version


def test_demo_refuses_a_folder_that_is_not_a_sandbox(tmp_path):
    (tmp_path / "precious.txt").write_text("keep me")
    result = run_cli("demo", "--dir", str(tmp_path), "--headless", "--yes")
    assert result.returncode == 2 and "not a demo sandbox" in result.stderr
    assert (tmp_path / "precious.txt").read_text() == "keep me"


def test_the_demo_lock_wait_is_real_and_a_uwsgi_restart_releases_it(sandbox):
    build(sandbox, pace=10)  # the demo uWSGI's long requests last 200 s: only a restart ends one soon
    start_services(sandbox)
    try:
        uwsgi_log = sandbox / "logs" / "uwsgi.log"
        wait_for_line(uwsgi_log, "long request")
        out = sandbox / "db-upgrade.out"
        with open(out, "w") as handle:
            upgrade = subprocess.Popen(
                [sys.executable, "-m", "wizard.demo.programs", "--pace", "0.1", "db-upgrade",
                 "--database", str(sandbox / "indico.sqlite3")],
                stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )  # fmt: skip
        wait_for_line(out, "-> aba7935f9226")
        proc = psutil.Process(upgrade.pid)
        before = sum(proc.cpu_times()[:2])
        time.sleep(1.5)
        assert upgrade.poll() is None, "the upgrade should be waiting on uWSGI's read transaction"
        assert sum(proc.cpu_times()[:2]) - before < 0.3  # waiting, not working
        with sqlite3.connect(sandbox / "indico.sqlite3", timeout=0) as conn:
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                conn.execute("SELECT count(*) FROM events_labels").fetchone()  # the lock queue blocks readers too

        restart = subprocess.run(
            [sys.executable, "-m", "wizard.demo.svc", "--dir", str(sandbox), "restart", "uwsgi"],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert restart.returncode == 0 and "Started uwsgi" in restart.stdout
        assert upgrade.wait(timeout=30) == 0
        with sqlite3.connect(sandbox / "indico.sqlite3") as conn:
            assert conn.execute("SELECT version_num FROM alembic_version").fetchone()[0] == "aba7935f9226"
    finally:
        stop_services(sandbox)
