"""The detached runner: what the step sees, what the log keeps, how an end is recorded."""

from __future__ import annotations

import json
import os
import signal
import stat
import sys
import time

import psutil

from wizard.logfollow import LogFollower, clean_line
from wizard.redact import Redactor
from wizard.runner import Alive, Finished, Gone, inspect, launch
from wizard.state import StepRecord

from .conftest import wait_for


def run_to_end(record: StepRecord, run_dir, **kwargs) -> Finished:
    child = launch(record, run_dir, 1, app_user=None, **kwargs)
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
    child = launch(record, tmp_path, 1, app_user=None)
    assert isinstance(inspect(record), Alive)
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
    child = launch(record, tmp_path, 1, app_user=None)
    wrapper = psutil.Process(record.pid)
    for proc in [*wrapper.children(recursive=True), wrapper]:
        proc.kill()
    child.wait(timeout=10)
    assert isinstance(inspect(record), Gone)


def test_a_reused_pid_is_not_mistaken_for_the_step(tmp_path):
    record = StepRecord(id="x", title="x", argv=["true"], status_file=str(tmp_path / "none.json"), token="t")
    record.pid, record.create_time = os.getpid(), psutil.Process().create_time() - 100
    record.boot_id = open("/proc/sys/kernel/random/boot_id").read().strip()
    assert isinstance(inspect(record), Gone)


def test_redactor_holds_back_a_possible_secret_start():
    redactor = Redactor(["hunter2-secret", "abc"])  # too short to mask safely: ignored
    assert redactor.mask("pw=hunter2-secret abc") == "pw=******** abc"
    shown, held = redactor.split_safe(b"progress 10% hunt")
    assert held == b"progress 10% hunt"[-13:] and shown + held == b"progress 10% hunt"


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
