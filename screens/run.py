"""The upgrade itself: the step list, the live log of the running (or chosen) step, and the advice panel."""

from __future__ import annotations

from pathlib import Path

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Log
from textual.worker import Worker, WorkerState

from wizard.engine import Done, Failed, NeedsDecision, Run, Running
from wizard.errors import StateError, WizardError
from wizard.logfollow import LogFollower
from wizard.runner import Alive
from wizard.state import SideJob, StepRecord, StepStatus
from wizard.watchdog import LockWatch, Verdict

from .dialogs import ConfirmDialog, ReasonDialog
from .lockpanel import LockPanel
from .widgets import AdvicePanel, StepList, TitleBar

TICK_SECONDS = 0.2
MAX_LOG_LINES = 10_000
TAIL_ON_SHOW = 2_000

FAILED_CHOICES = "It failed (exit code {code}). r: run it again · s: skip it, saying why · a: stop here (kept)"
INTERRUPTED_CHOICES = "It was interrupted: its process ended with no exit status. r: run it again · s: skip it"


class RunScreen(Screen):
    """Runs the plan step after step; stops at a failure and waits for the operator's choice."""

    CSS_PATH = Path(__file__).with_name("run.tcss")
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (110, "-wide")]
    BINDINGS = [
        Binding("r", "retry", "Retry"),
        Binding("s", "skip", "Skip"),
        Binding("a", "abort", "Abort"),
        Binding("u", "restart_app_server", "Restart the app server"),
        Binding("k", "end_session", "End blocking session"),
        Binding("f", "follow", "Follow log"),
        Binding("q", "quit_wizard", "Quit"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.shown: StepRecord | None = None
        self.follower: LogFollower | None = None
        self.pinned = False  # the operator chose a step to look at: do not switch away from it
        self.watch: LockWatch | None = None  # on the running step, when it can hang on a lock
        self.verdict: Verdict | None = None
        self.watching = False
        self.offered: tuple = ()

    def compose(self) -> ComposeResult:
        yield TitleBar()
        with Horizontal(id="body"):
            with Vertical(id="side"):
                yield StepList(id="steps", classes="panel")
                yield AdvicePanel(id="advice", classes="panel")
                yield LockPanel(self.app_server, id="lock", classes="panel")
            yield Log(max_lines=MAX_LOG_LINES, id="log", classes="panel")
        yield Footer()

    @property
    def engine(self):
        return self.app.engine

    @property
    def app_server(self) -> str:
        return self.engine.recipe.app_server_role

    def on_mount(self) -> None:
        self.query_one("#steps").border_title = "steps"
        self.query_one("#advice").border_title = "about this step"
        self.query_one("#lock").border_title = "lock watch"
        self.timer = self.set_interval(TICK_SECONDS, self.tick)
        self.tick()

    # -- the loop ---------------------------------------------------------------

    def tick(self) -> None:
        ended = self.engine.poll_side_jobs()
        if self.watch is not None and any(job.kind == "restart" and job.for_step == self.watch.step.id for job in ended):
            self.look_again(self.watch)  # does the step still wait, and on whom?
        nxt = self.engine.next()
        if isinstance(nxt, Done):
            self.timer.stop()
            self.app.route()
            return
        if isinstance(nxt, Run):
            try:
                self.engine.start(nxt.step)
            except StateError:
                raise  # the session could not be saved (a full disk): the wizard stops, saying so
            except WizardError as exc:
                self.app.notify(exc.message, severity="error", timeout=15)
            if not self.pinned:
                self.show_step(nxt.step)
        elif isinstance(nxt, Running):
            if not self.pinned and self.shown is not nxt.step:
                self.show_step(nxt.step)
            self.pump_log()
            self.keep_watch(nxt.step)
            if not isinstance(self.engine.poll(nxt.step), Alive):
                self.pump_log(final=True)
                self.watch = self.verdict = None
        elif isinstance(nxt, (Failed, NeedsDecision)) and self.shown is None:
            self.show_step(nxt.step)
        self.refresh_view()

    # -- the lock watch --------------------------------------------------------------

    def keep_watch(self, step: StepRecord) -> None:
        if self.watch is None or self.watch.step is not step:
            self.watch, self.verdict = self.engine.lock_watch(step, self.app.lock_threshold), None
        if self.watch is not None and not self.watching:
            self.watching = True
            self.observe(self.watch)

    @work(thread=True, group="watch", exit_on_error=False)
    def observe(self, watch: LockWatch) -> tuple[LockWatch, Verdict]:
        return watch, watch.observe()  # psutil and perhaps a psql query: off the event loop

    @work(thread=True, group="watch", exit_on_error=False)
    def look_again(self, watch: LockWatch) -> tuple[LockWatch, Verdict]:
        return watch, watch.look_again()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if not event.worker.is_finished:
            return
        if event.worker.group == "end-session":
            self.ended(event)
            return
        if event.worker.group != "watch":
            return
        self.watching = False
        if event.state == WorkerState.SUCCESS:
            watch, verdict = event.worker.result
            if watch is self.watch:
                self.verdict = verdict
                self.refresh_view()

    def last_restart(self) -> SideJob | None:
        jobs = [job for job in self.engine.session.side_jobs if job.kind == "restart"]
        return jobs[-1] if jobs else None

    def can_restart(self) -> bool:
        job = self.last_restart()
        has_unit = self.engine.service_unit(self.app_server) is not None
        return has_unit and not (job and job.run.status == StepStatus.RUNNING)

    @on(LockPanel.RestartPressed)
    def action_restart_app_server(self) -> None:
        if not (self.verdict and self.verdict.restart_would_help and self.can_restart()):
            return
        holders = ", ".join(b.who for b in self.verdict.blockers) or "unknown (the database could not be asked)"
        step = self.watch.step
        try:
            self.engine.restart_service(self.app_server, f"{step.id} waited on a lock held by {holders}", for_step=step.id)
        except StateError:
            raise
        except WizardError as exc:
            self.app.notify(exc.message, severity="error", timeout=15)
        # Start watching afresh: the old verdict is about the world before the restart.
        self.watch, self.verdict = self.engine.lock_watch(step, self.app.lock_threshold), None
        self.refresh_view()

    def action_end_session(self) -> None:
        blockers = [b for b in (self.verdict.blockers if self.verdict else ()) if b.session and b.pid and b.app_server is not True]
        if not blockers:
            return
        blocker, watch = blockers[0], self.watch
        question = f"End database session {blocker.pid} ({blocker.who}, {blocker.state})? Type {blocker.pid} to confirm."
        self.app.push_screen(ReasonDialog(question), lambda typed: self.end_session(watch, blocker.pid, typed))

    def end_session(self, watch: LockWatch | None, pid: int, typed: str | None) -> None:
        if typed is None:
            return
        if typed.strip() != str(pid):
            self.app.notify(f"Nothing ended: type {pid} exactly to confirm.", severity="warning")
            return
        still = self.watch is watch and self.verdict and any(b.pid == pid for b in self.verdict.blockers)
        if not still:
            self.app.notify(f"Session {pid} no longer blocks this step: nothing ended.", severity="warning")
            return
        self.ending(pid)

    @work(thread=True, group="end-session", exit_on_error=False)
    def ending(self, pid: int) -> tuple[int, bool]:
        return pid, self.engine.end_session(pid)  # only the query runs here; the record is made on the loop

    def ended(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR:
            error = event.worker.error
            self.app.notify(getattr(error, "message", str(error)), severity="error", timeout=15)
        elif event.state == WorkerState.SUCCESS:
            pid, ended = event.worker.result
            self.engine.record_ended_session(pid, ended, "it held the lock the upgrade waited for")

    def refresh_view(self) -> None:
        session = self.engine.session
        self.query_one(StepList).show(session)
        current = session.current
        shown = self.shown or current
        choices = ""
        if shown is current and current is not None:
            if current.status == StepStatus.FAILED:
                choices = FAILED_CHOICES.format(code=current.exit_code)
            elif current.status == StepStatus.INTERRUPTED:
                choices = INTERRUPTED_CHOICES
        self.query_one(AdvicePanel).show(shown, choices)
        watched = self.verdict if (self.watch and self.watch.step is shown) else None
        lock = self.query_one(LockPanel)
        lock.show(watched, self.last_restart(), self.can_restart())
        self.query_one(AdvicePanel).display = not lock.has_class("-shown")
        self.query_one("#log").border_title = f"log: {shown.title}" if shown else "log"
        # The footer recomposes on every refresh: only when the keys on offer really change.
        offered = tuple(self.check_action(action, ()) for action in ("retry", "restart_app_server", "end_session"))
        if offered != self.offered:
            self.offered = offered
            self.refresh_bindings()

    # -- the log pane -------------------------------------------------------------

    def show_step(self, step: StepRecord) -> None:
        """Show this step's log: its recent past, then whatever it writes next."""
        log = self.query_one(Log)
        log.clear()
        self.shown = step
        self.follower = None
        if step.log:
            self.follower, tail = LogFollower.from_tail(step.log, TAIL_ON_SHOW, step.log_offset)
            self.write(tail)
        log.scroll_end(animate=False)

    def pump_log(self, final: bool = False) -> None:
        if self.follower is None and self.shown is not None and self.shown.log:
            self.follower = LogFollower(self.shown.log, self.shown.log_offset)
        if self.follower is None:
            return
        if final:  # the step has ended: everything it wrote, however fast
            for lines in self.follower.rest():
                self.write(lines)
        else:
            self.write(self.follower.read())

    def write(self, lines: list[str]) -> None:
        if lines:
            # Log drops empty strings from write_lines; a blank line is part of the output.
            self.query_one(Log).write_lines([line or " " for line in lines])

    @on(DataTable.RowSelected, "#steps")
    def step_chosen(self, event: DataTable.RowSelected) -> None:
        self.pinned = True
        self.show_step(self.engine.session.step(event.row_key.value))
        self.refresh_view()

    def action_follow(self) -> None:
        """Back to the step that runs now, at the end of its log."""
        self.pinned = False
        current = self.engine.session.current
        if current is not None and current is not self.shown:
            self.show_step(current)
        self.query_one(Log).scroll_end(animate=False)
        self.refresh_view()

    # -- the operator's choices ---------------------------------------------------

    def decision_pending(self) -> StepRecord | None:
        current = self.engine.session.current
        if current is not None and current.status in (StepStatus.FAILED, StepStatus.INTERRUPTED):
            return current
        return None

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("retry", "skip", "abort"):
            return self.decision_pending() is not None
        waiting = self.verdict is not None and self.verdict.kind == "lock_wait"
        if action == "restart_app_server":
            return waiting and self.verdict.restart_would_help and self.can_restart()
        if action == "end_session":
            return waiting and any(b.session and b.app_server is not True for b in self.verdict.blockers)
        return True

    def action_retry(self) -> None:
        if step := self.decision_pending():
            self.engine.retry(step)
            self.pinned = False
            self.tick()

    def action_skip(self) -> None:
        if step := self.decision_pending():
            self.app.push_screen(ReasonDialog(f"Why skip “{step.title}”?"), self.skip_with)

    def skip_with(self, reason: str | None) -> None:
        step = self.decision_pending()
        if reason and step:
            self.engine.skip(step, reason)
            self.pinned = False
            self.tick()

    def action_abort(self) -> None:
        if step := self.decision_pending():
            self.app.leave(f"Stopped at the step {step.id!r}; the session is kept. Run the wizard again to retry or skip it.")

    def action_quit_wizard(self) -> None:
        running = self.engine.session.running
        if running is None:
            self.app.leave()
            return
        self.app.push_screen(
            ConfirmDialog(
                "Quit while a step runs?",
                f"“{running.title}” goes on without the wizard. Run the wizard again to reattach to it.",
            ),
            lambda yes: yes and self.app.leave(f"The step {running.id!r} goes on; run the wizard again to reattach."),
        )
