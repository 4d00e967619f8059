"""Small modal dialogs: a typed reason, a yes/no question, and a confirmation by typing a word."""

from __future__ import annotations

from pathlib import Path

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Footer, Input, Label, Static


class ReasonDialog(ModalScreen[str | None]):
    """Ask why (a skipped step needs a reason); dismiss with the text, or None on Esc."""

    CSS_PATH = Path(__file__).with_name("dialogs.tcss")
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, question: str):
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.question, classes="question")
            yield Input(placeholder="the reason, e.g. 'done by hand'", id="reason")
            yield Static("Enter to confirm, Esc to cancel", classes="hint")
            yield Static("", classes="error", id="problem")
        yield Footer(compact=True)

    @on(Input.Submitted, "#reason")
    def submitted(self, event: Input.Submitted) -> None:
        if not event.value.strip():
            self.query_one("#problem", Static).update("A reason is needed, so the session says why.")
            return
        self.dismiss(event.value.strip())

    def action_cancel(self) -> None:
        self.dismiss(None)


class TypeToConfirmDialog(ModalScreen[bool]):
    """An action that cannot be taken back: done only once the operator types ``word`` (Esc cancels)."""

    CSS_PATH = Path(__file__).with_name("dialogs.tcss")
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, question: str, word: str):
        super().__init__()
        self.question = question
        self.word = word

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.question, classes="question")
            yield Input(placeholder=f"type {self.word}", id="typed")
            yield Static(f"Type {self.word} and Enter to confirm; Esc to cancel", classes="hint")
            yield Static("", classes="error", id="problem")
        yield Footer(compact=True)

    @on(Input.Submitted, "#typed")
    def submitted(self, event: Input.Submitted) -> None:
        if event.value.strip() != self.word:
            self.query_one("#problem", Static).update(f"That is not {self.word}: type it exactly, or Esc to cancel.")
            return
        self.dismiss(True)

    def action_cancel(self) -> None:
        self.dismiss(False)


class ConfirmDialog(ModalScreen[bool]):
    """A yes/no question, answered with y or n (Esc means no)."""

    CSS_PATH = Path(__file__).with_name("dialogs.tcss")
    BINDINGS = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n", "answer(False)", "No"),
        Binding("escape", "answer(False)", "No", show=False),
    ]

    def __init__(self, question: str, detail: str = ""):
        super().__init__()
        self.question = question
        self.detail = detail

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.question, classes="question")
            if self.detail:
                yield Static(self.detail, classes="detail")
            yield Static("y: yes    n: no", classes="hint")
        yield Footer(compact=True)

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)
