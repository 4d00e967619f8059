"""How the headless commands speak: timestamped plain lines for logs and automation, each labelled with its
instance when a run covers several; the driver's events, a backup's progress, release notes and the summary of a
finished session, as such lines."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable
from typing import TextIO

from wizard.execution.events import (
    Declined,
    Event,
    Output,
    Reattached,
    SessionEnded,
    SessionEnding,
    SideJobEnded,
    SideJobStarted,
    StepEnded,
    StepStarting,
    VerdictChanged,
)
from wizard.execution.runner import Finished
from wizard.lockwatch.lockadvice import explain, summary
from wizard.lockwatch.watchdog import Verdict
from wizard.session.engine import Engine
from wizard.session.state import Note, StepRecord
from wizard.views.rows import note_lines, step_rows, total_seconds, where_lines, where_rows
from wizard.views.sizes import human_bytes

REPEAT_SECONDS = 30.0  # while a step waits on a lock, the verdict is said again this often
REATTACH_TAIL = 10


class PlainOutput:
    """Timestamped lines; with several instances in one run, each line names its instance (``label``)."""

    def __init__(self, stream: TextIO | None = None, label: str | None = None):
        self.stream = stream or sys.stdout
        self.label = label

    def labelled(self, label: str) -> PlainOutput:
        return PlainOutput(self.stream, label)

    def line(self, text: str, step: str | None = None) -> None:
        self.lines([text], step)

    def lines(self, texts: list[str], step: str | None = None) -> None:
        """Each line with the time and the step; written and flushed once for the whole batch."""
        if not texts:
            return
        where = "/".join(part for part in (self.label, step) if part)
        prefix = time.strftime("%Y-%m-%d %H:%M:%S") + (f" [{where}] " if where else " ")
        self.stream.write("".join(f"{prefix}{text}\n" for text in texts))
        self.stream.flush()


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


class EventLines:
    """The driver's events as log lines; the lock watch is said at each change of verdict and every REPEAT_SECONDS."""

    def __init__(self, out: PlainOutput, role: str, restart_after: float | None):
        self.out, self.role, self.restart_after = out, role, restart_after
        self.said: tuple | None = None
        self.said_at = 0.0

    def __call__(self, event: Event) -> None:
        match event:
            case StepStarting(step, pending):
                ahead = "" if pending is None else f" ({pending} migration{'s' if pending != 1 else ''} to apply)"
                self.out.line(f"starting: {step.title}{ahead}", step.id)
            case Reattached(step, tail):
                self.out.line(f"reattached to the running step (pid {step.pid}); its last lines:", step.id)
                self.out.lines(tail[-REATTACH_TAIL:], step.id)
            case Output(step, lines):
                self.out.lines(lines, step.id)
            case StepEnded(step, Finished(exit_code)):
                verdict = "done" if exit_code == 0 else f"FAILED (exit code {exit_code})"
                seconds = f" in {step.duration:.1f} s" if step.duration is not None else ""
                self.out.line(f"{verdict}{seconds}", step.id)
            case VerdictChanged(step, verdict, after_restart):
                self.verdict(step, verdict, after_restart)
            case SideJobStarted(job, True):
                self.watch(job.for_step, f"restarting {self.role}, as --restart-after allows")
                self.watch(job.for_step, f"{job.run.title}: see {job.run.log}")
            case SideJobEnded(job) if job.kind == "restart" and job.for_step:
                self.watch(job.for_step, f"{job.run.title}: {job.run.status.value}; looking again")
            case Declined(step, reason):
                self.watch(step.id, reason)
            case SessionEnding(step, pid, role, who):
                self.watch(step.id, f"ending session {pid} (role {role}, {who}), as --end-blocker-after allows")
            case SessionEnded(step, pid, ended, error):
                said = (
                    f"could not end session {pid}: {error}"
                    if error
                    else f"session {pid} {'ended' if ended else 'was already gone'}"
                )
                self.watch(step.id if step else None, said)

    def watch(self, step_id: str | None, text: str) -> None:
        self.out.line(f"lock watch: {text}", step_id)

    def verdict(self, step: StepRecord, verdict: Verdict, after_restart: bool) -> None:
        moment = time.monotonic()
        first = verdict.key() != self.said
        if not (first or after_restart or (verdict.kind == "lock_wait" and moment - self.said_at >= REPEAT_SECONDS)):
            return
        self.said, self.said_at = verdict.key(), moment
        if after_restart:
            if verdict.kind != "lock_wait":
                self.watch(step.id, "after the restart the step no longer waits on a lock")
                return
            self.watch(step.id, "after the restart the step STILL waits on a lock:")
        elif not first:
            self.watch(step.id, f"still waiting, {verdict.silent_for:.0f} s without output:")
            for line in summary(verdict, self.role)[1:] or summary(verdict, self.role):
                self.watch(step.id, line)
            return
        for line in explain(verdict, self.role):
            self.watch(step.id, line)
        if verdict.restart_would_help and self.restart_after is None:
            self.watch(
                step.id,
                f"waiting; pass --restart-after N to let the wizard restart {self.role} itself when it is proven to hold the lock",
            )


def print_notes(out: PlainOutput, notes: Iterable[Note]) -> None:
    for note in notes:
        out.lines([line.plain for line in note_lines(note)])


def report_done(engine: Engine, out: PlainOutput) -> None:
    """What the done screen says, as lines: each step's result and time, then where things are."""
    session = engine.session
    assert session is not None
    out.line(f"{session.kind} of {session.instance!r} finished: {session.installed_version} -> {session.target_version}, "
             f"{len(session.steps)} steps in {total_seconds(session):.0f} s")  # fmt: skip
    out.lines(
        [f"  {row.id}: {row.result}" + (f", {row.seconds}" if row.seconds else "") for row in step_rows(session.steps)]
    )
    out.lines([line.plain for line in where_lines(where_rows(session, engine.store.session_path))])
