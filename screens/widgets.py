"""Widgets the screens share: the step list, the advice panel, the line above the log, a list of choices."""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.widgets import DataTable, OptionList, Static

from wizard.session.state import Session, StepRecord, StepStatus
from wizard.views.rows import STATUS, command_text, elapsed_text, step_rows

GLYPH = STATUS  # the older name (tests/tui/test_tui.py reads a glyph from it)


class StepList(DataTable):
    """One row per step: a status mark, the title, the time it took, its exit code."""

    DEFAULT_CSS = """
    StepList {
        height: auto;
        max-height: 60%;
        scrollbar-size-horizontal: 0;
    }
    """

    BINDINGS = [Binding("enter", "select_cursor", "Its log")]  # in the footer, unlike DataTable's own

    FIXED = 2 + 5 + 5 + 1  # the mark, time and exit columns, and room for a scrollbar
    MIN_TITLE = 20

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cursor_type="row", zebra_stripes=False, cell_padding=0, **kwargs)
        self.session: Session | None = None
        self.title_width = 0

    def on_mount(self) -> None:
        self.set_columns(26)

    def on_resize(self, event: events.Resize) -> None:
        """The title column takes whatever the others leave, so a hop's version is not cut off."""
        self.set_columns(max(self.MIN_TITLE, self.scrollable_content_region.width - self.FIXED))

    def set_columns(self, title_width: int) -> None:
        if title_width == self.title_width:
            return
        self.title_width = title_width
        cursor = self.cursor_row
        self.clear(columns=True)
        self.add_column("", key="mark", width=2)
        self.add_column("step", key="title", width=title_width)
        self.add_column(Text(" time", justify="right"), key="time", width=5)
        self.add_column(Text(" exit", justify="right"), key="exit", width=5)
        if self.session is not None:
            self.show(self.session)
            self.move_cursor(row=cursor, animate=False)

    def show(self, session: Session) -> None:
        """Bring every row up to date with the session (rows are added on first sight)."""
        self.session = session
        for row in step_rows(session.steps):
            cells = {
                "mark": Text(row.look.glyph + " ", style=row.look.style),
                "title": Text(row.title, style="bold" if row.status == StepStatus.RUNNING else ""),
                "time": Text(row.elapsed, justify="right"),
                "exit": Text(row.exit, justify="right"),
            }
            if row.id not in self.rows:
                self.add_row(*cells.values(), key=row.id, height=None)  # a long title wraps, nothing is cut
            else:
                for column, value in cells.items():
                    self.update_cell(row.id, column, value)

    def show_time(self, step: StepRecord) -> None:
        """Only the time of one step (the running one, once a second)."""
        if step.id in self.rows:
            self.update_cell(step.id, "time", Text(elapsed_text(step), justify="right"))


class AdvicePanel(Static):
    """What the shown step does and what to know while it runs."""

    DEFAULT_CSS = """
    AdvicePanel {
        height: 1fr;
        overflow-y: auto;
    }
    """

    def show(self, step: StepRecord | None) -> None:
        if step is None:
            self.update("")
            return
        text = Text()
        text.append(step.title + "\n", style="bold")
        if step.skip_reason:
            text.append(f"Skipped: {step.skip_reason}\n", style=STATUS[StepStatus.SKIPPED].style)
        if step.advice:
            text.append(step.advice + "\n")
        runs_as = "root" if step.run_as == "root" else "the app's user"
        text.append(f"\nRuns as {runs_as}: ", style="dim")
        text.append(command_text(step), style="dim")
        self.update(text)


class TitleBar(Static):
    """The top line: the wizard and the instance.  (Textual's Header updates its title after
    mounting and fails when its screen has already been replaced, as a fast switch does.)"""

    DEFAULT_CSS = """
    TitleBar {
        dock: top;
        height: 1;
        width: 100%;
        background: $panel;
        color: $foreground;
        text-align: center;
        text-style: bold;
    }
    """

    def on_mount(self) -> None:
        sub = f" — {self.app.sub_title}" if self.app.sub_title else ""
        self.update(f"{self.app.title}{sub}")


class NowLine(Static):
    """Above the log: the step shown, where it stands in the plan and its time; under it how far it has got
    (counted from its output), or the choices when it stopped."""

    DEFAULT_CSS = """
    NowLine {
        height: auto;
        padding: 0 1;
    }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.step: StepRecord | None = None
        self.position = ""
        self.detail = Text()

    def show(self, step: StepRecord | None, position: str = "", detail: Text | None = None) -> None:
        self.step, self.position, self.detail = step, position, detail or Text()
        self.redraw(layout=True)

    def redraw(self, layout: bool = False) -> None:
        """Also once a second for the running step's time, which needs no new layout."""
        step = self.step
        if step is None:
            self.update("", layout=layout)
            return
        look = STATUS[step.status]
        head = Table.grid(expand=True)
        head.add_column(ratio=1, no_wrap=True, overflow="ellipsis")
        head.add_column(justify="right", no_wrap=True)
        title = Text.assemble((look.glyph + " ", look.style), (self.position + " ", "dim"), (step.title, "bold"))
        head.add_row(title, Text(elapsed_text(step), style="dim"))
        self.update(Group(head, self.detail) if self.detail else head, layout=layout)

    @property
    def plain(self) -> str:
        """Its two lines as text (for tests and transcripts)."""
        if self.step is None:
            return ""
        return f"{self.position} {self.step.title}\n{self.detail.plain}"


class ChoiceList(OptionList):
    """An OptionList whose keys are in the footer: a first-time operator sees how to choose."""

    BINDINGS = [
        Binding("enter", "select", "Choose"),
        Binding("up", "cursor_up", "Move", key_display="↑↓"),
        Binding("down", "cursor_down", "Move", show=False),
    ]
