"""The end: what was done, how long it took, and where the logs, the session and the backup are."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from wizard.state import Session, StepStatus

from .messages import PlanAgain
from .widgets import GLYPH, TitleBar, duration_text

if TYPE_CHECKING:
    from wizard.engine import Engine


class DoneScreen(Screen):
    CSS_PATH = Path(__file__).with_name("done.tcss")
    BINDINGS = [
        Binding("n", "new", "Plan a new upgrade"),
        Binding("q", "app.quit_wizard", "Quit"),
    ]

    def __init__(self, engine: Engine) -> None:
        super().__init__()
        self.engine = engine

    @property
    def session(self) -> Session:
        session = self.engine.session
        assert session is not None, "the done screen is shown for a finished session"
        return session

    def compose(self) -> ComposeResult:
        session = self.session
        total = sum((s.duration or 0) for s in session.steps)
        yield TitleBar()
        yield Static(
            Text(f"The upgrade of {session.instance} is finished: {session.installed_version} → "
                 f"{session.target_version}, {len(session.steps)} steps in {total:.0f} s.", style="bold green"),
            classes="intro",
        )  # fmt: skip
        table: DataTable[Text] = DataTable(id="summary", cursor_type="row", classes="panel")
        table.add_column("", width=1)
        table.add_column("step", width=32)
        table.add_column("result", width=27)
        table.add_column(Text("time", justify="right"), width=5)
        for step in session.steps:
            glyph, style = GLYPH[step.status]
            result = f"skipped: {step.skip_reason}" if step.status == StepStatus.SKIPPED else step.status.value
            table.add_row(Text(glyph, style=style), Text(step.title, overflow="ellipsis", no_wrap=True),
                          Text(result, overflow="ellipsis", no_wrap=True), Text(duration_text(step), justify="right"))  # fmt: skip
        yield table
        with VerticalScroll(id="where", classes="panel"):
            yield Static(self.where_things_are())
        yield Footer()

    def where_things_are(self) -> Text:
        session = self.session
        text = Text()
        logs = sorted({str(Path(s.log).parent) for s in session.steps if s.log})
        if logs:
            text.append("logs:    ", style="bold")
            text.append(" ".join(logs) + "\n")
        text.append("session: ", style="bold")
        text.append(f"{self.engine.store.session_path}\n")
        if session.backup:
            text.append("backup:  ", style="bold")
            text.append(f"{session.backup.path}\n         {session.backup.summary()}\n")
            for command in session.backup.restore:
                text.append("restore: ", style="bold")
                text.append(command + "\n")
        return text

    def action_new(self) -> None:
        self.post_message(PlanAgain())
