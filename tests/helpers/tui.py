"""Pilot helpers: wait for a screen, name it, build the app for a test site, go straight to the run screen."""

from __future__ import annotations

import time

from screens.app import make_app
from wizard.config.instance import load_instances


async def until(pilot, predicate, timeout: float = 60.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            await pilot.pause(0.1)  # let a screen that just arrived finish mounting
            return
        await pilot.pause(0.05)
    raise AssertionError(f"timed out waiting for {what}; screen is {type(pilot.app.screen).__name__}")


def screen_name(app) -> str:
    return type(app.screen).__name__


def on_screen(app, name: str):
    return lambda: screen_name(app) == name


def site_app(site, **kwargs):
    return make_app(load_instances(site.config), site.state, site.name, **kwargs)


async def straight_to_run(pilot, app, site_root) -> None:
    """Plan, declare a backup and open the run screen, through the engine as the screens do."""
    await until(pilot, lambda: screen_name(app) == "DetectScreen" and app.screen.plan)
    app.engine.begin(app.screen.plan)
    for note in app.engine.session.unacknowledged:  # as the operator would, on the notes screen
        app.engine.acknowledge(note.id)
    app.engine.declare_backup(str(site_root), "site")
    app.route()


def text_of(static) -> str:
    """What a Static was last given, as plain text (a Rich group of lines and a grid, too)."""
    import io

    from rich.console import Console

    console = Console(width=200, record=True, file=io.StringIO())
    console.print(static.content)
    return console.export_text()
