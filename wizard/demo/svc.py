"""The demo's service manager: ``python -m wizard.demo.svc --dir SANDBOX ACTION SERVICE``.

It plays the part systemctl or supervisorctl plays on a real host, with pid
files under the sandbox, so the demo needs no root and no init system.

A pid file records the service's pid, its start time (clock ticks since boot)
and its exact command line: a process is taken for the demo's service only when
all three still match, so a stale pid file never makes it signal anyone else.
Every action takes the sandbox's service lock, so a stop never races a restart.

When a demo ends it *parks* the sandbox: it stops the services and notes which
ran.  While parked, ``start`` (a detached step or restart the wizard left
behind) starts nothing and only adds the service to that note; the next demo on
the sandbox unparks it and starts the noted services again.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil

from wizard.host.procs import alive, boot_id, start_ticks

SERVICES = ("uwsgi", "celery")
LOCK_WAIT = 60.0  # a stop waits at most this long for another service action (each takes seconds at most)


def _pidfile(sandbox: Path, service: str) -> Path:
    return sandbox / "run" / f"{service}.pid"


def parked_file(sandbox: Path) -> Path:
    return sandbox / "run" / "parked.json"


@contextlib.contextmanager
def service_lock(sandbox: Path) -> Iterator[None]:
    """One service action at a time in a sandbox (across processes): held for the whole action."""
    (sandbox / "run").mkdir(parents=True, exist_ok=True)
    with open(sandbox / "run" / "svc.lock", "a") as handle:
        deadline = time.monotonic() + LOCK_WAIT
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"another action on the demo's services in {sandbox} took over {LOCK_WAIT:.0f} s"
                    ) from None
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def read_record(sandbox: Path, service: str) -> dict | None:
    try:
        record = json.loads(_pidfile(sandbox, service).read_text())
        return record if isinstance(record, dict) and isinstance(record.get("pid"), int) else None
    except (OSError, ValueError):
        return None


def proven(record: dict, sandbox: Path, service: str) -> psutil.Process | None:
    """The recorded process, if it is still the very one the record names (else None, whoever has the pid)."""
    pid = record["pid"]
    try:
        proc = psutil.Process(pid)
        if "start_ticks" in record:
            if record.get("boot_id") not in (None, boot_id()) or not alive(pid, record["start_ticks"]):
                return None
        elif abs(proc.create_time() - record.get("create_time", 0)) >= 0.01 or proc.status() == psutil.STATUS_ZOMBIE:
            return None  # a record written before start ticks were kept
        cmdline = proc.cmdline()
    except (psutil.Error, OSError, TypeError, ValueError):
        return None
    if "argv" in record:
        return proc if cmdline == record["argv"] else None
    # An older record without the command line: the demo's own program for this service and sandbox.
    if "wizard.demo.apps" not in cmdline or service not in cmdline:
        return None
    if "--sandbox" in cmdline and cmdline[cmdline.index("--sandbox") + 1 :][:1] != [str(sandbox)]:
        return None
    return proc


def running_process(sandbox: Path, service: str) -> psutil.Process | None:
    record = read_record(sandbox, service)
    return proven(record, sandbox, service) if record else None


def is_parked(sandbox: Path) -> bool:
    return parked_file(sandbox).is_file()


def _parked_services(sandbox: Path) -> list[str]:
    try:
        services = json.loads(parked_file(sandbox).read_text()).get("services", [])
    except (OSError, ValueError, AttributeError):
        return []
    return [s for s in SERVICES if s in services]


def _write_parked(sandbox: Path, services: list[str]) -> None:
    tmp = parked_file(sandbox).with_suffix(".tmp")
    tmp.write_text(json.dumps({"services": [s for s in SERVICES if s in services]}))
    tmp.replace(parked_file(sandbox))


def start(sandbox: Path, service: str, settings: dict) -> None:
    if proc := running_process(sandbox, service):
        print(f"{service} is already running (pid {proc.pid})", flush=True)
        return
    if is_parked(sandbox):
        _write_parked(sandbox, [*_parked_services(sandbox), service])
        print(f"no demo runs on this sandbox: {service} starts when the demo resumes it", flush=True)
        return
    (sandbox / "run").mkdir(exist_ok=True)
    (sandbox / "logs").mkdir(exist_ok=True)
    # The sandbox on the command line: whoever cleans up a sandbox can find its services.
    argv = [
        sys.executable,
        "-m",
        "wizard.demo.apps",
        service,
        "--sandbox",
        str(sandbox),
        "--pace",
        str(settings["pace"]),
    ]
    if service == "uwsgi":
        argv += ["--database", settings["database"], "--wsgi-file", settings["wsgi_file"]]
        if "http_port" in settings:  # a sandbox built before the demo served pages has none
            argv += ["--venv", settings["venv"], "--http-port", str(settings["http_port"])]
    with open(sandbox / "logs" / f"{service}.log", "ab") as out:
        child = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True, close_fds=True
        )
    proc = psutil.Process(child.pid)
    record = {"pid": child.pid, "start_ticks": start_ticks(child.pid), "boot_id": boot_id(),
              "create_time": proc.create_time(), "argv": argv}  # fmt: skip
    tmp = _pidfile(sandbox, service).with_suffix(".tmp")
    tmp.write_text(json.dumps(record))
    tmp.replace(_pidfile(sandbox, service))
    print(f"Started {service} (pid {child.pid})", flush=True)


def _print(text: str) -> None:
    print(text, flush=True)


def stop(sandbox: Path, service: str, say: Callable[[str], None] = _print) -> int | None:
    """Stop the service if its pid file names a process proven to be it; returns the pid stopped."""
    record = read_record(sandbox, service)
    proc = proven(record, sandbox, service) if record else None
    if record is None or proc is None:
        if record and psutil.pid_exists(record["pid"]):
            say(
                f"{service} is not running (its pid file names pid {record['pid']}, which is not this service: left alone)"
            )
        else:
            say(f"{service} is not running")
        _pidfile(sandbox, service).unlink(missing_ok=True)
        return None
    say(f"Stopping {service} (pid {proc.pid})...")
    with contextlib.suppress(psutil.NoSuchProcess):
        proc.send_signal(signal.SIGTERM)
    if not _wait_gone(proc, 10) and proven(record, sandbox, service) is not None:
        say(f"{service} ignored SIGTERM for 10 s: killing it")
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
        _wait_gone(proc, 5)
    _pidfile(sandbox, service).unlink(missing_ok=True)
    say(f"Stopped {service}")
    return proc.pid


def _wait_gone(proc: psutil.Process, timeout: float) -> bool:
    """Wait until the process has exited (a zombie counts: it is no longer running)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


