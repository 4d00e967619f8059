"""Detection: what is installed, what pip would install here, and whether anything stands in the way."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Footer, Static
from textual.worker import Worker, WorkerState

from wizard.errors import WizardError
from wizard.planning.plan import Plan, plan_for
from wizard.views.facts import detection_rows
from wizard.views.rows import STYLE, step_rows

from .base import EngineScreen
from .messages import Planned, RouteNext
from .widgets import TitleBar

if TYPE_CHECKING:
    from wizard.session.engine import Engine


class DetectScreen(EngineScreen):
    CSS_PATH = Path(__file__).with_name("detect.tcss")
    BINDINGS = [
        Binding("c", "continue", "Continue"),
        Binding("enter", "continue", "Continue", show=False),
        Binding("q", "app.quit_wizard", "Quit"),
    ]

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self.plan: Plan | None = None

    def compose(self) -> ComposeResult:
        yield TitleBar()
        yield Static("Looking at the installation: its venv's Python, the database, and what pip would install "
                     "there (pip resolving against a real index can take a minute)…", id="summary", classes="intro")  # fmt: skip
        table: DataTable[str | Text] = DataTable(id="facts", cursor_type="row", zebra_stripes=True, classes="panel")
        table.add_columns("", "what", "found")
        yield table
        with VerticalScroll(id="below"):
            yield Static("", id="steps", classes="hint")
        yield Footer()

    def on_mount(self) -> None:
        self.detect()

    @work(thread=True, exclusive=True, group="detect", exit_on_error=False)
    def detect(self) -> Plan:
        return plan_for(self.engine.context, self.engine.backup_root)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group != "detect":
            return
        summary = self.query_one("#summary", Static)
        if event.state == WorkerState.ERROR:
            error = event.worker.error
            text = (
                error.message + (f"\nhint: {error.hint}" if error.hint else "")
                if isinstance(error, WizardError)
                else repr(error)
            )
            summary.update(Text("Detection failed: " + text, style=STYLE["blocker"].style))
        elif event.state == WorkerState.SUCCESS and isinstance(plan := event.worker.result, Plan):
            self.show_plan(plan)

    def show_plan(self, plan: Plan) -> None:
        self.post_message(Planned(plan.blocked))
        self.plan = plan
        table = self.query_one("#facts", DataTable)
        hints: dict[str, list[str]] = {}  # a hint said once, with every fact it is about
        for fact in detection_rows(self.engine.instance, plan, "screen"):
            look = STYLE[fact.severity]
            table.add_row(Text(look.word, style=look.style), fact.name, Text(fact.screen_value()))
            if fact.hint and fact.severity != "ok":
                hints.setdefault(fact.hint, []).append(fact.name)
        found = plan.found
        summary = self.query_one("#summary", Static)
        if not plan.steps:
            further = " What stands in the way of newer releases is below." if plan.beyond else ""
            summary.update(plan.nothing_to_do + further)
            beyond = Text()
            for note in [*plan.notes, *plan.beyond]:
                look = STYLE[note.severity]
                beyond.append(f"{look.word} ", style=look.style).append(note.title + "\n", style="bold")
                if note.way_out:
                    beyond.append("Way out: ", style="bold").append(note.way_out + "\n")
            self.query_one("#steps", Static).update(beyond)
        else:
            notes = {0: "no release notes", 1: "1 release note"}.get(
                len(plan.notes), f"{len(plan.notes)} release notes"
            )
            summary.update(
                f"{plan.recipe.title} {found.installed_version} → {found.target_version}: "
                f"{len(plan.steps)} steps, {notes}. Press c to go on."
            )
            titles = " · ".join(row.title for row in step_rows(plan.steps))
            said = [f"{', '.join(names)}: {hint}" for hint, names in hints.items()]
            self.query_one("#steps", Static).update("\n".join([*said, f"The plan: {titles}"]))
        self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "continue":
            return bool(self.plan and self.plan.steps)
        return True

    def action_continue(self) -> None:
        if self.plan and self.plan.steps:
            self.engine.begin(self.plan)
            self.post_message(RouteNext())
