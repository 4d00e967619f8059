"""SVG snapshots of every screen at 80x24 and 120x40, from sessions with fixed paths, times and logs.

To accept a deliberate change of look: `pytest tests/snapshots/test_snapshots.py --snapshot-update`,
then look at the new SVGs before committing them.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import time
from collections import namedtuple
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from screens.app import make_app
from steps import load_recipe
from wizard.backup import take as backup
from wizard.config.instance import load_instances
from wizard.demo.catalog import install_metadata
from wizard.health.result import Finding, Health
from wizard.host.detect import Detection
from wizard.planning.plan import as_note, chosen_notes, sort_notes
from wizard.session.state import Backup, PackageSet, Session, StepRecord, StepStatus
from wizard.session.store import StateStore

from ..helpers.processes import kill_tree_leftovers, wait_for
from ..helpers.supervisor import supervisord_header
from ..helpers.wheels import build_wheel, offline_pip_env, venv_with

ROOT = Path("/tmp/upgrade-wizard-snapshots")  # fixed: paths show on screen
T0 = datetime(2026, 11, 21, 22, 40, tzinfo=UTC)
ARRIVE_SECONDS = 90.0  # how long a screen may take to arrive with its content before the test fails saying so
SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((120, 40), id="120x40")]
STEPS = [
    ("stop-celery", "Stop the Celery worker", ["systemctl", "stop", "indico-celery.service"], "root"),
    ("pip-core", "Install the new Indico release", ["/opt/indico/.venv/bin/python", "-m", "pip", "install", "indico==3.2.9"], "app"),
    ("db-upgrade", "Upgrade the database schema", ["/opt/indico/.venv/bin/indico", "db", "upgrade"], "app"),
    ("reload-uwsgi", "Reload uWSGI on the new code", ["touch", "/opt/indico/web/indico.wsgi"], "app"),
    ("start-celery", "Start the Celery worker", ["systemctl", "start", "indico-celery.service"], "root"),
]  # fmt: skip
LOG = """[upgrade-wizard] 2026-11-21T22:41:02Z started: /opt/indico/.venv/bin/indico db upgrade
INFO  [alembic.runtime.migration] Context impl PostgresqlImpl.
INFO  [alembic.runtime.migration] Will assume transactional DDL.
INFO  [alembic.runtime.migration] Running upgrade 5d05eda06776 -> 9b3fc740b722, Fix user name_format values
sqlalchemy.exc.OperationalError: (psycopg2.errors.LockNotAvailable) canceling statement due to lock timeout