@dataclass
class Parked:
    stopped: dict[str, int]  # service -> the pid stopped
    not_ours: dict[str, int]  # service -> a pid its pid file named, which is not the service (left alone)


def park(sandbox: Path) -> Parked:
    """Stop the sandbox's services proven to be its own, and note them for the next demo (see the module)."""
    stopped: dict[str, int] = {}
    not_ours: dict[str, int] = {}
    with service_lock(sandbox):
        running = [s for s in SERVICES if running_process(sandbox, s)]
        _write_parked(sandbox, [*_parked_services(sandbox), *running])  # first: a start from now on is only noted
        for service in SERVICES:
            record = read_record(sandbox, service)
            pid = stop(sandbox, service, say=lambda _text: None)
            if pid is not None:
                stopped[service] = pid
            elif record and psutil.pid_exists(record["pid"]):
                not_ours[service] = record["pid"]
    return Parked(stopped, not_ours)


def unpark(sandbox: Path) -> list[str]:
    """Let the sandbox's services start again; returns those the last demo stopped (the caller starts them)."""
    with service_lock(sandbox):
        services = _parked_services(sandbox)
        parked_file(sandbox).unlink(missing_ok=True)
    return services


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m wizard.demo.svc")
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("action", choices=["start", "stop", "restart", "reload", "status", "pid"])
    parser.add_argument("service", choices=SERVICES)
    args = parser.parse_args(argv)
    settings = json.loads((args.dir / "services.json").read_text())
    with service_lock(args.dir):
        return _act(args.dir, args.action, args.service, settings)


def _act(sandbox: Path, action: str, service: str, settings: dict) -> int:
    if action in ("stop", "restart"):
        stop(sandbox, service)
    if action in ("start", "restart"):
        start(sandbox, service, settings)
    if action == "reload":
        if proc := running_process(sandbox, service):
            proc.send_signal(signal.SIGHUP)
            print(f"Reloaded {service}", flush=True)
        else:
            print(f"{service} is not running: cannot reload", flush=True)
            return 7
    if action == "pid":
        proc = running_process(sandbox, service)
        print(proc.pid if proc else 0, flush=True)
        return 0 if proc else 3
    if action == "status":
        proc = running_process(sandbox, service)
        print(f"{service}: {'running, pid ' + str(proc.pid) if proc else 'stopped'}", flush=True)
        return 0 if proc else 3
    return 0


def orphans(sandbox: Path) -> dict[str, psutil.Process]:
    """The services of a sandbox whose folder (and so its pid files) was removed while they ran.

    Found by their command line, which names the demo's own program, the service and this very
    sandbox path or an instance's folder in it (see ``start``), among the processes of the user
    running the demo.  Keyed by the service, named with its instance's folder beyond the first.
    """
    found: dict[str, psutil.Process] = {}
    uid = os.getuid()
    for proc in psutil.process_iter(["cmdline", "uids"]):
        try:
            cmdline, uids = proc.info["cmdline"] or [], proc.info["uids"]
            if uids is None or uids.real != uid or "wizard.demo.apps" not in cmdline:
                continue
            at = cmdline.index("wizard.demo.apps")
            service, rest = cmdline[at + 1 : at + 2], cmdline[at + 2 : at + 4]
            if not (service and service[0] in SERVICES and len(rest) == 2 and rest[0] == "--sandbox"):
                continue
            where = Path(rest[1])
            if where == sandbox:
                found[service[0]] = proc
            elif where.parent == sandbox:
                found[f"{where.name}'s {service[0]}"] = proc
        except (psutil.Error, ValueError):
            continue
    return found


def stop_orphans(sandbox: Path) -> dict[str, int]:
    """Stop the services ``orphans`` finds (SIGTERM, then SIGKILL after 10 s); service -> pid stopped."""
    stopped: dict[str, int] = {}
    for service, proc in orphans(sandbox).items():
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.terminate()
            if not _wait_gone(proc, 10):
                proc.kill()
            stopped[service] = proc.pid
    return stopped


if __name__ == "__main__":
    sys.exit(main())
