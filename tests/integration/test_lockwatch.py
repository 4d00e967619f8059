"""The lock-hang watch against a real PostgreSQL, with a real "uwsgi" under a real service manager (supervisord)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from screens.app import make_app
from wizard.config.instance import load_instances
from wizard.execution.runner import launch, prepare_attempt
from wizard.lockwatch.watchdog import LockWatch, application_tag
from wizard.session.state import StepRecord

from ..helpers.pg import PASSWORD, start_postgres, stop_postgres
from ..helpers.processes import kill_tree_leftovers, wait_for
from ..helpers.sites import PYTHON, make_site, toml_str
from ..helpers.supervisor import supervisord_header
from ..helpers.tui import straight_to_run, until

pytestmark = pytest.mark.slow
THRESHOLD = 2.0
BIN = Path(sys.executable).parent

FAKE_APP_SERVER = """
import os, signal, subprocess, sys, time
# An app server worker that read from `labels` and left its transaction open (idle in transaction).
psql = subprocess.Popen(["psql", "-X", "-q"], stdin=subprocess.PIPE, text=True,
                        env={**os.environ, "PGAPPNAME": "app-worker"})
psql.stdin.write("BEGIN;\\nSELECT count(*) FROM labels;\\n")
psql.stdin.flush()
def stop(*_):
    psql.terminate()
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
while True:
    time.sleep(1)
