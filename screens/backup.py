"""The backup gate: no upgrade step runs before a backup of this instance is recorded.

The screen first measures what a backup would hold (database, config, the
app's files) and the free space where it goes; optional parts (Indico's
archive) are chosen here with their size in view.  Then either the wizard
takes the backup and reads it back, or the operator declares one of their own.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, Checkbox, Footer, Input, Static
from textual.worker import Worker, WorkerState, get_current_worker

from wizard.backup.take import HEADROOM, Estimate, Unfinished
from wizard.errors import BackupError, WizardError
from wizard.session.state import Backup
from wizard.views.rows import STYLE, room_text
from wizard.views.sizes import human_bytes

from .base import EngineScreen
from .messages import GatePassed
from .widgets import TitleBar

if TYPE_CHECKING:
    from wizard.session.engine import Engine


def parts_table(plan: Estimate) -> Table:
    """One row per part that is always in the backup (the optional ones are checkboxes below); a long path wraps."""
    table = Table.grid(padding=(0, 1), expand=True)
    table.add_column("what", style="bold", no_wrap=True)
    table.add_column("where", overflow="fold", ratio=1)
    table.add_column("size", justify="right", no_wrap=True)
    for part in plan.parts:
        if not part.optional:
            table.add_row(part.label, part.where, human_bytes(part.size))
    return table


class IncludeBox(Checkbox):
    """A checkbox whose mark means what it says: X when the part goes into the backup, blank when it is left out.

    (Textual's checkbox shows its X either way and tells on from off by colour alone: unreadable
    without colour, and read as "included" by anyone who sees the X.)
    """

    def __init__(self, label: str, value: bool, **kwargs: Any) -> None:
        super().__init__(label, value, **kwargs)
        self.BUTTON_INNER = "X" if value else " "

    def watch_value(self) -> None:
        self.BUTTON_INNER = "X" if self.value else " "
        super().watch_value()


def unfinished_text(left: list[Unfinished]) -> Text:
    """The folders a wizard did not finish, a line each (path and size): the operator's to remove, never the wizard's."""
    head = ("Not a usable backup (unfinished); yours to remove, the wizard never will:" if len(left) == 1
            else "Not usable backups (unfinished); yours to remove, the wizard never will:")  # fmt: skip
    return Text(
        "\n".join([head, *(f"  {folder.path} ({human_bytes(folder.size)})" for folder in left)]),
        style=STYLE["warning"].style,
    )


def space_text(plan: Estimate) -> Text:
    line = f"Into {room_text(plan)}."
    left_out = [f"{part.label} ({human_bytes(part.size)})" for part in plan.parts if not part.included]
    if left_out:
        line += f" Left out: {', '.join(left_out)}."
    if plan.fits:
        return Text(line, style=STYLE["info"].style)
    short = plan.needed + HEADROOM - plan.free
    return Text(f"{line} Not enough: free {human_bytes(short)} more there, or set backup_dir in the instance "
                "to a bigger filesystem.", style=STYLE["blocker"].style)  # fmt: skip


class BackupScreen(EngineScreen):
    """Every key that works here is in the footer: what Enter does depends on what has the focus, so each
    meaning is its own binding, offered (check_action) only where it applies, and taken before the widget's own."""

    CSS_PATH = Path(__file__).with_name("backup.tcss")
    BINDINGS = [
        Binding("enter", "take", "Take the backup", priority=True),
        Binding("enter", "next_field", "Next field", priority=True),
        Binding("enter", "declare", "Confirm your backup", priority=True),
        Binding("space", "toggle_part", "Include / leave out", priority=True),
        Binding("tab", "app.focus_next", "Move", key_display="tab ⇧tab"),
        Binding("shift+tab", "app.focus_previous", "Move back", show=False),
        Binding("ctrl+q", "app.quit_wizard", "Quit", priority=True),
    ]
    AUTO_FOCUS = "#take"

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self.plan: Estimate | None = None
        self.can_take = False

    def compose(self) -> ComposeResult:
        name = self.engine.instance.name
        self.can_take = can_take = self.engine.backups.possible()  # reads the app's config: once
        yield TitleBar()
        with VerticalScroll(id="body"):
            yield Static("Nothing changes before a backup of this instance is recorded.", classes="intro")
            if can_take:
                with Vertical(id="contents", classes="panel"):
                    yield Static("Measuring what the backup would hold…", id="parts")
                    yield Vertical(id="optional")
                    yield Static("", id="space")
                with Horizontal(id="take-row"):
                    yield Button("Take a backup now", id="take", variant="primary", disabled=True)
                    yield Static("The wizard takes it and reads it back before anything else happens.", id="status",
                                 classes="hint")  # fmt: skip
            left = self.engine.backups.unfinished()  # a few folders: quick to measure
            if left:
                yield Static(unfinished_text(left), id="unfinished")
            with Vertical(id="declare", classes="panel"):
                yield Static("Or, if you made a backup yourself — where is it?" if can_take
                            else "The wizard cannot back up this database itself. Where is the backup you made?")  # fmt: skip
                yield Input(placeholder="/path/to/the/backup", id="path")
                yield Static(f"To confirm, type the instance name ({name}) and press Enter:")
                yield Input(placeholder=name, id="typed")
                yield Static("", id="problem", classes="error")  # shown under the fields it is about
        yield Footer(compact=True)

    def on_mount(self) -> None:
        if self.can_take:
            self.measure()
        else:
            self.query_one("#path", Input).focus()  # declaring one's own is the only way here

    # -- measuring ------------------------------------------------------------

    @work(thread=True, exclusive=True, group="measure", exit_on_error=False)
    def measure(self) -> Estimate:
        return self.engine.backups.estimate()

    def show_plan(self, plan: Estimate) -> None:
        self.plan = plan
        self.query_one("#parts", Static).update(parts_table(plan))
        optional = self.query_one("#optional", Vertical)
        for index, part in enumerate(p for p in plan.parts if p.optional):
            optional.mount(IncludeBox(f"Include {part.label} ({human_bytes(part.size)}) in the backup", part.included,
                                      id=f"optional-{index}", name=part.label),
                           Static(f"from {part.where}", classes="where"))  # fmt: skip
        self.show_space()
        if not isinstance(self.focused, Input):
            self.query_one("#take" if plan.fits else "#path").focus()

    def show_space(self) -> None:
        assert self.plan is not None
        self.query_one("#space", Static).update(space_text(self.plan))
        take = self.query_one("#take", Button)
        take.disabled = not self.plan.fits
        if take.disabled and self.focused is take:
            self.query_one("#path", Input).focus()

    @on(Checkbox.Changed)
    def choose(self, event: Checkbox.Changed) -> None:
        assert self.plan is not None
        parts = tuple(
            replace(p, included=event.value) if p.label == event.checkbox.name else p for p in self.plan.parts
        )
        self.plan = replace(self.plan, parts=parts)
        self.show_space()

    def chosen(self) -> set[str]:
        return {box.name for box in self.query(Checkbox) if box.value and box.name}

    # -- taking ---------------------------------------------------------------

    @on(Button.Pressed, "#take")
    def take_pressed(self) -> None:
        self.query_one("#take", Button).disabled = True
        for box in self.query(Checkbox):
            box.disabled = True
        self.status(Text("Taking the backup…", style="bold"))
        self.take(self.chosen())

    @work(thread=True, exclusive=True, group="take", exit_on_error=False)
    def take(self, chosen: set[str]) -> Backup:
        worker = get_current_worker()

        def progress(part: str, done: int, expected: int) -> None:
            if worker.is_cancelled:  # the wizard is quitting: stop the dump, leave nothing that looks finished
                raise BackupError("the backup was stopped: the wizard quit while taking it")
            text = Text(
                f"Taking the backup… {part}: {human_bytes(done)} of about {human_bytes(expected)}", style="bold"
            )
            self.app.call_from_thread(self.status, text)

        return self.engine.backups.take(progress, chosen, measured=self.plan)

    def status(self, text: Text) -> None:
        self.query_one("#status", Static).update(text)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        error = event.worker.error
        message = (
            (error.message + (f" ({error.hint})" if error.hint else ""))
            if isinstance(error, WizardError)
            else str(error)
        )
        if event.worker.group == "measure":
            if event.state == WorkerState.SUCCESS and isinstance(plan := event.worker.result, Estimate):
                self.show_plan(plan)
            elif event.state == WorkerState.ERROR:
                self.query_one("#parts", Static).update(
                    Text(f"Could not measure the backup: {message}", style=STYLE["blocker"].style)
                )
                self.query_one("#take", Button).disabled = False  # taking measures again, and says what fails
        elif event.worker.group == "take":
            if event.state == WorkerState.SUCCESS and isinstance(backup := event.worker.result, Backup):
                self.engine.pass_gate(backup)
                self.post_message(GatePassed())  # the ready screen says where it is
            elif event.state == WorkerState.ERROR:
                self.status(Text(f"The backup failed: {message}", style=STYLE["blocker"].style))
                self.query_one("#take", Button).disabled = self.plan is not None and not self.plan.fits
                for box in self.query(Checkbox):
                    box.disabled = False

    # -- the keys -------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        focused = self.focused
        if action == "take":
            return isinstance(focused, Button) and focused.id == "take" and not focused.disabled
        if action == "next_field":
            return isinstance(focused, Input) and focused.id == "path"
        if action == "declare":
            return isinstance(focused, Input) and focused.id == "typed"
        if action == "toggle_part":
            return isinstance(focused, Checkbox) and not focused.disabled
        return True

    def on_descendant_focus(self) -> None:
        self.refresh_bindings()  # what Enter does follows the focus

    def action_take(self) -> None:
        self.query_one("#take", Button).press()

    def action_toggle_part(self) -> None:
        if isinstance(box := self.focused, Checkbox):
            box.toggle()

    # -- declaring ------------------------------------------------------------

    def action_next_field(self) -> None:
        self.query_one("#typed", Input).focus()

    def action_declare(self) -> None:
        path = self.query_one("#path", Input).value.strip()
        typed = self.query_one("#typed", Input).value
        if not path:
            self.problem("Say where the backup is.")
            self.query_one("#path", Input).focus()
            return
        try:
            self.engine.declare_backup(path, typed)
        except WizardError as exc:
            self.problem(exc.message + (f" ({exc.hint})" if exc.hint else ""))
            return
        self.post_message(GatePassed())

    def problem(self, text: str) -> None:
        """Say what is wrong inside the form, under its fields, and scroll it into view (never a toast over them)."""
        problem = self.query_one("#problem", Static)
        problem.update(Text(text))
        problem.display = bool(text)
        self.call_after_refresh(self.query_one("#declare").scroll_visible, animate=False)
