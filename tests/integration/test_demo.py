"""The demo sandbox: a whole upgrade headless, resume on the same folder, a real lock wait, and no stray services."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import shutil
import signal
import sqlite3
import struct
import subprocess
import sys
import termios
import threading
import time
from pathlib import Path

import psutil
import pytest

from wizard.demo.catalog import CORE_REVISIONS
from wizard.demo.sandbox import build, start_services, stop_services
from wizard.host.procs import alive, boot_id, start_ticks

from ..helpers.processes import kill_tree_leftovers, wait_for, wait_for_line
from ..helpers.sites import PYTHON, run_cli

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
    # The migrations each schema step has ahead, read just before it starts (the demo ships its scripts).
    assert "[db-upgrade] starting: Upgrade the database schema (2 migrations to apply)" in result.stdout
    assert "starting: Upgrade the plugins' database tables (2 migrations to apply)" in result.stdout

    status = run_cli(
        "--config", str(sandbox / "instances.toml"), "--state-dir", str(sandbox / "state"), "status", "--json"
    )
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


# -- The demo's services end with the demo ---------------------------------------


def service_records(folder: Path) -> dict[str, dict]:
    """The pid files the demo's service manager keeps: what the demo itself recorded."""
    records = {}
    for service in ("uwsgi", "celery"):
        path = folder / "run" / f"{service}.pid"
        if path.exists():
            records[service] = json.loads(path.read_text())
    return records


def live_services(folder: Path) -> list[psutil.Process]:
    """Every live process of this sandbox's services. The test may look by command line; the demo never does."""
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        cmdline = proc.info["cmdline"] or []
        if "wizard.demo.apps" in cmdline and str(folder) in cmdline and proc.info["status"] != psutil.STATUS_ZOMBIE:
            found.append(proc)
    return found


def wait_until_gone(folder: Path, records: list[dict], timeout: float = 30) -> None:
    wait_for(lambda: not any(alive(r["pid"], r["start_ticks"]) for r in records), timeout,
             what=f"the recorded service processes {[r['pid'] for r in records]} to be gone")  # fmt: skip
    wait_for(lambda: not live_services(folder), timeout, what=f"no process of the demo services of {folder} left")


def uwsgi_pids_from_log(folder: Path) -> list[int]:
    return [
        int(pid)
        for pid in re.findall(r"spawned uWSGI worker 1 \(pid: (\d+)", (folder / "logs" / "uwsgi.log").read_text())
    ]


def slow_uwsgi(folder: Path) -> None:
    """A sandbox built at pace 0.1 whose uWSGI requests last 200 s: only a restart (or the demo's end) ends one."""
    build(folder, pace=0.1)
    settings = json.loads((folder / "services.json").read_text())
    (folder / "services.json").write_text(json.dumps({**settings, "pace": 10}))
    start_services(folder)
    wait_for_line(folder / "logs" / "uwsgi.log", "long request")


def test_the_headless_demo_stops_its_services_when_it_ends(sandbox):
    result = run_cli("demo", "--dir", str(sandbox), "--headless", "--yes", "--pace", "0.1", timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"stopped the demo's services: uwsgi \(pid \d+\), celery \(pid \d+\)", result.stdout), (
        result.stdout
    )
    assert service_records(sandbox) == {}  # the pid files go with the processes
    wait_until_gone(sandbox, [])

    again = run_cli("demo", "--dir", str(sandbox), "--headless", "--yes", timeout=60)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "started again the services the demo stopped when it last ended: uwsgi, celery" in again.stdout
    assert "stopped the demo's services: uwsgi" in again.stdout
    wait_until_gone(sandbox, [])


def test_the_demo_stops_the_uwsgi_its_lock_watch_restarted(sandbox):
    slow_uwsgi(sandbox)
    first = service_records(sandbox)
    result = run_cli("demo", "--dir", str(sandbox), "--headless", "--yes", "--lock-wait-seconds", "1",
                     "--restart-after", "0", timeout=240)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "restarting uwsgi, as --restart-after allows" in result.stdout
    spawned = uwsgi_pids_from_log(sandbox)
    assert spawned[0] == first["uwsgi"]["pid"] and len(spawned) >= 2, spawned
    # The record followed the restarts: the uWSGI stopped at the end is the last one started.
    assert f"uwsgi (pid {spawned[-1]})" in result.stdout, result.stdout
    wait_until_gone(sandbox, list(first.values()))


