"""The demo's service manager: ``python -m wizard.demo.svc --dir SANDBOX ACTION SERVICE``.

It plays the part systemctl or supervisorctl plays on a real host, with pid
files under the sandbox, so the demo needs no root and no init system.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

SERVICES = ("uwsgi", "celery")


def _pidfile(sandbox: Path, service: str) -> Path:
    return sandbox / "run" / f"{service}.pid"


def running_process(sandbox: Path, service: str) -> psutil.Process | None:
    try:
        record = json.loads(_pidfile(sandbox, service).read_text())
        proc = psutil.Process(record["pid"])
        if abs(proc.create_time() - record["create_time"]) < 0.01 and proc.status() != psutil.STATUS_ZOMBIE:
            return proc
    except (OSError, ValueError, KeyError, psutil.Error):
        pass
    return None


def start(sandbox: Path, service: str, settings: dict) -> None:
    if proc := running_process(sandbox, service):
        print(f"{service} is already running (pid {proc.pid})", flush=True)
        return
    (sandbox / "run").mkdir(exist_ok=True)
    (sandbox / "logs").mkdir(exist_ok=True)
    # The sandbox on the command line: whoever cleans up a sandbox can find its services.
    argv = [sys.executable, "-m", "wizard.demo.apps", service, "--sandbox", str(sandbox), "--pace", str(settings["pace"])]
    if service == "uwsgi":
        argv += ["--database", settings["database"], "--wsgi-file", settings["wsgi_file"]]
    with open(sandbox / "logs" / f"{service}.log", "ab") as out:
        child = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True, close_fds=True
        )
    record = {"pid": child.pid, "create_time": psutil.Process(child.pid).create_time()}
    _pidfile(sandbox, service).write_text(json.dumps(record))
    print(f"Started {service} (pid {child.pid})", flush=True)


def stop(sandbox: Path, service: str) -> None:
    proc = running_process(sandbox, service)
    if proc is None:
        print(f"{service} is not running", flush=True)
        return
    print(f"Stopping {service} (pid {proc.pid})...", flush=True)
    proc.send_signal(signal.SIGTERM)
    if not _wait_gone(proc, 10):
        print(f"{service} ignored SIGTERM for 10 s: killing it", flush=True)
        proc.kill()
        _wait_gone(proc, 5)
    _pidfile(sandbox, service).unlink(missing_ok=True)
    print(f"Stopped {service}", flush=True)


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m wizard.demo.svc")
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("action", choices=["start", "stop", "restart", "reload", "status", "pid"])
    parser.add_argument("service", choices=SERVICES)
    args = parser.parse_args(argv)
    settings = json.loads((args.dir / "services.json").read_text())
    if args.action in ("stop", "restart"):
        stop(args.dir, args.service)
    if args.action in ("start", "restart"):
        start(args.dir, args.service, settings)
    if args.action == "reload":
        if proc := running_process(args.dir, args.service):
            proc.send_signal(signal.SIGHUP)
            print(f"Reloaded {args.service}", flush=True)
        else:
            print(f"{args.service} is not running: cannot reload", flush=True)
            return 7
    if args.action == "pid":
        proc = running_process(args.dir, args.service)
        print(proc.pid if proc else 0, flush=True)
        return 0 if proc else 3
    if args.action == "status":
        proc = running_process(args.dir, args.service)
        print(f"{args.service}: {'running, pid ' + str(proc.pid) if proc else 'stopped'}", flush=True)
        return 0 if proc else 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
