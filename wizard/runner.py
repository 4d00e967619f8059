"""Starting a step detached from the wizard, and finding out later what became of it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from .errors import WizardError
from .privilege import as_runner
from .procs import alive, boot_id, start_ticks
from .state import StepRecord, now
from .store import write_atomic

START_GRACE = 10.0
PACKAGE_ROOT = Path(__file__).resolve().parent.parent
# The wrapper finds this package through its argv, not PYTHONPATH, which would leak into the step.
WRAPPER_BOOT = "import sys; sys.path.insert(0, sys.argv.pop(1)); from wizard.stepwrap import main; sys.exit(main())"


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
    if not path:
        return None
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def prepare_attempt(record: StepRecord, run_dir: Path, index: int) -> None:
    """Name this attempt (token, log, status file) before anything is launched or saved.

    The session is saved with these before the launch, so a wizard that dies
    in between leaves a record the next one can check against the status file.
    """
    base = f"{index:02d}-{record.id}"
    record.log = str(run_dir / f"{base}.log")
    try:
        record.log_offset = os.stat(record.log).st_size  # a retry appends: its own lines start here
    except FileNotFoundError:
        record.log_offset = 0
    record.status_file = str(run_dir / f"{base}.status.json")
    record.token = uuid.uuid4().hex
    record.pid = record.start_ticks = record.exit_code = record.ended = None
    record.boot_id = boot_id()
    record.started = now()


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
    run_dir = Path(record.status_file).parent
    env_file = run_dir / f".{Path(record.log).stem}.{record.token[:8]}.env"
    write_atomic(env_file, json.dumps({"env": {**record.env, **(secret_env or {})}, "redact": list(redact)}).encode())
    command = as_runner(record.argv, record.run_as, app_user, record.env)
    wrapper = [
        sys.executable, "-c", WRAPPER_BOOT, str(PACKAGE_ROOT),
        "--log", record.log, "--status", record.status_file,
        "--token", record.token, "--env-file", str(env_file), "--", *command,
    ]  # fmt: skip
    try:
        if systemd_available():
            _launch_unit(record, run_dir, wrapper, unit_prefix)
            return None
        errors = open(os.open(run_dir / f"{Path(record.log).stem}.wrapper.err", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab")
        with errors:
            process = subprocess.Popen(
                wrapper, stdin=subprocess.DEVNULL, stdout=errors, stderr=errors,
                start_new_session=True, close_fds=True, cwd=run_dir,
            )  # fmt: skip
    except (OSError, subprocess.CalledProcessError) as exc:
        env_file.unlink(missing_ok=True)  # it holds secrets: never leave it behind
        raise WizardError(f"could not launch step {record.id!r}: {exc}") from None
    record.pid, record.start_ticks = process.pid, start_ticks(process.pid)
    return process


def _launch_unit(record: StepRecord, run_dir: Path, wrapper: list[str], unit_prefix: str) -> None:
    """As a transient systemd unit, out of reach of logind's cleanup of the SSH session."""
    unit = f"{unit_prefix}-{record.id}-{record.token[:8]}"
    # systemd expands $VAR in ExecStart arguments: double every $ so data stays literal.
    escaped = [part.replace("$", "$$") for part in wrapper]
    subprocess.run(
        ["systemd-run", "--quiet", "--collect", f"--unit={unit}", f"--working-directory={run_dir}", *escaped],
        check=True, stdin=subprocess.DEVNULL, capture_output=True,
    )  # fmt: skip
    deadline = time.monotonic() + START_GRACE
    while time.monotonic() < deadline:
        status = read_status(record.status_file)
        if status and status.get("token") == record.token:
            record.pid, record.start_ticks = status["pid"], status.get("start_ticks")
            return
        time.sleep(0.05)


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
    launched_unseen = status is None and record.pid is None and record.started is not None
    if launched_unseen and (now() - record.started).total_seconds() < START_GRACE:
        return Alive(None)  # saved as launching a moment ago: the wrapper may not have reported in yet
    return Gone()


def _own_status(record: StepRecord) -> dict | None:
    status = read_status(record.status_file)
    return status if status and status.get("token") == record.token else None
def _parse_time(value: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(value) if value else None
    except ValueError:
        return None
