"""Coming back to an upgrade that was left half-way: where it stopped, and the choices that fit."""

from __future__ import annotations

from pathlib import Path

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Footer, OptionList, Static
from textual.widgets.option_list import Option

from wizard.execution.runner import Alive, inspect
from wizard.session.resume import resume_choices
from wizard.session.state import FINISHED, StepRecord, StepStatus

from .base import EngineScreen
from .dialogs import ConfirmDialog, ReasonDialog
from .messages import RollbackWanted, RouteNext
from .widgets import ChoiceList, TitleBar


class ResumeScreen(EngineScreen):
    CSS_PATH = Path(__file__).with_name("resume.tcss")
    BINDINGS = [Binding("q", "app.quit_wizard", "Quit")]

    def compose(self) -> ComposeResult:
        yield TitleBar()
        yield Static(self.summary(), id="where", classes="intro panel")
        yield ChoiceList(*self.choices(), id="choices", classes="panel")
        yield Footer(compact=True)

    def summary(self) -> str:
        session = self.session
        done = sum(1 for s in session.steps if s.status in FINISHED)
        lines = [
            (
                f"{'A rollback' if session.is_rollback else 'An upgrade'} of {session.instance} ({session.installed_version} → {session.target_version}) "
                f"is under way, begun {session.created:%Y-%m-%d %H:%M} UTC."
            ),
            f"{done} of {len(session.steps)} steps are done.",
        ]
        step = session.current
        if session.backup is None:
            lines.append("No step has run yet: the backup gate is still closed.")
        elif step is not None:
            lines.append(f"Now: {step.title} ({step.id}) — {self.state_of(step)}.")
            if step.log:
                lines.append(f"Its log: {step.log}")
        return "\n".join(lines)

    def state_of(self, step: StepRecord) -> str:
        if step.status == StepStatus.RUNNING:
            outcome = inspect(step)
            return f"still running (pid {outcome.pid})" if isinstance(outcome, Alive) else "running"
        if step.status == StepStatus.INTERRUPTED:
            return "interrupted: its process ended without leaving an exit status"
        if step.status == StepStatus.FAILED:
            return f"failed with exit code {step.exit_code}"
        return "not started yet"

    def choices(self) -> list[Option]:
        return [Option(choice.label, id=choice.id) for choice in resume_choices(self.session)]

    @on(OptionList.OptionSelected, "#choices")
    def chosen(self, event: OptionList.OptionSelected) -> None:
        choice, step = event.option.id, self.session.current
        if choice == "continue":
            self.post_message(RouteNext())
        elif choice == "rollback":
            self.post_message(RollbackWanted())
        elif choice == "abandon":
            self.app.push_screen(
                ConfirmDialog(
                    "Abandon this session?",
                    "Its record and logs stay on disk; the next start plans a new upgrade from what is installed now.",
                ),
                self.abandon_if,
            )
        elif step is None:  # retry and skip are offered only for a step that stopped
            return
        elif choice == "retry":
            self.engine.retry(step)
            self.post_message(RouteNext())
        elif choice == "skip":
            self.app.push_screen(ReasonDialog(f"Why skip “{step.title}”?"), self.skip_with)

    def skip_with(self, reason: str | None) -> None:
        step = self.session.current
        if reason and step is not None:
            self.engine.skip(step, reason)
            self.post_message(RouteNext())

    def abandon_if(self, yes: bool | None) -> None:
        if yes:
            kept = self.engine.abandon()
            self.app.notify(f"The session was kept as {kept}")
            self.post_message(RouteNext())
