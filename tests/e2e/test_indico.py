"""A real Indico 3.2.6 upgraded to 3.2.9 by the wizard, end to end.

One installation per module (tests/e2e/indico_site.py: PostgreSQL, Redis, uWSGI
and Celery under supervisord), reset between tests from a template database and
a pip reinstall from the wheelhouse.  Each test's phases print their durations
(run with -s to see them).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from .indico_site import (
    CORE_BEHIND,
    WIZARD,
    IndicoSite,
    WizardRun,
    indico_site,
    log,
    missing_requirements,
    run,
    wait_for,
)
from .second_instance import second_instance
from .sites import INDICO_NEW, INDICO_OLD

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

RUN_TIMEOUT = 900.0  # one whole wizard run on a loaded 2-core machine (pip, Indico starting five times, a backup)
LOCK_TIMEOUT = 420.0  # from the wizard's start to the schema upgrade waiting on the lock


@pytest.fixture(scope="module")
def indico():
    reason = missing_requirements()
    if reason:
        pytest.skip(reason)
    with indico_site() as site:
        yield site


@pytest.fixture
def site(indico: IndicoSite, request):
    started = time.monotonic()
    indico.reset(request.node.name)
    log(f"{request.node.name}: starts ({time.monotonic() - started:.0f} s of reset)")
    started = time.monotonic()
    try:
        yield indico
    finally:
        for wizard in indico.wizards:
            wizard.kill()
        indico.end_blockers()
        log(f"TEST {request.node.name} took {time.monotonic() - started:.0f} s")


# -- what every finished upgrade must show ---------------------------------------------------------------


def steps_of(session: dict) -> dict[str, dict]:
    return {step["id"]: step for step in session["steps"]}


def side_jobs(session: dict, kind: str) -> list[dict]:
    return [job for job in session["side_jobs"] if job["kind"] == kind]


def lock_lines(out: str) -> list[str]:
    return [line for line in out.splitlines() if "lock watch:" in line]


def show_lock_lines(out: str) -> None:
    for line in dict.fromkeys(line.split(" lock watch: ", 1)[-1] for line in lock_lines(out)):
        log(f"  | {line}")


def assert_upgraded(site: IndicoSite, session: dict, *outputs: str) -> None:
    """3.2.9 installed, every migration applied, both services running and serving, no secret anywhere."""
    assert session["finished"], "the session is not finished"
    steps = steps_of(session)
    for step_id in ("pip-core", "pip-plugins", "db-upgrade", "db-upgrade-plugins", "start-celery"):
        assert steps[step_id]["status"] == "succeeded", (step_id, steps[step_id])
    for step in session["steps"]:
        assert step["attempts"] <= 1, f"step {step['id']} ran {step['attempts']} times"
    assert site.installed("indico") == INDICO_NEW
    heads = site.code_heads()
    revisions = site.revisions()
    assert revisions == heads, f"the database holds {revisions}, the code's heads are {heads}"
    assert revisions["core"] != CORE_BEHIND
    wait_for(lambda: {name: site.program_states().get(name) for name in ("celery", "uwsgi")} == {"celery": "RUNNING", "uwsgi": "RUNNING"}, 180,
             "both supervisord programs RUNNING after the upgrade")  # fmt: skip
    wait_for(site.serving, 240, "the upgraded uWSGI to answer GET / with 302 or 200", interval=1)
    leaks = site.secret_leaks(*outputs)
    assert not leaks, f"the database password shows in: {leaks}"


def assert_no_false_alarm_after_the_restart(out: str) -> None:
    """The restart released the lock and the upgrade carried on: no line may say it still waits.

    (The restart's end is noticed a moment later, often while the next step, db-upgrade-plugins,
    is still starting Indico: that step never waited on anything.)
    """
    false = [line for line in lock_lines(out) if "STILL waits" in line or "still waits" in line]
    assert not false, (
        "after the restart the wizard said the upgrade still waits on a lock, which it did not:\n"
        + "\n".join(line for line in lock_lines(out) if "restart" in line.lower() or "guess" in line)
    )


def healthy(health: dict | None) -> bool:
    """A recorded health check with no failed finding."""
    return health is not None and all(finding["outcome"] != "failed" for finding in health["findings"])


def step_log(step: dict) -> str:
    return open(step["log"], errors="replace").read() if step.get("log") else ""


# -- the reload step against Indico's recommended uwsgi.ini ------------------------------------------------


def test_plan_reads_touch_reload_of_a_uwsgi_that_renames_its_processes(site: IndicoSite):
    """Indico's guide runs uWSGI with auto-procname (`indico uWSGI master`): its command line no longer shows `--ini`.

    Its ini does set touch-reload on the wsgi file, so the plan must keep the graceful reload (a touch), or
    at worst say it could not tell; never claim the file is not watched (and restart uWSGI instead).
    Changes nothing: it only runs `plan`.
    """
    done = site.wizard("plan", timeout=300, COLUMNS="400")  # one line per sentence: nothing wrapped
    out = done.stdout + done.stderr
    master = psutil.Process(site.uwsgi_pid())
    log(f"plan: exit {done.returncode}; uWSGI master's command line as psutil reads it: {master.cmdline()}")
    assert done.returncode == 0, out[-4000:]
    said = [" ".join(line.replace("│", " ").split()) for line in out.splitlines() if "reload" in line.lower()]
    assert any("reload-uwsgi" in line for line in said), out[-4000:]  # an upgrade is planned, with its reload step
    assert not any("does not reload when" in line for line in said), (
        "the plan claims uWSGI does not reload on a touch of the wsgi file, though its ini sets touch-reload on it "
        f"(its process title is {master.cmdline()!r}):\n" + "\n".join(said)
    )


# -- 1. headless: the stuck uWSGI request is named and uWSGI restarted --------------------------------------


def test_headless_upgrade_restarts_the_uwsgi_worker_that_holds_the_lock(site: IndicoSite):
    phase = time.monotonic()
    holder = site.hold_request()
    uwsgi_before = site.uwsgi_pid()
    worker = site.client_process(holder)
    assert worker.ppid() == uwsgi_before, "the held request is not in a worker of the supervised uWSGI master"
    log(f"held request: backend {holder} idle in transaction in uWSGI worker {worker.pid} of master {uwsgi_before}")

    wizard = site.spawn_wizard("run", "--yes", "--restart-after", "3", "--lock-wait-seconds", "3")
    code = wizard.wait(RUN_TIMEOUT)
    out = wizard.text()
    log(f"wizard run --yes: exit {code} in {time.monotonic() - phase:.0f} s")
    show_lock_lines(out)
    assert code == 0, out[-8000:]

    session = site.session()
    steps = steps_of(session)
    # The backup: taken by the wizard itself (pg_dump) and read back before the gate opened.
    assert session["backup"]["kind"] == "taken" and session["backup"]["checksum"], session["backup"]
    assert "backup gate passed: taken backup" in out
    # The schema upgrade waited on the worker's session, and the watch said whose it was.
    assert f"Running upgrade {CORE_BEHIND} -> " in step_log(steps["db-upgrade"])
    named = [line for line in lock_lines(out) if f"session {holder}" in line]
    assert named, "no lock watch line names the held request's backend:\n" + "\n".join(lock_lines(out))
    assert any("uwsgi" in line.lower() and f"pid {worker.pid})" in line for line in named), named  # the worker, by pid
    assert "restarting uwsgi, as --restart-after allows" in out
    restarts = side_jobs(session, "restart")
    assert len(restarts) == 1 and restarts[0]["role"] == "uwsgi", session["side_jobs"]
    assert restarts[0]["run"]["exit_code"] == 0 and restarts[0]["run"]["status"] == "succeeded"
    assert not side_jobs(session, "terminate")
    assert site.uwsgi_pid() != uwsgi_before
    # The plugin migration ran, the reload was skipped because of the restart, Celery came back.
    assert "Running upgrade  -> " in step_log(steps["db-upgrade-plugins"])
    assert steps["reload-uwsgi"]["status"] == "skipped" and "restart" in steps["reload-uwsgi"]["skip_reason"].lower()
    assert_upgraded(site, session, out, wizard.output.read_text())
    assert_no_false_alarm_after_the_restart(out)
    assert_healthy_then_each_fault_found(site, session, out)
    log(f"checks done, {time.monotonic() - phase:.0f} s in all")


def check_findings(site: IndicoSite) -> tuple[int, dict[str, dict], str]:
    """`upgrade-wizard check --json`: its exit code, the findings by "kind: title", and stderr."""
    done = site.wizard("check", "--json", "--wait", "10", timeout=300)
    findings = {f"{f['kind']}: {f['title']}": f for f in json.loads(done.stdout)["findings"]}
    return done.returncode, findings, done.stderr


def assert_healthy_then_each_fault_found(site: IndicoSite, session: dict, out: str) -> None:
    """After the upgrade the wizard's check passes on the real site; then a stopped service, a wrong address and a
    database one revision behind each fail `check` (exit 1) with their evidence."""
    phase = time.monotonic()
    said = {f"{f['kind']}: {f['title']}": f["outcome"] for f in session["health"]["findings"]}
    assert all(outcome == "ok" for outcome in said.values()), [f for f in session["health"]["findings"]
                                                              if f["outcome"] != "ok"]  # fmt: skip
    assert f"running: the site runs {INDICO_NEW}" in said  # the footer of the page uWSGI serves after its restart
    assert f"code: indico {INDICO_NEW} installed (the upgrade's target)" in said
    assert "health check: healthy: all" in out

    site.supervisorctl("stop", "celery")
    code, found, _ = check_findings(site)
    assert code == 1, found
    stopped = found["service: celery is not running"]
    assert stopped["outcome"] == "failed" and "STOPPED" in stopped["evidence"], stopped
    assert "supervisorctl" in stopped["way_out"] and "start celery" in stopped["way_out"], stopped
    site.supervisorctl("start", "celery")

    right = site.instances.read_text()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        nobody = probe.getsockname()[1]
    site.instances.write_text(right.replace("target = ", f'url = "http://127.0.0.1:{nobody}/"\ntarget = ', 1))
    try:
        code, found, _ = check_findings(site)
    finally:
        site.instances.write_text(right)
    assert code == 1, found
    refused = found["site: the site does not answer as it should"]
    assert "connection refused" in refused["evidence"] and f"url in [instances.{site.name}]" in refused["evidence"]

    site.indico("db", "downgrade", CORE_BEHIND, INDICO_CONF_OVERRIDE="{'DEBUG': True}", INDICO_ALWAYS_DOWNGRADE="1")
    code, found, _ = check_findings(site)
    assert code == 1, found
    behind = found["schema: the database schema is behind the installed code"]
    assert f"core at {CORE_BEHIND}" in behind["evidence"] and "migration(s) to apply" in behind["evidence"], behind
    assert [title for title, f in found.items() if f["outcome"] == "failed"] == [
        "schema: the database schema is behind the installed code"
    ], found
    log(f"health: healthy after the upgrade, three faults found, in {time.monotonic() - phase:.0f} s")


def test_rollback_after_a_real_upgrade_gives_the_old_site_back(site: IndicoSite):
    """Issue 16's rollback on real Indico: upgraded 3.2.6 -> 3.2.9 (from a schema at 3.2.6's head, so the old site is
    healthy), then `rollback --yes --restore-database`: pip freeze is the recorded set again, every table's rows
    equal those in the backup's dump, and the health check passes on 3.2.6."""
    phase = time.monotonic()
    site.indico("db", "upgrade", timeout=600)
    site.indico("db", "--all-plugins", "upgrade", timeout=600)
    old_heads = site.revisions()
    wizard = site.spawn_wizard("run", "--yes")
    assert wizard.wait(RUN_TIMEOUT) == 0, wizard.text()[-8000:]
    upgrade = site.session()
    assert upgrade["health"] and all(f["outcome"] == "ok" for f in upgrade["health"]["findings"]), upgrade["health"]
    recorded = upgrade["packages_before"]["requirements"]
    log(f"upgraded in {time.monotonic() - phase:.0f} s; {len(recorded)} packages recorded before it")

    refused = site.wizard("rollback", "--yes")  # the schema changed: the database needs a word either way
    assert refused.returncode == 2 and "--restore-database" in refused.stderr, refused.stdout + refused.stderr
    assert site.installed("indico") == INDICO_NEW  # nothing was done
    dry = site.wizard("rollback", "--restore-database")  # without --yes: what it would do, nothing done
    assert dry.returncode == 0 and "nothing was changed" in dry.stdout, dry.stdout + dry.stderr
    assert f"indico=={INDICO_OLD}" in dry.stdout and "Restore the database from the backup" in dry.stdout

    started = time.monotonic()
    done = site.wizard("rollback", "--yes", "--restore-database", timeout=RUN_TIMEOUT)
    log(f"rollback: exit {done.returncode} in {time.monotonic() - started:.0f} s")
    assert done.returncode == 0, done.stdout[-8000:] + done.stderr
    rollback = site.session()
    assert rollback["kind"] == "rollback" and rollback["undoes"] == upgrade["id"], rollback["id"]
    assert [s["id"] for s in rollback["steps"]] == [
        "rollback-stop-celery", "rollback-stop-uwsgi", "rollback-packages", "rollback-database",
        "rollback-start-uwsgi", "rollback-start-celery",
    ]  # fmt: skip
    assert all(s["status"] == "succeeded" and s["attempts"] == 1 for s in rollback["steps"]), rollback["steps"]

    # The venv: exactly the set recorded before the upgrade, as pip itself lists it.
    freeze = site.pip("freeze", "--all").stdout.splitlines()
    assert sorted(freeze) == sorted(recorded), sorted(set(freeze) ^ set(recorded))
    assert site.installed("indico") == INDICO_OLD
    # The database: every table's rows as the backup's dump holds them, the schema at 3.2.6's heads again.
    site.restore_copy(Path(upgrade["backup"]["path"]) / "indico.dump", "rollback_reference")
    try:
        expected, found = site.table_digests("rollback_reference"), site.table_digests("indico")
    finally:
        site.sql("DROP DATABASE IF EXISTS rollback_reference WITH (FORCE)", db="postgres")
    assert found == expected, {t: (found.get(t), expected.get(t)) for t in set(found) | set(expected)
                               if found.get(t) != expected.get(t)}  # fmt: skip
    assert site.revisions() == old_heads
    # The site: the wizard's own check after the rollback, and again on demand.
    said = {f"{f['kind']}: {f['title']}": f["outcome"] for f in rollback["health"]["findings"]}
    assert all(outcome == "ok" for outcome in said.values()), rollback["health"]["findings"]
    assert (
        f"running: the site runs {INDICO_OLD}" in said
        and f"code: indico {INDICO_OLD} installed (the rollback's target)" in said
    )
    assert any(title.startswith("code: the venv holds exactly the") for title in said), said
    code, findings, _ = check_findings(site)
    assert code == 0, {title: f for title, f in findings.items() if f["outcome"] != "ok"}
    assert not site.secret_leaks(done.stdout, done.stderr)
    log(f"rollback proven (packages, {len(found)} tables, health) in {time.monotonic() - phase:.0f} s in all")