def test_keep_services_keeps_them_until_stop(sandbox):
    result = run_cli(
        "demo", "--dir", str(sandbox), "--headless", "--yes", "--pace", "0.1", "--keep-services", timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    kept = service_records(sandbox)
    assert set(kept) == {"uwsgi", "celery"}
    assert all(alive(r["pid"], r["start_ticks"]) for r in kept.values())
    assert "keep running (--keep-services)" in result.stdout and "--stop" in result.stdout

    stop = run_cli("demo", "--dir", str(sandbox), "--stop", timeout=60)
    assert stop.returncode == 0, stop.stdout + stop.stderr
    for service, record in kept.items():
        assert f"{service} (pid {record['pid']})" in stop.stdout
    wait_until_gone(sandbox, list(kept.values()))

    again = run_cli("demo", "--dir", str(sandbox), "--stop", timeout=60)
    assert again.returncode == 0 and "nothing to stop" in again.stdout, again.stdout + again.stderr


def test_stop_on_a_sandbox_with_nothing_running(sandbox, tmp_path):
    build(sandbox, pace=0.1)
    result = run_cli("demo", "--dir", str(sandbox), "--stop")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "none of the demo's services is running" in result.stdout and "nothing to stop" in result.stdout

    assert run_cli("demo", "--stop").returncode == 2  # which sandbox? --stop needs --dir
    (tmp_path / "other").mkdir()
    elsewhere = run_cli("demo", "--dir", str(tmp_path / "other"), "--stop")
    assert elsewhere.returncode == 2 and "not a demo sandbox" in elsewhere.stderr


def test_a_pid_file_naming_another_process_is_never_signalled(sandbox):
    build(sandbox, pace=0.1)
    (sandbox / "run").mkdir(exist_ok=True)
    bystander = subprocess.Popen(["sleep", "300"], stdin=subprocess.DEVNULL)
    received: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda signum, _frame: received.append(signum))
    try:
        me = os.getpid()
        records = {
            # The uwsgi pid file: an old-style record (no command line) naming this very test, start time and all.
            "uwsgi": {"pid": me, "create_time": psutil.Process(me).create_time()},
            # The celery one: a new-style record with the bystander's true start time and the demo's command line.
            "celery": {"pid": bystander.pid, "start_ticks": start_ticks(bystander.pid), "boot_id": boot_id(),
                       "create_time": psutil.Process(bystander.pid).create_time(),
                       "argv": [PYTHON, "-m", "wizard.demo.apps", "celery", "--sandbox", str(sandbox), "--pace", "0.1"]},
        }  # fmt: skip
        for service, record in records.items():
            (sandbox / "run" / f"{service}.pid").write_text(json.dumps(record))

        stop = run_cli("demo", "--dir", str(sandbox), "--stop", timeout=60)
        assert stop.returncode == 0, stop.stdout + stop.stderr
        assert "nothing to stop" in stop.stdout
        assert f"left alone pid {me}" in stop.stdout and f"left alone pid {bystander.pid}" in stop.stdout

        # A whole demo on that sandbox: its steps stop and start Celery, and it stops its services at the end.
        # Its uWSGI is started when the demo resumes the sandbox (the pid file naming this test is no uWSGI),
        # so the health check at the end finds it instead of waiting its minute for it.
        for service, record in records.items():
            (sandbox / "run" / f"{service}.pid").write_text(json.dumps(record))
        (sandbox / "run" / "parked.json").write_text(json.dumps({"services": ["uwsgi"]}))
        run = run_cli("demo", "--dir", str(sandbox), "--headless", "--yes", timeout=120)
        assert run.returncode == 0, run.stdout + run.stderr
        wait_until_gone(sandbox, [])
        assert bystander.poll() is None and psutil.Process(bystander.pid).status() != psutil.STATUS_ZOMBIE
        assert received == [], "the test itself was sent SIGTERM"
    finally:
        signal.signal(signal.SIGTERM, previous)
        bystander.kill()
        bystander.wait()


