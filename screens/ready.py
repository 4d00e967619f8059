"""The moment before the first step: what will run, what it stops, how long it is down for, where the backup is.

Shown once the backup gate opens, and again when the wizard starts on a session whose gate is open
but where nothing has started yet; nothing runs until the operator presses Enter here.
"""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Footer, Static

from wizard.session.state import Session, StepStatus
from wizard.views.rows import STYLE, going_back_text
from wizard.views.services import ServiceUse, service_uses

from .base import EngineScreen
from .dialogs import ConfirmDialog
from .messages import RouteNext
from .widgets import TitleBar


def steps_text(session: Session) -> Text:
    text = Text()
    width = len(str(len(session.steps)))
    for number, step in enumerate(session.steps, 1):
        if number > 1:
            text.append("\n")
        if step.status == StepStatus.SKIPPED:
            text.append(f"{'':>{width}}  {step.title} — skipped: {step.skip_reason or 'by the plan'}", style="dim")
            continue
        text.append(f"{number:>{width}}. ", style="bold")
        text.append(step.title)
        if step.run_as == "root":
            text.append(" (as root)", style="dim")
    return text


def services_text(uses: list[ServiceUse]) -> Text:
    text = Text()
    if not uses:
        text.append("No service is stopped, restarted or reloaded by these steps.\n")
    for use in uses:
        text.append(use.line() + "\n")
    text.append("Downtime: ", style="bold")
    text.append("cannot be measured beforehand (no step has run on this host yet).")
    for use in uses:
        for first, last in use.stopped_spans():
            until = f"until step {last}" if last is not None else "after the last step"
            text.append(f" {use.role} stays stopped from step {first} {until}.")
    return text


def backup_text(session: Session) -> Text:
    backup = session.backup
    if backup is None:  # not shown before the gate opens; said plainly all the same
        return Text("No backup is recorded.", style=STYLE["blocker"].style)
    text = Text(backup.path, style="bold")
    text.append("\n" + backup.summary())
    text.append("\n" + going_back_text(session.steps), style="dim")
    return text


class ReadyScreen(EngineScreen):
    CSS_PATH = Path(__file__).with_name("ready.tcss")
    BINDINGS = [
        Binding("enter", "start", "Start the upgrade", priority=True),
        Binding("down", "scroll_steps(1)", "More steps", key_display="↓↑"),
        Binding("up", "scroll_steps(-1)", "More steps", show=False),
        Binding("b", "plan_again", "Back: plan again"),
        Binding("q", "app.quit_wizard", "Quit"),
    ]

    def compose(self) -> ComposeResult:
        session = self.session
        yield TitleBar()
        yield Static(
            Text(f"Ready to {'roll back' if session.is_rollback else 'upgrade'} {session.instance} from {session.installed_version} to {session.target_version}; "
                 "nothing has changed yet.", style="bold"),
            id="ready", classes="intro",
        )  # fmt: skip
        steps = VerticalScroll(Static(steps_text(session), id="steps"), id="steps-box", classes="panel",
                               can_focus=False)  # fmt: skip
        steps.border_title = f"What will run ({sum(s.status != StepStatus.SKIPPED for s in session.steps)} steps)"
        with Vertical(id="top"):
            yield steps
            services = Static(services_text(service_uses(session, self.engine.recipe)), id="services", classes="panel")
            services.border_title = "What is stopped"
            yield services
            backup = Static(backup_text(session), id="backup", classes="panel")
            backup.border_title = "The backup"
            yield backup
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.call_after_refresh(self.fit_steps)

    def on_resize(self) -> None:
        self.call_after_refresh(self.fit_steps)

    def fit_steps(self) -> None:
        """The steps' box as tall as the steps, up to the room what is stopped and the backup leave: those two
        always show in full; a long list of steps scrolls in its box (and "More steps" is offered)."""
        room = self.query_one("#top").size.height
        for below in self.query("#top > Static"):
            room -= below.outer_size.height
        self.query_one("#steps-box").styles.max_height = max(room, 3)
        self.call_after_refresh(self.refresh_bindings)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "scroll_steps":
            return self.query_one("#steps-box", VerticalScroll).max_scroll_y > 0
        return True

    def action_scroll_steps(self, lines: int) -> None:
        self.query_one("#steps-box", VerticalScroll).scroll_relative(y=lines, animate=False)

    def action_start(self) -> None:
        self.post_message(RouteNext())  # the App routes to the run screen, which starts step 1

    def action_plan_again(self) -> None:
        self.app.push_screen(
            ConfirmDialog(
                "Go back and plan again?",
                "This session is put aside (kept on disk, and the backup stays where it is); "
                "detection runs again and the backup gate comes again.",
            ),
            self.plan_again_if,
        )

    def plan_again_if(self, yes: bool | None) -> None:
        if yes:
            self.engine.abandon()
            self.post_message(RouteNext())