[upgrade-wizard] 2026-11-21T22:41:09Z the command exited with code 3 after 7.0 s
"""


def fresh(name: str) -> Path:
    folder = ROOT / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


def instances_file(folder: Path, names=("main",)) -> Path:
    config = folder / "instances.toml"
    config.write_text("".join(
        f'[instances.{name}]\nrecipe = "indico"\nvenv = "{folder}/venv"\nuser = "indico"\ntarget = "3.2.9"\n\n'
        for name in names
    ))  # fmt: skip
    return config


def steps_with(statuses: list[str], logs: Path) -> list[StepRecord]:
    records = []
    for index, ((step_id, title, argv, run_as), status) in enumerate(zip(STEPS, statuses, strict=True)):
        record = StepRecord(id=step_id, title=title, argv=argv, run_as=run_as, safe_to_rerun=True,
                            advice=" ".join(ADVICE[step_id].split()),
                            status=StepStatus(status))  # fmt: skip
        if status in ("succeeded", "failed"):
            record.attempts = 1
            record.started = T0 + timedelta(seconds=10 * index)
            record.ended = record.started + timedelta(seconds=3 + 4 * index)
            record.exit_code = 0 if status == "succeeded" else 3
            record.log = str(logs / f"{index + 1:02d}-{step_id}.log")
            Path(record.log).write_text(LOG if status == "failed" else f"[upgrade-wizard] {title}: done\n")
        records.append(record)
    return records


def saved_session(folder: Path, statuses: list[str], name: str = "main", recipe: str = "indico", **fields) -> None:
    logs = folder / "state" / name / "runs" / "20261121-224000-snap"
    logs.mkdir(parents=True)
    session = Session(id="20261121-224000-snap", instance=name, recipe=recipe, created=T0,
                      installed_version="3.2.6", target_version="3.2.9", python_version="3.11.7",
                      steps=steps_with(statuses, logs), **fields)  # fmt: skip
    StateStore(folder / "state", name).save(session)


def app_for(folder: Path, past_resume: bool = False):
    app = make_app(load_instances(folder / "instances.toml"), folder / "state", "main")
    app.resumed = past_resume  # True: straight to where the session stands, as after "continue"
    return app


def arrive(screen: str, filled: str | None = None):
    """Wait for ``screen`` with its plan (detection's, the backup's measure), and the ``filled`` widget showing text."""

    def there(app) -> bool:
        if type(app.screen).__name__ != screen or getattr(app.screen, "plan", True) is None:
            return False
        if getattr(app.screen, "looked", True) is False:  # the host table: each instance's release and database
            return False
        return filled is None or bool(str(app.screen.query_one(filled).render()).strip())

    async def run_before(pilot) -> None:
        # A loaded 2-core machine can take many seconds to detect; a snapshot of the placeholder proves nothing.
        deadline = time.monotonic() + ARRIVE_SECONDS
        while not there(pilot.app):
            if time.monotonic() > deadline:
                raise AssertionError(f"waited {ARRIVE_SECONDS:.0f} s for {screen}"
                                     + (f" with {filled} filled in" if filled else " with its plan")
                                     + f"; the app shows {type(pilot.app.screen).__name__}")  # fmt: skip
            await pilot.pause(0.05)
        await pilot.pause(0.3)

    return run_before


ADVICE = {step.id: step.advice for step in load_recipe("indico").steps}
NOTES = sort_notes([as_note(note, unchecked) for note, unchecked
                    in chosen_notes(load_recipe("demo"), None, Detection("3.2.5", "3.2.9", "3.11.7"))])  # fmt: skip
BACKUP = Backup(kind="taken", path="/var/backups/indico/indico-20261121-224000.dump", at=T0, size=19_000_000,
                checksum="sha256:" + "ab" * 32,
                restore=["pg_restore --clean --dbname indico /var/backups/indico/indico-20261121-224000.dump"])  # fmt: skip


@pytest.mark.parametrize("size", SIZES)
def test_picker(snap_compare, size):
    """The instance picker: two instances of one host on one venv, main upgraded and healthy, the first highlighted."""
    folder = fresh("picker")
    instances_file(folder, names=("main", "conference"))
    saved_session(folder, ["succeeded"] * 5, backup=BACKUP, finished=T0 + timedelta(minutes=2), health=HEALTHY)
    app = make_app(load_instances(folder / "instances.toml"), folder / "state")
    assert snap_compare(app, terminal_size=size, run_before=arrive("PickerScreen"))


@pytest.mark.parametrize("size", SIZES)
def test_host_table_between_the_instances_of_a_shared_venv(snap_compare, size):
    """Back at the host table between two instances upgraded together (the demo's host): demo done and healthy,
    demo2's database still two migrations behind, its steps next; the cursor on the shared venv's row."""
    from screens.picker import PickerScreen
    from wizard.demo.catalog import install_metadata as put_release
    from wizard.demo.catalog import install_scripts
    from wizard.demo.sandbox import build

    folder = fresh("host-between")
    build(folder, pace=0.1, instances=2)
    for name, version in (("indico-demo", "3.2.9"), ("indico-demo-plugin-livesync", "3.2.2")):  # demo's session did
        put_release(folder / "venv", name, version)
        install_scripts(folder / "venv", name, version)
    with sqlite3.connect(folder / "indico.sqlite3") as conn:
        conn.execute("UPDATE alembic_version SET version_num = 'aba7935f9226'")
        conn.execute("UPDATE alembic_version_plugin_livesync SET version_num = 'd8e65cb6160d'")
    conn.close()
    saved_session(folder, ["succeeded"] * 5, name="demo", recipe="demo", backup=BACKUP, health=HEALTHY,
                  finished=T0 + timedelta(minutes=2), shared_run="20261121-223900-host")  # fmt: skip
    saved_session(folder, ["pending"] * 5, name="demo2", recipe="demo", backup=BACKUP,
                  shared_run="20261121-223900-host")  # fmt: skip
    app = make_app(load_instances(folder / "instances.toml"), folder / "state")

    async def between(pilot) -> None:
        await arrive("PickerScreen")(pilot)
        await pilot.app.switch_screen(PickerScreen(app.instances, app.state_root, under_way="next: demo2's steps"))
        await arrive("PickerScreen")(pilot)

    assert snap_compare(app, terminal_size=size, run_before=between)


@pytest.mark.parametrize("size", SIZES)
def test_detect(snap_compare, size, monkeypatch):
    """Detection: Indico 3.2.6 with a plugin in a real venv, 3.2.9 pinned; every fact ok."""
    folder = fresh("detect")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder / "venv")], check=True)
    install_metadata(folder / "venv", "indico", "3.2.6")
    install_metadata(folder / "venv", "indico-plugin-livesync", "3.2.1")
    instances_file(folder)
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr("wizard.views.facts.shutil.disk_usage", lambda _: usage(100 * 2**30, 60 * 2**30, 40 * 2**30))
    assert snap_compare(app_for(folder), terminal_size=size, run_before=arrive("DetectScreen"))


SERVICE_PROGRAMS = f"""
[program:indico-uwsgi]
command={sys.executable} -c "raise SystemExit(3)"
startsecs=1
startretries=0
[program:indico-celery]
command={sys.executable} -c "import time; time.sleep(3600)"
startsecs=1
"""


@pytest.fixture
def supervised_indico(monkeypatch):
    """A real supervisord whose uWSGI exited at once (FATAL) and whose Celery runs; supervisorctl on the PATH."""
    folder = fresh("detect-services")
    conf = folder / "supervisord.conf"
    conf.write_text(supervisord_header(folder) + SERVICE_PROGRAMS)
    bin_dir = Path(sys.executable).parent
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    subprocess.run([bin_dir / "supervisord", "-c", conf], check=True, timeout=30)
    ctl = [str(bin_dir / "supervisorctl"), "-c", str(conf), "status"]

    def settled() -> bool:
        out = subprocess.run(ctl, capture_output=True, text=True, timeout=30).stdout
        states = {line.split()[0]: line.split()[1] for line in out.splitlines() if len(line.split()) > 1}
        return states.get("indico-uwsgi") == "FATAL" and states.get("indico-celery") == "RUNNING"

    try:
        wait_for(settled, timeout=60, interval=0.2, what="supervisord's indico-uwsgi FATAL and indico-celery RUNNING")
        yield folder
    finally:
        subprocess.run([*ctl[:-1], "shutdown"], capture_output=True, timeout=30)
        kill_tree_leftovers(folder)


@pytest.mark.parametrize("size", SIZES)
def test_detect_app_server_down(snap_compare, size, monkeypatch, supervised_indico):
    """Detection: under a real supervisord, uWSGI has failed (FATAL) and Celery runs; each service line says so."""
    folder = supervised_indico
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder / "venv")], check=True)
    install_metadata(folder / "venv", "indico", "3.2.6")
    config = instances_file(folder)
    config.write_text(config.read_text() + f'service_manager = ["supervisorctl", "-c", "{folder}/supervisord.conf", '
                      '"{action}", "{service}"]\n\n[instances.main.services]\n'
                      'uwsgi = "indico-uwsgi"\ncelery = "indico-celery"\n')  # fmt: skip
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr("wizard.views.facts.shutil.disk_usage", lambda _: usage(100 * 2**30, 60 * 2**30, 40 * 2**30))
    assert snap_compare(app_for(folder), terminal_size=size, run_before=arrive("DetectScreen"))


@pytest.mark.parametrize("size", SIZES)
def test_detect_nothing_to_do_here(snap_compare, size, monkeypatch):
    """Detection: Indico 3.2.9 on Python 3.11, real pip sees 3.3.14 needing Python 3.12: the way there, exit 2."""
    folder = fresh("detect-beyond")
    wheels = folder / "wheels"
    build_wheel(wheels, "indico", "3.2.9", requires_python=">=3.9.0,<3.12")
    build_wheel(wheels, "indico", "3.3.14", requires_python=">=3.12.2,<3.13")
    venv_with(folder, wheels, "indico==3.2.9")
    env = "".join(f'{key} = "{value}"\n' for key, value in offline_pip_env(wheels).items())
    (folder / "instances.toml").write_text(f'[instances.main]\nrecipe = "indico"\nvenv = "{folder}/venv"\n'
                                           f'user = "indico"\n\n[instances.main.env]\n{env}')  # fmt: skip
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr("wizard.views.facts.shutil.disk_usage", lambda _: usage(100 * 2**30, 60 * 2**30, 40 * 2**30))
    assert snap_compare(app_for(folder), terminal_size=size, run_before=arrive("DetectScreen"))


LONG_PLUGINS = {"citadel": "3.2.2", "payment_paypal": "3.2.1", "ursh": "3.2.0", "vc_zoom": "3.2.4"}


@pytest.mark.parametrize("size", SIZES)
def test_detect_long_schema_and_plugins_wrap(snap_compare, size, monkeypatch):
    """Detection: the demo sandbox with five plugins, each with its schema revision: the schema and plugins rows run
    past 80 columns and wrap inside the table, read whole; the cursor moved down to the plugins row scrolls it into
    view at 80x24, with the key line still shown."""
    from wizard.demo.sandbox import build

    folder = fresh("detect-long")
    config = build(folder)
    for name, version in LONG_PLUGINS.items():
        install_metadata(folder / "venv", f"indico-demo-plugin-{name.replace('_', '-')}", version)
    with sqlite3.connect(folder / "indico.sqlite3") as conn:
        for number, name in enumerate(LONG_PLUGINS, 1):
            conn.execute(f"CREATE TABLE alembic_version_plugin_{name} (version_num TEXT NOT NULL)")
            conn.execute(f"INSERT INTO alembic_version_plugin_{name} VALUES (?)", (f"{number}a2b3c4d5e6f",))
    conn.close()
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr("wizard.views.facts.shutil.disk_usage", lambda _: usage(100 * 2**30, 60 * 2**30, 40 * 2**30))
    app = make_app(load_instances(config), folder / "state", "demo")
    app.resumed = False
    detected = arrive("DetectScreen")

    async def to_the_plugins_row(pilot) -> None:
        await detected(pilot)
        await pilot.press(*["down"] * 5)  # installed, target, python, database, schema: then plugins
        await pilot.pause(0.3)

    assert snap_compare(app, terminal_size=size, run_before=to_the_plugins_row)


@pytest.mark.parametrize("size", SIZES)
def test_notes(snap_compare, size):
    """Release notes: two warnings (the first acknowledged) and an info; Continue is not offered yet."""
    folder = fresh("notes")
    instances_file(folder)
    saved_session(folder, ["pending"] * 5, notes=NOTES, acknowledged={NOTES[0].id: T0})
    assert snap_compare(app_for(folder, past_resume=True), terminal_size=size, run_before=arrive("NotesScreen"))


def backup_gate(name: str, monkeypatch, events: int, conf: str = "", backup_dir: str = "backups") -> Path:
    """An Indico instance on SQLite at the backup gate, with 52 GiB free where its backups go."""
    folder = fresh(name)
    config = instances_file(folder)
    database = folder / "indico.db"
    with sqlite3.connect(database) as conn:
        conn.executescript("CREATE TABLE events (id INTEGER PRIMARY KEY, title TEXT);")
        conn.executemany("INSERT INTO events (title) VALUES (?)", [(f"event {n}",) for n in range(events)])
    (folder / "indico.conf").write_text(f"SQLALCHEMY_DATABASE_URI = 'sqlite:///{database}'\n" + conf)
    config.write_text(config.read_text() + f'config = "{folder}/indico.conf"\nbackup_dir = "{folder}/{backup_dir}"\n')
    monkeypatch.setattr(backup, "free_space", lambda _: 52 * 1024**3)
    saved_session(folder, ["pending"] * 5)
    return folder


@pytest.mark.parametrize("size", SIZES)
def test_backup(snap_compare, size, monkeypatch):
    """The backup gate: what the backup would hold, measured (the archive offered with its size), the button focused."""
    archive = ROOT / "backup" / "archive"
    folder = backup_gate("backup", monkeypatch, 20000, f"STORAGE_BACKENDS = {{'default': 'fs:{archive}'}}\n")
    archive.mkdir()
    (archive / "upload.bin").write_bytes(b"x" * 3_500_000)
    assert snap_compare(
        app_for(folder, past_resume=True), terminal_size=size, run_before=arrive("BackupScreen", "#space")
    )


@pytest.mark.parametrize("size", SIZES)
def test_backup_with_an_unfinished_one_left(snap_compare, size, monkeypatch):
    """The backup gate names a backup a killed wizard left half-written, with its size, for the operator to remove."""
    folder = backup_gate("backup-unfinished", monkeypatch, 0, backup_dir="b")
    killed = folder / "b" / "wizard-main-20261120-231500-9f3c"
    killed.mkdir(parents=True)
    (killed / "UNFINISHED").write_text(backup.unfinished_text("main"))
    (killed / "indico.dump").write_bytes(b"x" * 1_200_000)
    assert snap_compare(
        app_for(folder, past_resume=True), terminal_size=size, run_before=arrive("BackupScreen", "#space")
    )


@pytest.mark.parametrize("size", SIZES)
def test_run_after_a_failure(snap_compare, size):
    """The run screen after the schema upgrade failed: its log, and the choices r / s / a in the panel and footer."""
    assert snap_compare(after_a_failure("run"), terminal_size=size, run_before=arrive("RunScreen"))


def after_a_failure(name: str):
    """The app, straight at the run screen, after the schema upgrade failed (so the session was saved)."""
    folder = fresh(name)
    instances_file(folder)
    saved_session(folder, ["succeeded", "succeeded", "failed", "pending", "pending"], backup=BACKUP,
                  packages_before=PackageSet(at=T0, pip="24.0", requirements=["indico==3.2.6"]))  # fmt: skip
    return app_for(folder, past_resume=True)


def then(first, *keys: str, push=None, screen: str | None = None):
    """``first`` (an arrive), then these keys, or a dialog pushed, and the screen that follows."""

    async def run_before(pilot) -> None:
        await first(pilot)
        await pilot.press(*keys)
        if push is not None:
            pilot.app.push_screen(push())
        deadline = time.monotonic() + ARRIVE_SECONDS
        while screen is not None and type(pilot.app.screen).__name__ != screen:
            if time.monotonic() > deadline:
                raise AssertionError(f"waited {ARRIVE_SECONDS:.0f} s for {screen}")
            await pilot.pause(0.05)
        await pilot.pause(0.3)

    return run_before


def test_run_steps_view(snap_compare):
    """At 80 columns, v puts the steps and the failed step's advice in place of the log."""
    app = after_a_failure("run-steps")
    assert snap_compare(app, terminal_size=(80, 24), run_before=then(arrive("RunScreen"), "v"))


@pytest.mark.parametrize("size", SIZES)
def test_run_skip_dialog(snap_compare, size):
    """s after the failure: the question and where to type the reason fit."""
    app = after_a_failure("run-skip")
    assert snap_compare(app, terminal_size=size, run_before=then(arrive("RunScreen"), "s", screen="ReasonDialog"))


@pytest.mark.parametrize("size", SIZES)
def test_end_session_dialog(snap_compare, size):
    """The dialog k opens for a blocking session: the whole question, and exactly what to type."""
    from screens.dialogs import TypeToConfirmDialog

    app = after_a_failure("run-end")
    question = "End database session 12642 (psql (pid 31337) as role indico, idle in transaction)?"
    dialog = lambda: TypeToConfirmDialog(question, "12642")  # noqa: E731
    assert snap_compare(app, terminal_size=size, run_before=then(arrive("RunScreen"), push=dialog,
                                                                  screen="TypeToConfirmDialog"))  # fmt: skip


@pytest.mark.parametrize("size", SIZES)
def test_resume_interrupted(snap_compare, size):
    """Resume: the schema upgrade was interrupted; running it again comes first (it is safe to re-run)."""
    folder = fresh("resume")
    instances_file(folder)
    saved_session(folder, ["succeeded", "succeeded", "interrupted", "pending", "pending"], backup=BACKUP,
                  packages_before=PackageSet(at=T0, pip="24.0", requirements=["indico==3.2.6"]))  # fmt: skip
    assert snap_compare(app_for(folder), terminal_size=size, run_before=arrive("ResumeScreen"))


HEALTHY = Health(at=T0 + timedelta(minutes=3), findings=[
    Finding(kind="code", title="indico 3.2.9 installed (the upgrade's target)", outcome="ok"),
    Finding(kind="requirements", title="the venv's packages agree with each other", outcome="ok"),
    Finding(kind="schema", title="the database schema is at the installed code's head", outcome="ok"),
    Finding(kind="service", title="celery (indico-celery.service) is running, started by step 5", outcome="ok"),
    Finding(kind="service", title="uwsgi (indico-uwsgi.service) is running", outcome="ok"),
    Finding(kind="site", title="the site answers (200)", outcome="ok"),
    Finding(kind="running", title="the site runs 3.2.9", outcome="ok"),
])  # fmt: skip
NOT_HEALTHY = Health(at=T0 + timedelta(minutes=3), findings=[
    *HEALTHY.findings[:3],
    Finding(kind="service", title="celery (indico-celery.service) is not running", outcome="failed",
            evidence="the service manager says failed",
            way_out="start it: systemctl start indico-celery.service; see why: systemctl status "
                    "indico-celery.service"),
    HEALTHY.findings[4],
    Finding(kind="site", title="the site does not answer as it should", outcome="failed",
            evidence="GET https://indico.example.org/: 502 Bad Gateway in 0.1 s (address from BASE_URL in the "
                     "app's config)",
            way_out="read the app server's log and the app's error log (the report gathers the wizard's side)"),
])  # fmt: skip


def done_app(name: str, health: Health):
    folder = fresh(name)
    instances_file(folder)
    saved_session(folder, ["succeeded", "succeeded", "succeeded", "skipped", "succeeded"], backup=BACKUP,
                  finished=T0 + timedelta(minutes=2))  # fmt: skip
    session = StateStore(folder / "state", "main").load()
    session.steps[3].skip_reason = "not needed: uwsgi was restarted during the upgrade"
    session.health = health  # recorded: the screen shows it and asks nothing of the (absent) site
    session.packages_before = PackageSet(at=T0, pip="24.0", requirements=[f"package-{n}==1.0" for n in range(184)])
    StateStore(folder / "state", "main").save(session)
    return app_for(folder)


@pytest.mark.parametrize("size", SIZES)
def test_done(snap_compare, size, utc):
    """Done: every step succeeded but the reload, skipped because uWSGI was restarted; healthy; where things are."""
    assert snap_compare(done_app("done", HEALTHY), terminal_size=size, run_before=arrive("DoneScreen"))


@pytest.mark.parametrize("size", SIZES)
def test_done_not_healthy(snap_compare, size, utc):
    """Done, but the health check failed: each failure in red with its evidence and what to do."""
    assert snap_compare(done_app("done-unhealthy", NOT_HEALTHY), terminal_size=size, run_before=arrive("DoneScreen"))


@pytest.mark.parametrize("size", SIZES)
def test_done_between_the_instances_of_a_shared_venv(snap_compare, size, utc):
    """Done, one instance of a shared venv's upgrade: h leads back to the host table; no rollback, no new plan."""
    from screens.done import DoneScreen

    app = done_app("done-between", HEALTHY)
    store = StateStore(ROOT / "done-between" / "state", "main")
    session = store.load()
    session.shared_run = "20261121-223900-host"  # one of the shared venv's upgrade: not taken back alone
    store.save(session)

    async def between(pilot) -> None:
        await arrive("DoneScreen")(pilot)
        await pilot.app.switch_screen(DoneScreen(pilot.app.engine, between_instances=True))
        await arrive("DoneScreen")(pilot)  # the new one: mounted, its health shown

    assert snap_compare(app, terminal_size=size, run_before=between)


def rollback_app(name: str, monkeypatch):
    """The done screen of a finished upgrade whose schema changed; the way back is a fixed plan (the Pilot and
    integration tests work out real ones), with the database restore possible."""
    from screens import rollback as screen
    from wizard.rollback.plan import PackageChanges, RollbackPlan
    from wizard.session.state import ServiceAct

    app = done_app(name, HEALTHY)
    store = StateStore(ROOT / name / "state", "main")
    session = store.load()
    session.steps[2].migrates = "core"
    store.save(session)

    def step(step_id: str, title: str, run_as: str = "app", role: str | None = None) -> StepRecord:
        act = ServiceAct(role=role, action=step_id.split("-")[1]) if role else None
        return StepRecord(id=step_id, title=title, argv=["true"], run_as=run_as, service=act)

    def fixed_plan(context, upgrade, restore_database):
        steps = [step("rollback-stop-celery", "Stop celery (indico-celery.service)", "root", "celery"),
                 step("rollback-stop-uwsgi", "Stop uwsgi (indico-uwsgi.service)", "root", "uwsgi"),
                 step("rollback-packages", "Install the 184 recorded packages again (3 differ)"),
                 step("rollback-remove-added", "Remove the 1 packages the upgrade added"),
                 step("rollback-start-uwsgi", "Start uwsgi (indico-uwsgi.service)", "root", "uwsgi"),
                 step("rollback-start-celery", "Start celery (indico-celery.service)", "root", "celery")]  # fmt: skip
        if restore_database:
            steps.insert(4, step("rollback-database", "Restore the database from the backup of 2026-11-21 22:40",
                                 "root"))  # fmt: skip
        changes = PackageChanges(back=["indico==3.2.6", "indico-plugins==3.2.2", "marshmallow==3.19.0"],
                                 added=["marshmallow-oneofschema"])  # fmt: skip
        return RollbackPlan(upgrade, steps, changes, "3.2.9", "3.2.6", bool(restore_database))

    monkeypatch.setattr(screen, "plan_rollback", fixed_plan)
    return app


async def at_the_way_back(pilot) -> None:
    """The done screen, b, and the rollback screen once its plan is worked out."""
    await arrive("DoneScreen")(pilot)
    await pilot.press("b")
    deadline = time.monotonic() + ARRIVE_SECONDS
    while not (type(pilot.app.screen).__name__ == "RollbackScreen" and pilot.app.screen.ways is not None):
        assert time.monotonic() < deadline, f"waited {ARRIVE_SECONDS:.0f} s for the rollback's plan"
        await pilot.pause(0.05)
    await pilot.pause(0.3)


@pytest.mark.parametrize("size", SIZES)
def test_rollback(snap_compare, size, utc, monkeypatch):
    """b on the done screen: what the rollback runs, and the database's two ways (restore with ⏎, keep with k)."""
    assert snap_compare(rollback_app("rollback", monkeypatch), terminal_size=size, run_before=at_the_way_back)


def test_rollback_wants_the_name_typed(snap_compare, utc, monkeypatch):
    """⏎ there: restoring the database is confirmed by typing the instance's name."""
    run_before = then(at_the_way_back, "enter", screen="TypeToConfirmDialog")
    assert snap_compare(rollback_app("rollback-typed", monkeypatch), terminal_size=(80, 24), run_before=run_before)
