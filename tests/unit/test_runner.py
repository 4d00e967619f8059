"""The detached runner: what the step sees, what the log keeps, how an end is recorded."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psutil
import pytest

from wizard.config.redact import Redactor
from wizard.errors import WizardError
from wizard.execution import runner
from wizard.execution.logfollow import LogFollower, clean_line
from wizard.execution.runner import (
    Alive,
    Finished,
    Gone,
    boot_clock,
    inspect,
    launch,
    prepare_attempt,
    sweep_secret_files,
)
from wizard.host.procs import boot_id, start_ticks
from wizard.session.state import StepRecord

from ..helpers.processes import wait_for


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
    seen = json.loads(next(line for line in Path(record.log).read_text().splitlines() if line.startswith("{")))
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
    record.started = datetime.now(UTC) - timedelta(minutes=5)
    assert isinstance(inspect(record), Gone)
    record.start_ticks += 100
    assert inspect(record) == Alive(os.getpid())


def test_a_step_launched_a_moment_ago_is_starting_not_gone(tmp_path):
    record = StepRecord(id="x", title="x", argv=["true"])
    prepare_attempt(record, tmp_path, 1)  # saved, but the wizard died before launching
    assert inspect(record) == Alive(None)
    record.launched_boottime -= 60  # a minute later, and still no wrapper
    assert isinstance(inspect(record), Gone)


def test_a_session_saved_without_the_boot_clock_falls_back_to_the_wall_clock(tmp_path):
    record = StepRecord(id="x", title="x", argv=["true"])
    prepare_attempt(record, tmp_path, 1)
    record.launched_boottime = None  # as an older wizard saved it
    assert inspect(record) == Alive(None)
    record.started -= timedelta(seconds=60)
    assert isinstance(inspect(record), Gone)


def test_a_step_whose_wrapper_died_is_alive_while_its_command_runs(tmp_path):
    record = StepRecord(id="x", title="x", argv=[sys.executable, "-c", "import time; time.sleep(60)"])
    child = start(record, tmp_path)
    status = wait_for(
        lambda: os.path.exists(record.status_file) and (s := json.load(open(record.status_file))).get("child_pid") and s
    )
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
        handle.write(b" done\n")
    assert follower.read() == ["half done"]
    assert clean_line("a\r") == "a"
    tail_follower, tail = LogFollower.from_tail(log, 2)
    assert tail == ["100%", "half done"] and tail_follower.read() == []


# -- the secrets file ------------------------------------------------------------


def test_a_launch_interrupted_before_the_wrapper_starts_leaves_no_secrets_file(tmp_path, monkeypatch):
    record = StepRecord(id="x", title="x", argv=["true"])
    prepare_attempt(record, tmp_path, 1)

    def interrupted(*args, **kwargs):
        assert list(tmp_path.glob(".*.env")), "the secrets file is written before the wrapper starts"
        raise KeyboardInterrupt  # Ctrl-C (or a kill) between writing the file and starting the wrapper

    monkeypatch.setattr(runner.subprocess, "Popen", interrupted)
    with pytest.raises(KeyboardInterrupt):
        launch(record, app_user=None, secret_env={"PGPASSWORD": "hunter2-secret"}, redact=["hunter2-secret"])
    assert not [p for p in tmp_path.iterdir() if ".env" in p.name]  # neither the file nor a tmp file of it


def test_a_failed_launch_leaves_no_secrets_file(tmp_path, monkeypatch):
    record = StepRecord(id="x", title="x", argv=["true"])
    prepare_attempt(record, tmp_path, 1)
    monkeypatch.setattr(runner.subprocess, "Popen", lambda *a, **k: (_ for _ in ()).throw(OSError("no fork")))
    with pytest.raises(WizardError, match="no fork"):
        launch(record, app_user=None, secret_env={"PGPASSWORD": "hunter2-secret"})
    assert not [p for p in tmp_path.iterdir() if ".env" in p.name]


def test_the_sweep_removes_leftover_secrets_files_but_not_one_a_wrapper_may_still_read(tmp_path):
    runs = tmp_path / "runs"
    (runs / "s1").mkdir(parents=True)
    (runs / "s2").mkdir()
    old = time.time() - 10 * runner.START_GRACE

    def planted(path, age=None):
        path.write_text('{"env": {"PGPASSWORD": "hunter2-secret"}}')
        if age is not None:
            os.utime(path, (age, age))
        return path

    leftover = planted(runs / "s1" / ".01-migrate.0123abcd.env", old)  # a killed wizard's
    older_tmp = planted(runs / "s1" / "..02-x.89abcdef.env.4242.tmp", old)  # written through a tmp file once
    fresh = planted(runs / "s2" / ".01-migrate.fedcba98.env")  # a wrapper may be about to read it
    named = planted(runs / "s2" / ".02-reindex.00112233.env", old)  # a live process (a slow wrapper) names it
    not_ours = planted(runs / "s2" / "01-migrate.log", old)
    slow_wrapper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "--env-file", str(named)])
    try:
        wait_for(
            lambda: str(named) in psutil.Process(slow_wrapper.pid).cmdline(), what="the slow wrapper's command line"
        )
        removed = sweep_secret_files(runs)
    finally:
        slow_wrapper.kill()
        slow_wrapper.wait()
    assert sorted(removed) == sorted([leftover, older_tmp])
    assert not leftover.exists() and not older_tmp.exists()
    assert fresh.exists() and named.exists() and not_ours.exists()
    assert sweep_secret_files(tmp_path / "no-such-folder") == []


def test_a_secrets_file_planted_as_a_symlink_is_never_written_through(tmp_path):
    record = StepRecord(id="x", title="x", argv=["true"])
    prepare_attempt(record, tmp_path, 1)
    target = tmp_path / "target"
    target.write_text("precious")
    (tmp_path / f".01-x.{record.token[:8]}.env").symlink_to(target)
    with pytest.raises(WizardError):
        launch(record, app_user=None, secret_env={"PGPASSWORD": "hunter2-secret"})
    assert target.read_text() == "precious"


def test_a_symlink_planted_at_the_wrappers_error_file_is_refused(tmp_path):
    record = StepRecord(id="x", title="x", argv=["true"])
    prepare_attempt(record, tmp_path, 1)
    target = tmp_path / "target"
    target.write_text("precious")
    (tmp_path / "01-x.wrapper.err").symlink_to(target)
    with pytest.raises(WizardError):
        launch(record, app_user=None)
    assert target.read_text() == "precious"
    assert record.pid is None and not list(tmp_path.glob(".*.env"))


# -- the log ------------------------------------------------------------------------


def test_a_symlink_planted_at_the_log_is_not_followed_and_the_step_fails(tmp_path):
    target = tmp_path / "elsewhere.txt"
    target.write_text("precious\n")
    record = StepRecord(id="x", title="x", argv=[sys.executable, "-c", "open('ran', 'w').write('yes')"])
    prepare_attempt(record, tmp_path, 1)
    os.symlink(target, record.log)
    child = launch(record, app_user=None)
    outcome = wait_for(lambda: isinstance(o := inspect(record), Finished) and o, what="the refused step to end")
    child.wait(timeout=10)
    assert outcome.exit_code == 127
    assert target.read_text() == "precious\n" and os.path.islink(record.log)
    status = json.load(open(record.status_file))
    assert "could not open the log" in status["error"]
    assert not (tmp_path / "ran").exists()  # nothing ran without a log


def test_each_attempts_log_is_capped_keeping_its_head_and_tail_in_whole_lines(tmp_path, monkeypatch):
    cap = 64 * 1024
    monkeypatch.setattr(runner, "LOG_CAP", cap)
    total = 20000  # about 1.2 MB of output, 19 times the cap
    code = f"import sys; [sys.stdout.write(f'line {{i:05d}} ' + 'x' * (i % 97) + chr(10)) for i in range({total})]; print('the end')"
    record = StepRecord(id="chatty", title="chatty", argv=[sys.executable, "-c", code])
    assert run_to_end(record, tmp_path).exit_code == 0
    data = open(record.log, "rb").read()
    assert len(data) < cap + 1024  # the cap, the line that crossed it, and the wrapper's own lines
    lines = data.decode().splitlines()
    assert lines[0].startswith("[upgrade-wizard] ") and "started" in lines[0]
    assert "exited with code 0" in lines[-1] and lines[-2] == "the end"
    notice = [i for i, line in enumerate(lines) if "of output left out here" in line]
    assert len(notice) == 1, lines[:3]
    head, tail = lines[1 : notice[0]], lines[notice[0] + 1 : -2]
    numbers = [int(line.split()[1]) for line in head + tail]
    for i, line in zip(numbers, head + tail, strict=True):
        assert line == f"line {i:05d} " + "x" * (i % 97)  # every line whole
    assert numbers[: len(head)] == list(range(len(head)))  # the head from the first line on
    assert numbers[len(head) :] == list(range(numbers[len(head)], total))  # the tail up to the last line
    left_out = numbers[len(head)] - len(head)
    assert "[upgrade-wizard] " in lines[notice[0]] and f" {left_out} lines (" in lines[notice[0]]
    assert sum(len(line) + 1 for line in head) >= cap * 7 // 8 > sum(len(line) + 1 for line in head[:-1])
    assert sum(len(line) + 1 for line in tail) <= cap // 8


def test_a_retrys_output_is_capped_on_its_own(tmp_path, monkeypatch):
    monkeypatch.setattr(runner, "LOG_CAP", 8 * 1024)
    code = "for i in range(3000): print('retry line', i)"
    record = StepRecord(id="x", title="x", argv=[sys.executable, "-c", code])
    run_to_end(record, tmp_path)
    first = os.path.getsize(record.log)
    record.status = "pending"
    prepare_attempt(record, tmp_path, 1)
    assert record.log_offset == first
    launch(record, app_user=None).wait(timeout=20)
    assert isinstance(inspect(record), Finished)
    second = open(record.log, "rb").read()[first:].decode()
    assert second.count("of output left out here") == 1 and "retry line 2999" in second


# -- how an end is found ---------------------------------------------------------------


def ended_unrecorded(record: StepRecord, seal: str = "0123abcd") -> str:
    """The status an attempt's wrapper left when it could not write the final one: still "running", with its seal."""
    with open(record.status_file, "w") as handle:
        json.dump({"token": record.token, "state": "running", "seal": seal, "pid": 1, "start_ticks": 1}, handle)
    return seal


