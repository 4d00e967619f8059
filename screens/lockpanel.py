"""The lock-hang side panel: why the step is silent, who blocks it, and the Restart button."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.message import Message
from textual.widgets import Button, Static

from wizard.lockadvice import explain
from wizard.state import SideJob, StepStatus
from wizard.watchdog import Verdict


class LockPanel(VerticalScroll):
    """Shown while a step that can hang on a lock has gone silent; hidden otherwise."""

    DEFAULT_CSS = """
    LockPanel {
        height: 1fr;
        display: none;
        &.-shown { display: block; }
        #restart { margin-top: 1; width: auto; }
    }
    """

    class RestartPressed(Message):
        pass

    def __init__(self, app_server: str, **kwargs):
        super().__init__(**kwargs)
        self.app_server = app_server

    def compose(self) -> ComposeResult:
        yield Static(id="lock-text")
        yield Button(f"Restart {self.app_server}", id="restart", variant="warning")

    def show(self, verdict: Verdict | None, job: SideJob | None, can_restart: bool) -> None:
        lines = explain(verdict, self.app_server) if verdict else []
        self.set_class(bool(lines) or job is not None, "-shown")
        text = Text()
        if verdict is not None and verdict.kind == "lock_wait":
            text.append("Waiting on a database lock\n", style="bold yellow")
        for line in lines:
            text.append(line + "\n")
        if job is not None:
            state = {StepStatus.RUNNING: "restarting…", StepStatus.SUCCEEDED: "restarted",
                     StepStatus.FAILED: f"restart FAILED (exit code {job.run.exit_code})"}.get(job.run.status, job.run.status.value)  # fmt: skip
            text.append(f"\n{job.run.title}: {state}. Its log: {job.run.log}\n", style="bold")
        self.query_one("#lock-text", Static).update(text)
        button = self.query_one("#restart", Button)
        button.display = can_restart and verdict is not None and verdict.kind == "lock_wait"
        button.disabled = job is not None and job.run.status == StepStatus.RUNNING

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.post_message(self.RestartPressed())
