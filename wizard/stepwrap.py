"""The wrapper that runs one step detached from the wizard: ``python -m wizard.stepwrap``.

It is started in its own session with stdin closed (or as a transient systemd
unit), so a dead wizard or a dropped SSH link does not stop the step.  It runs
the step's command, appends its output to the step's log with secrets masked,
and records the outcome in the status file, which the wizard reads to learn
what happened, now or on its next start.

Status file (written atomically, JSON)::

    {"token": ..., "state": "running", "pid": ..., "start_ticks": ..., "boot_id": ..., "started": ...,
     "child_pid": ..., "child_start_ticks": ...}
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

from .procs import boot_id, start_ticks
from .redact import Redactor

PARTIAL_FLUSH_SECONDS = 1.0
DRAIN_AFTER_EXIT_SECONDS = 1.0


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
    """Copy the child's output to the log, masking secrets, until it closes or the child is gone.

    A command may exit and leave a background process holding its output open
    (an init script starting a daemon): once the child has exited, the rest is
    drained for a moment, then the step counts as ended.
    """
    fd = child.stdout.fileno()
    selector = selectors.DefaultSelector()
    selector.register(fd, selectors.EVENT_READ)
    pending = b""
    last_data = time.monotonic()
    drain_until = None
    while drain_until is None or time.monotonic() < drain_until:
        ready = selector.select(timeout=0.2 if drain_until else PARTIAL_FLUSH_SECONDS)
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
            # A prompt or progress text without a newline: show it, but hold back
            # whatever could still grow into a secret.
            shown, pending = redactor.split_safe(pending)
            if shown:
                log.write(shown)
                log.flush()
        if drain_until is None and child.poll() is not None:
            drain_until = time.monotonic() + DRAIN_AFTER_EXIT_SECONDS
    if pending:
        log.write(redactor.mask_bytes(pending) + b"\n")
    log.flush()
    selector.close()


def _log_line(log, redactor: Redactor, text: str) -> None:
    log.write(redactor.mask_bytes(f"[upgrade-wizard] {text}\n".encode()))
    log.flush()


def _try(function, *args) -> None:
    """Best effort: a failure here must not stop the step's end from being recorded."""
    try:
        function(*args)
    except OSError:
        pass


def drain(child: subprocess.Popen) -> None:
    """Keep reading (and dropping) output so the step never blocks on a full pipe."""
    try:
        while child.poll() is None and os.read(child.stdout.fileno(), 65536):
            pass
    except OSError:
        pass


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

    base = {"token": args.token, "pid": os.getpid(), "start_ticks": start_ticks(os.getpid()), "boot_id": boot_id()}
    started = stamp()
    write_status(args.status, {**base, "state": "running", "started": started})

    t0 = time.monotonic()
    child: subprocess.Popen | None = None
    stop_asked = False

    def forward_stop(*_):
        # A polite stop for the step, then still record how it ended; asked before it started, it stops at once.
        nonlocal stop_asked
        stop_asked = True
        if child is not None:
            child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, forward_stop)
    log = open(os.open(args.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab")
    try:
        _log_line(log, redactor, f"{started[:19]}Z started: {shlex.join(command)}")
        try:
            child = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env
            )
        except OSError as exc:
            _log_line(log, redactor, f"could not start the command: {exc}")
        else:
            if stop_asked:
                child.send_signal(signal.SIGTERM)
            # Should the wrapper itself die, the next wizard still sees the step alive.
            base.update(child_pid=child.pid, child_start_ticks=start_ticks(child.pid))
            _try(write_status, args.status, {**base, "state": "running", "started": started})
            try:
                pump(child, log, redactor)
            except OSError:
                drain(child)  # the log cannot be written (disk full?): the step must still finish
    finally:
        exit_code = child.wait() if child is not None else 127
        how = f"was killed by signal {-exit_code}" if exit_code < 0 else f"exited with code {exit_code}"
        _try(_log_line, log, redactor, f"{stamp()[:19]}Z the command {how} after {time.monotonic() - t0:.1f} s")
        _try(log.close)
        write_status(args.status, {**base, "state": "exited", "started": started, "exit_code": exit_code, "ended": stamp()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
