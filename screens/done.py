"""The end: what was done, how long it took, and where the logs, the session and the backup are."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Footer, Static

from wizard.views.rows import STYLE, step_rows, total_seconds, where_lines, where_rows

from .base import EngineScreen
from .messages import PlanAgain
from .widgets import TitleBar

if TYPE_CHECKING:
    pass


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
        table.add_column("step", width=32)
        table.add_column("result", width=27)
        table.add_column(Text("time", justify="right"), width=5)
        for row in step_rows(session.steps):
            table.add_row(Text(row.look.glyph, style=row.look.style), Text(row.title, overflow="ellipsis", no_wrap=True),
                          Text(row.result, overflow="ellipsis", no_wrap=True), Text(row.elapsed, justify="right"))  # fmt: skip
        yield table
        with VerticalScroll(id="where", classes="panel"):
            yield Static(self.where_things_are())
        yield Footer()

    def where_things_are(self) -> Text:
        text = Text()
        for line in where_lines(where_rows(self.session, self.engine.store.session_path)):
            text.append_text(line).append("\n")
        return text

    def action_new(self) -> None:
        self.post_message(PlanAgain())
