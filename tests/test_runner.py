"""The detached runner: what the step sees, what the log keeps, how an end is recorded."""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta, timezone
import signal
import stat
import sys

import psutil

from wizard.logfollow import LogFollower, clean_line
from wizard.redact import Redactor
from wizard.procs import boot_id, start_ticks
from wizard.runner import Alive, Finished, Gone, inspect, launch, prepare_attempt
from wizard.state import StepRecord

from .conftest import wait_for


def start(record: StepRecord, run_dir, **kwargs):
    prepare_attempt(record, run_dir, 1)
    return launch(record, app_user=None, **kwargs)


def run_to_end(record: StepRecord, run_dir, **kwargs) -> Finished:
    child = start(record, run_dir, **kwargs)
    outcome = wait_for(lambda: (child.poll(), inspect(record))[1] if not isinstance(inspect(record), Alive) else None)
    assert isinstance(outcome, Finished)
    return outcome


def test_the_step_runs_in_its_own_session_with_a_clean_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", "/somewhere/else")
    monkeypatch.setenv("VIRTUAL_ENV", "/the/wizards/own/venv")
    code = (
        "import json, os, sys\n"
        "print(json.dumps({'sid': os.getsid(0), 'pid': os.getpid(), 'stdin': sys.stdin.read(),"
        " 'env': {k: os.environ.get(k) for k in ('PYTHONPATH', 'VIRTUAL_ENV', 'INDICO_CONFIG')},"
        " 'path0': os.environ['PATH'].split(os.pathsep)[0]}))"
    )
    record = StepRecord(
        id="probe", title="probe", argv=[sys.executable, "-c", code],
        env={"VIRTUAL_ENV": "/opt/indico/.venv", "INDICO_CONFIG": "/opt/indico/etc/indico.conf"},
    )  # fmt: skip
    assert run_to_end(record, tmp_path).exit_code == 0
    seen = json.loads([l for l in open(record.log) if l.startswith("{")][0])
    assert seen["stdin"] == ""  # stdin is closed, not the wizard's terminal
    assert seen["sid"] != os.getsid(0)  # not in the wizard's session: a hang-up does not reach it
    assert seen["env"] == {
        "PYTHONPATH": None, "VIRTUAL_ENV": "/opt/indico/.venv", "INDICO_CONFIG": "/opt/indico/etc/indico.conf",
    }  # fmt: skip
    assert seen["path0"] == "/opt/indico/.venv/bin"  # as if the instance's venv were activated
    assert stat.S_IMODE(os.stat(record.log).st_mode) == 0o600
    assert not list(tmp_path.glob(".*.env"))  # the environment file is gone once read


def test_sigterm_to_the_wrapper_is_passed_on_and_the_end_still_recorded(tmp_path):
    record = StepRecord(id="sleepy", title="sleepy", argv=[sys.executable, "-c", "import time; time.sleep(60)"])
    child = start(record, tmp_path)
    wait_for(lambda: "child_pid" in (json.load(open(record.status_file)) if os.path.exists(record.status_file) else {}))
    assert inspect(record) == Alive(record.pid)
    os.kill(record.pid, signal.SIGTERM)
    child.wait(timeout=10)
    outcome = inspect(record)
    assert isinstance(outcome, Finished) and outcome.exit_code == -signal.SIGTERM
    assert "was killed by signal 15" in open(record.log).read()


def test_a_missing_command_is_a_failed_step_not_a_crash(tmp_path):
    record = StepRecord(id="nope", title="nope", argv=["/no/such/program", "--flag"])
    assert run_to_end(record, tmp_path).exit_code == 127
    assert "could not start the command" in open(record.log).read()


def test_a_wrapper_that_vanished_is_gone(tmp_path):
    record = StepRecord(id="x", title="x", argv=[sys.executable, "-c", "import time; time.sleep(60)"])
    child = start(record, tmp_path)
    wrapper = psutil.Process(record.pid)
    for proc in [*wrapper.children(recursive=True), wrapper]:
        proc.kill()
    child.wait(timeout=10)
    assert isinstance(inspect(record), Gone)


def test_a_reused_pid_is_not_mistaken_for_the_step(tmp_path):
    record = StepRecord(id="x", title="x", argv=["true"], status_file=str(tmp_path / "none.json"), token="t")
    record.pid, record.start_ticks = os.getpid(), start_ticks(os.getpid()) - 100  # same pid, older process
    record.boot_id = boot_id()
    record.started = datetime.now(timezone.utc) - timedelta(minutes=5)
    assert isinstance(inspect(record), Gone)
    record.start_ticks += 100
    assert inspect(record) == Alive(os.getpid())


def test_a_step_launched_a_moment_ago_is_starting_not_gone(tmp_path):
    record = StepRecord(id="x", title="x", argv=["true"])
    prepare_attempt(record, tmp_path, 1)  # saved, but the wizard died before launching
    assert inspect(record) == Alive(None)
    record.started -= timedelta(seconds=60)
    assert isinstance(inspect(record), Gone)


def test_a_step_whose_wrapper_died_is_alive_while_its_command_runs(tmp_path):
    record = StepRecord(id="x", title="x", argv=[sys.executable, "-c", "import time; time.sleep(60)"])
    child = start(record, tmp_path)
    status = wait_for(lambda: os.path.exists(record.status_file) and (s := json.load(open(record.status_file))).get("child_pid") and s)
    os.kill(record.pid, signal.SIGKILL)  # the OOM killer takes the wrapper only
    child.wait(timeout=10)
    assert inspect(record) == Alive(status["child_pid"])
    os.kill(status["child_pid"], signal.SIGKILL)
    wait_for(lambda: isinstance(inspect(record), Gone))


def test_a_command_leaving_a_daemon_behind_ends_when_it_exits(tmp_path):
    # An init script that starts a daemon: the daemon keeps the output pipe open for 30 s.
    code = "import subprocess, sys; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(30)']); print('started')"
    record = StepRecord(id="x", title="x", argv=[sys.executable, "-c", code])
    child = start(record, tmp_path)
    outcome = wait_for(lambda: isinstance(o := inspect(record), Finished) and o, timeout=10)
    assert outcome.exit_code == 0
    child.wait(timeout=5)


def test_redactor_never_lets_a_secret_out_of_a_partial_flush():
    redactor = Redactor(["hunter2-secret", "abc"])  # "abc" is too short to mask safely: ignored
    assert redactor.mask("pw=hunter2-secret abc") == "pw=******** abc"
    assert redactor.split_safe(b"progress 10% hunt") == (b"progress 10% ", b"hunt")  # may grow into the secret
    assert redactor.split_safe(b"progress 10%") == (b"progress 10%", b"")
    assert redactor.split_safe(b"pw hunter2-secret ok") == (b"pw ******** ok", b"")
    assert redactor.split_safe(b"pw hunter2-secret and hunter2") == (b"pw ******** and ", b"hunter2")


def test_log_follower_gives_whole_clean_lines(tmp_path):
    log = tmp_path / "x.log"
    log.write_bytes(b"\x1b[31mred\x1b[0m line\n10%\r50%\r100%\nhalf")
    follower = LogFollower(log)
    assert follower.read() == ["red line", "100%"]
    with open(log, "ab") as handle:
        handle.write(" done\n".encode())
    assert follower.read() == ["half done"]
    assert clean_line("a\r") == "a"
    tail_follower, tail = LogFollower.from_tail(log, 2)
    assert tail == ["100%", "half done"] and tail_follower.read() == []
