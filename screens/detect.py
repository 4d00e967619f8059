"""Detection: what is installed, what pip would install here, and whether anything stands in the way."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rich.cells import cell_len
from rich.text import Text
from textual import events, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Footer, Static
from textual.worker import Worker, WorkerState

from wizard.errors import WizardError
from wizard.planning.plan import Plan, plan_for
from wizard.views.facts import detection_rows
from wizard.views.rows import STYLE, FactRow, step_rows

from .base import EngineScreen
from .messages import Planned, RouteNext
from .widgets import TitleBar

if TYPE_CHECKING:
    from wizard.planning.shared import Together
    from wizard.session.engine import Engine

FOUND_MIN_WIDTH = 20  # narrower than this, the "found" column would wrap more than it shows: let it scroll instead


class FactTable(DataTable):
    """The facts; when they do not all fit (24 lines, a long plugin list), the footer says how to see the rest."""

    BINDINGS = [
        Binding("down", "cursor_down", "More rows", key_display="↓↑"),
        Binding("up", "cursor_up", "More rows", show=False),
    ]

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("cursor_down", "cursor_up"):
            return self.max_scroll_y > 0
        return True


class DetectScreen(EngineScreen):
    CSS_PATH = Path(__file__).with_name("detect.tcss")
    VERTICAL_BREAKPOINTS = [(0, "-short"), (30, "-tall")]  # short (24 lines): no blank lines, the rows get them
    BINDINGS = [
        Binding("c", "continue", "Continue"),
        Binding("enter", "continue", "Continue", show=False),
        Binding("q", "app.quit_wizard", "Quit"),
    ]

    def __init__(self, engine: Engine, together: Together | None = None, shared_run: str | None = None) -> None:
        """``together``, ``shared_run``: the instance is planned as one of a shared venv's, in that upgrade."""
        super().__init__(engine)
        self.together = together
        self.shared_run = shared_run
        self.plan: Plan | None = None
        self.facts: list[FactRow] = []

    def compose(self) -> ComposeResult:
        yield TitleBar()
        yield Static("Looking at the installation: its venv's Python, the database, and what pip would install "
                     "there (pip resolving against a real index can take a minute)…", id="summary", classes="intro")  # fmt: skip
        table: DataTable[str | Text] = FactTable(id="facts", cursor_type="row", zebra_stripes=True, classes="panel")
        table.add_columns("", "what", "found")  # while detection runs; laid out again for the facts (fill_facts)
        yield table
        with VerticalScroll(id="below"):
            yield Static("", id="steps", classes="hint")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.detect()

    @work(thread=True, exclusive=True, group="detect", exit_on_error=False)
    def detect(self) -> Plan:
        return plan_for(self.engine.context, self.engine.backup_root, self.together)

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
        self.post_message(Planned(plan.blocked, nothing_to_do=not plan.steps))
        self.plan = plan
        self.facts = detection_rows(self.engine.instance, plan, "screen")
        self.fill_facts()
        hints: dict[str, list[str]] = {}  # a hint said once, with every fact it is about
        for fact in self.facts:
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

    def fill_facts(self) -> None:
        """The facts, a row each, the found column as wide as its longest value or the room left, wrapped in it.

        A value the operator must read all of (the schema's revisions, the plugins, a venv's path) wraps onto more
        lines of its row rather than running past the table's edge; the table scrolls when the rows do not fit.
        Laid out again when the screen is resized (``on_resize``).
        """
        table: DataTable[str | Text] = self.query_one("#facts", DataTable)
        looks = [STYLE[fact.severity] for fact in self.facts]
        first = max((cell_len(look.word) for look in looks), default=0)
        second = max([len("what"), *(cell_len(fact.name) for fact in self.facts)])
        padding = 2 * table.cell_padding
        room = table.scrollable_content_region.width - (first + padding) - (second + padding) - padding
        longest = max([len("found"), *(cell_len(fact.screen_value()) for fact in self.facts)])
        row = table.cursor_row
        table.clear(columns=True)
        table.add_column("", width=first)
        table.add_column("what", width=second)
        table.add_column("found", width=min(longest, max(room, FOUND_MIN_WIDTH)))
        for fact, look in zip(self.facts, looks, strict=True):
            table.add_row(Text(look.word, style=look.style), fact.name, Text(fact.screen_value()), height=None)
        if self.facts:
            table.move_cursor(row=min(row, len(self.facts) - 1), animate=False)
        self.call_after_refresh(self.refresh_bindings)  # "More rows" only while some are out of view

    def on_resize(self, event: events.Resize) -> None:
        if self.facts:
            self.call_after_refresh(self.fill_facts)  # once the table has its new size

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "continue":
            return bool(self.plan and self.plan.steps)
        return True

    def action_continue(self) -> None:
        if self.plan and self.plan.steps:
            self.engine.begin(self.plan, shared_run=self.shared_run)
            self.post_message(RouteNext())
