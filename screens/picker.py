"""Which installation to upgrade, when the instances file names several: the host as a table.

Each instance with the release installed and its database's revision (read in a thread, filled in as they
come), the step its saved session stands at (read from its state file, no lock taken: the instance itself is
opened once picked) and what it is doing there or the last health check; a row for all the instances on each
shared venv; below, the venvs.
"""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from wizard.config.instance import Instance
from wizard.errors import StateError
from wizard.host.glance import Glance, glance
from wizard.session.state import Session
from wizard.session.store import StateStore
from wizard.views.host import host_rows, venv_groups
from wizard.views.rows import STYLE

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
        self.looked = False  # every instance's release and database read (look)
        self.groups = {f"venv:{venv}": tuple(names) for venv, names in venv_groups(instances).items() if len(names) > 1}

    def compose(self) -> ComposeResult:
        yield TitleBar()
        intro = ("This host has several instances. Each has its own database and session: pick the one to work on, "
                 "or all on a shared venv (↑↓, Enter).")  # fmt: skip
        if self.under_way:
            intro = f"Upgrading the instances on a shared venv together; {self.under_way}. Enter goes on."
        yield Static(intro, classes="intro")
        table: DataTable[Text] = DataTable(id="instances", cursor_type="row", classes="panel")
        for key, label in (("instance", "instance"), ("release", "release"), ("database", "database"),
                           ("step", "step"), ("status", "status")):  # fmt: skip
            table.add_column(label, key=key)
        for row in host_rows(self.instances, saved_sessions(self.instances, self.state_root)):
            style = "red" if row.status in ("unreadable", "failed", "interrupted") or "NOT" in row.status else ""
            table.add_row(Text(row.instance, style="bold"), Text("…", style="dim"), Text("…", style="dim"),
                          Text(row.step), Text(row.status, style=style), key=row.instance)  # fmt: skip
        for key, group in self.groups.items():
            table.add_row(Text("all on venv", style="bold yellow"), Text(""), Text(""),
                          Text(" + ".join(group), style="yellow"), Text("under way" if self.under_way else ""), key=key)  # fmt: skip
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
        self.look()
        if self.under_way and self.groups:  # the cursor on the shared venv being upgraded: Enter goes on
            table = self.query_one("#instances", DataTable)
            table.move_cursor(row=table.get_row_index(next(iter(self.groups))), animate=False)

    @work(thread=True, exclusive=True, group="glance", exit_on_error=False)
    def look(self) -> None:
        """Each instance's release and database, filled in as they are read (a venv's Python, a query each)."""
        for name, instance in self.instances.items():
            self.app.call_from_thread(self.show_glance, name, glance(instance))
        self.app.call_from_thread(self.looked_at_all)

    def show_glance(self, name: str, seen: Glance) -> None:
        table = self.query_one("#instances", DataTable)
        table.update_cell(name, "release", Text(seen.version), update_width=True)
        table.update_cell(name, "database", Text(seen.database, style=STYLE[seen.state].style), update_width=True)

    def looked_at_all(self) -> None:
        self.looked = True

    @on(DataTable.RowSelected, "#instances")
    def picked(self, event: DataTable.RowSelected) -> None:
        key = event.row_key.value
        if key in self.groups:
            self.post_message(VenvPicked(self.groups[key]))
        elif key is not None:  # every other row is keyed by its instance's name
            self.post_message(InstancePicked(key))
