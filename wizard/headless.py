"""``run --yes``: the upgrade without a screen, as plain timestamped lines for logs and automation."""

from __future__ import annotations

import contextlib
import signal
import sys
import time
from dataclasses import dataclass
from typing import TextIO

from .engine import Blocked, Done, Engine, Failed, GateClosed, NeedsDecision, NotesPending, Run, Running
from .errors import Exit, WizardError
from .instance import Instance
from .lockadvice import explain, summary
from .logfollow import LogFollower
from .plan import plan_for
from .runner import Alive, Finished
from .sizes import human_bytes
from .state import Backup, StepRecord, StepStatus
from .store import StateStore
from .watchdog import Blocker, Verdict

POLL_SECONDS = 0.2
REPEAT_SECONDS = 30.0  # while a step waits on a lock, the verdict is said again this often
REATTACH_TAIL = 10


@dataclass
class Choices:
    """What the operator decided on the command line."""

    retry: bool = False
    skip_reason: str | None = None
    backup_done: str | None = None
    lock_threshold: float | None = None
    restart_after: float | None = None
    end_blocker_after: float | None = None
    end_blocker_roles: tuple[str, ...] = ()


class PlainOutput:
    def __init__(self, stream: TextIO | None = None):
        self.stream = stream or sys.stdout

    def line(self, text: str, step: str | None = None) -> None:
        prefix = time.strftime("%Y-%m-%d %H:%M:%S")
        where = f" [{step}]" if step else ""
        self.stream.write(f"{prefix}{where} {text}\n")
        self.stream.flush()


def decision_help(step: StepRecord) -> str:
    first = "--retry (it is marked safe to run again)" if step.safe_to_rerun else "--retry"
    return f"decide with {first}, or --skip 'REASON' to go on without it"


def run_steps(engine: Engine, out: PlainOutput, choices: Choices) -> Exit:
    """Drive the session until it is done, a step fails, or the operator must decide."""
    if not isinstance(engine.next(), Blocked):  # a --retry is kept for when the blocker is gone
        apply_choices(engine, out, choices)
    while True:
        nxt = engine.next()
        if isinstance(nxt, Done):
            report_done(engine, out)
            return Exit.DONE
        if isinstance(nxt, Blocked):
            for note in nxt.notes:
                out.line(f"BLOCKER{f' ({note.version})' if note.version else ''}: {note.title}")
                out.line(f"  {note.text}")
                if note.way_out:
                    out.line(f"  way out: {note.way_out}")
            out.line("this upgrade cannot go on until the blockers above are dealt with")
            return Exit.USAGE
        if isinstance(nxt, NotesPending):
            for note in nxt.notes:
                out.line(f"warning ({note.version}): {note.title}: {note.text}")
                engine.acknowledge(note.id, "with --yes")
            continue
        if isinstance(nxt, GateClosed):
            backup = _pass_gate(engine, choices, out)
            engine.pass_gate(backup)
            out.line(f"backup gate passed: {backup.kind} backup at {backup.path}")
            continue
        if isinstance(nxt, NeedsDecision):
            step = nxt.step
            out.line(f"step {step.id!r} ({step.title}) was interrupted: its process ended without an exit status")
            if step.log:
                out.line(f"its log: {step.log}")
            out.line(decision_help(step))
            return Exit.NEEDS_DECISION
        if isinstance(nxt, Failed):
            step = nxt.step
            out.line(f"step {step.id!r} ({step.title}) failed with exit code {step.exit_code}; log: {step.log}")
            waiting = [s.title for s in engine.session.steps if s.status == StepStatus.PENDING]
            if waiting:  # e.g. the services still run the old code on what the steps before changed
                out.line(f"not run yet: {'; '.join(waiting)}")
            out.line("fix the cause, then run again with --retry, or --skip 'REASON' to go on without it")
            return Exit.STEP_FAILED
        if isinstance(nxt, Run):
            out.line(f"starting: {nxt.step.title}", nxt.step.id)
            engine.start(nxt.step)
            follow(engine, nxt.step, out, LogFollower(nxt.step.log, nxt.step.log_offset), choices)
        elif isinstance(nxt, Running):
            follower, tail = LogFollower.from_tail(nxt.step.log, REATTACH_TAIL, nxt.step.log_offset)
            out.line(f"reattached to the running step (pid {nxt.step.pid}); its last lines:", nxt.step.id)
            for line in tail:
                out.line(line, nxt.step.id)
            follow(engine, nxt.step, out, follower, choices)


def apply_choices(engine: Engine, out: PlainOutput, choices: Choices) -> None:
    if not (choices.retry or choices.skip_reason is not None):
        return
    step = engine.session.current if engine.session else None
    if step is None or step.status not in (StepStatus.FAILED, StepStatus.INTERRUPTED):
        raise WizardError("--retry and --skip apply to a failed or interrupted step, and there is none")
    if choices.retry:
        engine.retry(step)
        out.line("will run this step again, as asked", step.id)
    else:
        engine.skip(step, choices.skip_reason or "")
        out.line(f"skipped, as asked: {choices.skip_reason}", step.id)


