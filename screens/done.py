"""The end: what was done, how long it took, whether the site works now, and where logs, session and backup are.

The health check runs in a thread worker when the screen opens on a session that has none recorded
(right after the upgrade), and again on `c`; its findings are kept with the session.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Footer, Static

from wizard.errors import WizardError
from wizard.health.check import WAIT_SECONDS, check_health
from wizard.health.result import Health
from wizard.rollback.plan import can_roll_back
from wizard.session.engine import Engine
from wizard.support.report import default_path, size_text, write_report
from wizard.views.health import health_grid, verdict_text
from wizard.views.rows import STYLE, step_rows, styled, total_seconds, where_rows

from .base import EngineScreen
from .messages import BackToHost, PlanAgain, RollbackWanted
from .widgets import TitleBar


class CheckAbandoned(Exception):
    """The screen went away while its health check ran."""


class DoneScreen(EngineScreen):
    checking = False  # a health check runs in the worker
    report: str | None = None  # the archive written from this screen, and its size
    check_wait = WAIT_SECONDS  # how long a service or the site may take to come up
    CSS_PATH = Path(__file__).with_name("done.tcss")
    BINDINGS = [
        Binding("c", "check", "Check again"),
        Binding("r", "report", "Report"),
        Binding("b", "roll_back", "Roll back"),
        Binding("n", "new", "New upgrade"),
        Binding("h", "host", "Host table"),
        Binding("q", "app.quit_wizard", "Quit"),
    ]

    def __init__(self, engine: Engine, *, between_instances: bool = False) -> None:
        """``between_instances``: one instance of a shared venv's upgrade is done; the host table leads on."""
        super().__init__(engine)
        self.closing = threading.Event()
        self.between_instances = between_instances

    def compose(self) -> ComposeResult:
        session = self.session
        yield TitleBar()
        yield Static(
            Text(f"The {session.kind} of {session.instance} is finished: {session.installed_version} → "
                 f"{session.target_version}, {len(session.steps)} steps in {total_seconds(session):.0f} s.",
                 style=f"bold {STYLE['ok'].style}"),
            classes="intro",
        )  # fmt: skip
        table: DataTable[Text] = DataTable(id="summary", cursor_type="row", classes="panel")
        table.add_column("", width=1)
        table.add_column("step", width=36)  # "Upgrade the plugins' database tables" whole at 80 columns
        table.add_column("result", width=23)
        table.add_column(Text("time", justify="right"), width=5)
        for row in step_rows(session.steps):
            table.add_row(Text(row.look.glyph, style=row.look.style), Text(row.title),
                          Text(row.result), Text(row.elapsed, justify="right"), height=None)  # a long title or a skip reason wraps  # fmt: skip
        yield table
        with VerticalScroll(id="where", classes="panel"):
            yield Static(id="health")
            yield Static(self.where_things_are(), id="where-text")
        yield Footer(compact=True)

    def where_things_are(self) -> Table:
        """Label and value side by side; a long path or command wraps within the value's column."""
        grid = Table.grid(padding=(0, 1))
        grid.add_column(no_wrap=True)
        grid.add_column(overflow="fold")
        for row in where_rows(self.session, self.engine.store.session_path):
            grid.add_row(Text(f"{row.label}:" if row.label else "", style="bold"), styled(row.value, row.severity))
        if self.report is not None:
            grid.add_row(Text("report:", style="bold"), Text(self.report))
        return grid

    def on_mount(self) -> None:
        health = self.session.health
        if health is None:
            self.action_check()
        else:
            self.show_health(health)

    def show_health(self, health: Health) -> None:
        parts: list[RenderableType] = [verdict_text(health), health_grid(health), Text()]
        if not health.healthy and can_roll_back(self.session):
            parts.append(Text("b takes the upgrade back: it shows the way first, and asks.\n", style="bold"))
        elif not health.healthy and self.session.shared_run is not None and not self.session.is_rollback:
            # No key for it here, so said at once, under the verdict: the instances on a venv go back together.
            parts.insert(1, Text("The instances on this venv go back together: `upgrade-wizard rollback --all` "
                                 "shows the way, and changes nothing until --yes.", style="bold"))  # fmt: skip
        self.query_one("#health", Static).update(Group(*parts))

    def action_check(self) -> None:
        if self.checking:
            return
        self.checking = True
        self.refresh_bindings()
        self.query_one("#health", Static).update(Text("health check: starting…", style="bold"))
        # A daemon thread, not a worker: quitting must never wait for a site that takes a minute to answer.
        threading.Thread(target=self.run_check, name="health-check", daemon=True).start()

    def from_check(self, callback: Callable[..., object], *args: object) -> None:
        with contextlib.suppress(RuntimeError):  # the wizard has closed meanwhile: nothing to show
            self.app.call_from_thread(callback, *args)

    def on_unmount(self) -> None:
        self.closing.set()

    def run_check(self) -> None:
        def say(what: str) -> None:
            if self.closing.is_set():
                raise CheckAbandoned  # the screen is gone: no question more (each one starts processes)
            self.from_check(self.show_progress, what)

        try:
            health = check_health(self.engine.context, self.session, wait=self.check_wait, progress=say)
        except CheckAbandoned:
            return
        except Exception as exc:  # the thread must not die silently: the operator reads why
            self.from_check(self.check_failed, f"{type(exc).__name__}: {exc}")
            return
        self.from_check(self.checked, health)

    def show_progress(self, what: str) -> None:
        if self.is_attached:  # the operator may have left the screen (the host table, between instances)
            self.query_one("#health", Static).update(Text(f"health check: checking {what}…", style="bold"))

    def checked(self, health: Health) -> None:
        self.checking = False
        if self.is_attached:
            self.refresh_bindings()
        if not (self.is_attached and self.engine.is_open):
            return  # the wizard is closing or has moved on: its lock is gone, so the session is left as it is
        self.engine.record_health(health)
        self.show_health(health)

    def check_failed(self, why: str) -> None:
        self.checking = False
        if not self.is_attached:
            return
        self.refresh_bindings()
        self.query_one("#health", Static).update(
            Text.assemble(("health check: could not run: ", "bold red"), why, "\n")
        )

    def action_report(self) -> None:
        self.notify("writing the report archive (secrets masked)…", timeout=4)
        self.write_report()

    @work(thread=True, exclusive=True, group="report", exit_on_error=False)
    def write_report(self) -> None:
        store = self.engine.store
        try:
            reports = store.dir / "reports"
            reports.mkdir(mode=0o700, exist_ok=True)
            target = default_path(reports, store.instance, datetime.now(UTC).astimezone())
            written = write_report(self.engine.context, self.session, store.session_path, target)
        except (WizardError, OSError) as exc:
            why = exc.message if isinstance(exc, WizardError) else str(exc)
            self.app.call_from_thread(self.notify, f"the report could not be written: {why}", severity="error")
            return
        self.app.call_from_thread(self.reported, size_text(written))

    def reported(self, where: str) -> None:
        self.report = where
        self.query_one("#where-text", Static).update(self.where_things_are())
        self.notify("report written: it is listed under where things are", timeout=8)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "roll_back":
            return can_roll_back(self.session)
        if action == "new":
            return not self.between_instances  # one instance of a shared venv is never planned alone
        if action == "host":  # on to the next instance once this one's site is proven (or found) well or not
            return self.between_instances and not self.checking
        return True

    def action_host(self) -> None:
        self.post_message(BackToHost())

    def action_roll_back(self) -> None:
        self.post_message(RollbackWanted())

    def action_new(self) -> None:
        self.post_message(PlanAgain())
