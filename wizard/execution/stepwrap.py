"""The wrapper that runs one step detached from the wizard: ``python -m wizard.execution.stepwrap``.

It is started in its own session with stdin closed (or as a transient systemd
unit), so a dead wizard or a dropped SSH link does not stop the step.  It runs
the step's command, appends its output to the step's log with secrets masked,
and records the outcome in the status file, which the wizard reads to learn
what happened, now or on its next start.

Status file (JSON, written to a new file and renamed into place)::

    {"token": ..., "state": "running", "pid": ..., "start_ticks": ..., "boot_id": ..., "started": ...,
     "child_pid": ..., "child_start_ticks": ...}
    {"token": ..., "state": "exited", ..., "exit_code": 0, "ended": ...}

The final status is written come what may: tried again, then (a full disk has
no block for a new file) rewritten in place over the "running" one as a compact
``{"token", "state", "exit_code", "ended"}`` padded with spaces.  Before it, the
log's last line says how the command ended in a fixed form (``EXIT_LINE`` in
runner.py reads it), so even a status that cannot be written at all does not
lose the exit code.  That line ends with a seal drawn by the wrapper and kept
in the "running" status, so a step printing a look-alike line is not its end.
A wrapper that could not open its log (a symlink planted there is refused)
records ``"exit_code": 127`` and an ``"error"`` and runs nothing.

The environment for the step (which may carry secrets such as PGPASSWORD) and
the list of strings to mask arrive in a 0600 file that the wrapper removes
first thing, before it even parses its arguments, so they never show on a
command line and never stay on disk; a file it cannot read fails the step
(exit code 127) without running the command.

Each attempt's output is capped (``--log-cap``; see :mod:`wizard.execution.steplog`).
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
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from secrets import token_hex
from typing import BinaryIO

from wizard.config.redact import Redactor
from wizard.execution.steplog import LINE_MAX, LOG_CAP, NO_FOLLOW, CappedLog, LogFile, open_regular
from wizard.host.procs import boot_id, start_ticks

PARTIAL_FLUSH_SECONDS = 1.0
DRAIN_AFTER_EXIT_SECONDS = 1.0
STATUS_TRIES = 3
STATUS_RETRY_PAUSE = 0.2


def stamp() -> str:
    return datetime.now(UTC).isoformat()


def _write_all(fd: int, data: bytes, offset: int | None = None) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view) if offset is None else os.pwrite(fd, view, offset + len(data) - len(view))
        view = view[written:]


def write_status(path: Path, payload: dict) -> None:
    """Replace the status file whole: a new file renamed over it.  No link is followed, no tmp file stays."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        os.unlink(tmp)  # a stale one of ours (unlink removes a planted link itself, never its target)
    except FileNotFoundError:
        pass
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | NO_FOLLOW, 0o600)
    try:
        try:
            _write_all(fd, json.dumps(payload).encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def overwrite_status(path: Path, payload: dict) -> None:
    """Rewrite the existing status file in place, compact and padded with spaces: it needs no new disk block."""
    fd = open_regular(path, os.O_WRONLY)
    try:
        data = json.dumps(payload, separators=(",", ":")).encode()
        data += b" " * (os.fstat(fd).st_size - len(data))  # JSON allows trailing blanks; nothing old stays
        _write_all(fd, data, offset=0)
        try:
            os.fsync(fd)
        except OSError:
            pass  # written to the page cache: a reader sees it
    finally:
        os.close(fd)


def record_end(path: Path, payload: dict) -> bool:
    """Write the final status come what may; False when it could not be written at all (the log still has it)."""
    error: OSError | None = None
    for attempt in range(STATUS_TRIES):
        if attempt:
            time.sleep(STATUS_RETRY_PAUSE * attempt)
        try:
            write_status(path, payload)
            return True
        except OSError as exc:
            error = exc
    compact = {key: payload[key] for key in ("token", "state", "exit_code", "ended") if key in payload}
    try:
        overwrite_status(path, compact)
        print(f"the status could only be rewritten in place: {error}", file=sys.stderr)
        return True
    except OSError as exc:
        print(
            f"the status could not be written ({error}; in place: {exc}): the log's last line has the exit code",
            file=sys.stderr,
        )
        return False


def env_file_argument(argv: list[str]) -> str | None:
    """The --env-file value, found before argparse runs (and can fail), so the file is never left behind."""
    for index, arg in enumerate(argv):
        if arg == "--":
            break
        if arg == "--env-file" and index + 1 < len(argv):
            return argv[index + 1]
        if arg.startswith("--env-file="):
            return arg.split("=", 1)[1]
    return None


def take_env_file(path: str | Path) -> bytes:
    """Read the secrets file and remove it, whatever happens (read through no link; a link is removed itself)."""
    try:
        fd = open_regular(Path(path), os.O_RDONLY)
    finally:
        try:
            os.unlink(path)
        except OSError:
            pass
    try:
        chunks = []
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def parse_env(data: bytes | None) -> tuple[dict[str, str], list[str]]:
    if data is None:
        return {}, []
    parsed = json.loads(data)
    env, redact = parsed.get("env", {}), parsed.get("redact", [])
    if not isinstance(env, dict) or not isinstance(redact, list):
        raise ValueError("unexpected content")
    return {str(k): str(v) for k, v in env.items()}, [str(s) for s in redact]


def step_environment(inherited: Mapping[str, str], extra: dict[str, str]) -> dict[str, str]:
    """The step's environment: the wizard's, without its own Python settings, plus the step's.

    A step with VIRTUAL_ENV runs as in an activated venv (its bin first on PATH),
    as the upstream guides run their commands.
    """
    env = {k: v for k, v in inherited.items() if k not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"}}
    env.update(extra)
    if env.get("VIRTUAL_ENV"):
        env["PATH"] = os.pathsep.join([f"{env['VIRTUAL_ENV']}/bin", env.get("PATH", os.defpath)])
    return env


def pump(child: subprocess.Popen, log: CappedLog, redactor: Redactor) -> None:
    """Copy the child's output to the log, masking secrets, until it closes or the child is gone.

    A command may exit and leave a background process holding its output open
    (an init script starting a daemon): once the child has exited, the rest is
    drained for a moment, then the step counts as ended.
    """
    assert child.stdout is not None, "the step is started with its output on a pipe"
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
        if pending and (time.monotonic() - last_data >= PARTIAL_FLUSH_SECONDS or len(pending) >= LINE_MAX):
            # A prompt or progress text without a newline (or an endless line): show it,
            # but hold back whatever could still grow into a secret.
            shown, pending = redactor.split_safe(pending)
            if shown:
                log.write(shown)
        log.tick()
        if drain_until is None and child.poll() is not None:
            drain_until = time.monotonic() + DRAIN_AFTER_EXIT_SECONDS
    if pending:
        log.write(redactor.mask_bytes(pending) + b"\n")
    selector.close()


def _try(function: Callable[..., object], *args: object) -> None:
    """Best effort: a failure here must not stop the step's end from being recorded."""
    try:
        function(*args)
    except OSError:
        pass


def drain(child: subprocess.Popen) -> None:
    """Keep reading (and dropping) output so the step never blocks on a full pipe."""
    assert child.stdout is not None, "the step is started with its output on a pipe"
    try:
        while child.poll() is None and os.read(child.stdout.fileno(), 65536):
            pass
    except OSError:
        pass


def open_input(path: Path | None) -> BinaryIO:
    """The step's standard input: the file it names, opened by the wrapper (as the wizard's user, so a command run
    as another user can read a 0600 dump), never through a symlink; /dev/null when it names none."""
    if path is None:
        return open(os.devnull, "rb")
    return os.fdopen(os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC), "rb")


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="wizard.execution.stepwrap", allow_abbrev=False)
    parser.add_argument("--log", type=Path, required=True)
    parser.add_argument("--status", type=Path, required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--env-file", type=Path)
    parser.add_argument("--log-cap", type=int, default=LOG_CAP, metavar="BYTES")
    parser.add_argument("--stdin", type=Path, help="a file the command reads as its standard input (a dump to restore)")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # First thing, before anything that can fail: the secrets file must not outlive this start.
    env_data: bytes | None = None
    setup_error = None
    if (env_path := env_file_argument(argv)) is not None:
        try:
            env_data = take_env_file(env_path)
        except OSError as exc:
            setup_error = f"could not read the step's environment file: {exc}"
    args = parse_arguments(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command

    # The terminal may go away under us; that must not stop the step.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        env_extra, secrets = parse_env(env_data)
    except (ValueError, AttributeError) as exc:
        env_extra, secrets = {}, []
        setup_error = setup_error or f"could not read the step's environment file: {exc.__class__.__name__}: {exc}"
    redactor = Redactor(secrets)
    env = step_environment(os.environ, env_extra)

    # The seal ends the wrapper's exit line, so a step printing a look-alike line cannot pass for its end:
    # it is in the status file only (0600, the wizard's user's), never on a command line or in the step's environment.
    seal = token_hex(4)
    base = {"token": args.token, "pid": os.getpid(), "start_ticks": start_ticks(os.getpid()), "boot_id": boot_id(),
            "seal": seal}  # fmt: skip
    started = stamp()
    write_status(args.status, {**base, "state": "running", "started": started})  # no status, no step

    try:
        log = LogFile(args.log)
    except OSError as exc:
        error = f"could not open the log {args.log}: {exc}"
        print(error, file=sys.stderr)
        record_end(
            args.status,
            {**base, "state": "exited", "started": started, "exit_code": 127, "ended": stamp(), "error": error},
        )
        return 1

    def note(text: str, masked: bool = True) -> None:
        line = f"[upgrade-wizard] {stamp()[:19]}Z {text}\n".encode()
        log.line(redactor.mask_bytes(line) if masked else line)

    t0 = time.monotonic()
    child: subprocess.Popen | None = None
    stop_asked = False

    def forward_stop(*_: object) -> None:
        # A polite stop for the step, then still record how it ended; asked before it started, it stops at once.
        nonlocal stop_asked
        stop_asked = True
        if child is not None:
            child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, forward_stop)
    output = CappedLog(log, max(args.log_cap, 2), note)
    try:
        _try(note, f"started: {shlex.join(command)}")
        if setup_error:
            _try(note, setup_error)
        else:
            try:
                with open_input(args.stdin) as stdin:
                    child = subprocess.Popen(command, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                             env=env)  # fmt: skip
            except OSError as exc:
                _try(note, f"could not start the command: {exc}")
            else:
                if stop_asked:
                    child.send_signal(signal.SIGTERM)
                # Should the wrapper itself die, the next wizard still sees the step alive.
                base.update(child_pid=child.pid, child_start_ticks=start_ticks(child.pid))
                _try(write_status, args.status, {**base, "state": "running", "started": started})
                try:
                    pump(child, output, redactor)
                except OSError:
                    drain(child)  # the log cannot be written (disk full?): the step must still finish
    finally:
        exit_code = child.wait() if child is not None else 127
        how = f"was killed by signal {-exit_code}" if exit_code < 0 else f"exited with code {exit_code}"
        _try(output.finish)
        # The log's last line, in the form runner.EXIT_LINE reads should the status below not be written;
        # unmasked: a mask could break its form.
        _try(note, f"the command {how} after {time.monotonic() - t0:.1f} s · end {seal}", False)
        _try(log.close)
        record_end(
            args.status, {**base, "state": "exited", "started": started, "exit_code": exit_code, "ended": stamp()}
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
