"""The run screen at 80 and 120 columns: every log line whole, the steps one key away, the count above the log."""

from __future__ import annotations

from rich.cells import cell_len
from textual.app import App, ComposeResult

from screens.logpane import CONTINUED, LogPane, wrap_line
from screens.widgets import NowLine, StepList

from ..helpers.fakes import Attempt, FakeSteps
from ..helpers.sites import make_site, step_toml
from ..helpers.tui import on_screen, site_app, straight_to_run, until

ALEMBIC = (
    "INFO  [alembic.runtime.migration] Running upgrade 9b3fc740b722 -> aba7935f9226, "
    "Add is_event_not_happening to EventLabel"
)


def test_a_long_line_wraps_at_a_space_and_loses_nothing():
    rows = wrap_line(ALEMBIC, 76)
    assert rows[0] == "INFO  [alembic.runtime.migration] Running upgrade 9b3fc740b722 ->"
    assert rows[1] == CONTINUED + "aba7935f9226, Add is_event_not_happening to EventLabel"
    assert all(len(row) <= 76 for row in rows)
    assert " ".join([rows[0], *(row[len(CONTINUED) :] for row in rows[1:])]) == ALEMBIC


def test_a_word_longer_than_a_row_is_cut_at_the_width():
    word = "x" * 100
    rows = wrap_line(word, 40)
    assert [len(row) for row in rows] == [40, 40, 24] and "".join(row.lstrip() for row in rows) == word


def test_a_long_path_breaks_after_a_slash():
    path = "Processing /var/cache/wheelhouse/pretalx/django_compressor-4.5.1-py2.py3-none-any.whl"
    rows = wrap_line(path, 40)
    assert rows[:2] == ["Processing", CONTINUED + "/var/cache/wheelhouse/pretalx/"]
    assert all(len(row) <= 40 for row in rows) and "".join(row.strip() for row in rows[1:]) == path.split()[1]


def test_an_indented_line_continues_under_its_own_indent():
    line = "  Applying common.0007_alter_globalsettings_settingsstore_unique_together... OK"
    assert wrap_line(line, 76) == [
        "  Applying common.0007_alter_globalsettings_settingsstore_unique_together...",
        "    OK",  # two more than Django's own indent: part of the line above, not a line of its own
    ]
    assert wrap_line("      " + "x" * 30, 20)[0] == "      " + "x" * 14  # never broken inside the indentation


def test_wide_characters_and_tabs_fit_the_width():
    line = "Ergebnis:\t" + "数据库迁移完成 " * 12
    rows = wrap_line(line, 30)
    assert all(cell_len(row) <= 30 for row in rows)
    assert "".join(row.removeprefix(CONTINUED) for row in rows).replace(" ", "") == line.expandtabs().replace(" ", "")


class PaneApp(App):
    def compose(self) -> ComposeResult:
        yield LogPane(100, id="log")


async def test_the_pane_wraps_to_its_width_and_again_when_it_changes():
    app = PaneApp()
    async with app.run_test(size=(80, 24)) as pilot:
        pane = app.query_one(LogPane)
        pane.add([ALEMBIC, "", "short"])
        await pilot.pause()
        assert pane.wrap_width == 79  # the width less the scrollbar's column, kept whether shown or not
        assert list(pane.given) == [ALEMBIC, "", "short"]  # the step's own lines, kept as they came
        assert len(pane.lines) == 4 and all(cell_len(row) <= 79 for row in pane.lines)
        await pilot.resize_terminal(40, 24)
        await until(pilot, lambda: pane.wrap_width == 39, what="the pane at its new width")
        assert len(pane.lines) > 4 and all(cell_len(row) <= 39 for row in pane.lines)
        assert " ".join(list(pane.lines)[:-2]).split() == ALEMBIC.split()  # broken at spaces only: every word whole


async def test_at_80_columns_the_log_takes_the_width_and_v_shows_the_steps(site_root):
    long_line = "x" * 30 + " the end of a line far wider than the pane " + "y" * 60
    site = make_site(site_root, step_toml("one", "print('one')") + step_toml("two", "print('two')"))
    fake = FakeSteps({"one": Attempt([long_line], 4)})
    app = site_app(site, processes=fake)
    async with app.run_test(size=(80, 24)) as pilot:
        await straight_to_run(pilot, app, site_root)
        screen = app.screen
        await until(pilot, lambda: screen.check_action("retry", ()), what="the decision after the failure")
        pane = screen.query_one(LogPane)
        assert pane.region.width == 80 and not screen.query_one("#side").display
        assert long_line in pane.given and all(cell_len(row) <= pane.wrap_width for row in pane.lines)
        now = screen.query_one(NowLine).plain
        assert now.startswith("1/2 ") and "It failed (exit code 4): r run it again" in now
        keys = {binding.key for _, binding, enabled, _ in screen.active_bindings.values() if enabled}
        assert {"r", "s", "a", "v", "pageup", "q"} <= keys and "f" not in keys  # nothing runs: nothing to follow

        await pilot.press("v")
        assert screen.query_one("#side").display and not screen.query_one("#main").display
        steps = screen.query_one(StepList)
        assert steps.has_focus and steps.region.width == 80
        assert str(steps.get_cell("one", "exit")).strip() == "4"
        await pilot.press("down", "enter")  # the second step's log: back to the log, showing it
        assert screen.query_one("#main").display and screen.shown.id == "two"
        await pilot.press("v", "escape")
        assert screen.query_one("#main").display and not screen.has_class("-steps")


