"""The backup gate: no upgrade step runs before a backup of this instance is recorded."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Button, Footer, Input, Label, Static
from textual.worker import Worker, WorkerState

from wizard.errors import WizardError
from wizard.sizes import human_bytes
from wizard.state import Backup
from .widgets import TitleBar


class BackupScreen(Screen):
    CSS_PATH = Path(__file__).with_name("backup.tcss")
    BINDINGS = [Binding("ctrl+q", "app.quit_wizard", "Quit")]

    def compose(self) -> ComposeResult:
        name = self.app.engine.instance.name
        yield TitleBar()
        yield Static(
            "No upgrade step runs before a backup of this instance is recorded: its database, "
            "its config and its uploaded files. Everything after this point changes the installation.",
            classes="intro",
        )
        if self.taker() is not None:
            with Horizontal(id="take-row"):
                yield Button("Take a backup now", id="take", variant="primary")
                yield Static("The wizard takes it and checks that it reads back.", classes="hint")
        with Vertical(id="declare", classes="panel"):
            yield Label("Or, if you made a backup yourself — where is it?" if self.taker()
                        else "Where is the backup you made?")  # fmt: skip
            yield Input(placeholder="/path/to/the/backup", id="path")
            yield Label(f"Type the instance name, {name}, to confirm it is this one's:")
            yield Input(placeholder=name, id="typed")
            yield Static("Tab moves between fields; Enter in the last one records the backup.", classes="hint")
        yield Static("", id="problem", classes="error")
        yield Footer()


    @on(Input.Submitted, "#path")
    def next_field(self) -> None:
        self.query_one("#typed", Input).focus()

    @on(Input.Submitted, "#typed")
    def declare(self) -> None:
        path = self.query_one("#path", Input).value.strip()
        typed = self.query_one("#typed", Input).value
        if not path:
            self.problem("Say where the backup is.")
            self.query_one("#path", Input).focus()
            return
        try:
            self.app.engine.declare_backup(path, typed)
        except WizardError as exc:
            self.problem(exc.message + (f" ({exc.hint})" if exc.hint else ""))
            return
        self.app.route()

    def problem(self, text: str) -> None:
        self.query_one("#problem", Static).update(Text(text))

    @on(Button.Pressed, "#take")
    def take_pressed(self) -> None:
        self.query_one("#take", Button).disabled = True
        self.query_one("#problem", Static).update(Text("Taking the backup…", style="bold"))
        self.take()

    def taker(self):
        """What takes the backup: the app's own (tests, demo), else the engine's when it can."""
        if self.app.take_backup is not None:
            return lambda: self.app.take_backup(self.app.engine.instance)
        return self.app.engine.take_backup if self.app.engine.backup_possible() else None

    @work(thread=True, exclusive=True, group="backup", exit_on_error=False)
    def take(self) -> Backup:
        def progress(what: str, done: int, expected: int) -> None:
            text = Text(f"Taking the backup… {what}: {human_bytes(done)} of about {human_bytes(expected)}", style="bold")
            self.app.call_from_thread(self.query_one("#problem", Static).update, text)

        taker = self.taker()
        return taker(progress) if taker == self.app.engine.take_backup else taker()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group != "backup":
            return
        if event.state == WorkerState.ERROR:
            error = event.worker.error
            self.problem(f"The backup failed: {error.message if isinstance(error, WizardError) else error}")
            self.query_one("#take", Button).disabled = False
        elif event.state == WorkerState.SUCCESS:
            backup = event.worker.result
            self.app.engine.pass_gate(backup)
            self.app.notify(f"Backup verified: {backup.path}")
            self.app.route()