def test_an_exit_line_of_an_earlier_attempt_is_not_this_attempts_end(tmp_path):
    record = StepRecord(id="x", title="x", argv=["true"])
    log = tmp_path / "01-x.log"
    log.write_text("[upgrade-wizard] 2024-05-01T10:00:00Z the command exited with code 0 after 1.0 s · end 0123abcd\n")
    prepare_attempt(record, tmp_path, 1)  # the retry's output starts after that line
    seal = ended_unrecorded(record)
    assert isinstance(inspect(record), Gone)
    with open(log, "a") as handle:  # this attempt's wrapper ended it and could write no status
        handle.write("[upgrade-wizard] 2024-05-01T10:05:00Z started: true\n")
        handle.write(
            f"[upgrade-wizard] 2024-05-01T10:05:01Z the command was killed by signal 9 after 0.5 s · end {seal}\n"
        )
    assert inspect(record) == Finished(-9, datetime(2024, 5, 1, 10, 5, 1, tzinfo=UTC))
    with open(log, "a") as handle:  # not the last line: the wrapper did not write it last
        handle.write("some output\n")
    assert isinstance(inspect(record), Gone)


@pytest.mark.parametrize(
    "printed",
    [
        "[upgrade-wizard] 2024-01-01T00:00:00Z the command exited with code 0 after 1.0 s",  # as older wizards wrote it
        "[upgrade-wizard] 2024-01-01T00:00:00Z the command exited with code 0 after 1.0 s · end ffffffff",  # a guess
    ],
)
def test_a_step_printing_an_exit_line_cannot_pass_for_its_end(tmp_path, printed):
    record = StepRecord(id="x", title="x", argv=["true"])
    prepare_attempt(record, tmp_path, 1)
    ended_unrecorded(record)
    Path(record.log).write_text(f"{printed}\n")  # the step's own last line, and then its wrapper was killed
    assert isinstance(inspect(record), Gone)


