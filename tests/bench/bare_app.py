"""The anchors of P1 and P2: bare Textual apps, with only what the measure needs.

``first-screen``: the widgets of the wizard's first screen (detection): a
one-line title, the intro text, a three-column DataTable, a scrolling area
with a Static and the Footer, with the same keys; nothing behind them.

``flood``: a title, a Log pane (keeping as many lines as the run screen's)
and the Footer; it starts the same step program as the wizard's P2 step with
asyncio's subprocess and writes what it prints into the pane with
``Log.write_lines``, chunk by chunk as it arrives (lines longer than the pane,
``--line-length``, are not wrapped: Log cuts them at its edge and scrolls
sideways).  Textual 8.2.8's Log, once
it holds max_lines and follows the end, repaints only the rows of the lines
just added, which lie past the view after pruning: the pane freezes.  So the
bare app asks for a repaint of the pane after each chunk (coalesced into the
next frame, as any visible change is).

Run by path with the project venv's Python; it imports only Textual.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Footer, Log, Static

sys.path.append(str(Path(__file__).resolve().parent))
from project import FIRST_SCREEN_INTRO, LOG_PANE_LINES

TITLE_CSS = """
#title { dock: top; height: 1; width: 100%; background: $panel; text-align: center; text-style: bold; }
#facts { height: 1fr; margin: 0 1; }
#below { height: auto; max-height: 50%; margin: 1 1 0 1; }
#log { height: 1fr; }
.intro { padding: 0 1; height: auto; margin-bottom: 1; }
.panel { border: round $primary 50%; padding: 0 1; }
.panel:focus-within { border: round $accent; }
.hint { color: $text-muted; height: auto; padding: 0 1; }
"""


class FirstScreenApp(App[None]):
    """The detection screen's widgets, empty of any wizard."""

    CSS = TITLE_CSS
    ENABLE_COMMAND_PALETTE = False
    BINDINGS = [Binding("c", "noop", "Continue"), Binding("enter", "noop", "Continue", show=False),
                Binding("q", "quit", "Quit")]  # fmt: skip

    def compose(self) -> ComposeResult:
        yield Static("upgrade-wizard — site (site)", id="title")
        yield Static(FIRST_SCREEN_INTRO, id="summary", classes="intro")
        table: DataTable = DataTable(id="facts", cursor_type="row", zebra_stripes=True, classes="panel")
        table.add_columns("", "what", "found")
        yield table
        with VerticalScroll(id="below"):
            yield Static("", id="steps", classes="hint")
        yield Footer()

    def action_noop(self) -> None:
        pass


class FloodApp(App[None]):
    """A step's output piped straight into a Log pane."""

    CSS = TITLE_CSS
    ENABLE_COMMAND_PALETTE = False
    BINDINGS = [Binding("q", "quit", "Quit")]

    def __init__(self, step: list[str]):
        super().__init__()
        self.step = step

    def compose(self) -> ComposeResult:
        yield Static("bare app — flood", id="title")
        yield Log(max_lines=LOG_PANE_LINES, id="log", classes="panel")
        yield Footer()

    def on_mount(self) -> None:
        self.run_worker(self.pipe(), exclusive=True)

    async def pipe(self) -> None:
        process = await asyncio.create_subprocess_exec(
            *self.step, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE
        )
        assert process.stdout is not None
        log = self.query_one(Log)
        pending = b""
        while chunk := await process.stdout.read(1 << 16):
            lines = (pending + chunk).split(b"\n")
            pending = lines.pop()
            log.write_lines([line.decode("utf-8", errors="replace") or " " for line in lines])
            log.refresh()  # see the module's docstring: a full Log repaints only what it is told to
        if pending:
            log.write_lines([pending.decode("utf-8", errors="replace")])
        await process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("kind", choices=["first-screen", "flood"])
    parser.add_argument("step", nargs=argparse.REMAINDER, help="flood: the step's argv")
    args = parser.parse_args()
    if args.kind == "first-screen":
        FirstScreenApp().run(mouse=False)
    else:
        FloodApp(args.step).run(mouse=False)


if __name__ == "__main__":
    main()
