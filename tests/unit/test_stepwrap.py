"""The wrapper itself: its secrets file, its status on a full disk, its log's cap."""

from __future__ import annotations

import errno
import json
import os
import re
import subprocess
import sys
import traceback

from wizard.execution import steplog, stepwrap
from wizard.execution.runner import WRAPPER, Finished, Gone, inspect, prepare_attempt
from wizard.host.procs import start_ticks
from wizard.session.state import StepRecord


def prepared(tmp_path, argv: list[str]) -> StepRecord:
    record = StepRecord(id="x", title="x", argv=argv)
    prepare_attempt(record, tmp_path, 1)
    return record


def wrapper_args(record: StepRecord, *extra: str) -> list[str]:
    return ["--log", record.log, "--status", record.status_file, "--token", record.token, *extra, "--", *record.argv]


def run_wrapper(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*WRAPPER, *args],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


# -- the secrets file -------------------------------------------------------------


def test_a_corrupt_secrets_file_is_removed_and_fails_the_step_without_running_it(tmp_path):
    record = prepared(tmp_path, [sys.executable, "-c", "open('ran', 'w').write('yes')"])
    env_file = tmp_path / f".01-x.{record.token[:8]}.env"
    env_file.write_text('{"env": {"PGPASSWORD": "hunter2-sec')  # cut short
    run_wrapper(wrapper_args(record, "--env-file", str(env_file)))
    assert not env_file.exists()
    assert inspect(record).exit_code == 127
    assert "could not read the step's environment file" in open(record.log).read()
    assert not (tmp_path / "ran").exists()  # without its environment the command does not run


def test_the_secrets_file_is_removed_even_when_the_wrappers_arguments_are_wrong(tmp_path):
    env_file = tmp_path / ".01-x.0123abcd.env"
    env_file.write_text('{"env": {"PGPASSWORD": "hunter2-secret"}, "redact": []}')
    done = run_wrapper(["--env-file", str(env_file), "--no-such-option", "--", "true"])
    assert done.returncode == 2 and "required: --log, --status, --token" in done.stderr
    assert not env_file.exists()


def test_a_secrets_file_that_is_a_symlink_is_not_read_through_and_is_removed(tmp_path):
    record = prepared(tmp_path, [sys.executable, "-c", "import os; print('PW=' + os.environ.get('PGPASSWORD', ''))"])
    target = tmp_path / "elsewhere.json"
    target.write_text('{"env": {"PGPASSWORD": "from-the-link"}, "redact": []}')
    env_file = tmp_path / f".01-x.{record.token[:8]}.env"
    env_file.symlink_to(target)
    run_wrapper(wrapper_args(record, "--env-file", str(env_file)))
    assert not os.path.lexists(env_file) and target.exists()
    assert inspect(record).exit_code == 127 and "from-the-link" not in open(record.log).read()


# -- the status on a full disk --------------------------------------------------------


def _path_of(fd: int) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return ""


def run_wrapper_on_a_filling_disk(record: StepRecord, *, in_place_fails: bool) -> int:
    """The wrapper in a forked copy of this process; once the step's output is copied the disk is full.

    A full disk shows as ENOSPC from fsync of a new file (delayed allocation), so
    no status can be written through a new file; ``in_place_fails``: nor
    written in place (the status cannot be written at all).
    """
    pid = os.fork()
    if pid == 0:  # the wrapper: never returns into pytest
        code = 70
        try:
            full = False
            real_pump, real_fsync, real_pwrite = stepwrap.pump, os.fsync, os.pwrite

            def pump(*args):
                nonlocal full
                try:
                    real_pump(*args)
                finally:
                    full = True

            def fsync(fd):
                if full and _path_of(fd).endswith(".tmp"):
                    raise OSError(errno.ENOSPC, "No space left on device")
                return real_fsync(fd)

            def pwrite(fd, data, offset):
                if full and in_place_fails:
                    raise OSError(errno.ENOSPC, "No space left on device")
                return real_pwrite(fd, data, offset)

            stepwrap.pump, os.fsync, os.pwrite = pump, fsync, pwrite
            stepwrap.STATUS_RETRY_PAUSE = 0.01
            code = stepwrap.main(wrapper_args(record))
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    record.pid, record.start_ticks = pid, start_ticks(pid)
    _, wait_status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(wait_status)  # 70: the wrapper crashed


def test_a_full_disk_at_the_end_still_records_the_exit_code_in_the_status(tmp_path):
    record = prepared(tmp_path, [sys.executable, "-c", "print('working'); raise SystemExit(3)"])
    wrapper_exit = run_wrapper_on_a_filling_disk(record, in_place_fails=False)
    outcome = inspect(record)
    assert isinstance(outcome, Finished) and outcome.exit_code == 3 and outcome.ended is not None, outcome
    status = json.load(open(record.status_file))
    assert status["state"] == "exited" and status["exit_code"] == 3 and status["token"] == record.token
    assert wrapper_exit == 0
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []  # the failed tmp file is gone


def test_a_status_that_cannot_be_written_at_all_is_read_from_the_logs_last_line(tmp_path):
    record = prepared(tmp_path, [sys.executable, "-c", "print('working'); raise SystemExit(3)"])
    wrapper_exit = run_wrapper_on_a_filling_disk(record, in_place_fails=True)
    assert json.load(open(record.status_file))["state"] == "running"  # the wrapper is gone all the same
    last = open(record.log).read().splitlines()[-1]
    seal = json.load(open(record.status_file))["seal"]
    assert re.fullmatch(
        rf"\[upgrade-wizard\] \S+Z the command exited with code 3 after [0-9.]+ s · end {seal}", last
    ), last
    outcome = inspect(record)
    assert isinstance(outcome, Finished) and outcome.exit_code == 3 and outcome.ended is not None, outcome
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
    assert wrapper_exit == 0


