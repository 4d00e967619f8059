"""The view layer's rows and their renderings: one look per severity and per step status, the same words everywhere.

No processes: rows are built from hand-made sessions and plans, and rendered by Rich into a string.
"""

from __future__ import annotations

import io
import typing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

from rich.console import Console

from steps import load_recipe
from wizard.config.instance import Instance
from wizard.host.detect import Detection
from wizard.host.services import Unit
from wizard.plainlines import PlainOutput, print_notes, report_done
from wizard.planning.plan import Plan
from wizard.session.state import Backup, Note, Session, StepRecord, StepStatus
from wizard.views import rows as views
from wizard.views.facts import detection_rows
from wizard.views.report import print_plan, print_status
from wizard.views.rows import STATUS, STYLE, going_back_text, note_lines, step_rows, where_lines, where_rows

T0 = datetime(2026, 11, 21, 22, 40, tzinfo=UTC)


def record(step_id: str, status: str, seconds: float | None = None, **more) -> StepRecord:
    step = StepRecord(id=step_id, title=f"Step {step_id}", argv=["echo", step_id], status=StepStatus(status), **more)
    if seconds is not None:
        step.started, step.ended = T0, T0 + timedelta(seconds=seconds)
        step.exit_code = 0 if status == "succeeded" else 3
        step.log = f"/srv/state/main/runs/1/{step_id}.log"
    return step


def session(*steps: StepRecord, backup: Backup | None = None) -> Session:
    return Session(id="1", instance="main", recipe="indico", installed_version="3.2.6", target_version="3.2.9",
                   steps=list(steps), backup=backup)  # fmt: skip


BACKUP = Backup(kind="taken", path="/var/backups/main", at=T0, size=2048, checksum="sha256:" + "ab" * 32,
                restore=["pg_restore --clean /var/backups/main/indico.dump"])  # fmt: skip


def plain(lines) -> list[str]:
    return [line.plain for line in lines]


def rich(render, *args) -> str:
    out = io.StringIO()
    render(Console(file=out, width=200, highlight=False, color_system=None), *args)
    return out.getvalue()


# -- the looks ------------------------------------------------------------------------


def test_one_look_for_every_severity_and_every_step_status():
    assert set(STYLE) == set(typing.get_args(views.Severity))
    assert set(STATUS) == set(StepStatus)
    assert all(look.word == status.value for status, look in STATUS.items())
    assert [STYLE[s].word for s in ("ok", "info", "warning", "blocker")] == ["ok", "info", "warning", "BLOCKER"]


def test_the_run_screen_reads_the_same_glyphs():
    from screens.widgets import GLYPH

    assert GLYPH is STATUS and GLYPH[StepStatus.RUNNING][0] == "▶"


# -- steps ------------------------------------------------------------------------------


def test_step_rows_say_each_result_with_its_time_in_both_forms():
    rows = step_rows([
        record("done", "succeeded", 3.04),
        record("long", "succeeded", 900),
        record("gone", "skipped", 2, skip_reason="the instance has no worker service"),
        record("next", "pending"),
    ])  # fmt: skip
    assert [(r.number, r.result, r.exit, r.elapsed, r.seconds) for r in rows] == [
        (1, "succeeded", "0", "3s", "3.0 s"),
        (2, "succeeded", "0", "15m", "900.0 s"),
        (3, "skipped: the instance has no worker service", "3", "", ""),  # a skipped step has no time
        (4, "pending", "", "", ""),
    ]
    assert rows[0].log == "done.log" and rows[0].look == STATUS[StepStatus.SUCCEEDED]


def test_a_command_shows_the_environment_it_adds_but_not_the_venv():
    step = StepRecord(id="x", title="X", argv=["pretalx", "migrate"], env={"VIRTUAL_ENV": "/v", "A": "b c"})
    assert step_rows([step])[0].command == "A='b c' pretalx migrate"


# -- where things are -----------------------------------------------------------------


def test_where_things_are_is_one_set_of_lines_for_the_done_screen_status_and_run_yes():
    done = session(record("one", "succeeded", 1), backup=BACKUP)
    lines = plain(where_lines(where_rows(done, "/srv/state/main/session.json")))
    assert lines == [
        "logs:    /srv/state/main/runs/1",
        "session: /srv/state/main/session.json",
        "backup:  /var/backups/main",
        f"         {BACKUP.summary()}",
        "restore: pg_restore --clean /var/backups/main/indico.dump",
    ]
    [missing] = where_rows(session(record("one", "pending")))
    assert missing.severity == "warning" and missing.value.startswith("not recorded yet")


def test_run_yes_reports_the_end_as_the_done_screen_does():
    done = session(record("one", "succeeded", 1.5), record("two", "skipped", skip_reason="by hand"), backup=BACKUP)
    stream = io.StringIO()
    engine = SimpleNamespace(session=done, store=SimpleNamespace(session_path=Path("/srv/state/main/session.json")))
    report_done(engine, PlainOutput(stream))
    said = [line.split(" ", 2)[2] for line in stream.getvalue().splitlines()]  # without the time
    assert said == [
        "upgrade of 'main' finished: 3.2.6 -> 3.2.9, 2 steps in 2 s",
        "  one: succeeded, 1.5 s",
        "  two: skipped: by hand",
        *plain(where_lines(where_rows(done, "/srv/state/main/session.json"))),
    ]


