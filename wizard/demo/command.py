"""``upgrade-wizard demo``: build (or find again) a sandbox instance and run the wizard on it.

The demo's "uWSGI" and "Celery" stand-ins are stopped when the demo ends,
however it ends (done, quit, an error, Ctrl-C, a hang-up or SIGTERM), unless
``--keep-services`` keeps them; ``--dir D --stop`` stops a kept sandbox's
services.  They are found by the pid files the demo's service manager keeps in
the sandbox (pid, start time, command line: see wizard.demo.svc), never by
name.  A step still running detached is left to finish, as the wizard always
does; only the services are stopped.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import shlex
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import TextIO

from wizard.config.instance import load_instances
from wizard.demo.sandbox import INSTANCE, build, is_sandbox, resume_services, service_folders, start_services
from wizard.demo.svc import SERVICES, Parked, park, running_process, stop_orphans
from wizard.errors import Exit, StateError, WizardError
from wizard.headless import StoppedBySignal, choices_from, require_yes, run_upgrade
from wizard.host.procs import alive
from wizard.plainlines import PlainOutput
from wizard.session.state import StepRecord
from wizard.session.store import StateStore
from wizard.together.headless import run_instances

ENDING_SIGNALS = (signal.SIGHUP, signal.SIGTERM)


class DemoRunning(WizardError):
    """Another demo works on this sandbox: its services are its own to stop."""

    exit_code = Exit.LOCKED


def sandbox_folder(folder: Path | None) -> Path:
    folder = (folder or temp_sandbox()).expanduser().resolve()
    if not is_sandbox(folder) and folder.exists() and any(folder.iterdir()):
        raise WizardError(
            f"{folder} is not empty and is not a demo sandbox",
            "give --dir a new or empty folder, or one an earlier demo built",
        )
    return folder


def hold_demo_lock(folder: Path) -> TextIO:
    """The sandbox's demo lock, held until the returned file is closed (the kernel drops it if we die)."""
    (folder / "run").mkdir(parents=True, exist_ok=True)
    handle = open(folder / "run" / "demo.lock", "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "?"
        handle.close()
        raise DemoRunning(
            f"another demo (pid {holder}) is running on the sandbox {folder}",
            "quit that demo: it stops the sandbox's services when it ends",
        ) from None
    handle.truncate(0)
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


def prepare_sandbox(folder: Path, pace: float, out: PlainOutput, instances: int | None = None) -> None:
    """Build the sandbox (``instances`` of them on one venv, default 1), or find the one built before."""
    try:
        if is_sandbox(folder):
            has = len(service_folders(folder))
            if instances is not None and instances != has:
                raise WizardError(f"the sandbox {folder} was built with {has} instance{'s' if has != 1 else ''}, "
                                  f"not {instances}", "leave --instances out to resume it, or give a new --dir")  # fmt: skip
            out.line(f"resuming the demo sandbox in {folder}")
            started = resume_services(folder)
            if started:
                out.line(f"started again the services the demo stopped when it last ended: {', '.join(started)}")
            return
        count = instances or 1
        many = f", {count} instances on one venv" if count > 1 else ""
        out.line(f"building the demo sandbox in {folder}{many}")
        build(folder, pace, count)
        start_services(folder)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        raise WizardError(
            f"the demo's sandbox could not be set up: {exc}", f"see the service logs in {folder / 'logs'}"
        ) from None


def again(folder: Path, *extra: str) -> str:
    return shlex.join(["upgrade-wizard", "demo", "--dir", str(folder), *extra])


def listed(pids: dict[str, int]) -> str:
    return ", ".join(f"{service} (pid {pid})" for service, pid in pids.items())


class Ending:
    """What the demo does when it ends: stop its services (unless kept) and say what is left."""

    def __init__(self, folder: Path, state: Path, out: PlainOutput, keep: bool):
        self.folder, self.state, self.out, self.keep = folder, state, out, keep
        self.in_tui = False
        self.ended = False
        self.was_sandbox = False  # set once the sandbox is built (or found): a half-built one is no removed one

    def say(self, text: str) -> None:
        with contextlib.suppress(OSError, ValueError):  # after a hang-up the terminal may be gone
            self.out.line(text)

    @contextlib.contextmanager
    def on_signals(self) -> Iterator[None]:
        """SIGHUP and SIGTERM end the demo as Ctrl-C does (the headless run has its own while it follows a step)."""
        previous = {sig: signal.signal(sig, self._signalled) for sig in ENDING_SIGNALS}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _signalled(self, signum: int, _frame: FrameType | None) -> None:
        if not self.in_tui:
            raise StoppedBySignal(signum)
        # The TUI dies of these signals as it always did (a lost terminal cannot be drawn on):
        # first the services are stopped, then the signal is delivered again, unhandled.
        self.end()
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)

    def end(self) -> None:
        if self.ended:
            return
        self.ended = True
        previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, *ENDING_SIGNALS)}
        try:
            # Seen first: once uWSGI is gone, a waiting step may finish at once.
            step = running_step(self.state, self.folder)
            self._stop_or_keep()
            if step is not None:
                self.say(f"the step {step.id!r} was still running (pid {step.pid}) and goes on, detached as every step does: "
                         f"`{again(self.folder)}` reattaches to it")  # fmt: skip
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _stop_or_keep(self) -> None:
        if self.keep:
            kept = {service_label(self.folder, where, s): proc.pid for where in service_folders(self.folder)
                    for s in SERVICES if (proc := running_process(where, s))}  # fmt: skip
            if kept:
                self.say(f"the demo's services keep running (--keep-services): {listed(kept)}; "
                         f"stop them with `{again(self.folder, '--stop')}`")  # fmt: skip
            return
        if self.was_sandbox and not is_sandbox(self.folder):
            # Its folder was removed while the demo ran: no pid files to go by, and none to make again.
            stopped = stop_orphans(self.folder)
            found = (
                f"stopped its services, found by their command line: {listed(stopped)}"
                if stopped
                else ("none of its services was found running")
            )
            self.say(f"the demo's sandbox {self.folder} was removed while the demo ran; {found}")
            return
        try:
            parked = park_all(self.folder)
        except (OSError, TimeoutError) as exc:
            self.say(f"could not stop the demo's services ({exc}): stop them with `{again(self.folder, '--stop')}`")
            return
        if parked.stopped:
            self.say(f"stopped the demo's services: {listed(parked.stopped)}")
        self.say_not_ours(self.out, parked)
        if is_sandbox(self.folder):
            self.say(f"the sandbox stays in {self.folder}: `{again(self.folder)}` resumes it")

    @staticmethod
    def say_not_ours(out: PlainOutput, parked: Parked) -> None:
        for service, pid in parked.not_ours.items():
            with contextlib.suppress(OSError, ValueError):
                out.line(f"left alone pid {pid}: the {service} pid file names it, but it is not the demo's {service}")