def test_a_symlink_planted_as_the_status_tmp_file_is_not_written_through(tmp_path):
    record = prepared(tmp_path, ["true"])
    target = tmp_path / "elsewhere.txt"
    target.write_text("precious")
    (tmp_path / f".{os.path.basename(record.status_file)}.tmp").symlink_to(target)
    run_wrapper(wrapper_args(record))
    assert target.read_text() == "precious"
    assert inspect(record).exit_code == 0


def test_without_a_status_and_without_an_exit_line_the_step_is_gone(tmp_path):
    record = prepared(tmp_path, ["true"])
    with open(record.log, "w") as log:
        log.write("[upgrade-wizard] 2024-05-01T10:05:00Z started: true\nhalf a line, then the wrapper was killed")
    record.pid, record.start_ticks = 1, None  # seen, and gone
    assert isinstance(inspect(record), Gone)


# -- the log's cap ------------------------------------------------------------------------


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def capped(tmp_path, cap: int, clock=None):
    log = steplog.LogFile(tmp_path / "step.log")
    notes = []

    def note(text):
        notes.append(text)
        log.line(f"[upgrade-wizard] {text}\n".encode())

    return log, steplog.CappedLog(log, cap, note, clock or Clock()), notes


def test_held_back_output_is_announced_now_and_then_so_the_log_still_grows(tmp_path):
    clock = Clock()
    log, output, notes = capped(tmp_path, 800, clock)
    output.write(b"a" * 99 + b"\n" * 1 + b"b" * 799 + b"\n")  # the head (700 bytes) is passed within the second line
    size = os.path.getsize(tmp_path / "step.log")
    assert size == 900 and output.holding
    output.write(b"held back\n")
    output.tick()
    assert notes == []  # not yet
    clock.now += steplog.CAP_NOTICE_SECONDS
    output.tick()
    assert len(notes) == 1 and "held back" in notes[0] and os.path.getsize(tmp_path / "step.log") > size
    clock.now += steplog.CAP_NOTICE_SECONDS
    output.tick()
    assert len(notes) == 1  # nothing new held back since: nothing to say
    output.finish()
    assert open(tmp_path / "step.log").read().endswith("held back\n")  # it fit in the tail: nothing left out
    log.close()


def test_a_line_longer_than_the_whole_tail_is_left_out_whole(tmp_path):
    log, output, notes = capped(tmp_path, 800)
    output.write(b"h" * 699 + b"\n")
    assert output.holding
    output.write(b"first kept?\n" + b"y" * 300)
    output.write(b"y" * 300 + b"\n")  # 600 bytes in one line: more than the tail (100 bytes)
    output.write(b"after\n")
    output.finish()
    text = open(tmp_path / "step.log").read()
    assert text.endswith(
        "left out here: the log is capped at 800 bytes per attempt, the first 700 and the last 100 kept\nafter\n"
    )
    assert "2 lines (613 bytes) of output left out" in notes[0] and "yyy" not in text and "first kept" not in text
    log.close()


def test_a_log_ending_in_half_a_line_gets_the_wrappers_lines_on_lines_of_their_own(tmp_path):
    (tmp_path / "step.log").write_bytes(b"an earlier attempt, cut off")
    log, _output, _notes = capped(tmp_path, 1 << 20)
    assert not log.at_line_start
    log.line(b"[upgrade-wizard] started\n")
    assert open(tmp_path / "step.log", "rb").read() == b"an earlier attempt, cut off\n[upgrade-wizard] started\n"
    log.close()


def test_the_exit_line_keeps_its_form_whatever_the_secrets(tmp_path):
    # A 4-digit secret could mask part of the time or the exit code, and inspect could no longer read the line.
    record = prepared(tmp_path, [sys.executable, "-c", "raise SystemExit(42)"])
    env_file = tmp_path / f".01-x.{record.token[:8]}.env"
    env_file.write_text(json.dumps({"env": {}, "redact": ["exited with code", "42 after"]}))
    run_wrapper(wrapper_args(record, "--env-file", str(env_file)))
    ended = json.load(open(record.status_file))
    with open(record.status_file, "w") as handle:  # as if the final status could not be written
        json.dump({key: ended[key] for key in ("token", "seal", "boot_id")} | {"state": "running"}, handle)
    record.pid, record.start_ticks = 1, None  # seen, and gone
    assert inspect(record).exit_code == 42


# -- a file as the step's standard input (a dump to restore) ----------------------------------------------


def test_the_file_given_as_stdin_is_what_the_command_reads(tmp_path):
    dump = tmp_path / "dump.bin"
    dump.write_bytes(b"the rows as they were\n")
    dump.chmod(0o600)
    record = prepared(tmp_path, [sys.executable, "-c", "import sys; print('read:', sys.stdin.read().strip())"])
    run_wrapper(wrapper_args(record, "--stdin", str(dump)))
    assert inspect(record).exit_code == 0
    assert "read: the rows as they were" in open(record.log).read()


def test_a_stdin_file_reached_through_a_symlink_is_not_read_and_the_command_does_not_run(tmp_path):
    (tmp_path / "real.bin").write_text("secret rows")
    (tmp_path / "link.bin").symlink_to(tmp_path / "real.bin")
    record = prepared(tmp_path, [sys.executable, "-c", "open('ran', 'w').write('yes')"])
    run_wrapper(wrapper_args(record, "--stdin", str(tmp_path / "link.bin")))
    assert inspect(record).exit_code == 127
    assert "could not start the command" in open(record.log).read()
    assert not (tmp_path / "ran").exists()