def test_status_shows_the_same_rows():
    under_way = session(record("one", "succeeded", 2), record("two", "failed", 1), record("three", "pending"))
    out = rich(print_status, under_way)
    assert "backup:  not recorded yet (no step runs before it is)" in out
    assert "logs:    /srv/state/main/runs/1" in out
    assert "│ 2 │ two   │ failed    │ 3    │ 1.0 s │ two.log │" in out


# -- notes ----------------------------------------------------------------------------


NOTE = Note(id="n", version="3.2.7", severity="warning", title="Celery must stay stopped", text="Until the schema is.",
            way_out="Keep it stopped.")  # fmt: skip


def test_a_note_reads_the_same_in_plan_and_in_run_yes():
    assert plain(note_lines(NOTE)) == ["WARNING (3.2.7) Celery must stay stopped", "  Until the schema is.",
                                       "  way out: Keep it stopped."]  # fmt: skip
    blocker = NOTE.model_copy(update={"severity": "blocker", "version": "", "way_out": ""})
    assert plain(note_lines(blocker)) == ["BLOCKER Celery must stay stopped", "  Until the schema is."]
    stream = io.StringIO()
    print_notes(PlainOutput(stream), [NOTE])
    assert [line.split(" ", 2)[2] for line in stream.getvalue().splitlines()] == plain(note_lines(NOTE))


# -- detection facts ------------------------------------------------------------------


def feature_plan(tmp_path: Path) -> tuple[Instance, Plan]:
    (tmp_path / "venv").mkdir()
    instance = Instance(name="main", recipe="indico", venv=tmp_path / "venv", user="indico")
    found = Detection("2024.3.1", "2025.2.2", "3.11.7", pinned=False, newest_version="2026.1.0",
                      newest_requires_python=">=3.12")  # fmt: skip
    units = [Unit("uwsgi", "indico-uwsgi", "configured", "failed", "FATAL Exited too quickly"),
             Unit("celery", None, "none here")]  # fmt: skip
    notes = [NOTE.model_copy(update={"severity": "blocker"})]
    plan = Plan(load_recipe("indico"), found, [record("pip-core", "pending", safe_to_rerun=True)], notes, units,
                hops=["2025.1.1", "2025.2.2"], needs={"wizard-test-no-such-tool"})  # fmt: skip
    return instance, plan


def test_detection_rows_are_the_same_facts_on_screen_and_in_plan(tmp_path):
    instance, plan = feature_plan(tmp_path)
    screen = {row.name: row for row in detection_rows(instance, plan, "screen")}
    lines = {row.name: row for row in detection_rows(instance, plan, "lines")}
    assert list(screen) == list(lines) == [
        "installed", "target", "newest", "path", "python", "tools", "plugins",
        "uwsgi service", "celery service", "free disk", "os family", "notes",
    ]  # fmt: skip
    for name in screen:
        assert (screen[name].severity, screen[name].hint) == (lines[name].severity, lines[name].hint), name
    same = ("installed", "target", "python", "tools", "plugins", "free disk", "os family", "notes")
    assert all(screen[name].value == lines[name].value for name in same)
    assert screen["target"].screen_value() == "2025.2.2 (what pip would install into this venv)"
    assert screen["tools"].value == "wizard-test-no-such-tool missing" and screen["tools"].severity == "blocker"
    # Where the words differ, each face keeps what its test or snapshot promises.
    assert screen["path"].screen_value() == "2024.3.1 → 2025.1.1 → 2025.2.2 (one feature release at a time)"
    assert lines["path"].value == "2024.3.1 -> 2025.1.1 -> 2025.2.2"
    assert screen["newest"].value == "2026.1.0 (needs Python >=3.12)"
    assert lines["newest"].value == "2026.1.0 (needs Python >=3.12; this venv has 3.11.7)"
    assert screen["uwsgi service"].value == "failed · indico-uwsgi (configured)"
    assert (lines["uwsgi service"].value, lines["uwsgi service"].aside) == (
        "indico-uwsgi  (configured)  failed", "FATAL Exited too quickly"
    )  # fmt: skip
    assert screen["uwsgi service"].severity == "warning" and screen["celery service"].severity == "ok"


def test_plan_prints_the_rows(tmp_path):
    instance, plan = feature_plan(tmp_path)
    out = rich(print_plan, instance, plan)
    said = [" ".join(line.split()) for line in out.splitlines()]
    assert "installed indico 2024.3.1" in said
    assert "target 2025.2.2 (what pip would install into this venv)" in said
    assert "path 2024.3.1 -> 2025.1.1 -> 2025.2.2 (one feature release at a time)" in said
    assert "tools wizard-test-no-such-tool missing" in said
    assert "uwsgi service indico-uwsgi (configured) failed (FATAL Exited too quickly)" in said
    assert "celery service none (the instance has no such service)" in said
    assert "This upgrade:" in said and "BLOCKER (3.2.7) Celery must stay stopped" in said
    assert "way out: Keep it stopped." in said


def test_going_back_names_the_first_step_that_changes_the_database():
    steps = [StepRecord(id="pip", title="Install", argv=["true"]),
             StepRecord(id="skipped", title="Old migrate", argv=["true"], migrates="all", status=StepStatus.SKIPPED),
             StepRecord(id="db", title="Upgrade the database schema", argv=["true"], migrates="core")]  # fmt: skip
    said = going_back_text(steps)
    assert said.startswith("Going back: until step 3 (Upgrade the database schema) starts, the packages recorded")
    assert "from step 3 on, the database must also be restored from the backup" in said
    assert "no step changes the database" in going_back_text(steps[:1])