# -- 2. the TUI: the lock panel and its Restart key ---------------------------------------------------------


async def test_tui_lock_panel_restarts_uwsgi_through_supervisor(site: IndicoSite):
    from screens.app import make_app
    from wizard.config.instance import load_instances

    from ..helpers.tui import until

    phase = time.monotonic()
    holder = site.hold_request()
    uwsgi_before = site.uwsgi_pid()
    app = make_app(load_instances(site.instances), site.state, site.name, lock_threshold=3)
    async with app.run_test(size=(100, 40)) as pilot:
        name = lambda: type(app.screen).__name__  # noqa: E731
        await until(pilot, lambda: name() == "DetectScreen" and app.screen.plan is not None, timeout=300,
                    what="detection and the plan")  # fmt: skip
        log(f"TUI: plan shown after {time.monotonic() - phase:.0f} s")
        await pilot.press("c")
        await until(
            pilot, lambda: name() in ("NotesScreen", "BackupScreen"), timeout=60, what="the notes or backup screen"
        )
        for _ in range(20):  # each warning acknowledged with Space, then Continue
            if name() != "NotesScreen":
                break
            await pilot.press("space" if app.engine.session.unacknowledged else "c")
            await pilot.pause(0.2)
        assert name() != "NotesScreen", f"the notes screen did not let the upgrade go on: {app.engine.session.notes}"
        await until(pilot, lambda: name() == "BackupScreen", what="the backup screen")
        backup_screen = app.screen
        await until(pilot, lambda: not backup_screen.query_one("#take").disabled, timeout=120,
                    what="the backup to be measured (Take a backup now enabled)")  # fmt: skip
        await pilot.click("#take")
        await until(pilot, lambda: name() == "ReadyScreen", timeout=300, what="the backup to be taken, then ready")
        assert "stop-celery" not in str(app.screen.query_one("#steps").render())  # titles, numbered
        assert "celery" in str(app.screen.query_one("#services").render())
        await pilot.press("enter")  # "Start the upgrade"
        await until(pilot, lambda: name() == "RunScreen", timeout=60, what="the run screen")
        log(f"TUI: backup taken, run screen after {time.monotonic() - phase:.0f} s")
        assert app.engine.session.backup.kind == "taken"
        screen = app.screen

        def blocked_by_uwsgi():
            verdict = screen.verdict
            return verdict is not None and verdict.kind == "lock_wait" and verdict.app_server_blocks

        await until(pilot, blocked_by_uwsgi, timeout=LOCK_TIMEOUT, what="the lock panel naming uWSGI")
        log(f"TUI: lock panel after {time.monotonic() - phase:.0f} s")
        assert app.engine.session.running.id == "db-upgrade"
        assert [b.pid for b in screen.verdict.blockers] == [holder]
        assert screen.query_one("#lock").has_class("-shown")
        head = str(screen.query_one("#lock-head").render())
        assert f"session {holder}" in head and "uWSGI" in head, head
        assert screen.query_one("#restart").display
        await pilot.press("u")
        await until(pilot, lambda: app.engine.session.side_jobs, what="the restart side job")
        false_alarms: list[str] = []

        def done_and_watched() -> bool:
            # Any lock verdict shown for a later step is a false alarm: only db-upgrade ever waited.
            current = getattr(app.screen, "verdict", None)
            running = app.engine.session.running
            if (
                current is not None
                and current.kind == "lock_wait"
                and running is not None
                and running.id != "db-upgrade"
            ):
                false_alarms.append(f"{running.id}: {current.kind} ({current.db_note or 'confirmed'})")
            return name() == "DoneScreen"

        await until(pilot, done_and_watched, timeout=RUN_TIMEOUT, what="the done screen")
        log(f"TUI: done screen after {time.monotonic() - phase:.0f} s")
    session = site.session()
    restarts = side_jobs(session, "restart")
    assert len(restarts) == 1 and restarts[0]["role"] == "uwsgi" and restarts[0]["run"]["exit_code"] == 0, session[
        "side_jobs"
    ]
    assert site.uwsgi_pid() != uwsgi_before
    assert steps_of(session)["reload-uwsgi"]["status"] == "skipped"
    assert_upgraded(site, session)
    assert not false_alarms, (
        f"the run screen showed a lock wait for a step that never waited: {sorted(set(false_alarms))}"
    )


