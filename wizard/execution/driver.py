"""The one loop that carries an upgrade forward, for the TUI and `run --yes` alike.

It asks the Engine what comes next, launches steps, follows their logs,
notices their end, keeps the lock watch on a step that can hang on a lock, and
records side jobs; everything it sees goes out as typed events
(wizard.execution.events).  It stops when the upgrade is done or someone must decide.

It blocks: `run --yes` calls it on its main thread, the TUI in a thread worker.
What a face wants done while it runs (restart the app server, end a blocking
session) is handed in with a request and carried out in the driver's thread,
so the session only ever changes in one place at a time.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from wizard.errors import StateError, WizardError
from wizard.execution.events import (
    DecisionNeeded,
    Declined,
    Event,
    Output,
    Reattached,
    SessionEnded,
    SessionEnding,
    SideJobEnded,
    SideJobStarted,
    StepEnded,
    StepStarted,
    StepStarting,
    UpgradeDone,
    VerdictChanged,
)
from wizard.execution.logfollow import LogFollower
from wizard.execution.progress import pending_total
from wizard.execution.runner import Alive
from wizard.lockwatch.watchdog import Blocker, LockWatch, Verdict
from wizard.session.engine import Engine
from wizard.session.next import Done, Next, Run, Running
from wizard.session.state import SideJob, StepRecord

POLL_SECONDS = 0.2  # a silent step's log and process are looked at this often (at most)
FIRST_POLL = 0.02  # the first look after a full chunk; while the step is quiet the looks slow down to POLL_SECONDS
WATCH_SECONDS = 0.25  # the lock watch's look: the log's size and the CPU of the step's processes
CHUNK = 64 * 1024  # bytes of log handed out at a time: a pane writes them without stalling its loop
TAIL_LINES = 2_000
SILENCE_STEP = 5.0  # an unchanged verdict is sent again each time this many more seconds of silence have passed  # lines of a reattached step's past handed out at once


@dataclass(frozen=True)
class Allowances:
    """What the wizard may do by itself about a lock wait (the headless run's flags; the TUI asks instead)."""

    restart_after: float | None = None
    end_blocker_after: float | None = None
    end_blocker_roles: tuple[str, ...] = ()


class Driver:
    """Runs the session's steps until it is done or a decision is needed; see the module's doc."""

    def __init__(
        self,
        engine: Engine,
        emit: Callable[[Event], None],
        *,
        lock_threshold: float | None = None,
        allowances: Allowances | None = None,
    ):
        self.engine = engine
        self.emit = emit
        self.lock_threshold = lock_threshold
        self.allowances = allowances or Allowances()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._requests: queue.SimpleQueue[Callable[[], object]] = queue.SimpleQueue()
        self._guard: LockGuard | None = None

    # -- from the face ---------------------------------------------------------------

    def stop(self) -> None:
        """Stop following (soon, from any thread); a running step goes on without the wizard."""
        self._stop.set()
        self._wake.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def restart_app_server(self, reason: str) -> None:
        """The operator asks for the restart the lock panel offers (carried out in the driver's thread)."""
        self._request(lambda: self._restart_by_operator(reason))

    def end_session(self, pid: int, reason: str) -> None:
        """The operator confirmed ending this blocking database session."""
        self._request(lambda: self._end_session(pid, reason))

    def _request(self, request: Callable[[], object]) -> None:
        self._requests.put(request)
        self._wake.set()

    # -- the loop -------------------------------------------------------------------------

    def run(self) -> Next | None:
        """Carry the session forward; the engine's last answer (None when asked to stop)."""
        first = True
        while not self.stopping:
            self._handle_requests()
            self._side_jobs_ended()
            nxt = self.engine.settle()
            if isinstance(nxt, Done):
                self.emit(UpgradeDone())
                return nxt
            if isinstance(nxt, Run):
                self.emit(StepStarting(nxt.step, pending_total(self.engine.context, nxt.step)))
                self.engine.start(nxt.step)  # a launch that fails raises (the step is then recorded failed)
                self.emit(StepStarted(nxt.step))
                self._follow(nxt.step, reattached=False)
            elif isinstance(nxt, Running):
                self._follow(nxt.step, reattached=first)
            else:
                self.emit(DecisionNeeded(nxt))
                return nxt
            first = False
        return None

    def _follow(self, step: StepRecord, reattached: bool) -> None:
        """Hand out the step's output until it ends, keeping the lock watch on it."""
        if reattached and step.log:
            follower, tail = LogFollower.from_tail(step.log, TAIL_LINES, step.log_offset)
            self.emit(Reattached(step, tail))
        else:
            follower = LogFollower(step.log or "", step.log_offset)
        watch = self.engine.lock_watch(step, self.lock_threshold)
        self._guard = LockGuard(self, step, watch) if watch is not None else None
        pause = FIRST_POLL
        try:
            while True:
                self._handle_requests()
                more = self._hand_out(step, follower)
                self._side_jobs_ended()
                if self._guard is not None:
                    self._guard.look()
                outcome = self.engine.poll(step)
                if not isinstance(outcome, Alive):
                    for lines in follower.rest(CHUNK):  # all of it, however fast it wrote: the error is often last
                        self.emit(Output(step, lines))
                    self.emit(StepEnded(step, outcome))
                    return
                if self.stopping:
                    return
                if more:
                    pause = FIRST_POLL
                    continue
                self._wake.wait(pause)
                self._wake.clear()
                pause = min(pause * 2, POLL_SECONDS)
        finally:
            self._guard = None

    def _hand_out(self, step: StepRecord, follower: LogFollower) -> bool:
        """Emit what the step wrote since the last look; True when there may be more right away."""
        before = follower.offset
        lines = follower.read(CHUNK)
        if lines:
            self.emit(Output(step, lines))
        return follower.offset - before >= CHUNK

    def _side_jobs_ended(self) -> None:
        for job in self.engine.poll_side_jobs():
            self.emit(SideJobEnded(job))
            if self._guard is not None:
                self._guard.side_job_ended(job)

    def _handle_requests(self) -> None:
        while True:
            try:
                request = self._requests.get_nowait()
            except queue.Empty:
                return
            request()

    def _restart_by_operator(self, reason: str) -> None:
        guard = self._guard
        if guard is None:
            return  # the step ended meanwhile: nothing waits any more
        try:
            guard.restart(reason, automatic=False)
        except StateError:
            raise  # the session could not be saved: the wizard stops, saying so
        except WizardError as exc:
            self.emit(Declined(guard.step, exc.message))

    def _end_session(self, pid: int, reason: str, step: StepRecord | None = None) -> bool:
        """End one blocking database session and record it; said as an event either way."""
        try:
            ended = self.engine.end_session(pid)
        except WizardError as exc:
            self.emit(SessionEnded(step, pid, False, exc.message))
            return False
        self.engine.record_ended_session(pid, ended, reason)
        self.emit(SessionEnded(step, pid, ended))
        return ended


class LockGuard:
    """The lock watch on one followed step: verdicts as events, and what the allowances let it do."""

    def __init__(self, driver: Driver, step: StepRecord, watch: LockWatch):
        self.driver, self.engine, self.step, self.watch = driver, driver.engine, step, watch
        self.role = self.engine.recipe.app_server_role
        self.verdict: Verdict | None = None
        self.looked_at = float("-inf")
        self.waiting_since: float | None = None  # when the current lock wait was first seen
        self.restarted = False  # by the allowance: once; afterwards the watch looks again and says who holds it
        self.declined: tuple | None = None  # the verdict a restart was refused for (said once for each)
        self.ended: set[int] = set()

    def look(self, after_restart: bool = False) -> None:
        moment = time.monotonic()
        if not after_restart and moment - self.looked_at < WATCH_SECONDS:
            return
        self.looked_at = moment
        verdict = self.watch.look_again() if after_restart else self.watch.observe()
        if verdict.kind != "lock_wait":
            self.waiting_since = None
        elif self.waiting_since is None or (self.verdict is not None and verdict.key() != self.verdict.key()):
            self.waiting_since = moment
        if after_restart or self._changed(verdict):
            self.emit_verdict(verdict, after_restart)
        self.verdict = verdict
        if verdict.kind == "lock_wait" and self.waiting_since is not None:
            self.act(verdict, moment - self.waiting_since)

    def _changed(self, verdict: Verdict) -> bool:
        """A new verdict, or the same one SILENCE_STEP seconds of silence later (the faces count them)."""
        old = self.verdict
        if old is None or old.key() != verdict.key():
            return True
        step = SILENCE_STEP
        return verdict.kind != "running" and int(old.silent_for // step) != int(verdict.silent_for // step)

    def emit_verdict(self, verdict: Verdict, after_restart: bool = False) -> None:
        self.driver.emit(VerdictChanged(self.step, verdict, after_restart))

    def side_job_ended(self, job: SideJob) -> None:
        if job.kind == "restart" and job.for_step == self.step.id:
            self.look(after_restart=True)  # does the step still wait, and on whom?

    def restart(self, reason: str, automatic: bool) -> bool:
        """Restart the app server beside the step (never touching it)."""
        job = self.engine.restart_service(self.role, reason, for_step=self.step.id)
        self.driver.emit(SideJobStarted(job, automatic))
        return True  # when it ends, the watch looks again (side_job_ended)

    def act(self, verdict: Verdict, waited: float) -> None:
        allow = self.driver.allowances
        if allow.restart_after is not None and waited >= allow.restart_after and not self.restarted:
            if not verdict.restart_proven:
                if self.declined != verdict.key():
                    self.declined = verdict.key()
                    self.driver.emit(Declined(self.step, f"not restarting {self.role}: it is not proven to hold the lock (see above); the wizard waits"))  # fmt: skip
            elif self.engine.restart_running(self.role) is None:
                self.restarted = True
                self.restart(f"{self.step.id} waited on a lock held by {self.role} (--restart-after)", automatic=True)
                return
        if allow.end_blocker_after is not None and waited >= allow.end_blocker_after:
            for blocker in verdict.blockers:
                if self.may_end(blocker):
                    self.ended.add(blocker.pid)
                    self.driver.emit(SessionEnding(self.step, blocker.pid, blocker.role, blocker.who))
                    reason = f"it held the lock {self.step.id} waited for (--end-blocker-role {blocker.role})"
                    self.driver._end_session(blocker.pid, reason, self.step)

    def may_end(self, blocker: Blocker) -> bool:
        return (blocker.session and blocker.pid > 0 and blocker.pid not in self.ended and blocker.app_server is not True
                and blocker.role in self.driver.allowances.end_blocker_roles
                and blocker.state.startswith("idle in transaction"))  # fmt: skip
