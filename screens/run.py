"""The upgrade itself: the step list, the live log of the running (or chosen) step, and the advice panel.

The Driver carries the upgrade forward in a thread worker; its events arrive
here as ``Driven`` messages, and only they change what is shown.  The
operator's choices go back either to the driver (restart the app server, end
a blocking session: carried out in its thread) or, once it has stopped for a
decision, to the engine, and the driver is started again.
"""

from __future__ import annotations

import time
from collections import deque
from pathlib import Path

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.reactive import reactive
from textual.widgets import DataTable, Footer
from textual.worker import Worker, WorkerState

from wizard.errors import StateError, WizardError
from wizard.execution.driver import Driver
from wizard.execution.events import (
    DecisionNeeded,
    Declined,
    Event,
    Output,
    Reattached,
    SessionEnded,
    SideJobEnded,
    SideJobStarted,
    StepEnded,
    StepStarted,
    StepStarting,
    UpgradeDone,
    VerdictChanged,
)
from wizard.execution.logfollow import LogFollower
from wizard.execution.progress import StepProgress
from wizard.lockwatch.watchdog import Verdict
from wizard.rollback.plan import can_roll_back
from wizard.session.engine import Engine
from wizard.session.next import Failed, NeedsDecision
from wizard.session.state import SideJob, StepRecord, StepStatus

from .base import EngineScreen
from .dialogs import ConfirmDialog, ReasonDialog, TypeToConfirmDialog
from .driving import Backlog, Driven
from .lockpanel import LockPanel
from .logpane import LogPane
from .messages import LeaveWizard, RollbackWanted, RouteNext
from .widgets import AdvicePanel, NowLine, StepList, TitleBar

MAX_LOG_LINES = 10_000
TAIL_ON_SHOW = 2_000
SILENCE_REDRAW_SECONDS = (
    4.5  # the lock panel's count of silent seconds is redrawn at most this often (the driver sends it every 5 s)
)

FAILED_CHOICES = "It failed (exit code {code}): r run it again · s skip it, saying why · a stop here"
INTERRUPTED_CHOICES = "It was interrupted (no exit status): r run it again · s skip it · a stop here"