# -- 3. the wizard killed mid-step, and hung up while the schema upgrade waits -------------------------------


def test_killed_and_hung_up_wizards_are_reattached_and_nothing_runs_twice(site: IndicoSite):
    phase = time.monotonic()
    first = site.spawn_wizard("run", "--yes", "--lock-wait-seconds", "3", label="killed")
    wait_for(lambda: site.step_status("pip-core") == "running", 300, "the session to show step pip-core running")
    pip_step = steps_of(site.session_file())["pip-core"]
    os.kill(first.proc.pid, signal.SIGKILL)
    first.proc.wait(timeout=30)
    assert psutil.pid_exists(pip_step["pid"]), "pip-core's wrapper died with the wizard"
    log(f"wizard killed with SIGKILL during pip-core after {time.monotonic() - phase:.0f} s")

    second = site.spawn_wizard("run", "--yes", "--lock-wait-seconds", "3", label="reattached")
    second.wait_for_output("[pip-core] reattached to the running step", 120)  # pip was still running: no second pip
    holder = site.hold_request()  # before db-upgrade starts (pip-core and pip-plugins still take a while)
    wait_for(
        lambda: site.step_status("db-upgrade") == "running", LOCK_TIMEOUT, "the session to show db-upgrade running"
    )
    second.wait_for_output(f"session {holder}", LOCK_TIMEOUT)
    assert "pass --restart-after N" in second.text()
    os.kill(second.proc.pid, signal.SIGHUP)
    wait_for(lambda: second.proc.poll() is not None, 60, "the wizard to end after SIGHUP")
    assert second.proc.returncode == 129, second.text()[-3000:]  # README: SIGHUP while following a step
    assert site.step_status("db-upgrade") == "running", "the schema upgrade did not outlive the wizard"
    log(f"wizard hung up (exit {second.proc.returncode}) while db-upgrade waited, {time.monotonic() - phase:.0f} s")

    third = site.spawn_wizard("run", "--yes", "--restart-after", "3", "--lock-wait-seconds", "3", label="after-hangup")
    code = third.wait(RUN_TIMEOUT)
    out = third.text()
    log(f"third wizard: exit {code} after {time.monotonic() - phase:.0f} s")
    show_lock_lines(second.text() + out)
    assert code == 0, out[-8000:]
    assert "[db-upgrade] reattached to the running step" in out
    session = site.session()
    steps = steps_of(session)
    assert all(step["attempts"] == 1 for step in session["steps"] if step["status"] != "skipped"), [
        (s["id"], s["attempts"]) for s in session["steps"]]  # fmt: skip
    assert len(side_jobs(session, "restart")) == 1
    assert steps["reload-uwsgi"]["status"] == "skipped"
    assert_upgraded(site, session, first.text(), second.text(), out)
    assert_no_false_alarm_after_the_restart(out)


