"""The wrapper that runs one step detached from the wizard: ``python -m wizard.stepwrap``.

It is started in its own session with stdin closed (or as a transient systemd
unit), so a dead wizard or a dropped SSH link does not stop the step.  It runs
the step's command, appends its output to the step's log with secrets masked,
and records the outcome in the status file, which the wizard reads to learn
what happened, now or on its next start.

Status file (written atomically, JSON)::

    {"token": ..., "state": "running", "pid": ..., "create_time": ..., "boot_id": ..., "started": ...}
    {"token": ..., "state": "exited", ..., "exit_code": 0, "ended": ...}

The environment for the step (which may carry secrets such as PGPASSWORD) and
the list of strings to mask arrive in a 0600 file that the wrapper reads and
deletes at once, so they never show on a command line.
"""

from __future__ import annotations

import argparse
import json
import os
import selectors
import shlex
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from .redact import Redactor

PARTIAL_FLUSH_SECONDS = 1.0


def boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "unknown"


def process_create_time(pid: int) -> float | None:
    import psutil

    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


def stamp() -> str:
    return datetime.now(timezone.utc).isoformat()


def write_status(path: Path, payload: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as handle:
        json.dump(payload, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def read_env_file(path: Path | None) -> tuple[dict[str, str], list[str]]:
    if path is None:
        return {}, []
    try:
        data = json.loads(path.read_text())
    finally:
        path.unlink(missing_ok=True)
    return dict(data.get("env", {})), list(data.get("redact", []))


def step_environment(inherited, extra: dict[str, str]) -> dict[str, str]:
    """The step's environment: the wizard's, without its own Python settings, plus the step's.

    A step with VIRTUAL_ENV runs as in an activated venv (its bin first on PATH),
    as the upstream guides run their commands.
    """
    env = {k: v for k, v in inherited.items() if k not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"}}
    env.update(extra)
    if env.get("VIRTUAL_ENV"):
        env["PATH"] = os.pathsep.join([f"{env['VIRTUAL_ENV']}/bin", env.get("PATH", os.defpath)])
    return env


def pump(child: subprocess.Popen, log, redactor: Redactor) -> None:
    """Copy the child's output to the log line by line, masking secrets, until it closes."""
    fd = child.stdout.fileno()
    selector = selectors.DefaultSelector()
    selector.register(fd, selectors.EVENT_READ)
    pending = b""
    last_data = time.monotonic()
    while True:
        ready = selector.select(timeout=PARTIAL_FLUSH_SECONDS)
        if ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            pending += chunk
            last_data = time.monotonic()
            head, sep, pending = pending.rpartition(b"\n")
            if sep:
                log.write(redactor.mask_bytes(head + sep))
                log.flush()
        if pending and time.monotonic() - last_data >= PARTIAL_FLUSH_SECONDS:
            # A prompt or progress text without a newline: show it, but keep back
            # enough bytes that a secret cut in two cannot slip out unmasked.
            ready_part, pending = redactor.split_safe(pending)
            if ready_part:
                log.write(redactor.mask_bytes(ready_part))
                log.flush()
    if pending:
        log.write(redactor.mask_bytes(pending) + b"\n")
    log.flush()
    selector.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="wizard.stepwrap")
    parser.add_argument("--log", type=Path, required=True)
    parser.add_argument("--status", type=Path, required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--env-file", type=Path)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command

    # The terminal may go away under us; that must not stop the step.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    env_extra, secrets = read_env_file(args.env_file)
    redactor = Redactor(secrets)
    env = step_environment(os.environ, env_extra)

    base = {"token": args.token, "pid": os.getpid(), "boot_id": boot_id()}
    base["create_time"] = process_create_time(os.getpid())
    started = stamp()
    write_status(args.status, {**base, "state": "running", "started": started})

    t0 = time.monotonic()
    with open(os.open(args.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab") as log:
        header = f"[upgrade-wizard] {started} started: {shlex.join(command)}\n"
        log.write(redactor.mask_bytes(header.encode()))
        log.flush()
        try:
            child = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env
            )
        except OSError as exc:
            log.write(redactor.mask_bytes(f"[upgrade-wizard] could not start the command: {exc}\n".encode()))
            exit_code = 127
        else:
            # Forward a polite stop to the step, then still record how it ended.
            signal.signal(signal.SIGTERM, lambda *_: child.send_signal(signal.SIGTERM))
            pump(child, log, redactor)
            exit_code = child.wait()
        elapsed = time.monotonic() - t0
        how = f"was killed by signal {-exit_code}" if exit_code < 0 else f"exited with code {exit_code}"
        log.write(f"[upgrade-wizard] {stamp()} the command {how} after {elapsed:.1f} s\n".encode())
    write_status(args.status, {**base, "state": "exited", "started": started, "exit_code": exit_code, "ended": stamp()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
