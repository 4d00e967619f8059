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

from .privilege import as_runner
from .state import StepRecord, now
from .stepwrap import boot_id
from .store import pid_alive, write_atomic

START_TIMEOUT = 10.0
PACKAGE_ROOT = Path(__file__).resolve().parent.parent
# The wrapper finds this package through its argv, not PYTHONPATH, which would leak into the step.
WRAPPER_BOOT = "import sys; sys.path.insert(0, sys.argv.pop(1)); from wizard.stepwrap import main; sys.exit(main())"


@dataclass(frozen=True)
class Alive:
    pid: int


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


def launch(
    record: StepRecord,
    run_dir: Path,
    index: int,
    *,
    app_user: str | None,
    secret_env: dict[str, str] | None = None,
    redact: list[str] | tuple[str, ...] = (),
    unit_prefix: str = "upgrade-wizard",
) -> subprocess.Popen | None:
    """Start ``record``'s command detached; fill in its pid, token, log and status paths.

    The caller must have saved the session with the step marked running before,
    and saves it again after: whichever of the two saves survives a crash, the
    status file (named by token) tells the next wizard the truth.
    Returns the Popen of the wrapper when it is our child (to reap it), else None.
    """
    base = f"{index:02d}-{record.id}"
    record.log = str(run_dir / f"{base}.log")
    record.status_file = str(run_dir / f"{base}.status.json")
    record.token = uuid.uuid4().hex
    record.pid = record.create_time = None
    record.boot_id = boot_id()
    record.started, record.ended, record.exit_code = now(), None, None

    env_file = run_dir / f".{base}.{record.token[:8]}.env"
    write_atomic(env_file, json.dumps({"env": {**record.env, **(secret_env or {})}, "redact": list(redact)}).encode())
    command = as_runner(record.argv, record.run_as, app_user, record.env)
    wrapper = [
        sys.executable, "-c", WRAPPER_BOOT, str(PACKAGE_ROOT),
        "--log", record.log, "--status", record.status_file,
        "--token", record.token, "--env-file", str(env_file), "--", *command,
    ]  # fmt: skip
    process = None
    if systemd_available():
        unit = f"{unit_prefix}-{record.id}-{record.token[:8]}"
        subprocess.run(
            ["systemd-run", "--quiet", "--collect", f"--unit={unit}", f"--working-directory={run_dir}", *wrapper],
            check=True, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    else:
        errors = open(os.open(run_dir / f"{base}.wrapper.err", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab")
        with errors:
            process = subprocess.Popen(
                wrapper, stdin=subprocess.DEVNULL, stdout=errors, stderr=errors,
                start_new_session=True, close_fds=True, cwd=run_dir,
            )  # fmt: skip
    _await_start(record, process)
    return process


def _await_start(record: StepRecord, process: subprocess.Popen | None) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        status = read_status(record.status_file)
        if status and status.get("token") == record.token:
            record.pid = status["pid"]
            record.create_time = status.get("create_time")
            return
        if process is not None and process.poll() is not None:
            break
        time.sleep(0.02)
    if process is not None:
        record.pid = process.pid  # it died at once or is very slow; inspect() will tell


def inspect(record: StepRecord) -> Outcome:
    """What became of a step recorded as running: still alive, finished, or gone."""
    status = read_status(record.status_file)
    mine = status if status and status.get("token") == record.token else None
    if mine and mine.get("state") == "exited":
        return Finished(int(mine["exit_code"]), _parse_time(mine.get("ended")))
    pid = (mine or {}).get("pid") or record.pid
    create_time = (mine or {}).get("create_time") or record.create_time
    same_boot = (mine or {}).get("boot_id", record.boot_id) == boot_id()
    if pid and same_boot and pid_alive(pid, create_time):
        return Alive(pid)
    # It may have finished between the two looks.
    status = read_status(record.status_file)
    if status and status.get("token") == record.token and status.get("state") == "exited":
        return Finished(int(status["exit_code"]), _parse_time(status.get("ended")))
    return Gone()


def _parse_time(value: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(value) if value else None
    except ValueError:
        return None