# -- 4. blockers that are not uWSGI: named, never cured by restarting uWSGI ---------------------------------


def naming(wizard, backend: int) -> list[str]:
    """The `lock watch:` lines naming this backend so far (fails when the wizard has exited)."""
    if wizard.proc.poll() is not None:
        raise AssertionError(f"the wizard exited ({wizard.proc.returncode}):\n{wizard.text()[-6000:]}")
    return [line for line in lock_lines(wizard.text()) if f"session {backend} " in line]


def wait_for_verdict(wizard, backend: int) -> list[str]:
    return wait_for(
        lambda: naming(wizard, backend), LOCK_TIMEOUT, f"a lock watch line naming backend {backend}", interval=0.5
    )


def assert_no_restart(site: IndicoSite, uwsgi_before: int) -> None:
    session = site.session_file() or {}
    assert not side_jobs(session, "restart"), session.get("side_jobs")
    assert site.uwsgi_pid() == uwsgi_before, "uWSGI was restarted"


@pytest.mark.parametrize("blocker_kind", ["app-role-over-tcp", "superuser-over-socket"])
def test_a_blocker_that_is_not_uwsgi_is_named_and_uwsgi_is_not_restarted(site: IndicoSite, blocker_kind: str):
    """(a) a psql of the app's role over TCP; (b) `sudo -u postgres psql indico` over the Unix socket.

    Neither is uWSGI: with --restart-after the wizard must not restart it, must name the
    blocker (its backend pid, role and program), repeat the verdict while it waits, and
    carry on once the test ends the blocker.
    """
    phase = time.monotonic()
    blocker = site.psql_over_tcp() if blocker_kind == "app-role-over-tcp" else site.psql_as_superuser()
    role = "indico" if blocker_kind == "app-role-over-tcp" else "postgres"
    uwsgi_before = site.uwsgi_pid()
    wizard = site.spawn_wizard("run", "--yes", "--restart-after", "3", "--lock-wait-seconds", "3")
    wait_for(lambda: site.step_status("db-upgrade") == "running", LOCK_TIMEOUT, "db-upgrade running")
    lines = wait_for_verdict(wizard, blocker.backend_pid)
    named_at = time.monotonic()
    log(f"{blocker_kind}: blocker {blocker.backend_pid} named after {named_at - phase:.0f} s: {lines[0]}")
    assert any(f"role {role}" in line for line in lines), f"the blocker's role {role!r} is not named:\n" + "\n".join(
        lines
    )
    assert any("psql" in line for line in lines), "the program behind the session (psql) is not named:\n" + "\n".join(
        lines
    )
    assert not any("of the uWSGI service" in line for line in lines), lines
    if blocker_kind == "superuser-over-socket":
        # Headless says the verdict again every 30 s while the step waits (checked once: it costs 30 s).
        wait_for(lambda: len(naming(wizard, blocker.backend_pid)) >= 2, 90,
                 f"the verdict naming backend {blocker.backend_pid} to be repeated (every 30 s)", interval=1)  # fmt: skip
        log(f"{blocker_kind}: verdict repeated {time.monotonic() - named_at:.0f} s later")
    else:
        # Nothing to wait for but time: --restart-after is 3 s; give it 10 s to (wrongly) restart.
        wait_for(lambda: "not restarting uwsgi" in wizard.text() or time.monotonic() - named_at > 10, 30,
                 "--restart-after's moment to pass")  # fmt: skip
    assert_no_restart(site, uwsgi_before)
    assert site.step_status("db-upgrade") == "running"
    out = wizard.text()
    assert "restarting uwsgi, as --restart-after allows" not in out, out[-6000:]
    assert "The blocker is not uWSGI" in out or "not restarting uwsgi" in out, "\n".join(lock_lines(out))

    blocker.end()
    code = wizard.wait(RUN_TIMEOUT)
    out = wizard.text()
    log(f"{blocker_kind}: blocker ended by the test; wizard exit {code} after {time.monotonic() - phase:.0f} s")
    show_lock_lines(out)
    assert code == 0, out[-8000:]
    session = site.session()
    assert not side_jobs(session, "restart") and not side_jobs(session, "terminate"), session["side_jobs"]
    assert steps_of(session)["reload-uwsgi"]["status"] == "succeeded"  # the upgrade's own reload
    assert_upgraded(site, session, out)