def _pass_gate(engine: Engine, choices: Choices, out: PlainOutput) -> Backup:
    from .backup import declared_backup, unfinished_backups

    for left in unfinished_backups(engine.backup_root, engine.instance.name):  # said, never deleted
        out.line(f"left in the backup folder: {left.says()}")
    if choices.backup_done:
        return declared_backup(choices.backup_done)
    if engine.backup_possible():
        plan = engine.backup_estimate()
        out.line(f"backup into {plan.root}: about {human_bytes(plan.needed)} needed, {human_bytes(plan.free)} free")
        for part in plan.parts:
            left_out = "" if part.included else f" - left out: {part.why_not}"
            out.line(f"  {part.label}: {part.where} ({human_bytes(part.size)}){left_out}")
        out.line("taking the backup (the gate stays closed until it has been read back)...")
        backup = engine.take_backup(ProgressLines(out), measured=plan)
        for what in backup.contents:
            out.line(f"  backed up: {what}")
        for command in backup.restore:
            out.line(f"  restore with: {command}")
        return backup
    raise WizardError(
        "the backup gate is closed: no upgrade step runs before a backup is recorded",
        "take a backup, then pass --backup-done PATH (where it is)",
    )


class ProgressLines:
    """A backup's progress for a log or a pipe: a line as each part starts, then one every few seconds."""

    def __init__(self, out: PlainOutput, every: float = 5.0):
        self.out, self.every = out, every
        self.part, self.last = "", 0.0

    def __call__(self, part: str, done: int, expected: int) -> None:
        moment = time.monotonic()
        if part != self.part or moment - self.last >= self.every:
            self.part, self.last = part, moment
            self.out.line(f"  {part}: {human_bytes(done)} of about {human_bytes(expected)}")


def follow(engine: Engine, step: StepRecord, out: PlainOutput, follower: LogFollower, choices: Choices) -> None:
    """Print the step's new output until it ends (or Ctrl-C, which leaves the step running)."""
    watch = HeadlessWatch(engine, step, out, choices)
    while True:
        for line in follower.read():
            out.line(line, step.id)
        watch.check()
        outcome = engine.poll(step)
        if not isinstance(outcome, Alive):
            for lines in follower.rest():  # all of it, however fast the step wrote: the error is often last
                for line in lines:
                    out.line(line, step.id)
            if isinstance(outcome, Finished):
                verdict = "done" if outcome.exit_code == 0 else f"FAILED (exit code {outcome.exit_code})"
                seconds = f" in {step.duration:.1f} s" if step.duration is not None else ""
                out.line(f"{verdict}{seconds}", step.id)
            return
        time.sleep(POLL_SECONDS)


class HeadlessWatch:
    """The lock watch as log lines: said at each change of verdict and every REPEAT_SECONDS while it waits.

    It acts only when the command line allows it and the database has shown the
    cause: a restart when every holder of the lock is the app server, ending a
    session only for the roles named with --end-blocker-role.
    """

    def __init__(self, engine: Engine, step: StepRecord, out: PlainOutput, choices: Choices):
        self.engine, self.step, self.out, self.choices = engine, step, out, choices
        self.watch = engine.lock_watch(step, choices.lock_threshold)
        self.role = engine.recipe.app_server_role
        self.said: tuple | None = None
        self.said_at = 0.0
        self.reported_at: float | None = None
        self.restarted = False
        self.declined: tuple | None = None  # the verdict a restart was refused for
        self.ended: set[int] = set()

    def say(self, text: str) -> None:
        self.out.line(f"lock watch: {text}", self.step.id)

    def check(self) -> None:
        for job in self.engine.poll_side_jobs():
            if job.kind == "restart" and job.for_step == self.step.id and self.watch is not None:
                self.say(f"{job.run.title}: {job.run.status.value}; looking again")
                self.report(self.watch.look_again(), after_restart=True)
        if self.watch is None:
            return
        verdict = self.watch.observe()
        if verdict.key() != self.said or (verdict.kind == "lock_wait" and time.monotonic() - self.said_at >= REPEAT_SECONDS):
            self.report(verdict)
        if verdict.kind == "lock_wait" and self.reported_at is not None:
            self.act(verdict, time.monotonic() - self.reported_at)

    def report(self, verdict: Verdict, after_restart: bool = False) -> None:
        moment = time.monotonic()
        first = verdict.key() != self.said
        if first:
            self.reported_at = moment if verdict.kind == "lock_wait" else None
        self.said, self.said_at = verdict.key(), moment
        if after_restart:
            if verdict.kind != "lock_wait":
                self.say("after the restart the step no longer waits on a lock")
                return
            self.say("after the restart the step STILL waits on a lock:")
        elif not first:
            self.say(f"still waiting, {verdict.silent_for:.0f} s without output:")
            for line in summary(verdict, self.role)[1:] or summary(verdict, self.role):
                self.say(line)
            return
        for line in explain(verdict, self.role):
            self.say(line)
        if verdict.restart_would_help and self.choices.restart_after is None:
            self.say(f"waiting; pass --restart-after N to let the wizard restart {self.role} itself when it is proven to hold the lock")

    def act(self, verdict: Verdict, waited: float) -> None:
        choices = self.choices
        if choices.restart_after is not None and waited >= choices.restart_after and not self.restarted:
            if not verdict.restart_proven:
                if self.declined != verdict.key():  # said once for each verdict
                    self.declined = verdict.key()
                    self.say(f"not restarting {self.role}: it is not proven to hold the lock (see above); the wizard waits")
            elif self.engine.restart_running(self.role) is None:
                self.restarted = True  # once: afterwards the watch looks again and says who holds the lock
                self.say(f"restarting {self.role}, as --restart-after allows")
                reason = f"{self.step.id} waited on a lock held by {self.role} (--restart-after)"
                job = self.engine.restart_service(self.role, reason, for_step=self.step.id)
                self.say(f"{job.run.title}: see {job.run.log}")
        if choices.end_blocker_after is not None and waited >= choices.end_blocker_after:
            for blocker in verdict.blockers:
                if self.may_end(blocker):
                    self.end(blocker)

    def may_end(self, blocker: Blocker) -> bool:
        return (blocker.session and blocker.pid > 0 and blocker.pid not in self.ended and blocker.app_server is not True
                and blocker.role in self.choices.end_blocker_roles and blocker.state.startswith("idle in transaction"))  # fmt: skip

    def end(self, blocker: Blocker) -> None:
        self.ended.add(blocker.pid)
        reason = f"it held the lock {self.step.id} waited for (--end-blocker-role {blocker.role})"
        self.say(f"ending session {blocker.pid} (role {blocker.role}, {blocker.who}), as --end-blocker-after allows")
        try:
            ended = self.engine.end_session(blocker.pid)
        except WizardError as exc:
            self.say(f"could not end session {blocker.pid}: {exc.message}")
            return
        self.engine.record_ended_session(blocker.pid, ended, reason)
        self.say(f"session {blocker.pid} {'ended' if ended else 'was already gone'}")


