"""The Textual app: the face's root (the core never imports it; the commands start it).

It owns the Engine of the instance being upgraded and shows the screen that
fits where the session stands.  Screens are given the engine when they are
made, change the session only through its methods (which save before they
return), and post a message (screens.messages) when the App should move on.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path

from textual import on
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen

from screens.messages import (
    BackToHost,
    GatePassed,
    InstancePicked,
    LeaveWizard,
    NotesRead,
    PlanAgain,
    Planned,
    RollbackWanted,
    RouteNext,
    VenvPicked,
)
from screens.threads import DaemonThreads
from wizard.config.context import InstanceContext
from wizard.config.instance import Instance
from wizard.errors import Exit, WizardError
from wizard.execution.runner import StepProcesses
from wizard.session.engine import Engine, real_processes
from wizard.session.next import Blocked, Done, GateClosed, NotesPending, Run
from wizard.session.state import StepStatus
from wizard.session.store import StateStore
from wizard.together.progress import refuse_alone
from wizard.together.shared import SharedUpgrade


class WizardApp(App[int]):
    """Walks one instance from detection to done; resumes a session left behind."""

    TITLE = "upgrade-wizard"
    CSS_PATH = [Path(__file__).with_name("wizard.tcss")]
    BINDINGS = [Binding("ctrl+q", "quit_wizard", "Quit", show=False, priority=True)]
    COMMAND_PALETTE_BINDING = "ctrl+p"  # the palette offers what the screen's keys do (get_system_commands)

    def __init__(
        self,
        instances: dict[str, Instance],
        state_root: Path,
        *,
        chosen: str | None = None,
        lock_threshold: float | None = None,
        processes: Callable[[Instance, list[str]], StepProcesses] = real_processes,
    ):
        super().__init__()
        self.lock_threshold = lock_threshold  # seconds of silence before a lock wait is suspected
        self.processes = processes  # makes what launches the steps: the detached wrapper, or a test's stand-in
        self.instances = instances
        self.state_root = state_root
        self.chosen = chosen
        self.engine: Engine | None = None
        self.resumed = False
        self.plan_blocked = False  # set by detection: a blocker stands in the way (quitting exits 2)
        self.notes_read: str | None = None  # the session whose release notes were read in this run (NotesRead)
        self.shared: SharedUpgrade | None = None  # the upgrade of a shared venv the wizard works through

    # -- opening an instance ------------------------------------------------

    def on_mount(self) -> None:
        if self.chosen is None and len(self.instances) > 1:
            from screens.picker import PickerScreen

            self.push_screen(PickerScreen(self.instances, self.state_root))  # it posts InstancePicked
        else:
            self.open_instance(self.chosen or next(iter(self.instances)))

    def open_instance(self, name: str) -> None:
        if self.engine is not None:  # the last instance of a shared venv's upgrade: its turn is over
            self.engine.close()
            self.engine = None
        instance = self.instances[name]
        self.sub_title = f"{name} ({instance.recipe})"
        context = InstanceContext.open(instance)  # the recipe and the app's config, read once for this run
        engine = Engine(context, StateStore(self.state_root, name), say=self.say, processes=self.processes)
        try:
            engine.open()
        except WizardError as exc:
            self.stop_with(exc)
            return
        self.engine = engine
        engine.reconcile()
        session = engine.session
        try:  # a part of a shared venv's rollback goes on with the others, headless
            refuse_alone(self.state_root, instance, session)
        except WizardError as exc:
            self.stop_with(exc)
            return
        if session is not None and session.shared_run and not session.done and self.shared is None:
            self.say(f"{name} is being upgraded together with the other instances on its venv: going on with them")
            self.start_together(self.venv_group(name))
            return
        if self.shared is not None:
            try:
                said = self.shared.make_way(engine)
            except WizardError as exc:
                self.stop_with(exc)
                return
            if said:
                self.say(said)
        if session is not None and not session.done and not self.resumed:
            self.resumed = True
            if not self.ready_to_start():  # a session waiting at the ready screen comes back to it
                from screens.resume import ResumeScreen

                self.show(ResumeScreen(engine))
                return
        self.route(offer_start=True)

    @on(InstancePicked)
    def instance_picked(self, message: InstancePicked) -> None:
        self.open_instance(message.name)

    # -- the instances on a shared venv, together ---------------------------

    def venv_group(self, name: str) -> list[str]:
        """The instance and those on its venv, in the instances file's order."""
        others = self.instances[name].shares_venv_with
        return [other for other in self.instances if other == name or other in others]

    @on(VenvPicked)
    def venv_picked(self, message: VenvPicked) -> None:
        self.start_together(list(message.names))

    def start_together(self, names: list[str]) -> None:
        """Hold the venv's lock, find its upgrade under way or record a new one, and go on with it."""
        if self.engine is not None:
            self.engine.close()
            self.engine = None
        if self.shared is None:
            try:
                self.shared = SharedUpgrade.open(self.state_root, self.instances[names[0]].venv, names)
            except WizardError as exc:
                self.stop_with(exc)
                return
        self.continue_together()

    def continue_together(self) -> None:
        """Open the instance whose turn it is: its plan, notes and backup first, for each; then each one's steps."""
        assert self.shared is not None
        stage = self.shared.stage()
        if stage is None:
            self.show_host("every instance on it is upgraded")
            return
        self.open_instance(stage.instance)

    def show_host(self, under_way: str) -> None:
        from screens.picker import PickerScreen

        if self.engine is not None:
            self.engine.close()
            self.engine = None
        self.show(PickerScreen(self.instances, self.state_root, under_way=under_way))

    @on(BackToHost)
    def back_to_host(self) -> None:
        assert self.shared is not None
        stage = self.shared.stage()
        self.show_host(stage.says() if stage else "every instance on it is upgraded")

    def stop_with(self, error: WizardError) -> None:
        """Leave saying what went wrong and what to do, as the command line does, never with a traceback."""
        hint = f"\nhint: {error.hint}" if error.hint else ""
        self.exit(int(error.exit_code), return_code=int(error.exit_code), message=f"error: {error.message}{hint}")

    def _handle_exception(self, error: Exception) -> None:
        # An error the operator can act on (a full disk while saving the session, a state file
        # that turned foreign) ends the wizard with its message; anything else is a bug: Textual's traceback.
        if isinstance(error, WizardError):
            self.stop_with(error)
            return
        super()._handle_exception(error)

    def say(self, message: str) -> None:
        self.notify(message, timeout=6)

    # -- where to go next ---------------------------------------------------

    def route(self, offer_start: bool = False) -> None:
        """Show the screen that fits where the session stands now.

        Before the gate, the release notes are shown until read in this run (info notes too: they need no
        acknowledging). ``offer_start``: a session whose gate is open but no step has started gets the ready
        screen (what will run) instead of the run screen, which starts the first step at once.
        """
        from screens.backup import BackupScreen
        from screens.detect import DetectScreen
        from screens.done import DoneScreen
        from screens.notes import NotesScreen
        from screens.run import RunScreen

        engine = self.engine
        assert engine is not None
        session = engine.session
        shared = self.shared
        if shared is not None and not shared.owns(engine):
            self.show(DetectScreen(engine, shared.together, shared.run.id))  # planned as one of the shared venv's
            return
        if session is None:
            self.show(DetectScreen(engine))
            return
        nxt = engine.next()
        if isinstance(nxt, Done):
            self.show(DoneScreen(engine, between_instances=shared is not None))
        elif isinstance(nxt, (Blocked, NotesPending)):
            self.show(NotesScreen(engine))
        elif isinstance(nxt, GateClosed):
            unread = session.notes and self.notes_read != session.id
            self.show(NotesScreen(engine) if unread else BackupScreen(engine))
        elif offer_start and isinstance(nxt, Run) and self.ready_to_start():
            from screens.ready import ReadyScreen

            self.show(ReadyScreen(engine))
        else:
            self.show(RunScreen(engine=engine, lock_threshold=self.lock_threshold))

    def ready_to_start(self) -> bool:
        """The backup is recorded and nothing has started: no step, no side job (the ready screen's moment)."""
        from wizard.views.services import nothing_started

        session = self.engine.session if self.engine else None
        return session is not None and session.backup is not None and nothing_started(session)

    @on(RouteNext)
    def route_next(self) -> None:
        self.route()

    @on(NotesRead)
    def notes_done(self) -> None:
        assert self.engine is not None and self.engine.session is not None
        self.notes_read = self.engine.session.id
        self.route()

    @on(GatePassed)
    def gate_passed(self) -> None:
        if self.shared is not None:  # every instance's backup before the code changes: the next one's turn
            self.continue_together()
            return
        self.route(offer_start=True)

    @on(PlanAgain)
    def plan_again(self) -> None:
        from screens.detect import DetectScreen

        assert self.engine is not None
        self.show(DetectScreen(self.engine))

    @on(RollbackWanted)
    def rollback_wanted(self) -> None:
        from screens.rollback import RollbackScreen

        assert self.engine is not None
        self.show(RollbackScreen(self.engine))

    @on(Planned)
    def planned(self, message: Planned) -> None:
        self.plan_blocked = message.blocked
        if self.shared is not None and message.nothing_to_do and self.engine is not None:
            name = self.engine.instance.name  # up to date: the shared venv's upgrade goes on without it
            self.shared.nothing_to_do(name)
            self.say(f"{name} has nothing to upgrade: going on with the others")
            self.continue_together()

    def show(self, screen: Screen[object]) -> None:
        if len(self.screen_stack) <= 1:
            self.push_screen(screen)
        else:
            self.switch_screen(screen)

    # -- leaving --------------------------------------------------------------

    def exit_code(self) -> Exit:
        """What the wizard would exit with now, the same codes as the headless run."""
        session = self.engine.session if self.engine else None
        if session is None:
            return Exit.USAGE if self.plan_blocked else Exit.DONE
        if session.done:
            return Exit.DONE
        if session.blockers:
            return Exit.USAGE
        current = session.current
        if current is None:
            return Exit.DONE
        return {
            StepStatus.RUNNING: Exit.STOPPED,
            StepStatus.FAILED: Exit.STEP_FAILED,
            StepStatus.INTERRUPTED: Exit.NEEDS_DECISION,
        }.get(current.status, Exit.DONE)

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        """The palette: what the keys of the screen do right now (the footer's entries), by name, and Quit.
        Textual's own commands (themes, screenshots...) are left out: not what an operator came for."""
        seen = set()
        for active in screen.active_bindings.values():
            binding = active.binding
            if not (binding.show and active.enabled) or binding.action in seen:
                continue
            seen.add(binding.action)
            keys = binding.key_display or self.get_key_display(binding)
            yield SystemCommand(binding.description, f"key: {keys}",
                                partial(self.run_action, binding.action, active.node))  # fmt: skip
        yield SystemCommand("Quit", "key: ctrl+q (a running step goes on)", self.action_quit_wizard)

    def action_quit_wizard(self) -> None:
        self.leave()

    @on(LeaveWizard)
    def leave_wizard(self, message: LeaveWizard) -> None:
        self.leave(message.text)

    def leave(self, message: str | None = None) -> None:
        code = self.exit_code()
        self.exit(int(code), return_code=int(code), message=message)

    async def on_unmount(self) -> None:
        if self.engine is not None:
            self.engine.close()
        if self.shared is not None:
            self.shared.close()


def make_app(
    instances: dict[str, Instance],
    state_root: Path,
    chosen: str | None = None,
    lock_threshold: float | None = None,
    processes: Callable[[Instance, list[str]], StepProcesses] = real_processes,
) -> WizardApp:
    """The one way to build the app: the CLI and the tests both come through here.

    ``processes``: makes what launches the steps, from the instance and the secrets to mask (default: the
    detached wrapper); screen tests hand in a stand-in (tests/helpers/fakes.py) where the process is not what they test.
    """
    return WizardApp(instances, state_root, chosen=chosen, lock_threshold=lock_threshold, processes=processes)


def run_tui(app: WizardApp) -> int:
    loop = asyncio.new_event_loop()
    loop.set_default_executor(DaemonThreads())  # thread workers: quitting never waits for one (screens/threads.py)
    try:
        app.run(mouse=False, loop=loop)
    finally:
        loop.close()
    return app.return_code or 0


def start_tui(app: WizardApp) -> Exit:
    if not (sys.stdin.isatty() and sys.stderr.isatty()):
        raise WizardError(
            "the interactive wizard needs a terminal on stdin and stderr",
            "over SSH use `ssh -t`, or run headless with `upgrade-wizard run --yes`",
        )
    return Exit(run_tui(app))
