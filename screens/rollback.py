"""Going back: what a rollback of the upgrade would do, and the operator's word before anything is done.

Opened with b from the done screen, or from a failed step. The plan is worked out in a thread worker (it asks
pip what the venv holds now); nothing changes until the operator chooses. Restoring the database loses what was
written since the backup, so it needs the instance's name typed out; keeping it, a yes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import Footer, Static

from wizard.errors import WizardError
from wizard.rollback.plan import RollbackPlan, migrating_step, plan_rollback
from wizard.session.engine import Engine
from wizard.session.state import StepRecord

from .base import EngineScreen
from .dialogs import ConfirmDialog, TypeToConfirmDialog
from .messages import RouteNext
from .widgets import TitleBar


@dataclass(frozen=True)
class WaysBack:
    """The rollback keeping the database, and the one restoring it (or why the wizard cannot restore it)."""

    keep: RollbackPlan
    restore: RollbackPlan | None
    why_not: str  # when ``restore`` is None and the schema changed


def plan_text(plan: RollbackPlan) -> Text:
    text = Text()
    for number, step in enumerate(plan.steps, 1):
        text.append(f"{number}. ", style="bold")
        text.append(step.title + (" (as root)" if step.run_as == "root" else ""))
        text.append("\n")
    if plan.changes.back:
        text.append(f"\npip installs again: {', '.join(plan.changes.back)}\n", style="dim")
    if plan.changes.added:
        text.append(f"pip removes: {', '.join(plan.changes.added)}\n", style="dim")
    text.rstrip()
    return text


class RollbackScreen(EngineScreen):
    CSS_PATH = Path(__file__).with_name("rollback.tcss")
    BINDINGS = [
        Binding("enter", "roll_back", "Roll back"),
        Binding("k", "keep_database", "Keep the database"),
        Binding("escape", "back", "Back"),
        Binding("q", "app.quit_wizard", "Quit"),
    ]

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self.ways: WaysBack | None = None
        self.migrated: StepRecord | None = migrating_step(self.session)

    def compose(self) -> ComposeResult:
        session = self.session
        yield TitleBar()
        yield Static(
            Text(f"Going back from the upgrade of {session.instance} ({session.installed_version} → "
                 f"{session.target_version}) to what ran before it.", style="bold"),
            classes="intro",
        )  # fmt: skip
        steps = VerticalScroll(Static("Working out the way back (asking pip what the venv holds now)…", id="plan"),
                               id="plan-box", classes="panel")  # fmt: skip
        steps.border_title = "What the rollback runs"
        yield steps
        database = Static(id="database", classes="panel")
        database.border_title = "The database"
        yield database
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.work_out()

    @work(thread=True, exclusive=True, group="rollback-plan", exit_on_error=False)
    def work_out(self) -> None:
        context, session = self.engine.context, self.session
        try:
            keep = plan_rollback(context, session, restore_database=False)
        except WizardError as exc:
            self.app.call_from_thread(self.cannot, exc)
            return
        restore, why_not = None, ""
        if self.migrated is not None:
            try:
                restore = plan_rollback(context, session, restore_database=True)
            except WizardError as exc:
                why_not = exc.message + (f"; {exc.hint}" if exc.hint else "")
        self.app.call_from_thread(self.worked_out, WaysBack(keep, restore, why_not))

    def cannot(self, error: WizardError) -> None:
        why = Text.assemble(("There is no way back the wizard can take: ", "bold red"), error.message)
        self.query_one("#plan", Static).update(Text.assemble(why, "\n", error.hint or ""))
        self.query_one("#database", Static).display = False

    def worked_out(self, ways: WaysBack) -> None:
        self.ways = ways
        shown = ways.restore or ways.keep
        self.query_one("#plan", Static).update(plan_text(shown))
        self.query_one("#database", Static).update(self.database_text(ways))
        self.refresh_bindings()

    def database_text(self, ways: WaysBack) -> Text:
        backup = self.session.backup
        if self.migrated is None:
            return Text("No step of the upgrade changed the database: it is kept as it is. ⏎ rolls back.")
        text = Text(f"The step “{self.migrated.title}” changed it. ")
        if ways.restore is not None and backup is not None:
            text.append("⏎ restores it from the backup ", style="bold")
            text.append(f"({backup.summary()}): whatever was written since is lost. ")
        else:
            text.append("The wizard cannot restore it: ", style="bold red")
            text.append(ways.why_not + ". ")
        text.append("k keeps it as it is: the old code may not run on its schema.")
        return text

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        ways = self.ways
        if action == "roll_back":
            return ways is not None and (self.migrated is None or ways.restore is not None)
        if action == "keep_database":
            return ways is not None and self.migrated is not None
        return True

    def action_roll_back(self) -> None:
        ways = self.ways
        if ways is None:
            return
        if ways.restore is not None:
            question = (f"Restore the database of {self.session.instance} from the backup, and roll back? "
                        "What was written since the backup was taken is lost.")  # fmt: skip
            self.app.push_screen(TypeToConfirmDialog(question, self.session.instance),
                                 lambda yes: self.begin(ways.restore) if yes else None)  # fmt: skip
        elif self.migrated is None:
            self.app.push_screen(ConfirmDialog("Roll back now?", "The services stop, the recorded packages are "
                                               "installed again, and the services start."),
                                 lambda yes: self.begin(ways.keep) if yes else None)  # fmt: skip

    def action_keep_database(self) -> None:
        ways = self.ways
        if ways is not None and self.migrated is not None:
            question = "The packages go back; the database stays at the new schema, which the old code may not run on."
            self.app.push_screen(ConfirmDialog("Roll back the packages alone?", question),
                                 lambda yes: self.begin(ways.keep) if yes else None)  # fmt: skip

    def begin(self, plan: RollbackPlan | None) -> None:
        if plan is None:
            return
        self.engine.begin_rollback(plan)
        self.post_message(RouteNext())

    def action_back(self) -> None:
        self.post_message(RouteNext())