def report_done(engine: Engine, out: PlainOutput) -> None:
    session = engine.session
    assert session is not None
    out.line(f"upgrade of {session.instance!r} finished: {session.installed_version} -> {session.target_version}")
    for step in session.steps:
        detail = f"skipped: {step.skip_reason}" if step.status == StepStatus.SKIPPED else step.status.value
        seconds = f", {step.duration:.1f} s" if step.duration is not None and step.status != StepStatus.SKIPPED else ""
        out.line(f"  {step.id}: {detail}{seconds}")
    if session.backup:
        out.line(f"backup: {session.backup.path} ({session.backup.summary()})")
        for command in session.backup.restore:
            out.line(f"  restore with: {command}")
    out.line(f"session: {engine.store.session_path}")


def run_upgrade(
    instance: Instance,
    store: StateStore,
    out: PlainOutput,
    choices: Choices,
    *,
    new: bool = False,
) -> Exit:
    """The whole headless run: lock, resume or plan, then the steps."""
    with Engine(instance, store, say=out.line) as engine:
        engine.reconcile()
        session = engine.session
        if session is not None and session.done and not new:
            if choices.retry or choices.skip_reason is not None:
                raise WizardError("this upgrade is finished: there is no failed or interrupted step to decide on")
            report_done(engine, out)
            out.line("this upgrade is finished; pass --new to plan another one")
            return Exit.DONE
        if session is None or new:
            plan = plan_for(instance, engine.backup_root)
            found = plan.found
            if not plan.steps:
                out.line(plan.nothing_to_do)
                for note in plan.beyond:
                    out.line(f"{note.severity}: {note.title}. {note.text} Way out: {note.way_out}")
                return Exit.USAGE if plan.blocked else Exit.DONE
            engine.begin(plan)
            route = " -> ".join([found.installed_version or "?", *plan.hops]) if plan.hops else found.target_version
            out.line(f"planned {route} ({found.target_source}): {len(plan.steps)} steps")
        try:
            with stopped_by_hangup_or_term():
                return run_steps(engine, out, choices)
        except (KeyboardInterrupt, StoppedBySignal) as stop:
            running = engine.session.running if engine.session else None
            if running:
                with contextlib.suppress(OSError):  # after a hang-up the terminal may be gone
                    out.line(f"stopped following; the step goes on (pid {running.pid}): run again to reattach", running.id)
            return stop.exit if isinstance(stop, StoppedBySignal) else Exit.STOPPED


class StoppedBySignal(Exception):
    """SIGHUP or SIGTERM while the wizard follows a step: stop following as Ctrl-C does; the step goes on."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.exit = Exit.HUNG_UP if signum == signal.SIGHUP else Exit.TERMINATED


@contextlib.contextmanager
def stopped_by_hangup_or_term():
    def stop(signum, _frame):
        raise StoppedBySignal(signum)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGHUP, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