async def test_at_120_columns_steps_and_log_are_side_by_side(site_root):
    title = "Migrate the database (2025.1.0 to 2025.2.2)"
    site = make_site(site_root, step_toml("migrate", "print('x')", title=title))
    app = site_app(site, processes=FakeSteps({"migrate": Attempt(["done"], 2)}))
    async with app.run_test(size=(120, 40)) as pilot:
        await straight_to_run(pilot, app, site_root)
        screen = app.screen
        await until(pilot, lambda: screen.check_action("retry", ()), what="the decision after the failure")
        assert screen.query_one("#side").display and screen.query_one(LogPane).display
        assert not screen.check_action("show_steps", ())  # nothing to switch: both are shown
        steps = screen.query_one(StepList)
        assert steps.title_width < len(title) and steps.rows["migrate"].height == 2  # wrapped: the version not cut


async def test_the_count_of_migrations_shows_above_the_log(site_root):
    lines = [f"  Applying app.{n:04d}_change... OK" for n in range(1, 4)] + ["  Applying app.0004_last..."]
    site = make_site(site_root, step_toml("migrate", "print('x')", migrates="all") + step_toml("next", "print(1)"))
    app = site_app(site, processes=FakeSteps({"migrate": Attempt(lines, 1)}))
    async with app.run_test(size=(80, 24)) as pilot:
        await straight_to_run(pilot, app, site_root)
        await until(pilot, on_screen(app, "RunScreen"))
        screen = app.screen
        await until(pilot, lambda: screen.check_action("retry", ()), what="the decision after the failure")
        now = screen.query_one(NowLine).plain.splitlines()
        choices = "It failed (exit code 1): r run it again · s skip it, saying why · a stop here"
        assert now[1:] == ["3 migrations applied, stopped in app.0004_last", choices]
        await pilot.press("v", "down", "enter")  # another step's log, then back to the failed one's
        assert screen.shown.id == "next" and screen.query_one(NowLine).plain.splitlines()[1:] == []
        await pilot.press("f")
        assert screen.shown.id == "migrate" and "3 migrations applied" in screen.query_one(NowLine).plain


async def test_the_command_palette_offers_what_the_screen_s_keys_do(site_root):
    site = make_site(site_root, step_toml("one", "print('one')"))
    app = site_app(site, processes=FakeSteps({"one": Attempt(["no"], 3)}))
    async with app.run_test(size=(80, 24)) as pilot:
        await straight_to_run(pilot, app, site_root)
        screen = app.screen
        await until(pilot, lambda: screen.check_action("retry", ()), what="the decision after the failure")
        titles = [command.title for command in app.get_system_commands(screen)]
        assert titles[:5] == ["Retry", "Skip", "Abort", "Roll back", "Steps"] and titles[-1] == "Quit"
        assert "Restart the app server" not in titles  # not on offer: nothing waits on a lock
        await pilot.press("ctrl+p")
        await until(pilot, lambda: type(app.screen).__name__ == "CommandPalette", what="the command palette")
        await pilot.press(*"skip", "enter")
        await until(
            pilot, lambda: type(app.screen).__name__ == "ReasonDialog", what="the skip dialog, from the palette"
        )


async def test_b_after_a_failure_says_when_there_is_nothing_to_take_back_and_esc_returns(site_root):
    """The failed step's b, when the failed step changed nothing (the venv holds the recorded set, no migration
    ran): the rollback screen says there is nothing to take back and offers no Enter; Esc returns to the failure."""
    site = make_site(site_root, step_toml("one", "print('one')"))
    app = site_app(site, processes=FakeSteps({"one": Attempt(["no"], 3)}))
    async with app.run_test(size=(80, 24)) as pilot:
        await straight_to_run(pilot, app, site_root)
        await until(pilot, lambda: app.screen.check_action("roll_back", ()), what="the decision after the failure")
        await pilot.press("b")

        def said() -> str:
            screen = app.screen
            return str(screen.query_one("#plan").render()) if type(screen).__name__ == "RollbackScreen" else ""

        await until(pilot, lambda: "There is no way back" in said(), what="the rollback screen's answer")
        assert "already holds exactly the packages recorded before the upgrade" in " ".join(said().split())
        assert not app.screen.check_action("roll_back", ()) and not app.screen.check_action("keep_database", ())
        await pilot.press("escape")
        await until(pilot, lambda: type(app.screen).__name__ == "RunScreen", what="the run screen again")
        session = app.engine.session
        assert not session.is_rollback and session.step("one").status == "failed"
        await until(pilot, lambda: app.screen.check_action("retry", ()), what="the decision offered again")
