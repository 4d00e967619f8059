"""The lock-hang side panel: why the step is silent, who blocks it, and the Restart button."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.message import Message
from textual.widgets import Button, Static

from wizard.lockwatch.lockadvice import explain, server_title, summary
from wizard.lockwatch.watchdog import Verdict
from wizard.session.state import SideJob, StepStatus


class LockPanel(VerticalScroll):
    """Shown while a step that can hang on a lock has gone silent; hidden otherwise.  What the operator
    must see and may do comes first (what happens, who blocks, what to do, the button), the why after."""

    DEFAULT_CSS = """
    LockPanel {
        height: auto;
        display: none;
        &.-shown { display: block; }
        #restart { margin: 0 0 1 0; }
    }
    """

    class RestartPressed(Message):
        pass

    def __init__(self, app_server: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.app_server = app_server

    def compose(self) -> ComposeResult:
        yield Static(id="lock-head")
        yield Button(f"Restart {server_title(self.app_server)}", id="restart", variant="warning", compact=True)
        yield Static(id="lock-more")

    def show(self, verdict: Verdict | None, job: SideJob | None, can_restart: bool) -> None:
        lines = explain(verdict, self.app_server) if verdict else []
        head_lines = summary(verdict, self.app_server) if verdict else []
        more = lines[len(head_lines) :]
        if verdict is not None and verdict.kind == "lock_wait" and more:
            head_lines, more = [*head_lines, more[-1]], more[:-1]  # what to do (or that a restart would not help)
        self.set_class(bool(lines) or job is not None, "-shown")
        head = Text()
        if verdict is not None and verdict.kind == "lock_wait":
            head.append("Waiting on a database lock\n", style="bold yellow")
        head.append("\n".join(head_lines))
        if job is not None:
            state = {StepStatus.RUNNING: "restarting…", StepStatus.SUCCEEDED: "restarted; the upgrade carries on once the lock is free",
                     StepStatus.FAILED: f"restart FAILED (exit code {job.run.exit_code})"}.get(job.run.status, job.run.status.value)  # fmt: skip
            head.append(f"\n{job.run.title}: {state}.", style="bold")
        self.query_one("#lock-head", Static).update(head)
        if job is not None:
            more.append(f"Restart log: {job.run.log}")
        self.query_one("#lock-more", Static).update("\n".join(more))
        button = self.query_one("#restart", Button)
        button.display = can_restart and verdict is not None and verdict.restart_would_help
        button.disabled = job is not None and job.run.status == StepStatus.RUNNING

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.post_message(self.RestartPressed())
