"""What a screen tells the App.

Screens are given what they work on (the engine, the instances) when they are
made, and say what happened by posting one of these; the message bubbles from
the screen to the App, the one place that decides which screen comes next and
how the wizard ends.  No screen reads or writes the App's own attributes.
"""

from __future__ import annotations

from textual.message import Message


class RouteNext(Message):
    """The session has moved on (begun, a note acknowledged, the gate passed, a step decided, all done):
    show the screen that fits where it stands now."""


class LeaveWizard(Message):
    """End the wizard with the exit code the session stands at, saying ``text`` (when given) as it goes."""

    def __init__(self, text: str | None = None) -> None:
        super().__init__()
        self.text = text


class Planned(Message):
    """Detection has made its plan; ``blocked``: a blocker stands in the way (leaving now exits 2);
    ``nothing_to_do``: the instance is up to date (no step planned)."""

    def __init__(self, blocked: bool, nothing_to_do: bool = False) -> None:
        super().__init__()
        self.blocked = blocked
        self.nothing_to_do = nothing_to_do


class InstancePicked(Message):
    """The operator chose which instance to upgrade."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name


class PlanAgain(Message):
    """After a finished upgrade: plan a new one from what is installed now."""


class RollbackWanted(Message):
    """The operator asks to take the upgrade back: show what that would do, and ask before anything is done."""


class NotesRead(Message):
    """The operator has read the release notes (every warning acknowledged) and goes on to the backup gate."""


class GatePassed(Message):
    """A backup is recorded: show what will run before anything does (the ready screen)."""


class VenvPicked(Message):
    """The operator chose to upgrade every instance on one shared venv, together, in this order."""

    def __init__(self, names: tuple[str, ...]) -> None:
        super().__init__()
        self.names = names


class BackToHost(Message):
    """Between the instances of a shared venv: show the host table, from which the next one is taken up."""