class RunScreen(EngineScreen):
    """Runs the plan step after step; stops at a failure and waits for the operator's choice."""

    CSS_PATH = Path(__file__).with_name("run.tcss")
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (110, "-wide")]  # narrow: the log alone, the steps one key away
    BINDINGS = [
        Binding("r", "retry", "Retry"),
        Binding("s", "skip", "Skip"),
        Binding("a", "abort", "Abort"),
        Binding("b", "roll_back", "Roll back"),
        Binding("u", "restart_app_server", "Restart the app server"),
        Binding("k", "end_session", "End blocking session"),
        Binding("v", "show_steps", "Steps"),
        Binding("v,escape", "show_log", "Log"),
        Binding("f", "follow", "Follow log"),
        Binding("pageup", "page_log(-1)", "Scroll", key_display="PgUp/Dn", priority=True),
        Binding("pagedown", "page_log(1)", "Scroll", show=False, priority=True),
        Binding("q", "quit_wizard", "Quit"),
    ]

    verdict: reactive[Verdict | None] = reactive(None, init=False)  # the lock watch's, on the followed step

    def __init__(self, engine: Engine, lock_threshold: float | None = None) -> None:
        super().__init__(engine)
        self.lock_threshold = lock_threshold
        self.driver: Driver | None = None  # while it runs; None once it has stopped for a decision
        self.backlog = Backlog()
        self.shown: StepRecord | None = None  # whose log the pane shows
        self.pinned = False  # the operator chose a step to look at: do not switch away from it
        self.live: StepRecord | None = None  # the step the driver follows
        self.live_tail: deque[str] = deque(maxlen=TAIL_ON_SHOW)  # its latest lines, for a return to it
        self.progress: StepProgress | None = None  # what the shown step has done, counted from its output
        self.live_progress: StepProgress | None = None  # the same for the live step, fed as it runs
        self.watched: StepRecord | None = None  # the step the verdict is about
        self.lock_drawn_at = 0.0
        self.offered: tuple[bool | None, ...] = ()

    def compose(self) -> ComposeResult:
        yield TitleBar()
        with Horizontal(id="body"):
            with Vertical(id="side"):
                yield StepList(id="steps", classes="panel")
                yield AdvicePanel(id="advice", classes="panel")
            with Vertical(id="main"):
                yield NowLine(id="now")
                yield LockPanel(self.app_server, id="lock", classes="panel")
                yield LogPane(MAX_LOG_LINES, id="log", classes="panel")
        yield Footer(compact=True)

    @property
    def app_server(self) -> str:
        return self.engine.recipe.app_server_role

    def on_mount(self) -> None:
        self.query_one("#steps").border_title = "steps"
        self.query_one("#advice").border_title = "about this step"
        self.query_one("#lock").border_title = "lock watch"
        self.refresh_view()
        self.set_interval(1.0, self.tick_clock)
        self.drive()

    def on_unmount(self) -> None:
        if self.driver is not None:
            self.driver.stop()  # the step goes on; the driver's thread ends at its next look

    # -- the driver ---------------------------------------------------------------------

    def drive(self) -> None:
        """Start the driver in a thread worker (once: it runs until the upgrade is done or needs a decision)."""
        if self.driver is not None:
            return
        self.driver = Driver(self.engine, self.emit, lock_threshold=self.lock_threshold)
        self.run_worker(self.driver.run, thread=True, group="driver", exit_on_error=False)

    def emit(self, event: Event) -> None:
        """Called in the driver's thread: hand the event to the screen (waiting while the pane is behind)."""
        driver = self.driver
        if isinstance(event, Output) and driver is not None:
            self.backlog.add(len(event.lines), lambda: driver.stopping)
        if not self.post_message(Driven(event)) and driver is not None:
            driver.stop()  # the screen is gone

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group != "driver" or not event.worker.is_finished:
            return
        self.driver = None
        if event.state != WorkerState.ERROR:
            self.refresh_view()  # the choices of a decision are offered once the driver has stopped
            return
        error = event.worker.error
        assert error is not None
        if isinstance(error, StateError) or not isinstance(error, WizardError):
            raise error  # the session could not be saved (a full disk), or a bug: the wizard stops, saying so
        self.app.notify(error.message, severity="error", timeout=15)  # a launch failed: the step is recorded failed
        self.drive()  # which stops at once at that failed step, for the operator's choice

    @on(Driven)
    def driven(self, message: Driven) -> None:
        event = message.event
        match event:
            case Output(step, lines):
                self.backlog.written(len(lines))
                self.live_tail.extend(lines)
                counted = self.live_progress is not None and self.live_progress.feed(lines)
                if self.shown is step:
                    self.write(lines)
                    if counted:
                        self.show_now()
                return  # nothing else on screen changes with a line of output
            case StepStarting(step) | Reattached(step):
                self.live = step
                self.live_tail.clear()
                pending = event.pending if isinstance(event, StepStarting) else None  # unknown on a reattach
                self.live_progress = StepProgress.for_step(step, pending)
                if isinstance(event, Reattached):
                    self.live_tail.extend(event.tail)
                    self.live_progress.feed(event.tail)
                if not self.pinned:
                    self.show_live()
            case StepStarted():
                pass
            case StepEnded(step):
                if self.watched is step:
                    self.watched, self.verdict = None, None
                if step is self.live and self.live_progress is not None:
                    self.live_progress.end(step.status == StepStatus.SUCCEEDED)
            case VerdictChanged(step, verdict):
                self.watched = step
                self.verdict = verdict  # watch_verdict redraws the lock panel: nothing else changes with it
                return
            case SideJobStarted():
                self.verdict = None  # about the world before the restart; the watch looks again when it ends
            case SideJobEnded():
                pass
            case Declined(_, reason):
                self.app.notify(reason, severity="error", timeout=15)
            case SessionEnded(_, pid, ended, error):
                if error:
                    self.app.notify(error, severity="error", timeout=15)
                else:
                    self.app.notify(f"Database session {pid} {'ended' if ended else 'was already gone'}.")
            case DecisionNeeded(nxt):
                if isinstance(nxt, (Failed, NeedsDecision)):
                    if self.shown is None or not self.pinned:
                        self.show_step(nxt.step)
                else:
                    self.post_message(RouteNext())  # a blocker, warnings or the gate: another screen's business
                    return
            case UpgradeDone():
                self.post_message(RouteNext())
                return
        self.refresh_view()

    def tick_clock(self) -> None:
        """The running step's time, once a second (the only thing that changes while a step is silent)."""
        if self.live is not None and self.live.status == StepStatus.RUNNING:
            self.query_one(StepList).show_time(self.live)
            if self.shown is self.live:
                self.query_one(NowLine).redraw()

    # -- what is shown ------------------------------------------------------------------

    def watch_verdict(self, old: Verdict | None, new: Verdict | None) -> None:
        """A new verdict redraws the lock panel; the same one with more seconds of silence, every few seconds."""
        same = old is not None and new is not None and old.key() == new.key()
        moment = time.monotonic()
        if same and moment - self.lock_drawn_at < SILENCE_REDRAW_SECONDS:
            return  # "No output for 41 s" need not be redrawn each second: that is a layout of the panel each time
        self.lock_drawn_at = moment
        self.show_lock()

    def show_lock(self) -> None:
        """The lock panel (shown instead of the advice while a step is silent) and the keys it offers."""
        if not self.is_mounted:
            return
        shown = self.shown or self.session.current
        verdict = self.verdict if self.watched is not None and self.watched is shown else None
        job = self.last_restart()
        if job is not None and (shown is None or job.for_step != shown.id):
            job = None  # a restart done for an earlier step is not news about this one
        self.query_one(LockPanel).show(verdict, job, self.can_restart())
        self.offer_keys()

    def offer_keys(self) -> None:
        # The footer is recomposed on every refresh of the bindings: only when the keys on offer change.
        actions = ("retry", "roll_back", "follow", "restart_app_server", "end_session", "show_steps")
        offered = tuple(self.check_action(action, ()) for action in actions)
        if offered != self.offered:
            self.offered = offered
            self.refresh_bindings()

    def last_restart(self) -> SideJob | None:
        jobs = [job for job in self.session.side_jobs if job.kind == "restart"]
        return jobs[-1] if jobs else None

    def can_restart(self) -> bool:
        job = self.last_restart()
        has_unit = self.engine.service_unit(self.app_server) is not None
        return has_unit and self.driver is not None and not (job and job.run.status == StepStatus.RUNNING)

    def refresh_view(self) -> None:
        if not self.is_mounted:
            return
        session = self.session
        self.query_one(StepList).show(session)
        current = session.current
        shown = self.shown or current
        position = ""
        if shown is not None:
            number = next((n for n, step in enumerate(session.steps, 1) if step is shown), 0)
            position = f"{number}/{len(session.steps)}"
        self.query_one(NowLine).show(shown, position, self.now_detail())
        self.query_one(AdvicePanel).show(shown)
        self.query_one("#log").border_title = "log" if shown is None or shown is current else f"log of: {shown.title}"
        self.show_lock()

    # -- the log pane -------------------------------------------------------------------

    def show_step(self, step: StepRecord) -> None:
        """Show this step's log: the running one from what the driver handed out, another from its file."""
        if step is self.live and step.status == StepStatus.RUNNING:
            self.show_live()
            return
        tail: list[str] = []
        if step.log:
            _, tail = LogFollower.from_tail(step.log, TAIL_ON_SHOW, step.log_offset)
        progress = StepProgress.for_step(step)
        progress.feed(tail)
        if step.status in (StepStatus.SUCCEEDED, StepStatus.FAILED):
            progress.end(step.status == StepStatus.SUCCEEDED)
        self.fill(step, tail, progress)

    def show_live(self) -> None:
        if self.live is not None:
            self.fill(self.live, list(self.live_tail), self.live_progress)

    def fill(self, step: StepRecord, lines: list[str], progress: StepProgress | None) -> None:
        self.shown, self.progress = step, progress
        self.query_one(LogPane).reset(lines)

    def now_detail(self) -> Text:
        """Under the step's title: how far the shown step got, then the choices if it stopped for them."""
        lines = []
        if self.progress is not None and self.progress.text:
            lines.append(Text(self.progress.text, style="cyan"))
        current = self.session.current
        if current is not None and (self.shown or current) is current and self.driver is None:
            if current.status == StepStatus.FAILED:
                lines.append(Text(FAILED_CHOICES.format(code=current.exit_code), style="bold"))
            elif current.status == StepStatus.INTERRUPTED:
                lines.append(Text(INTERRUPTED_CHOICES, style="bold"))
        return Text("\n").join(lines)

    def show_now(self) -> None:
        """The line above the log, after the shown step's progress moved on (a full refresh_view is more)."""
        now = self.query_one(NowLine)
        now.show(now.step, now.position, self.now_detail())

    def write(self, lines: list[str]) -> None:
        self.query_one(LogPane).add(lines)

    @on(DataTable.RowSelected, "#steps")
    def step_chosen(self, event: DataTable.RowSelected) -> None:
        self.pinned = True
        step = self.session.step(str(event.row_key.value))
        self.show_step(step)
        self.refresh_view()
        self.action_show_log()

    def action_show_steps(self) -> None:
        """Narrow: the step list and its advice in place of the log (v or Esc goes back)."""
        self.add_class("-steps")
        self.query_one(StepList).focus()
        self.refresh_bindings()

    def action_show_log(self) -> None:
        if self.has_class("-steps"):
            self.remove_class("-steps")
            self.query_one(LogPane).focus()
            self.refresh_bindings()

    def action_page_log(self, pages: int) -> None:
        log = self.query_one(LogPane)
        if pages < 0:
            log.scroll_page_up(animate=False)
        else:
            log.scroll_page_down(animate=False)

    def action_follow(self) -> None:
        """Back to the step that runs now, at the end of its log."""
        self.pinned = False
        current = self.live if self.driver is not None and self.live is not None else self.session.current
        if current is not None and current is not self.shown:
            self.show_step(current)
        self.query_one(LogPane).scroll_end(animate=False)
        self.action_show_log()
        self.refresh_view()

    # -- the operator's choices -----------------------------------------------------------

    def decision_pending(self) -> StepRecord | None:
        if self.driver is not None:
            return None
        current = self.session.current
        if current is not None and current.status in (StepStatus.FAILED, StepStatus.INTERRUPTED):
            return current
        return None

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("retry", "skip", "abort"):
            return self.decision_pending() is not None
        if action == "roll_back":
            return self.decision_pending() is not None and can_roll_back(self.session)
        verdict = self.verdict
        waiting = verdict is not None and verdict.kind == "lock_wait"
        if action == "restart_app_server":
            return waiting and verdict is not None and verdict.restart_would_help and self.can_restart()
        if action == "show_steps":
            return self.has_class("-narrow") and not self.has_class("-steps")
        if action == "show_log":
            return self.has_class("-steps")
        if action == "page_log":
            return not self.has_class("-steps")
        if action == "follow":  # nothing runs after a failure: f only brings back the failed step from another's log
            return self.driver is not None or self.pinned
        if action == "end_session":
            return (
                waiting
                and verdict is not None
                and any(b.session and b.app_server is not True for b in verdict.blockers)
            )
        return True

    @on(LockPanel.RestartPressed)
    def action_restart_app_server(self) -> None:
        verdict, step = self.verdict, self.watched
        if not (verdict and step and verdict.restart_would_help and self.can_restart() and self.driver):
            return
        holders = ", ".join(b.who for b in verdict.blockers) or "unknown (the database could not be asked)"
        self.driver.restart_app_server(f"{step.id} waited on a lock held by {holders}")

    def action_end_session(self) -> None:
        verdict = self.verdict
        blockers = [
            b for b in (verdict.blockers if verdict else ()) if b.session and b.pid and b.app_server is not True
        ]
        if not blockers:
            return
        blocker = blockers[0]
        question = f"End database session {blocker.pid} ({blocker.who}, {blocker.state})?"
        dialog = TypeToConfirmDialog(question, str(blocker.pid))
        self.app.push_screen(dialog, lambda confirmed: self.end_session(blocker.pid, bool(confirmed)))

    def end_session(self, pid: int, confirmed: bool) -> None:
        if not confirmed:
            return
        verdict = self.verdict
        if self.driver is None or not (verdict and any(b.pid == pid for b in verdict.blockers)):
            self.app.notify(f"Session {pid} no longer blocks this step: nothing ended.", severity="warning")
            return
        self.driver.end_session(pid, "it held the lock the upgrade waited for")

    def action_retry(self) -> None:
        if step := self.decision_pending():
            self.engine.retry(step)
            self.pinned = False
            self.drive()

    def action_skip(self) -> None:
        if step := self.decision_pending():
            self.app.push_screen(ReasonDialog(f"Why skip “{step.title}”?"), self.skip_with)

    def skip_with(self, reason: str | None) -> None:
        step = self.decision_pending()
        if reason and step:
            self.engine.skip(step, reason)
            self.pinned = False
            self.drive()

    def action_abort(self) -> None:
        if step := self.decision_pending():
            self.post_message(
                LeaveWizard(
                    f"Stopped at the step {step.id!r}; the session is kept. Run the wizard again to retry or skip it."
                )
            )

    def action_roll_back(self) -> None:
        if self.decision_pending() is not None:
            self.post_message(RollbackWanted())

    def action_quit_wizard(self) -> None:
        running = self.session.running
        if running is None:
            self.post_message(LeaveWizard())
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.post_message(LeaveWizard(f"The step {running.id!r} goes on; run the wizard again to reattach."))

        question = f"“{running.title}” goes on without the wizard. Run the wizard again to reattach to it."
        self.app.push_screen(ConfirmDialog("Quit while a step runs?", question), answered)
