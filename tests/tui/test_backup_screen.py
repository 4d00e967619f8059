"""Pilot tests of the backup screen: what it measures, what the operator chooses, and the gate holding.

Where the gate opens, the ready screen comes next (Enter starts the upgrade), and the site's one step is played
by the stand-in (tests/helpers/fakes.py): it marks that it ran.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from textual.widgets import Button, Checkbox, Input, Static

from wizard.backup import take as backup
from wizard.session.state import StepRecord
from wizard.views.sizes import human_bytes, tree_size

from ..helpers.fakes import FakeSteps
from ..helpers.processes import wait_for
from ..helpers.sites import make_site, step_toml
from ..helpers.tui import on_screen, screen_name, site_app, until

pytestmark = pytest.mark.slow


def indico_like_site(site_root: Path, database_bytes: bytes | None = None):
    """A site whose config names a real SQLite database and an archive folder of 2 MB."""
    database = site_root / "indico.db"
    site_root.mkdir(parents=True, exist_ok=True)
    if database_bytes is None:
        with sqlite3.connect(database) as conn:
            conn.executescript("CREATE TABLE events (id INTEGER PRIMARY KEY); INSERT INTO events VALUES (1), (2);")
    else:
        database.write_bytes(database_bytes)
    archive = site_root / "archive"
    archive.mkdir()
    (archive / "upload.bin").write_bytes(b"x" * 2_000_000)
    config = f"SQLALCHEMY_DATABASE_URI = 'sqlite:///{database}'\nSTORAGE_BACKENDS = {{'default': 'fs:{archive}'}}\n"
    return make_site(site_root, step_toml("one", f"open({str(site_root / 'ran')!r}, 'w')"), app_config=config)


class MarksItRan(FakeSteps):
    """The stand-in for the site's one step: it creates ``ran`` in the site's folder, as the real step's argv does."""

    def __init__(self, site_root: Path):
        super().__init__()
        self.site_root = site_root

    def launch(self, record: StepRecord, key: str) -> None:
        (self.site_root / "ran").touch()
        super().launch(record, key)


def size(path: Path) -> str:
    return human_bytes(tree_size(path))


async def to_backup_screen(pilot, app) -> None:
    await until(pilot, lambda: screen_name(app) == "DetectScreen" and app.screen.plan, what="detection")
    await pilot.press("c")
    await until(pilot, lambda: screen_name(app) == "BackupScreen" and app.screen.plan, what="the backup's measure")


async def start_from_the_ready_screen(pilot, app) -> None:
    await until(pilot, on_screen(app, "ReadyScreen"), what="the backup, then the ready screen")
    assert (app.engine.session.steps[0].status, app.engine.session.steps[0].attempts) == ("pending", 0)
    await pilot.press("enter")
    await until(pilot, on_screen(app, "DoneScreen"), what="the one step")


async def test_the_archive_is_offered_with_its_size_and_taken_when_chosen(site_root):
    site = indico_like_site(site_root)
    app = site_app(site, processes=MarksItRan(site_root))
    async with app.run_test(size=(80, 24)) as pilot:
        await to_backup_screen(pilot, app)
        box = app.screen.query_one(Checkbox)
        assert "archive-default (1.9 MiB)" in str(box.label) and box.value is False
        assert "Left out: archive-default (1.9 MiB)" in str(app.screen.query_one("#space").render())
        assert app.screen.focused is app.screen.query_one("#take")
        box.value = True
        await pilot.pause(0.1)
        assert "Left out" not in str(app.screen.query_one("#space").render())
        app.screen.query_one("#take", Button).press()
        await start_from_the_ready_screen(pilot, app)
    taken = app.engine.session.backup
    assert taken.kind == "taken" and any(line.startswith("archive-default (") for line in taken.contents)
    assert (Path(taken.path) / "files" / "archive-default.tar.gz").is_file() and (site_root / "ran").exists()


async def test_not_enough_space_closes_the_take_button_and_says_the_numbers(site_root, monkeypatch):
    monkeypatch.setattr(backup, "free_space", lambda _: 10 * 1024**2)
    app = site_app(indico_like_site(site_root))
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: screen_name(app) == "DetectScreen" and app.screen.plan, what="detection")
        await pilot.press("c")
        await until(pilot, on_screen(app, "NotesScreen"), what="the pre-flight warning")  # said before the gate
        assert [note.id for note in app.engine.session.notes] == ["check-disk-backup"]
        await pilot.press("space", "c")
        await until(pilot, lambda: screen_name(app) == "BackupScreen" and app.screen.plan, what="the backup's measure")
        space = str(app.screen.query_one("#space").render())
        assert "10.0 MiB free" in space and "Not enough: free" in space
        assert app.screen.query_one("#take", Button).disabled
        assert app.screen.focused is app.screen.query_one("#path")  # declaring one's own is the way left
        assert app.engine.session.backup is None and not list(site_root.rglob("wizard-*"))


