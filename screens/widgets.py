"""Widgets the screens share: the step list and the advice side panel."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widgets import DataTable, Static

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

    TITLE_WIDTH = 26  # with the mark, time and exit columns: 38 cells, the side panel's inside at 80 columns

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cursor_type="row", zebra_stripes=False, cell_padding=0, **kwargs)

    def on_mount(self) -> None:
        self.add_column("", key="mark", width=2)
        self.add_column("step", key="title", width=self.TITLE_WIDTH)
        self.add_column(Text(" time", justify="right"), key="time", width=5)
        self.add_column(Text(" exit", justify="right"), key="exit", width=5)

    def show(self, session: Session) -> None:
        """Bring every row up to date with the session (rows are added on first sight)."""
        for row in step_rows(session.steps):
            cells = {
                "mark": Text(row.look.glyph + " ", style=row.look.style),
                "title": Text(
                    row.title,
                    style="bold" if row.status == StepStatus.RUNNING else "",
                    overflow="ellipsis",
                    no_wrap=True,
                ),
                "time": Text(row.elapsed, justify="right"),
                "exit": Text(row.exit, justify="right"),
            }
            if row.id not in self.rows:
                self.add_row(*cells.values(), key=row.id)
            else:
                for column, value in cells.items():
                    self.update_cell(row.id, column, value)

    def show_time(self, step: StepRecord) -> None:
        """Only the time of one step (the running one, once a second)."""
        if step.id in self.rows:
            self.update_cell(step.id, "time", Text(elapsed_text(step), justify="right"))


class AdvicePanel(Static):
    """What the shown step does and what to know while it runs; the choices when it failed."""

    DEFAULT_CSS = """
    AdvicePanel {
        height: 1fr;
        overflow-y: auto;
    }
    """

    def show(self, step: StepRecord | None, choices: str = "") -> None:
        if step is None:
            self.update("")
            return
        text = Text()
        text.append(step.title + "\n", style="bold")
        if choices:
            text.append(choices + "\n", style="bold")
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
