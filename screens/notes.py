"""Release notes for every version the jump crosses: blockers stop, warnings are acknowledged one by one.

Info notes need no acknowledging, but are shown all the same before the backup gate: the App shows this
screen until the operator goes on from it (NotesRead), even when every note is an info note.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Footer, Static

from wizard.session.state import Note
from wizard.views.rows import STYLE

from .base import EngineScreen
from .messages import NotesRead
from .widgets import TitleBar

if TYPE_CHECKING:
    pass


class NotesScreen(EngineScreen):
    CSS_PATH = Path(__file__).with_name("notes.tcss")
    BINDINGS = [
        Binding("space", "acknowledge", "Acknowledge"),
        # Enter over the table's own (it selects a row, which means nothing here); c, the older key, still works.
        Binding("enter", "continue", "Continue to the backup", priority=True),
        Binding("c", "continue", "Continue", show=False),
        Binding("q", "app.quit_wizard", "Quit"),
    ]

    def compose(self) -> ComposeResult:
        yield TitleBar()
        yield Static("", id="verdict", classes="intro")
        table: DataTable[str | Text] = DataTable(id="notes", cursor_type="row", classes="panel")
        table.add_columns("", "kind", "from", "note")
        yield table
        with VerticalScroll(id="detail-box", classes="panel"):
            yield Static("", id="detail")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#notes", DataTable)
        for note in self.session.notes:
            look = STYLE[note.severity]
            table.add_row(self.mark(note), Text(look.word, style=look.style), note.version, note.title, key=note.id)
        self.update_verdict()
        table.focus()

    def mark(self, note: Note) -> str:
        if note.severity != "warning":
            return " "
        return "✓" if note.id in self.session.acknowledged else "☐"

    def update_verdict(self) -> None:
        blockers, waiting = self.session.blockers, self.session.unacknowledged
        if blockers:
            text = Text(f"{len(blockers)} blocker(s): this upgrade cannot go on as planned. "
                        "Each says the way out; deal with it, then run the wizard again.", style=STYLE["blocker"].style)  # fmt: skip
        elif waiting:
            text = Text(f"Read each warning and acknowledge it with Space ({len(waiting)} left); then Enter goes on.")
        elif any(note.severity == "warning" for note in self.session.notes):
            text = Text("All warnings acknowledged. Press Enter to go on to the backup.", style=STYLE["ok"].style)
        else:
            count = len(self.session.notes)
            text = Text(f"{count} release note{'s' if count != 1 else ''} for this upgrade, to read: none needs "
                        "acknowledging. Press Enter to go on to the backup.", style=STYLE["ok"].style)  # fmt: skip
        self.query_one("#verdict", Static).update(text)
        self.refresh_bindings()

    @on(DataTable.RowHighlighted, "#notes")
    def highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.show_note(next(n for n in self.session.notes if n.id == event.row_key.value))

    def show_note(self, note: Note) -> None:
        detail = Text()
        detail.append(note.title + "\n", style="bold")
        detail.append(note.text + "\n")
        if note.way_out:
            detail.append("\nWay out: ", style="bold")
            detail.append(note.way_out + "\n")
        if note.severity == "warning":
            acked = note.id in self.session.acknowledged
            detail.append("\n" + ("Acknowledged." if acked else "Press Space to acknowledge."), style="italic")
        elif note.severity == "info":
            detail.append("\nFor your information: nothing to acknowledge.", style="italic")
        self.query_one("#detail", Static).update(detail)

    def current_note(self) -> Note | None:
        table = self.query_one("#notes", DataTable)
        if not self.session.notes:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return next(n for n in self.session.notes if n.id == key)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "continue":
            return not self.session.blockers and not self.session.unacknowledged
        if action == "acknowledge":
            return bool(self.session.unacknowledged)
        return True

    def action_acknowledge(self) -> None:
        note = self.current_note()
        if note is None or note.severity != "warning" or note.id in self.session.acknowledged:
            return
        self.engine.acknowledge(note.id)
        table = self.query_one("#notes", DataTable)
        table.update_cell(note.id, table.ordered_columns[0].key, self.mark(note))
        self.update_verdict()
        self.show_note(note)
        if table.cursor_row < table.row_count - 1:
            table.move_cursor(row=table.cursor_row + 1)

    def action_continue(self) -> None:
        if not self.session.blockers and not self.session.unacknowledged:
            self.post_message(NotesRead())
