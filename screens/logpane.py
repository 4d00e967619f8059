"""The log pane: a step's output with every long line wrapped to the pane's width, so nothing is cut."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from typing import Any

from rich.cells import chop_cells
from textual import events
from textual.widgets import Log

CONTINUED = "  "  # a wrapped line's rows after the first are indented this much more than the line itself


def wrap_line(line: str, width: int) -> list[str]:
    """One line of output as the rows it takes at this width.  A row ends at the last space that fits, else
    after the last '/' (a long path), else at the width; the rows after the first are indented two more
    than the line itself, so a wrapped '  Applying x... OK' does not read as two of Django's lines."""
    if "\t" in line:
        line = line.expandtabs()
    width = max(width, 16)
    lead = len(line) - len(line.lstrip(" "))
    indent = " " * min(lead, width // 2) + CONTINUED
    if not line.isascii():
        first, *rest = chop_cells(line, width)
        rest = chop_cells("".join(rest), width - len(indent)) if rest else []
        return [first, *(indent + row for row in rest)]
    rows: list[str] = []
    start, room, end = 0, width, len(line)
    while end - start > room:  # offsets into the line: no copy of the rest at each row
        low = start + 1 if rows else lead + 1  # never a break inside the line's own indentation
        cut = line.rfind(" ", low, start + room + 1)
        if cut >= 0:
            rows.append(line[start:cut])
            start = cut + 1
        else:
            slash = line.rfind("/", low, start + room)
            stop = slash + 1 if slash >= 0 else start + room
            rows.append(line[start:stop])
            start = stop
        room = width - len(indent)
    rows.append(line[start:])
    return [rows[0], *(indent + row for row in rows[1:])]


class LogPane(Log):
    """A Log that keeps the lines it was given and shows them wrapped; a new width wraps them again."""

    DEFAULT_CSS = """
    LogPane {
        scrollbar-gutter: stable;
        scrollbar-size-vertical: 1;
        overflow-x: hidden;
    }
    """

    def __init__(self, max_lines: int, **kwargs: Any) -> None:
        super().__init__(max_lines=max_lines, **kwargs)
        self.given: deque[str] = deque(maxlen=max_lines)  # the lines as the step wrote them
        self.wrap_width = 0  # 0 until the pane has a size: lines are kept whole until then
        self.following = True  # at the end of the log (not scrolled back by the operator)

    def add(self, lines: Sequence[str]) -> None:
        if not lines:
            return
        self.given.extend(lines)
        self.write_lines(self.rows(lines))
        if self.max_lines is not None and len(self.lines) >= self.max_lines:
            # Once full, Log only repaints the lines after its last one (none are visible) and the
            # scroll stays put: nothing new would be painted until something else moved on screen.
            self.refresh()

    def reset(self, lines: Sequence[str]) -> None:
        """Show these lines instead, at the end."""
        self.clear()
        self.given.clear()
        self.add(lines)
        self.scroll_end(animate=False)

    def rows(self, lines: Iterable[str]) -> list[str]:
        width = self.wrap_width
        out: list[str] = []
        for line in lines:
            if not line:
                out.append(" ")  # Log drops empty strings; a blank line is part of the output
            elif width <= 0 or (len(line) <= width and line.isascii() and "\t" not in line):
                out.append(line)
            else:
                out.extend(wrap_line(line, width))
        return out

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        self.following = new_value >= self.max_scroll_y

    def on_resize(self, event: events.Resize) -> None:
        """A new width wraps the lines again; a new height (the lock panel came or went) keeps the end in view."""
        following = self.following
        width = self.scrollable_content_region.width
        if width != self.wrap_width and width > 0:
            self.wrap_width = width
            if self.given:
                self.clear()
                self.write_lines(self.rows(self.given), scroll_end=False)
        if following:
            self.scroll_end(animate=False, immediate=True)