"""


@pytest.fixture(scope="module")
def postgres():
    pg = start_postgres()
    if pg is None:
        pytest.skip("PostgreSQL is not installed (.ci/run installs Debian's postgresql)")
    yield pg
    stop_postgres(pg)


@pytest.fixture
def table(postgres):
    # A session an earlier test left behind (a blocker whose psql outlived its runuser) would hold the
    # table: the DROP below would wait on it.  Every other session of the app's database ends first.
    postgres.sql("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                 f"WHERE datname = '{postgres.dbname}' AND pid <> pg_backend_pid()", superuser=True)  # fmt: skip
    postgres.sql("DROP TABLE IF EXISTS labels; CREATE TABLE labels (id serial PRIMARY KEY, title text);"
                 "INSERT INTO labels (title) VALUES ('cancelled'), ('postponed');")  # fmt: skip
    return postgres


def release(session: subprocess.Popen) -> None:
    """End a held psql session: its input closed, so psql quits (under runuser too, which a kill would
    leave running), then the process reaped."""
    session.stdin.close()
    try:
        session.wait(timeout=15)
    except subprocess.TimeoutExpired:
        session.kill()
        session.wait(timeout=15)


@pytest.fixture
def supervisor(tmp_path, table):
    """supervisord running a stand-in app server as the program 'uwsgi' (nothing else names it so:
    the watch must recognise it through the service's main pid)."""
    folder = tmp_path / "services"
    folder.mkdir()
    (folder / "app_server.py").write_text(FAKE_APP_SERVER)
    env = f'PGHOST="127.0.0.1",PGPORT="{table.port}",PGUSER="app",PGDATABASE="app",PGPASSWORD="{PASSWORD}"'
    conf = folder / "supervisord.conf"
    conf.write_text(
        supervisord_header(folder)
        + textwrap.dedent(f"""
        [program:uwsgi]
        command={PYTHON} {folder}/app_server.py
        environment={env}
        stopsignal=TERM
        stopwaitsecs=5
        startsecs=1
    """)
    )
    subprocess.run([BIN / "supervisord", "-c", conf], check=True, timeout=30)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and "idle in transaction" not in table.sql(
        "SELECT coalesce(string_agg(state, ','), '') FROM pg_stat_activity WHERE application_name = 'app-worker'"
    ):
        time.sleep(0.2)
    yield conf
    subprocess.run([BIN / "supervisorctl", "-c", conf, "shutdown"], capture_output=True, timeout=30)
    kill_tree_leftovers(folder)


def pg_site(root: Path, pg, conf: Path | None, statement: str) -> object:
    """An instance whose one step runs `statement` with psql; its config holds the database URL."""
    pgpass = root / "pgpass"
    root.mkdir(parents=True, exist_ok=True)
    pgpass.write_text(f"127.0.0.1:{pg.port}:app:app:{PASSWORD}\n")
    pgpass.chmod(0o600)
    step = (
        '[[steps]]\nid = "alter"\ntitle = "Alter the labels table"\ncan_hang_on_lock = true\nsafe_to_rerun = true\n'
        f'argv = ["psql", "-X", "-v", "ON_ERROR_STOP=1", "-c", {toml_str(statement)}]\n'
        f'env = {{ PGHOST = "127.0.0.1", PGPORT = "{pg.port}", PGUSER = "app", PGDATABASE = "app", '
        f"PGPASSFILE = {toml_str(pgpass)} }}\n"
    )
    site = make_site(root, step, app_config=f"SQLALCHEMY_DATABASE_URI = {pg.url!r}\n")
    recipe = root / "recipe.toml"
    text = recipe.read_text().replace(
        'config_format = "python"\n', f'config_format = "python"\nlock_wait_seconds = {THRESHOLD}\n', 1
    )
    recipe.write_text(text + '\n[services]\nuwsgi = "uwsgi"\n')
    if conf is not None:
        manager = ", ".join(toml_str(p) for p in [BIN / "supervisorctl", "-c", conf])
        with open(site.config, "a") as handle:
            handle.write(f'service_manager = [{manager}, "{{action}}", "{{service}}"]\n'
                         f'service_pid = [{manager}, "pid", "{{service}}"]\n')  # fmt: skip
    return site


def hold_table(pg, application: str, **env) -> subprocess.Popen:
    """A psql session that read from `labels` and stays idle in transaction, as a forgotten one does."""
    session = subprocess.Popen(["psql", "-X", "-q"], stdin=subprocess.PIPE, text=True,
                               env={**pg.env(), "PGAPPNAME": application, **env})  # fmt: skip
    session.stdin.write("BEGIN;\nSELECT count(*) FROM labels;\n")
    session.stdin.flush()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and "idle in transaction" not in pg.sql(
        f"SELECT coalesce(string_agg(state, ','), '') FROM pg_stat_activity WHERE application_name = '{application}'"
    ):
        time.sleep(0.1)
    return session


def backend_of(pg, application: str) -> int:
    return int(pg.sql(f"SELECT pid FROM pg_stat_activity WHERE application_name = '{application}'"))


async def test_the_app_server_holding_the_table_is_named_and_the_button_releases_it(tmp_path, table, supervisor):
    assert "uwsgi" not in str(tmp_path).lower()  # recognised by its service's main pid, not by a name
    site = pg_site(tmp_path / "site", table, supervisor, "ALTER TABLE labels ADD COLUMN is_event_not_happening boolean")
    holder = backend_of(table, "app-worker")
    app = make_app(load_instances(site.config), site.state, site.name)
    async with app.run_test(size=(80, 24)) as pilot:
        await straight_to_run(pilot, app, site.root)
        await until(pilot, lambda: app.engine.session.running is not None, what="the step to start")
        started = time.monotonic()
        screen = app.screen
        await until(pilot, lambda: screen.verdict is not None and screen.verdict.kind == "lock_wait",
                    timeout=THRESHOLD + 10, what="the lock-wait verdict")  # fmt: skip
        assert time.monotonic() - started <= THRESHOLD + 1.5
        verdict = screen.verdict
        assert verdict.confirmed and [b.pid for b in verdict.blockers] == [holder]
        assert verdict.blockers[0].app_server and verdict.blockers[0].state == "idle in transaction"
        assert "ALTER TABLE labels" in verdict.waiting_query
        text = str(screen.query_one("#lock-head").render())
        assert f"session {holder} (role app) of the uWSGI service" in text
        assert "Restarting uWSGI drops the app's database sessions" in text  # what to do, before the explanation
        await until(pilot, lambda: screen.query_one("#restart").display, what="the Restart button")
        # At 80x24 the button is on screen, inside the panel's visible part: no scrolling to find it.
        assert screen.query_one("#lock").region.contains_region(screen.query_one("#restart").region)
        # A web request now queues behind the ALTER: it waits too, but it is not the cause.
        # Popen only forks: the request then waits in the background.
        queued = subprocess.Popen(["psql", "-X", "-q", "-c", "SELECT count(*) FROM labels"],  # noqa: ASYNC220
                                  env={**table.env(), "PGAPPNAME": "queued-request"}, stdout=subprocess.DEVNULL)  # fmt: skip
        await until(pilot, lambda: table.sql("SELECT count(*) FROM pg_stat_activity WHERE application_name = "
                                             "'queued-request' AND wait_event_type = 'Lock'") == "1")  # fmt: skip
        await pilot.pause(2.5)  # the next diagnosis
        assert [b.pid for b in screen.verdict.blockers] == [holder]
        await pilot.press("u")
        await until(pilot, lambda: app.engine.session.done or app.engine.session.steps[0].status == "succeeded",
                    timeout=30, what="the step to complete after the restart")  # fmt: skip
        job = app.engine.session.side_jobs[0]
        assert job.kind == "restart" and job.role == "uwsgi"
        await until(pilot, lambda: job.run.exit_code is not None, what="the restart to be recorded")
        assert job.run.exit_code == 0 and "uwsgi" in Path(job.run.log).read_text()  # noqa: ASYNC240 (a few lines)
    assert "is_event_not_happening" in table.sql(
        "SELECT string_agg(column_name, ',') FROM information_schema.columns WHERE table_name = 'labels'"
    )
    queued.wait(timeout=10)
    assert backend_of(table, "app-worker") != holder  # a new app server, a new session


async def test_a_plain_psql_blocker_is_not_the_app_server(tmp_path, table, supervisor):
    site = pg_site(tmp_path / "site", table, supervisor, "ALTER TABLE labels ADD COLUMN undone boolean")
    # The app server is down here: the only session in the way is a person's forgotten psql.
    # (Stopped before the app runs: there is no event loop to hold up yet.)
    subprocess.run([BIN / "supervisorctl", "-c", supervisor, "stop", "uwsgi"], check=True, capture_output=True)  # noqa: ASYNC221
    blocker = hold_table(table, "forgotten-psql")
    try:
        holder = backend_of(table, "forgotten-psql")
        app = make_app(load_instances(site.config), site.state, site.name)
        async with app.run_test(size=(80, 24)) as pilot:
            await straight_to_run(pilot, app, site.root)
            # it is down
            assert any("uwsgi" in note.title for note in app.engine.session.notes if note.severity == "warning")
            screen = app.screen
            await until(pilot, lambda: screen.verdict is not None and screen.verdict.kind == "lock_wait", timeout=15)
            verdict = screen.verdict
            assert [b.pid for b in verdict.blockers] == [holder] and not verdict.app_server_blocks
            assert "psql" in verdict.blockers[0].who
            text = str(screen.query_one("#lock-head").render())
            assert "not uWSGI: restarting it would not help" in text  # in the part shown first
            assert not screen.query_one("#restart").display
            await pilot.press("k")
            await until(pilot, lambda: type(app.screen).__name__ == "TypeToConfirmDialog")
            assert f"type {holder}" in str(app.screen.query_one("#typed").placeholder)
            await pilot.press("1", "enter")  # not the pid: nothing is ended, the dialog says so and stays
            await until(pilot, lambda: "type it exactly" in str(app.screen.query_one("#problem").render()))
            assert app.engine.session.side_jobs == []
            await pilot.press("backspace", *str(holder), "enter")
            await until(pilot, lambda: app.engine.session.steps[0].status == "succeeded", timeout=20)
            assert app.engine.session.side_jobs[0].kind == "terminate"
    finally:
        release(blocker)


def watch_step(tmp_path: Path, code: str, pg, env: dict | None = None) -> tuple[StepRecord, LockWatch]:
    from wizard.config.dbconf import Database

    record = StepRecord(id="watched", title="watched", argv=[PYTHON, "-c", code], can_hang_on_lock=True,
                        env={"PGAPPNAME": application_tag("watched"), **(env or {})})  # fmt: skip
    prepare_attempt(record, tmp_path, 1)
    launch(record, app_user=None)
    database = Database("postgresql", pg.dbname, pg.host, pg.port, pg.user, pg.password)
    return record, LockWatch(record, THRESHOLD, database)


def observe_for(watch: LockWatch, seconds: float) -> list:
    verdicts, deadline = [], time.monotonic() + seconds
    while time.monotonic() < deadline:
        verdicts.append(watch.observe())
        time.sleep(0.2)
    return verdicts


def test_a_silent_step_busy_on_the_cpu_raises_no_alarm(tmp_path, postgres):
    busy = f"import time\nprint('crunching', flush=True)\nend = time.time() + {3 * THRESHOLD + 1}\nwhile time.time() < end: pass"
    _, watch = watch_step(tmp_path, busy, postgres)
    verdicts = observe_for(watch, 3 * THRESHOLD)
    assert verdicts[-1].kind == "busy" and verdicts[-1].silent_for >= 2 * THRESHOLD
    assert not any(v.kind in ("lock_wait", "not_a_lock") for v in verdicts)


def test_a_silent_idle_step_without_a_lock_is_not_called_a_lock_wait(tmp_path, postgres):
    sleeping = "import subprocess\nsubprocess.run(['psql', '-X', '-q', '-c', 'SELECT pg_sleep(8)'])"
    env = {"PGHOST": postgres.host, "PGPORT": str(postgres.port), "PGUSER": "app", "PGDATABASE": "app",
           "PGPASSWORD": PASSWORD}  # fmt: skip
    _, watch = watch_step(tmp_path, sleeping, postgres, env)
    verdicts = observe_for(watch, THRESHOLD + 2)
    assert verdicts[-1].kind == "not_a_lock" and verdicts[-1].confirmed
    assert "not waiting" in verdicts[-1].db_note
    assert not any(v.kind == "lock_wait" for v in verdicts)


def test_without_a_reachable_database_the_watch_says_so_and_guesses(tmp_path, postgres):
    from wizard.config.dbconf import Database

    record = StepRecord(id="w", title="w", argv=[PYTHON, "-c", "import time; time.sleep(6)"], can_hang_on_lock=True)
    prepare_attempt(record, tmp_path, 1)
    launch(record, app_user=None)
    nowhere = Database("postgresql", "app", "127.0.0.1", 1, "app", "nope")
    verdicts = observe_for(LockWatch(record, THRESHOLD, nowhere), THRESHOLD + 1.5)
    assert verdicts[-1].kind == "lock_wait" and not verdicts[-1].confirmed
    assert "could not be asked" in verdicts[-1].db_note


def test_headless_waits_and_never_restarts_by_itself(tmp_path, table, supervisor):
    site = pg_site(tmp_path / "site", table, supervisor, "ALTER TABLE labels ADD COLUMN waits boolean")
    wizard = site.spawn("run", "--yes", "--backup-done", str(site.root))
    try:
        deadline = time.monotonic() + 20
        lines = []
        while time.monotonic() < deadline:
            lines.append(wizard.stdout.readline())
            if "pass --restart-after N" in lines[-1]:
                break
        assert any("waiting on a database lock" in line for line in lines), lines
        time.sleep(3)
        assert json.loads(site.session_file.read_text())["side_jobs"] == []  # it waits; it does not restart
        subprocess.run([BIN / "supervisorctl", "-c", supervisor, "restart", "uwsgi"], check=True, capture_output=True)
        assert wizard.wait(timeout=30) == 0  # the operator restarted it by hand: the upgrade carried on
    finally:
        wizard.kill()


def test_headless_reports_the_blocker_and_restarts_only_when_allowed(tmp_path, table, supervisor):
    site = pg_site(tmp_path / "site", table, supervisor, "ALTER TABLE labels ADD COLUMN headless boolean")
    result = site.cli("run", "--yes", "--backup-done", str(site.root), "--restart-after", "1", timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "lock watch: No output for" in out and "waiting on a database lock" in out
    assert "of the uWSGI service" in out and "idle in transaction" in out
    assert "restarting uwsgi, as --restart-after allows" in out
    assert PASSWORD not in out + result.stderr
    for path in (site.state / site.name).rglob("*"):
        if path.is_file():
            assert PASSWORD not in path.read_text(errors="ignore"), path


def verdict_when(watch: LockWatch, wanted, what: str, timeout: float = THRESHOLD + 15):
    """Observe until a verdict fits ``wanted``; fail saying what was waited for and what was seen last."""
    seen = []

    def fits():
        seen.append(watch.observe())
        return seen[-1] if wanted(seen[-1]) else None

    try:
        return wait_for(fits, timeout, interval=0.2, what=what)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; last verdict: {seen[-1] if seen else None}") from None


def hold_as_superuser(pg) -> subprocess.Popen:
    """What `sudo -u postgres psql app` does: the cluster's superuser over the Unix socket, idle in transaction."""
    env = {**os.environ, "PGHOST": str(pg.root / "sock"), "PGPORT": str(pg.port), "PGUSER": "postgres",
           "PGDATABASE": pg.dbname, "PGAPPNAME": "psql"}  # fmt: skip
    session = subprocess.Popen(
        ["runuser", "-u", "postgres", "--", "psql", "-X", "-q"], stdin=subprocess.PIPE, text=True, env=env
    )
    session.stdin.write("BEGIN;\nSELECT count(*) FROM labels;\n")
    session.stdin.flush()
    wait_for(lambda: "idle in transaction" in pg.sql("SELECT coalesce(string_agg(state, ','), '') FROM pg_stat_activity"
                                                     " WHERE usename = 'postgres' AND backend_type = 'client backend'",
                                                     superuser=True),
             20, interval=0.1, what="the superuser's session to sit idle in transaction")  # fmt: skip
    return session


def alter_step(tmp_path: Path, pg, column: str) -> LockWatch:
    alter = (
        f"import subprocess\nsubprocess.run(['psql', '-X', '-q', '-c', 'ALTER TABLE labels ADD COLUMN {column} int'])"
    )
    env = {"PGHOST": pg.host, "PGPORT": str(pg.port), "PGUSER": "app", "PGDATABASE": "app", "PGPASSWORD": PASSWORD}
    return watch_step(tmp_path, alter, pg, env)[1]


needs_root = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("ss") is None,
                                reason="seeing other users' processes and the cluster's superuser needs root and ss")  # fmt: skip


@needs_root
def test_a_blocker_on_the_local_socket_is_traced_to_its_process(tmp_path, table):
    blocker = hold_table(table, "socket-client", PGHOST=str(table.root / "sock"))
    try:
        watch = alter_step(tmp_path, table, "via_socket")
        verdict = verdict_when(watch, lambda v: v.kind == "lock_wait" and v.blockers, "a lock wait with its blocker")
        found = verdict.blockers[0]
        assert verdict.confirmed and found.who == f"psql (pid {blocker.pid}) via the local socket"
        assert found.role == "app" and found.app_server is False and found.state == "idle in transaction"
        assert not verdict.restart_would_help and not verdict.restart_proven
    finally:
        release(blocker)


@needs_root
def test_the_superusers_session_is_seen_through_the_cluster_owner_and_never_restarted_for(tmp_path, table):
    from wizard.lockwatch.lockadvice import explain

    blocker = hold_as_superuser(table)
    try:
        watch = alter_step(tmp_path, table, "by_superuser")
        verdict = verdict_when(watch, lambda v: v.kind == "lock_wait" and v.blockers, "a lock wait with its blocker")
        found = verdict.blockers[0]
        assert found.role == "postgres" and found.app_server is False
        assert found.who.startswith("psql (pid ") and found.query == "SELECT count(*) FROM labels;"
        assert not verdict.restart_would_help
        text = " ".join(explain(verdict, "uwsgi"))
        assert "(role postgres)" in text and "restarting it would not help" in text

        # The app's own role alone sees only a hidden session: offered to the operator, never proven.
        watch._superuser = None
        hidden = watch.look_again()
        assert hidden.kind == "lock_wait" and hidden.blockers[0].app_server is None
        assert hidden.restart_would_help and not hidden.restart_proven
        words = " ".join(explain(hidden, "uwsgi"))
        assert "could not be told" in words and "will not restart it by itself" in words
    finally:
        release(blocker)


def test_headless_never_restarts_for_a_blocker_that_is_not_the_app_server_and_ends_it_when_allowed(
    tmp_path, table, supervisor
):
    site = pg_site(tmp_path / "site", table, supervisor, "ALTER TABLE labels ADD COLUMN ended boolean")
    # not it
    subprocess.run([BIN / "supervisorctl", "-c", supervisor, "stop", "uwsgi"], check=True, capture_output=True)
    blocker = hold_table(table, "forgotten-psql")
    holder = backend_of(table, "forgotten-psql")
    try:
        result = site.cli("run", "--yes", "--backup-done", str(site.root), "--restart-after", "0",
                          "--end-blocker-after", "1", "--end-blocker-role", "app", timeout=90)  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr
        out = result.stdout
        assert f"session {holder} (role app) of psql (pid {blocker.pid}) via 127.0.0.1: idle in transaction" in out
        assert "not restarting uwsgi: it is not proven to hold the lock" in out
        assert f"ending session {holder} (role app" in out and f"session {holder} ended" in out
        jobs = json.loads(site.session_file.read_text())["side_jobs"]
        assert [job["kind"] for job in jobs] == ["terminate"]
        assert table.sql(f"SELECT count(*) FROM pg_stat_activity WHERE pid = {holder}") == "0"
    finally:
        release(blocker)


def test_headless_says_the_verdict_again_while_the_step_waits(tmp_path, table, supervisor, monkeypatch):
    import io
    import threading

    from wizard import plainlines
    from wizard.headless import Choices, run_upgrade
    from wizard.plainlines import PlainOutput
    from wizard.session.store import StateStore

    monkeypatch.setattr(plainlines, "REPEAT_SECONDS", 1.0)
    site = pg_site(tmp_path / "site", table, supervisor, "ALTER TABLE labels ADD COLUMN repeated boolean")
    subprocess.run([BIN / "supervisorctl", "-c", supervisor, "stop", "uwsgi"], check=True, capture_output=True)
    blocker = hold_table(table, "forgotten-psql")
    holder = backend_of(table, "forgotten-psql")
    out = io.StringIO()

    def release_after_two_repeats():
        wait_for(lambda: out.getvalue().count("lock watch: still waiting") >= 2, 60, interval=0.2,
                 what="the verdict said again twice")  # fmt: skip
        table.sql(f"SELECT pg_terminate_backend({holder})", superuser=True)

    releaser = threading.Thread(target=release_after_two_repeats, daemon=True)
    releaser.start()
    try:
        instance = load_instances(site.config)[site.name]
        code = run_upgrade(
            instance, StateStore(site.state, site.name), PlainOutput(out), Choices(backup_done=str(site.root))
        )
        releaser.join(timeout=30)
        text = out.getvalue()
        assert code == 0, text
        assert "lock watch: still waiting, " in text and " s without output:" in text
        repeats = [line for line in text.splitlines() if "lock watch: Blocked by session" in line]
        assert len(repeats) >= 3 and all(f"session {holder} (role app)" in line for line in repeats)  # first + repeats
    finally:
        release(blocker)
