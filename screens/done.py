"""The end: what was done, how long it took, and where the logs, the session and the backup are."""

from __future__ import annotations

from pathlib import Path

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Footer, Static

from wizard.views.rows import STYLE, step_rows, styled, total_seconds, where_rows

from .base import EngineScreen
from .messages import PlanAgain
from .widgets import TitleBar


class DoneScreen(EngineScreen):
    CSS_PATH = Path(__file__).with_name("done.tcss")
    BINDINGS = [
        Binding("n", "new", "Plan a new upgrade"),
        Binding("q", "app.quit_wizard", "Quit"),
    ]

    def compose(self) -> ComposeResult:
        session = self.session
        yield TitleBar()
        yield Static(
            Text(f"The upgrade of {session.instance} is finished: {session.installed_version} → "
                 f"{session.target_version}, {len(session.steps)} steps in {total_seconds(session):.0f} s.",
                 style=f"bold {STYLE['ok'].style}"),
            classes="intro",
        )  # fmt: skip
        table: DataTable[Text] = DataTable(id="summary", cursor_type="row", classes="panel")
        table.add_column("", width=1)
        table.add_column("step", width=36)  # "Upgrade the plugins' database tables" whole at 80 columns
        table.add_column("result", width=23)
        table.add_column(Text("time", justify="right"), width=5)
        for row in step_rows(session.steps):
            table.add_row(Text(row.look.glyph, style=row.look.style), Text(row.title),
                          Text(row.result), Text(row.elapsed, justify="right"), height=None)  # a long title or a skip reason wraps  # fmt: skip
        yield table
        with VerticalScroll(id="where", classes="panel"):
            yield Static(self.where_things_are())
        yield Footer(compact=True)

    def where_things_are(self) -> Table:
        """Label and value side by side; a long path or command wraps within the value's column."""
        grid = Table.grid(padding=(0, 1))
        grid.add_column(no_wrap=True)
        grid.add_column(overflow="fold")
        for row in where_rows(self.session, self.engine.store.session_path):
            grid.add_row(Text(f"{row.label}:" if row.label else "", style="bold"), styled(row.value, row.severity))
        return grid

    def action_new(self) -> None:
        self.post_message(PlanAgain())