async def test_a_backup_that_fails_keeps_the_gate_closed_and_can_be_tried_again(site_root):
    app = site_app(indico_like_site(site_root, database_bytes=b"this is not a database " * 200))
    async with app.run_test(size=(80, 24)) as pilot:
        await to_backup_screen(pilot, app)
        app.screen.query_one("#take", Button).press()
        await until(
            pilot, lambda: "The backup failed" in str(app.screen.query_one("#status").render()), what="the failure"
        )
        assert "not a database" in str(app.screen.query_one("#status").render())
        assert screen_name(app) == "BackupScreen" and app.engine.session.backup is None
        assert not app.screen.query_one("#take", Button).disabled and not (site_root / "ran").exists()


async def test_quitting_while_the_backup_runs_stops_the_dump_and_leaves_nothing_that_looks_finished(
    site_root, monkeypatch
):
    import psutil

    from wizard.backup.dumps import sqlite as sqlite_dump
    from wizard.backup.dumps.common import stream_to_file

    def slow_dump(db, folder, expected, progress=None):  # a dump client that keeps writing for a minute
        stream_to_file(["sh", "-c", "while true; do printf x; sleep 0.1; done"], {"PATH": "/usr/bin:/bin"},
                       folder / "slow.dump", expected, progress, "slow-dump")  # fmt: skip
        raise AssertionError("the slow dump was meant to be stopped")

    monkeypatch.setattr(sqlite_dump, "dump", slow_dump)
    app = site_app(indico_like_site(site_root))
    async with app.run_test(size=(80, 24)) as pilot:
        await to_backup_screen(pilot, app)
        app.screen.query_one("#take", Button).press()
        await until(pilot, lambda: list(site_root.rglob("slow.dump")), what="the dump to start")
        await pilot.press("ctrl+q")
    still_writing = [
        p for p in psutil.process_iter(["cmdline"]) if "while true; do printf x" in " ".join(p.info["cmdline"] or [])
    ]
    for proc in still_writing:
        try:
            proc.wait(timeout=5)
        except psutil.TimeoutExpired:
            raise AssertionError(f"the dump client {proc.pid} was left running") from None
    # The worker thread renames the folder once its client is stopped; the app may have closed a moment before.
    wait_for(
        lambda: list((site_root / "state").rglob("incomplete-wizard-*")),
        timeout=10,
        what="the folder marked incomplete",
    )
    assert not [p for p in (site_root / "state").rglob("wizard-*") if p.is_dir()] and app.engine.session.backup is None


async def test_unfinished_backups_are_named_with_their_size_and_left_for_the_operator(site_root):
    site = indico_like_site(site_root)
    backups = site.state / site.name / "backups"
    killed = backups / f"wizard-{site.name}-20261101-000000-abcd"  # as a wizard killed while dumping leaves it
    killed.mkdir(parents=True)
    (killed / backup.UNFINISHED).write_text(backup.unfinished_text(site.name))
    (killed / "indico.db").write_bytes(b"x" * 300_000)
    failed = backups / f"incomplete-wizard-{site.name}-20261102-000000-abcd"
    failed.mkdir()
    (failed / backup.UNFINISHED).write_text(backup.unfinished_text(site.name))
    theirs = backups / "wizard-other-20261101-000000-abcd"  # another instance's, in a shared backup_dir
    theirs.mkdir()
    (theirs / backup.UNFINISHED).write_text(backup.unfinished_text("other"))
    app = site_app(site, processes=MarksItRan(site_root))
    async with app.run_test(size=(80, 24)) as pilot:
        await to_backup_screen(pilot, app)
        shown = str(app.screen.query_one("#unfinished").render())
        # another instance's is not listed
        assert shown.splitlines() == [
            "Not usable backups (unfinished); yours to remove, the wizard never will:",
            f"  {failed} ({size(failed)})",
            f"  {killed} ({size(killed)})",
        ]
        assert app.screen.focused is app.screen.query_one("#take")
        app.screen.query_one("#take", Button).press()
        await start_from_the_ready_screen(pilot, app)
    assert killed.is_dir() and failed.is_dir() and theirs.is_dir() and app.engine.session.backup.kind == "taken"


async def test_no_unfinished_backups_no_line(site_root):
    app = site_app(indico_like_site(site_root))
    async with app.run_test(size=(80, 24)) as pilot:
        await to_backup_screen(pilot, app)
        assert not app.screen.query("#unfinished")


