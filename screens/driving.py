"""Between the driver's thread and the run screen: its events as messages, and a limit on lines in flight."""

from __future__ import annotations

import threading
from collections.abc import Callable

from textual.message import Message

from wizard.execution.events import Event

MAX_PENDING_LINES = 4_000  # lines posted and not yet written: the driver waits beyond this (a few chunks: fewer lines in flight, less memory held)


class Driven(Message):
    """One event of the driver, posted from its thread."""

    def __init__(self, event: Event) -> None:
        super().__init__()
        self.event = event


class Backlog:
    """Lines posted to the screen and not yet written: the driver's thread waits while there are too many."""

    def __init__(self) -> None:
        self.pending = 0
        self.room = threading.Condition()

    def add(self, count: int, stopping: Callable[[], bool]) -> None:
        with self.room:
            while self.pending > MAX_PENDING_LINES and not stopping():
                self.room.wait(0.5)
            self.pending += count

    def written(self, count: int) -> None:
        with self.room:
            self.pending -= count
            self.room.notify_all()
