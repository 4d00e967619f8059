"""Which installation to upgrade, when the instances file names several: the host as a table.

Each instance with where its saved session stands (read from its state file, no lock taken: the instance
itself is opened once picked) and the last health check; below, the venvs the instances share.
"""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from wizard.config.instance import Instance
from wizard.errors import StateError
from wizard.session.state import Session
from wizard.session.store import StateStore
from wizard.views.host import host_rows, venv_groups

from .messages import InstancePicked, VenvPicked
from .widgets import TitleBar


def saved_sessions(instances: dict[str, Instance], state_root: Path) -> dict[str, Session | str | None]:
    """Each instance's saved session, None, or why it cannot be read (the wizard tells more once it is picked)."""
    sessions: dict[str, Session | str | None] = {}
    for name in instances:
        try:
            sessions[name] = StateStore(state_root, name).load()
        except StateError as exc:
            sessions[name] = exc.message
    return sessions


class PickerScreen(Screen):
    CSS_PATH = Path(__file__).with_name("picker.tcss")
    BINDINGS = [Binding("q", "app.quit_wizard", "Quit")]

    def __init__(self, instances: dict[str, Instance], state_root: Path, under_way: str | None = None):
        """``under_way``: between the instances of a shared venv's upgrade, what comes next (the intro says it)."""
        super().__init__()
        self.instances = instances
        self.state_root = state_root
        self.under_way = under_way
        self.groups = {f"venv:{venv}": tuple(names) for venv, names in venv_groups(instances).items() if len(names) > 1}

    def compose(self) -> ComposeResult:
        yield TitleBar()
        intro = ("This host has several instances. Each has its own database and session: pick the one to work on, "
                 "or all on a shared venv (↑↓, Enter).")  # fmt: skip
        if self.under_way:
            intro = f"Upgrading the instances on a shared venv together; {self.under_way}. Enter goes on."
        yield Static(intro, classes="intro")
        table: DataTable[Text] = DataTable(id="instances", cursor_type="row", classes="panel")
        table.add_column("instance")
        table.add_column("recipe")
        table.add_column("session")
        table.add_column("now")
        for row in host_rows(self.instances, saved_sessions(self.instances, self.state_root)):
            style = "red" if row.session.startswith("unreadable") or "failed" in row.now else ""
            table.add_row(Text(row.instance, style="bold"), Text(row.recipe), Text(row.session, style=style),
                          Text(row.now, style=style), key=row.instance)  # fmt: skip
        for key, group in self.groups.items():
            table.add_row(Text("all on its venv", style="bold yellow"), Text(""), Text(" + ".join(group) + ", together"),
                          Text("under way" if self.under_way else ""), key=key)  # fmt: skip
        yield table
        venvs = Text()
        for venv, names in venv_groups(self.instances).items():
            shared = len(names) > 1
            venvs.append(f"{venv}: ", style="bold")
            venvs.append(", ".join(names) + (" (shared: its code changes under all of them)" if shared else "") + "\n",
                         style="yellow" if shared else "")  # fmt: skip
        venvs.rstrip()
        box = Static(venvs, id="venvs", classes="panel")
        box.border_title = "Virtualenvs"
        yield box
        yield Footer(compact=True)

    def on_mount(self) -> None:
        if self.under_way and self.groups:  # the cursor on the shared venv being upgraded: Enter goes on
            table = self.query_one("#instances", DataTable)
            table.move_cursor(row=table.get_row_index(next(iter(self.groups))), animate=False)

    @on(DataTable.RowSelected, "#instances")
    def picked(self, event: DataTable.RowSelected) -> None:
        key = event.row_key.value
        if key in self.groups:
            self.post_message(VenvPicked(self.groups[key]))
        elif key is not None:  # every other row is keyed by its instance's name
            self.post_message(InstancePicked(key))