def test_end_blocker_after_ends_an_idle_session_of_a_named_role(site: IndicoSite):
    phase = time.monotonic()
    blocker = site.psql_over_tcp()
    wizard = site.spawn_wizard("run", "--yes", "--restart-after", "3", "--lock-wait-seconds", "3",
                               "--end-blocker-after", "2", "--end-blocker-role", "indico")  # fmt: skip
    code = wizard.wait(RUN_TIMEOUT)
    out = wizard.text()
    log(f"--end-blocker-after: wizard exit {code} after {time.monotonic() - phase:.0f} s")
    show_lock_lines(out)
    assert code == 0, out[-8000:]
    assert any(str(blocker.backend_pid) in line for line in lock_lines(out)), "\n".join(lock_lines(out))
    assert not site.activity(f"pid = {blocker.backend_pid}"), "the blocker's session is still there"
    session = site.session()
    ended = side_jobs(session, "terminate")
    assert len(ended) == 1 and str(blocker.backend_pid) in json.dumps(ended[0]), session["side_jobs"]
    assert ended[0]["run"]["exit_code"] == 0
    assert not side_jobs(session, "restart")
    assert_upgraded(site, session, out)


# -- 6. two instances on one venv (last in the module: no test has to undo it) ------------------------------


def test_two_instances_on_one_venv_code_once_each_database_its_own_and_a_kill_between_them(site: IndicoSite):
    """The forum's host: a second Indico (its own config, database, uWSGI and Celery) on the site's venv, its
    database one core migration further behind. Refused alone; upgraded together: pip once, each database by
    its own session; the wizard killed between the two, the second finishes and the first is not run again.
    Then `rollback --all --restore-database --yes`: the recorded packages back once, each database from its own
    backup (the second one migration further back again), the second site serving the old release."""
    phase = time.monotonic()
    with second_instance(site) as second:
        behind = second.core_revision()
        log(f"second instance ready in {time.monotonic() - phase:.0f} s; its database at {behind}")

        def wizard(*args: str, timeout: float = 300):
            argv = [*WIZARD, "--config", str(second.instances), "--state-dir", str(site.state), *args]
            return run(argv, check=False, timeout=timeout)

        alone = wizard("run", "--yes", "second")
        assert alone.returncode == 2, alone.stdout + alone.stderr
        assert "the venv is shared with indico: second cannot be upgraded alone" in " ".join(alone.stdout.split())
        assert not (site.state / "second" / "session.json").exists() and site.installed("indico") != INDICO_NEW

        output = site.state.parent / f"{site.state.name}-together.out"
        with open(output, "w") as handle:
            proc = subprocess.Popen([*WIZARD, "--config", str(second.instances), "--state-dir", str(site.state), "run",
                                     "--yes", "--all"], stdin=subprocess.DEVNULL, stdout=handle,
                                    stderr=subprocess.STDOUT, start_new_session=True, cwd=site.root)  # fmt: skip
        killed = WizardRun(proc, output)
        site.wizards.append(killed)
        first_done = wait_for(lambda: (s := site.session_file()) and s.get("health") and s, RUN_TIMEOUT,
                              "the first instance's session to finish and record its health check")  # fmt: skip
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        log(f"wizard killed after the first instance, {time.monotonic() - phase:.0f} s")

        resumed = wizard("run", "--yes", "--all", timeout=RUN_TIMEOUT)
        out = resumed.stdout
        log(f"relaunched wizard: exit {resumed.returncode} after {time.monotonic() - phase:.0f} s")
        assert resumed.returncode == 0, (killed.text() + out)[-8000:]
        assert "[indico] finished earlier in this run: not run again" in out
        assert "[indico/" not in out  # none of the first's steps started, followed or reported again

        first, other = site.session(), json.loads(wizard("status", "second", "--json").stdout)
        assert first["steps"] == first_done["steps"], "the first instance's steps were touched after the kill"
        assert_upgraded(site, first, killed.text(), out)
        assert healthy(first["health"]), first["health"]
        # pip once: the second's session has no step of the venv's, and every step of it ran once.
        assert [step["id"] for step in other["steps"]] == [
            "stop-celery", "db-upgrade", "db-upgrade-plugins", "reload-uwsgi", "start-celery"]  # fmt: skip
        assert all(step["status"] == "succeeded" and step["attempts"] == 1 for step in other["steps"]), other["steps"]
        assert other["finished"] and healthy(other["health"]), other["health"]
        assert first["shared_run"] == other["shared_run"] and first["id"] != other["id"]
        # Each database by its own session, with its own config: the second's had one core migration more to apply.
        own = steps_of(other)["db-upgrade"]
        assert f"Running upgrade {behind} -> {CORE_BEHIND}" in step_log(own)
        assert f"Running upgrade {behind}" not in step_log(steps_of(first)["db-upgrade"])
        assert second.core_revision() == site.revisions()["core"] == site.code_heads()["core"]
        assert second.version_served() == INDICO_NEW
        for job in ("stop-celery", "start-celery"):
            assert "celery-second" in steps_of(other)[job]["argv"], steps_of(other)[job]["argv"]
        leaks = site.secret_leaks(killed.text(), out)
        assert not leaks, f"the database password shows in: {leaks}"

        # Taken back together: the old code once (in the first's rollback), each database from its own backup.
        alone = wizard("rollback", "second", "--restore-database")
        assert alone.returncode == 2 and "rollback --all" in alone.stderr, alone.stdout + alone.stderr
        started = time.monotonic()
        back = wizard("rollback", "--all", "--restore-database", "--yes", timeout=RUN_TIMEOUT)
        log(f"rollback of both: exit {back.returncode} in {time.monotonic() - started:.0f} s")
        assert back.returncode == 0, back.stdout[-8000:] + back.stderr
        mine, its = site.session(), json.loads(wizard("status", "second", "--json").stdout)
        assert mine["kind"] == its["kind"] == "rollback"
        assert (mine["undoes"], its["undoes"]) == (first["id"], other["id"])
        assert [s["id"] for s in its["steps"]] == ["rollback-stop-celery", "rollback-stop-uwsgi", "rollback-database",
                                                   "rollback-start-uwsgi", "rollback-start-celery"]  # fmt: skip
        assert "rollback-packages" in [s["id"] for s in mine["steps"]]
        assert all(s["status"] == "succeeded" for s in mine["steps"] + its["steps"]), (mine["steps"], its["steps"])
        assert "celery-second" in steps_of(its)["rollback-stop-celery"]["argv"]
        freeze = site.pip("freeze", "--all").stdout.splitlines()
        recorded = first["packages_before"]["requirements"]
        assert sorted(freeze) == sorted(recorded), sorted(set(freeze) ^ set(recorded))
        assert site.installed("indico") == INDICO_OLD
        assert second.core_revision() == behind  # its own backup, one migration further back than the first's
        assert site.revisions()["core"] == CORE_BEHIND
        assert second.version_served() == INDICO_OLD
        assert not site.secret_leaks(back.stdout, back.stderr)
    log(f"TEST two instances took {time.monotonic() - phase:.0f} s")