def demo_waiting_on_the_lock(sandbox: Path, out: Path) -> subprocess.Popen:
    """`demo --headless` on a slow-uWSGI sandbox, returned once its schema upgrade is seen waiting on the lock."""
    with open(out, "w") as handle:
        wizard = subprocess.Popen(
            [PYTHON, "-m", "wizard", "demo", "--dir", str(sandbox), "--headless", "--yes", "--lock-wait-seconds", "1"],
            stdin=subprocess.DEVNULL, stdout=handle, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        wait_for_line(out, "pass --restart-after N", timeout=120)  # the schema upgrade waits on uWSGI's long request
    except BaseException:
        wizard.kill()
        raise
    return wizard


@pytest.mark.parametrize(
    ("signum", "code"),
    [(signal.SIGINT, 130), (signal.SIGHUP, 129), (signal.SIGTERM, 143)],
    ids=["ctrl-c", "hup", "term"],
)
def test_a_signal_while_a_step_runs_stops_the_services_and_not_the_step(sandbox, tmp_path, signum, code):
    slow_uwsgi(sandbox)
    uwsgi = service_records(sandbox)["uwsgi"]
    out = tmp_path / "demo.out"
    wizard = demo_waiting_on_the_lock(sandbox, out)
    try:
        wizard.send_signal(signum)
        assert wizard.wait(timeout=60) == code, out.read_text()
    finally:
        if wizard.poll() is None:
            wizard.kill()
    text = out.read_text()
    assert "stopped following; the step goes on" in text
    assert f"stopped the demo's services: uwsgi (pid {uwsgi['pid']})" in text, text
    assert "the step 'db-upgrade' was still running" in text and "reattaches to it" in text
    wait_until_gone(sandbox, [uwsgi])

    # The step was left alone: with uWSGI gone it ends by itself, once, and the next demo finds it succeeded.
    steps = {s["id"]: s for s in json.loads((sandbox / "state" / "demo" / "session.json").read_text())["steps"]}
    step = steps["db-upgrade"]
    assert step["status"] == "running"
    wait_for(
        lambda: not alive(step["pid"], step["start_ticks"]), 60, what="the detached schema upgrade to end by itself"
    )
    settings = json.loads((sandbox / "services.json").read_text())
    (sandbox / "services.json").write_text(json.dumps({**settings, "pace": 0.1}))  # short requests from now on
    again = run_cli("demo", "--dir", str(sandbox), "--headless", "--yes", timeout=120)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "started again the services the demo stopped when it last ended: uwsgi" in again.stdout
    steps = {s["id"]: s for s in json.loads((sandbox / "state" / "demo" / "session.json").read_text())["steps"]}
    assert steps["db-upgrade"]["status"] == "succeeded" and steps["db-upgrade"]["attempts"] == 1
    wait_until_gone(sandbox, [])


def test_a_sandbox_removed_while_the_demo_runs_still_has_its_services_stopped(sandbox, tmp_path):
    slow_uwsgi(sandbox)
    out = tmp_path / "demo.out"
    wizard = demo_waiting_on_the_lock(sandbox, out)
    try:
        assert live_services(sandbox), "the demo's services run"
        shutil.rmtree(sandbox)  # someone cleans up /tmp under a running demo
        wizard.send_signal(signal.SIGTERM)
        assert wizard.wait(timeout=60) == 143, out.read_text()
    finally:
        if wizard.poll() is None:
            wizard.kill()
    text = out.read_text()
    assert f"the demo's sandbox {sandbox} was removed while the demo ran; stopped its services" in text, text
    wait_for(lambda: not live_services(sandbox), 30, what=f"no process of the demo services of {sandbox} left")
    assert not (sandbox / "run").exists()  # the demo did not make the folder again


def test_a_demo_stopped_while_it_builds_does_not_say_its_sandbox_was_removed(sandbox, tmp_path):
    out = tmp_path / "demo.out"
    with open(out, "w") as handle:
        wizard = subprocess.Popen([PYTHON, "-m", "wizard", "demo", "--dir", str(sandbox), "--headless", "--yes"],
                                  stdin=subprocess.DEVNULL, stdout=handle, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        wait_for_line(out, "building the demo sandbox")
        wizard.send_signal(signal.SIGTERM)
        wizard.wait(timeout=60)
    finally:
        if wizard.poll() is None:
            wizard.kill()
    assert "was removed while the demo ran" not in out.read_text(), out.read_text()
    wait_for(lambda: not live_services(sandbox), 30, what=f"no process of the demo services of {sandbox} left")


def test_a_start_after_the_demo_ended_waits_for_the_next_demo(sandbox):
    """A detached step or restart that starts a service after the demo ended starts nothing stray."""
    build(sandbox, pace=0.1)
    assert run_cli("demo", "--dir", str(sandbox), "--stop").returncode == 0
    late = subprocess.run([PYTHON, "-m", "wizard.demo.svc", "--dir", str(sandbox), "start", "celery"],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert late.returncode == 0 and "starts when the demo resumes" in late.stdout, late.stdout + late.stderr
    assert service_records(sandbox) == {} and not live_services(sandbox)
    assert json.loads((sandbox / "run" / "parked.json").read_text())["services"] == ["celery"]


class Pty:
    """The interactive demo in a pseudo-terminal, its output drained (and kept) as a terminal would."""

    ANSI = re.compile(rb"\x1b\[[0-9;?<>=]*[ -/]*[@-~]|\x1b[()][0-9A-Za-z]|\x1b[=>]|\x1b\][^\x07]*\x07")

    def __init__(self, argv: list[str]):
        self.master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
                                     env={**os.environ, "TERM": "xterm-256color"})  # fmt: skip
        os.close(slave)
        self.output = bytearray()
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        while True:
            try:
                data = os.read(self.master, 65536)
            except OSError:
                return
            if not data:
                return
            self.output.extend(data)

    def text(self) -> str:
        return self.ANSI.sub(b"", bytes(self.output)).decode(errors="replace")

    def wait_for(self, text: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.text():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout} s waiting for {text!r} on the demo's screen "
                                     f"(exit code {self.proc.poll()}); it shows: {self.text()[-1500:]!r}")  # fmt: skip
            time.sleep(0.1)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        os.close(self.master)


def test_the_interactive_demo_stops_its_services_when_quit_or_hung_up(sandbox):
    wizard = [PYTHON, "-m", "wizard", "demo", "--dir", str(sandbox), "--pace", "0.1"]
    first = Pty(wizard)
    try:
        first.wait_for("Press c to go")
        records = service_records(sandbox)
        assert set(records) == {"uwsgi", "celery"}
        busy = run_cli("demo", "--dir", str(sandbox), "--stop")  # not while a demo runs on the sandbox
        assert busy.returncode == 3 and "another demo" in busy.stderr, busy.stdout + busy.stderr
        assert all(alive(r["pid"], r["start_ticks"]) for r in records.values())
        os.write(first.master, b"\x11")  # Ctrl+Q: quit
        assert first.proc.wait(timeout=60) == 0
        first.wait_for("stopped the demo's services: uwsgi")
        wait_until_gone(sandbox, list(records.values()))
    finally:
        first.close()

    second = Pty(wizard)
    try:
        second.wait_for("Press c to go")
        records = service_records(sandbox)
        assert set(records) == {"uwsgi", "celery"}  # the resumed demo started them again
        second.proc.send_signal(signal.SIGHUP)  # the terminal went away
        assert second.proc.wait(timeout=60) == -signal.SIGHUP  # it dies of it, as it always did...
        wait_until_gone(sandbox, list(records.values()))  # ...once its services are stopped
    finally:
        second.close()
