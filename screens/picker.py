"""Which installation to upgrade, when the instances file names several."""

from __future__ import annotations

from pathlib import Path

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, OptionList, Static
from textual.widgets.option_list import Option

from wizard.config.instance import Instance

from .messages import InstancePicked
from .widgets import ChoiceList, TitleBar


class PickerScreen(Screen):
    CSS_PATH = Path(__file__).with_name("picker.tcss")
    BINDINGS = [Binding("q", "app.quit_wizard", "Quit")]

    def __init__(self, instances: dict[str, Instance]):
        super().__init__()
        self.instances = instances

    def compose(self) -> ComposeResult:
        yield TitleBar()
        yield Static(
            "This host has several instances. Each has its own database and session: "
            "pick the one to upgrade (↑↓, Enter).",
            classes="intro",
        )
        options = [
            Option(f"{name}  ({instance.recipe}, venv {instance.venv})", id=name)
            for name, instance in self.instances.items()
        ]
        yield ChoiceList(*options, id="instances", classes="panel")
        yield Footer(compact=True)

    @on(OptionList.OptionSelected, "#instances")
    def picked(self, event: OptionList.OptionSelected) -> None:
        if event.option.id is not None:  # every option is made with its instance's name as id
            self.post_message(InstancePicked(event.option.id))