def service_label(sandbox: Path, where: Path, service: str) -> str:
    return service if where == sandbox else f"{where.name}'s {service}"


def park_all(sandbox: Path) -> Parked:
    """Park every instance's services (see wizard.demo.svc), the labels naming the instance beyond the first."""
    parked = Parked({}, {})
    for where in service_folders(sandbox):
        one = park(where)
        parked.stopped |= {service_label(sandbox, where, s): pid for s, pid in one.stopped.items()}
        parked.not_ours |= {service_label(sandbox, where, s): pid for s, pid in one.not_ours.items()}
    return parked


def running_step(state: Path, sandbox: Path) -> StepRecord | None:
    """A step of one of the sandbox's instances still running (detached), if any."""
    for where in service_folders(sandbox):
        name = INSTANCE if where == sandbox else where.name
        try:
            session = StateStore(state, name).load()
        except (StateError, OSError):
            continue
        step = session.running if session else None
        if step is not None and alive(step.pid, step.start_ticks):
            return step
    return None


def demo(args: argparse.Namespace) -> Exit:
    out = PlainOutput()
    if args.stop:
        return stop_services_of(args, out)
    choices = None
    if args.headless:
        require_yes(args)
        choices = choices_from(args)
    folder = sandbox_folder(args.dir)
    state = getattr(args, "state_dir", None) or folder / "state"
    lock = hold_demo_lock(folder)
    ending = Ending(folder, state, out, keep=args.keep_services)
    try:
        with ending.on_signals():
            prepare_sandbox(folder, args.pace, out, args.instances)
            ending.was_sandbox = True
            instances = load_instances(folder / "instances.toml")
            if choices is not None:  # headless
                if len(instances) > 1:
                    return run_instances(list(instances.values()), state, out, choices)
                return run_upgrade(instances[INSTANCE], StateStore(state, INSTANCE), out, choices)
            from screens.app import make_app, start_tui

            chosen = INSTANCE if len(instances) == 1 else None  # several: the TUI opens on the host table
            app = make_app(instances, state, chosen, lock_threshold=args.lock_wait_seconds)
            ending.in_tui = True
            try:
                return start_tui(app)
            finally:
                ending.in_tui = False
    except KeyboardInterrupt:
        return Exit.STOPPED
    except StoppedBySignal as stop:
        return stop.exit
    finally:
        try:
            ending.end()
        finally:
            lock.close()


def stop_services_of(args: argparse.Namespace, out: PlainOutput) -> Exit:
    """``demo --dir D --stop``: stop the services of a sandbox whose demo kept them, and say what was stopped."""
    if args.dir is None:
        raise WizardError(
            "--stop needs --dir: the sandbox whose services to stop", "e.g. upgrade-wizard demo --dir ~/demo --stop"
        )
    if args.keep_services:
        raise WizardError("--stop and --keep-services ask for opposite things: give one of them")
    folder = args.dir.expanduser().resolve()
    if not is_sandbox(folder):
        raise WizardError(
            f"{folder} is not a demo sandbox", "give --stop a folder an earlier `upgrade-wizard demo --dir` built"
        )
    lock = hold_demo_lock(folder)
    try:
        parked = park_all(folder)
    finally:
        lock.close()
    if parked.stopped:
        out.line(f"stopped the demo's services in {folder}: {listed(parked.stopped)}")
    else:
        out.line(f"none of the demo's services is running in {folder}: nothing to stop")
    Ending.say_not_ours(out, parked)
    step = running_step(getattr(args, "state_dir", None) or folder / "state", folder)
    if step is not None:
        out.line(f"the step {step.id!r} still runs (pid {step.pid}), detached; it was left to finish")
    return Exit.DONE


def temp_sandbox() -> Path:
    return Path(tempfile.mkdtemp(prefix="upgrade-wizard-demo-"))