def mark(box: Checkbox) -> str:
    """The checkbox as the terminal shows it, without colour: its mark between the half blocks."""
    return box.render().plain[:3]


async def test_the_archive_checkbox_shows_an_x_only_when_the_archive_goes_in(site_root):
    app = site_app(indico_like_site(site_root))
    async with app.run_test(size=(80, 24)) as pilot:
        await to_backup_screen(pilot, app)
        box = app.screen.query_one(Checkbox)
        assert box.value is False and mark(box) == "▐ ▌"  # left out: no X
        assert "archive-default" in str(app.screen.query_one("#space").render())  # and the line below says so
        box.focus()
        await pilot.press("space")
        await until(pilot, lambda: box.value, what="space to include the archive")
        assert mark(box) == "▐X▌" and "Left out" not in str(app.screen.query_one("#space").render())
        await pilot.press("space")
        await until(pilot, lambda: not box.value, what="space to leave it out again")
        assert mark(box) == "▐ ▌" and "Left out: archive-default" in str(app.screen.query_one("#space").render())


def footer_keys(app) -> dict[str, str]:
    """What the footer offers: key -> description, the bindings shown for the focused widget and the screen."""
    return {key: b.binding.description for key, b in app.screen.active_bindings.items() if b.binding.show}


async def test_every_key_that_works_is_in_the_footer_and_follows_the_focus(site_root):
    app = site_app(indico_like_site(site_root))
    async with app.run_test(size=(80, 24)) as pilot:
        await to_backup_screen(pilot, app)
        screen = app.screen
        assert screen.focused is screen.query_one("#take")
        assert footer_keys(app) == {"enter": "Take the backup", "tab": "Move", "ctrl+q": "Quit"}
        screen.query_one(Checkbox).focus()
        checkbox_keys = {"space": "Include / leave out", "tab": "Move", "ctrl+q": "Quit"}
        await until(pilot, lambda: footer_keys(app) == checkbox_keys, what="the checkbox's keys in the footer")
        screen.query_one("#path", Input).focus()
        path_keys = {"enter": "Next field", "tab": "Move", "ctrl+q": "Quit"}
        await until(pilot, lambda: footer_keys(app) == path_keys, what="the path field's keys in the footer")
        await pilot.press(*"/no where")
        assert screen.query_one("#path", Input).value == "/no where"  # space and letters still type
        await pilot.press("enter")
        assert screen.focused is screen.query_one("#typed")
        assert footer_keys(app) == {"enter": "Confirm your backup", "tab": "Move", "ctrl+q": "Quit"}
        await pilot.press("shift+tab")
        assert screen.focused is screen.query_one("#path")
        expected = [("⏎", "Next field"), ("tab ⇧tab", "Move"), ("^q", "Quit"), ("^p", "palette")]

        def painted() -> list[tuple[str, str]]:
            return [(key.key_display, key.description) for key in screen.query("FooterKey")]

        await until(pilot, lambda: painted() == expected, what=f"the footer painted as {expected}")


async def test_a_refused_declaration_is_said_inside_the_form_and_covers_nothing(site_root):
    app = site_app(indico_like_site(site_root))
    async with app.run_test(size=(80, 24)) as pilot:
        await to_backup_screen(pilot, app)
        screen = app.screen
        problem = screen.query_one("#problem", Static)
        assert not problem.display  # nothing to say yet: no blank line
        screen.query_one("#path", Input).value = str(site_root / "nowhere")
        screen.query_one("#typed", Input).focus()
        await pilot.press(*app.engine.instance.name, "enter")
        await until(pilot, lambda: problem.display, what="the problem to be said")
        assert "does not exist" in str(problem.render()) and app.engine.session.backup is None
        assert problem.parent is screen.query_one("#declare")  # in the form, under its fields
        assert not screen.query("Toast")  # no toast over the fields
        shown = (problem, screen.query_one("#path"), screen.query_one("#typed"))

        def inside(widget) -> bool:
            seen = widget.region.intersection(screen.query_one("#body").region)
            return seen == widget.region and seen.bottom <= 23

        await until(pilot, lambda: all(inside(widget) for widget in shown),
                    what="the problem and both fields inside the 80x24 screen")  # fmt: skip
        screen.query_one("#path", Input).value = str(site_root)
        screen.query_one("#typed", Input).focus()
        await pilot.press("enter")
        await until(pilot, on_screen(app, "ReadyScreen"), what="the declared backup, then the ready screen")
        assert app.engine.session.backup.kind == "declared"
