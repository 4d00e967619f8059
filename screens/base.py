"""What the screens that work on a session share: the Engine they are given, and its session."""

from __future__ import annotations

from textual.screen import Screen

from wizard.session.engine import Engine
from wizard.session.state import Session


class EngineScreen(Screen):
    """A screen given the instance's Engine when it is made (the App never lends it otherwise)."""

    def __init__(self, engine: Engine) -> None:
        super().__init__()
        self.engine = engine

    @property
    def session(self) -> Session:
        """The session this screen is shown for (only shown once there is one)."""
        session = self.engine.session
        assert session is not None, f"{type(self).__name__} is shown only for a session"
        return session
