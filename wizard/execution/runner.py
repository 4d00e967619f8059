"""Starting a step detached from the wizard, and finding out later what became of it.

The step's secret environment goes to the wrapper in a 0600 file next to the
log, ``.<log stem>.<token8>.env`` (never on a command line).  ``launch``
removes it whenever the wrapper was not started (any exception, Ctrl-C
included); the wrapper removes it first thing; ``sweep_secret_files`` removes
what a killed wizard or a wrapper that never ran left behind.

A step's end is read from its status file; should the wrapper have been unable
to write it (a full disk), from the log's last line, which the wrapper writes
in a fixed form (``EXIT_LINE``) just before it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from wizard.errors import WizardError
from wizard.execution.steplog import LOG_CAP
from wizard.host.privilege import as_runner
from wizard.host.procs import alive, boot_id, command_lines, start_ticks
from wizard.session.state import StepRecord, now

START_GRACE = 10.0
# The wrapper's last line in the log; the fallback for an exit status that could not be written.
# It ends with the attempt's seal, kept in its status file: a step's own output cannot forge it.
EXIT_LINE = re.compile(
    rb"\[upgrade-wizard\] (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)Z the command"
    rb" (?:exited with code (-?\d{1,9})|was killed by signal (\d{1,3})) after \d+(?:\.\d+)? s \xc2\xb7 end ([0-9a-f]{8})"
)
# A launch's secrets file (and the tmp file an older wizard wrote it through).
SECRET_FILE = re.compile(r"\..+\.[0-9a-f]{8}\.env(?:\.\d+\.tmp)?")
# The wrapper is a module of this package, run by the wizard's own interpreter (where the package is
# installed).  -P keeps its working directory, the run folder, off sys.path: nothing there can stand
# in for the package.  No PYTHONPATH either: it would leak into the step.
WRAPPER = [sys.executable, "-P", "-m", "wizard.execution.stepwrap"]


@dataclass(frozen=True)
class Alive:
    """Still running.  ``pid`` is None while a just-launched step has not reported in yet."""

    pid: int | None


@dataclass(frozen=True)
class Finished:
    exit_code: int
    ended: datetime | None


@dataclass(frozen=True)
class Gone:
    """No process and no status: the step was interrupted (a reboot, a killed wrapper)."""


Outcome = Alive | Finished | Gone


def systemd_available() -> bool:
    return os.geteuid() == 0 and Path("/run/systemd/system").is_dir() and shutil.which("systemd-run") is not None


def read_status(path: str | Path | None) -> dict | None:
    """A step's status file as the wrapper wrote it; None when it is missing, odd, or not a plain file."""
    if not path:
        return None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        with open(fd, "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                return None
            status = json.loads(handle.read(1 << 16))
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(status, dict):
        return None
    if status.get("state") == "exited" and type(status.get("exit_code")) is not int:
        return None  # an end without its exit code is no end we can record
    return status


def prepare_attempt(record: StepRecord, run_dir: Path, index: int) -> None:
    """Name this attempt (token, log, status file) before anything is launched or saved.

    The session is saved with these before the launch, so a wizard that dies
    in between leaves a record the next one can check against the status file.
    """
    base = f"{index:02d}-{record.id}"
    record.log = str(run_dir / f"{base}.log")
    try:
        record.log_offset = os.lstat(record.log).st_size  # a retry appends: its own lines start here
    except FileNotFoundError:
        record.log_offset = 0
    record.status_file = str(run_dir / f"{base}.status.json")
    record.token = uuid.uuid4().hex
    record.pid = record.start_ticks = record.exit_code = record.ended = None
    record.boot_id = boot_id()
    record.started = now()
    record.launched_boottime = boot_clock()  # the start grace is measured on a clock no one steps


def boot_clock() -> float:
    """Seconds since boot, suspend included: not moved when NTP or an operator steps the wall clock."""
    return time.clock_gettime(time.CLOCK_BOOTTIME)


def launch(
    record: StepRecord,
    *,
    app_user: str | None,
    secret_env: dict[str, str] | None = None,
    redact: list[str] | tuple[str, ...] = (),
    unit_prefix: str = "upgrade-wizard",
) -> subprocess.Popen | None:
    """Start the prepared attempt of ``record`` detached and note its process.

    Returns the Popen of the wrapper when it is our child (to reap it), else None.
    """
    if not (record.status_file and record.log and record.token):
        raise WizardError(f"step {record.id!r} was not prepared for an attempt (no log, status file or token)")
    run_dir = Path(record.status_file).parent
    env_file = run_dir / f".{Path(record.log).stem}.{record.token[:8]}.env"
    started = False  # once the wrapper is under way, the file is its to remove
    try:
        _write_secret_file(
            env_file, json.dumps({"env": {**record.env, **(secret_env or {})}, "redact": list(redact)}).encode()
        )
        command = as_runner(record.argv, record.run_as, app_user, record.env)
        wrapper = [
            *WRAPPER,
            "--log", record.log, "--status", record.status_file, "--token", record.token,
            "--env-file", str(env_file), "--log-cap", str(LOG_CAP),
            *(["--stdin", record.stdin] if record.stdin else []), "--", *command,
        ]  # fmt: skip
        if systemd_available():
            _launch_unit(record, run_dir, wrapper, unit_prefix)
            started = True
            _await_report(record)
            return None
        err_fd = os.open(
            run_dir / f"{Path(record.log).stem}.wrapper.err",
            os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o600,
        )  # fmt: skip
        with open(err_fd, "ab") as errors:
            if not stat.S_ISREG(os.fstat(err_fd).st_mode):
                raise OSError(f"{errors.name} is not a regular file")
            process = subprocess.Popen(
                wrapper, stdin=subprocess.DEVNULL, stdout=errors, stderr=errors,
                start_new_session=True, close_fds=True, cwd=run_dir,
            )  # fmt: skip
        started = True
    except BaseException as exc:  # Ctrl-C or a kill's SystemExit included: the file holds secrets
        if not started:
            env_file.unlink(missing_ok=True)
        if isinstance(exc, (OSError, subprocess.CalledProcessError)):
            raise WizardError(f"could not launch step {record.id!r}: {exc}") from None
        raise
    record.pid, record.start_ticks = process.pid, start_ticks(process.pid)
    return process


class StepProcesses:
    """Launches an instance's steps and side jobs, and reaps the wrappers that are our children.

    Knows who the app's steps run as, the secrets they get in their environment
    and the secrets masked in their logs; the Engine hands records to it.
    """

    def __init__(self, app_user: str | None, secret_env: dict[str, str], redact: list[str]):
        self.app_user = app_user
        self.secret_env = secret_env
        self.redact = redact
        self._children: dict[str, subprocess.Popen] = {}

    def launch(self, record: StepRecord, key: str) -> None:
        """Start the prepared attempt of ``record`` detached (WizardError when it cannot be)."""
        child = launch(record, app_user=self.app_user, secret_env=self.secret_env, redact=self.redact)
        if child is not None:
            self._children[key] = child

    def reap(self, key: str | None = None) -> None:
        """Collect the exit of ended wrappers (one, or all), so none lingers as a zombie; the rest go on."""
        for name, child in list(self._children.items()):
            if key is None or name == key:
                child.poll()


def _write_secret_file(path: Path, data: bytes) -> None:
    """A new 0600 file: never one that was there already, never through a planted symlink."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def _launch_unit(record: StepRecord, run_dir: Path, wrapper: list[str], unit_prefix: str) -> None:
    """As a transient systemd unit, out of reach of logind's cleanup of the SSH session."""
    unit = f"{unit_prefix}-{record.id}-{(record.token or '')[:8]}"
    # systemd expands $VAR in ExecStart arguments: double every $ so data stays literal.
    escaped = [part.replace("$", "$$") for part in wrapper]
    subprocess.run(
        ["systemd-run", "--quiet", "--collect", f"--unit={unit}", f"--working-directory={run_dir}", *escaped],
        check=True, stdin=subprocess.DEVNULL, capture_output=True,
    )  # fmt: skip


def _await_report(record: StepRecord) -> None:
    """Note the unit's wrapper once it has reported in (a moment; inspect copes if it has not)."""
    deadline = time.monotonic() + START_GRACE
    while time.monotonic() < deadline:
        status = read_status(record.status_file)
        if status and status.get("token") == record.token:
            record.pid, record.start_ticks = status["pid"], status.get("start_ticks")
            return
        time.sleep(0.05)


def sweep_secret_files(run_root: Path) -> list[Path]:
    """Remove the secrets files launches left behind under ``run_root`` (an instance's runs/); returns them.

    The wrapper removes its file first thing, before it even parses its
    arguments, so a file still there is a leftover (a wizard killed between
    writing it and starting the wrapper, a wrapper that never ran) unless a
    wrapper is still starting.  The rule: a file is removed when its mtime is
    START_GRACE seconds old or more (the time inspect gives a launch to report
    in, after which it counts the attempt as gone) and no live process has it
    on its command line (a wrapper not yet started as far as reading it).
    Call it holding the instance lock, so no launch of this instance is under way.
    """
    candidates = [
        Path(folder) / name
        for folder, _dirs, files in os.walk(run_root)  # symlinked folders are not followed
        for name in files
        if SECRET_FILE.fullmatch(name)
    ]
    if not candidates:
        return []
    arguments = {arg for _pid, args in command_lines() for arg in args}
    removed = []
    for path in candidates:
        try:
            age = time.time() - os.lstat(path).st_mtime
        except OSError:
            continue
        name = os.fsencode(path.name)
        if age < START_GRACE or any(arg == name or arg.endswith(b"/" + name) for arg in arguments):
            continue
        try:
            path.unlink()  # a symlink in its place is removed itself, never its target
        except OSError:
            continue  # gone meanwhile, or not ours to remove: never a reason to stop a wizard opening
        removed.append(path)
    return removed


def inspect(record: StepRecord) -> Outcome:
    """What became of a step recorded as running: still alive, finished, or gone."""
    status = _own_status(record)
    if status and status.get("state") == "exited":
        return Finished(int(status["exit_code"]), _parse_time(status.get("ended")))
    if (status or {}).get("boot_id", record.boot_id) == boot_id():
        wrapper_pid = (status or {}).get("pid") or record.pid
        if alive(wrapper_pid, (status or {}).get("start_ticks", record.start_ticks)):
            return Alive(wrapper_pid)
        if status and alive(status.get("child_pid"), status.get("child_start_ticks")):
            return Alive(status["child_pid"])  # the wrapper died; the step's command has not
    status = _own_status(record)  # it may have finished between the two looks
    if status and status.get("state") == "exited":
        return Finished(int(status["exit_code"]), _parse_time(status.get("ended")))
    if status and (from_log := exit_from_log(record, status.get("seal"))) is not None:
        return from_log  # the wrapper ended the step but could not write its status (a full disk)
    if status is None and _starting(record):
        return Alive(None)  # saved as launching a moment ago: the wrapper may not have reported in yet
    return Gone()


def _starting(record: StepRecord) -> bool:
    """Was this attempt launched less than START_GRACE ago (and has not been seen since)?

    Measured on the boot clock; a session saved by an older wizard has only the wall
    clock, which is wrong by as much as the clock was stepped.
    """
    if record.pid is not None or record.started is None:
        return False
    launched = record.launched_boottime
    if launched is not None:
        return record.boot_id == boot_id() and 0 <= boot_clock() - launched < START_GRACE
    return (now() - record.started).total_seconds() < START_GRACE


def exit_from_log(record: StepRecord, seal: str | None) -> Finished | None:
    """How this attempt ended, from the log's last line, when the wrapper wrote one with its seal (see EXIT_LINE)."""
    if not record.log or not seal:
        return None
    try:
        fd = os.open(record.log, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return None
        start = max(record.log_offset, info.st_size - 4096)  # only this attempt's output
        data = os.pread(fd, info.st_size - start, start) if info.st_size > start else b""
    except OSError:
        return None
    finally:
        os.close(fd)
    if not data.endswith(b"\n"):
        return None
    _, newline, last = data[:-1].rpartition(b"\n")
    if not newline and start > record.log_offset:
        return None  # a line longer than what was read: not the wrapper's
    match = EXIT_LINE.fullmatch(last)
    if not match or match[4].decode() != seal:
        return None
    return Finished(
        int(match[2]) if match[2] is not None else -int(match[3]), _parse_time(match[1].decode() + "+00:00")
    )


def _own_status(record: StepRecord) -> dict | None:
    status = read_status(record.status_file)
    return status if status and status.get("token") == record.token else None


def _parse_time(value: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(value) if isinstance(value, str) and value else None
    except ValueError:
        return None