def test_an_exit_line_with_a_time_that_cannot_be_is_read_without_its_time(tmp_path):
    record = StepRecord(id="x", title="x", argv=["true"])
    prepare_attempt(record, tmp_path, 1)
    seal = ended_unrecorded(record)
    Path(record.log).write_text(
        f"[upgrade-wizard] 2024-99-99T00:00:00Z the command exited with code 0 after 1.0 s · end {seal}\n"
    )
    assert inspect(record) == Finished(0, None)  # not a traceback at every start


@pytest.mark.parametrize(
    "content",
    [
        "[1]",
        '{"state": "exited", "exit_code": null}',
        '{"state": "exited", "exit_code": "x"}',
        '{"state": "exited"}',
        '"text"',
        "{" * 100_000,
    ],
)
def test_an_odd_status_file_is_no_status(tmp_path, content):
    record = StepRecord(id="x", title="x", argv=["true"])
    prepare_attempt(record, tmp_path, 1)
    Path(record.status_file).write_text(content.replace('"state"', f'"token": "{record.token}", "state"'))
    record.launched_boottime -= 60
    assert isinstance(inspect(record), Gone)


def test_a_fifo_in_place_of_the_status_file_is_not_read(tmp_path):
    record = StepRecord(id="x", title="x", argv=["true"])
    prepare_attempt(record, tmp_path, 1)
    os.mkfifo(record.status_file)
    record.launched_boottime -= 60
    assert isinstance(inspect(record), Gone)  # and it did not block


def test_the_start_grace_is_measured_on_the_boot_clock_not_the_wall_clock(tmp_path):
    record = StepRecord(id="x", title="x", argv=["true"])
    prepare_attempt(record, tmp_path, 1)
    assert record.launched_boottime is not None and abs(record.launched_boottime - boot_clock()) < 5
    record.started -= timedelta(hours=1)  # the wall clock was stepped forward an hour since the launch
    assert inspect(record) == Alive(None)  # launched a moment ago all the same
    record.started += timedelta(hours=2)  # or back: the launch looks an hour ahead
    record.launched_boottime -= 60  # but a minute has passed
    assert isinstance(inspect(record), Gone)
    record.launched_boottime += 60
    record.boot_id = "another-boot"  # launched before a reboot: no wrapper can still be starting
    assert isinstance(inspect(record), Gone)
