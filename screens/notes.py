"""Release notes for every version the jump crosses: blockers stop, warnings are acknowledged one by one.

Info notes need no acknowledging, but are shown all the same before the backup gate: the App shows this
screen until the operator goes on from it (NotesRead), even when every note is an info note.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rich.cells import cell_len
from rich.text import Text
from textual import events, on
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

TITLE_MIN_WIDTH = 20  # narrower than this, a title would wrap more than it shows: let the table scroll instead


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
        yield DataTable(id="notes", cursor_type="row", classes="panel")  # its columns: fill_notes
        with VerticalScroll(id="detail-box", classes="panel"):
            yield Static("", id="detail")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.fill_notes()
        self.update_verdict()
        self.query_one("#notes", DataTable).focus()

    def fill_notes(self) -> None:
        """A row per note, its title wrapped in the width the other columns leave (never cut at 80 columns).

        Laid out again when the screen is resized (``on_resize``); the cursor stays on its note.
        """
        table: DataTable[str | Text] = self.query_one("#notes", DataTable)
        notes = self.session.notes
        kind = max([len("kind"), *(cell_len(STYLE[note.severity].word) for note in notes)])
        since = max([len("from"), *(cell_len(note.version) for note in notes)])
        padding = 2 * table.cell_padding
        room = table.scrollable_content_region.width - (1 + padding) - (kind + padding) - (since + padding) - padding
        longest = max([len("note"), *(cell_len(note.title) for note in notes)])
        row = table.cursor_row
        table.clear(columns=True)
        table.add_column("", key="mark", width=1)
        table.add_column("kind", width=kind)
        table.add_column("from", width=since)
        table.add_column("note", width=min(longest, max(room, TITLE_MIN_WIDTH)))
        for note in notes:
            look = STYLE[note.severity]
            table.add_row(self.mark(note), Text(look.word, style=look.style), note.version, Text(note.title),
                          key=note.id, height=None)  # fmt: skip
        if notes:
            table.move_cursor(row=min(row, len(notes) - 1), animate=False)

    def on_resize(self, event: events.Resize) -> None:
        self.call_after_refresh(self.fill_notes)  # once the table has its new size

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
            text = Text(f"{count} note{'s' if count != 1 else ''} to read, none to acknowledge: Enter goes on to "
                        "the backup.", style=STYLE["ok"].style)  # fmt: skip
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
        table.update_cell(note.id, "mark", self.mark(note))
        self.update_verdict()
        self.show_note(note)
        if table.cursor_row < table.row_count - 1:
            table.move_cursor(row=table.cursor_row + 1)

    def action_continue(self) -> None:
        if not self.session.blockers and not self.session.unacknowledged:
            self.post_message(NotesRead())
