"""A step's counted progress, read from real-looking output: alembic, Django, pip, the demo's programs."""

from __future__ import annotations

import sqlite3
import sys
import time

import pytest

from steps import load_recipe
from wizard.demo import programs
from wizard.demo.catalog import CORE, PLUGIN, SCHEMA, install_metadata
from wizard.execution.progress import StepProgress, kinds_for
from wizard.host.schema import SchemaState
from wizard.planning.plan import build_plan
from wizard.session.state import Session, StepRecord

from ..helpers.planning import INDICO_UNITS, PRETALX_UNITS, found, instance

ALEMBIC = "INFO  [alembic.runtime.migration]"

# indico db upgrade, 3.2.5 -> 3.2.9 (../shared/reference/indico-lab-run.md)
INDICO_CORE = [
    f"{ALEMBIC} Context impl PostgresqlImpl.",
    f"{ALEMBIC} Will assume transactional DDL.",
    f"{ALEMBIC} Running upgrade 5d05eda06776 -> 9b3fc740b722, Fix user name_format values",
    f"{ALEMBIC} Running upgrade 9b3fc740b722 -> aba7935f9226, Add is_event_not_happening to EventLabel",
]
# indico db --all-plugins upgrade, stdout and stderr interleaved (the same document)
INDICO_PLUGINS = [
    "skipping plugin 'payment_manual' (no migrations folder)",
    "skipping plugin 'previewer_code' (no migrations folder)",
    "executing command for plugin 'livesync'",
    f"{ALEMBIC} Running upgrade  -> aa0dbc6c14aa, Create tables",
    f"{ALEMBIC} Running upgrade aa0dbc6c14aa -> 6ef9616e57cb, Add note_id and update constraints",
    f"{ALEMBIC} Running upgrade 6ef9616e57cb -> d8e65cb6160d, Add attachment_id to queue",
    f"{ALEMBIC} Running upgrade d8e65cb6160d -> 02a78555cdcb, Add location_changed change type",
    f"{ALEMBIC} Running upgrade 02a78555cdcb -> 330e32d26232, Add undeleted change type",
    f"{ALEMBIC} Running upgrade 330e32d26232 -> ff1323696f67, Add published/unpublished change types",
    "executing command for plugin 'citadel'",
    f"{ALEMBIC} Running upgrade  -> 0cf18be7ade1, Add mapping table",
    "skipping plugin 'vc_zoom' (no migrations folder)",
]
# python -m pretalx migrate on 2025.2.2 (../shared/reference/pretalx-upgrade.md)
PRETALX_MIGRATE = [
    "System check identified some issues:",
    "WARNINGS:",
    "?: (pretalx.W001) There is no Celery task runner configured.",
    "Operations to perform:",
    "  Apply all migrations: auth, authtoken, common, contenttypes, event, mail, person, schedule, sessions, submission",
    "Running migrations:",
    "  Applying submission.0078_submissioncomment... OK",
    "  Applying person.0033_usereventpreferences... OK",
    "  Applying submission.0087_question_limit_teams... OK",
]
# pip 23.2 upgrading packaging and installing requests, from a local index and PyPI (run here)
PIP_OUTPUT = [
    "Looking in indexes: https://pypi.org/simple, file:///opt/pypi/simple",
    "Looking in links: /opt/wheels",
    "Requirement already satisfied: packaging in ./venv/lib/python3.11/site-packages (23.1)",
    "Collecting packaging",
    "  Downloading packaging-26.4-py3-none-any.whl (140 kB)",
    "     ━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━ 140.0/140.0 kB 89.3 MB/s eta 0:00:00",
    "Processing /opt/pypi/files/requests-2.34.2-py3-none-any.whl",
    "Collecting charset_normalizer<4,>=2 (from requests)",
    "  Downloading charset_normalizer-3.5.3-cp311-cp311-manylinux_2_28_x86_64.whl (263 kB)",
    "Processing /opt/pypi/files/idna-3.20-py3-none-any.whl (from requests)",
    "Processing /opt/pypi/files/urllib3-2.8.0-py3-none-any.whl (from requests)",
    "Collecting certifi>=2023.5.7 (from requests)",
    "  Downloading certifi-2026.10.19.post1-py3-none-any.whl (134 kB)",
    "Installing collected packages: urllib3, packaging, idna, charset_normalizer, certifi, requests",
    "  Attempting uninstall: packaging",
    "    Found existing installation: packaging 23.1",
    "    Uninstalling packaging-23.1:",
    "      Successfully uninstalled packaging-23.1",
    "Successfully installed certifi-2026.10.19.post1 charset_normalizer-3.5.3 idna-3.20 packaging-26.4 "
    + "requests-2.34.2 urllib3-2.8.0",
]


def texts(progress: StepProgress, lines: list[str]) -> list[str]:
    """The text after each line that changed it, fed one line a batch."""
    return [progress.text for line in lines if progress.feed([line])]


def test_alembic_counts_each_migration_as_it_starts_and_applied_once_the_step_succeeded():
    progress = StepProgress(total=2)
    assert progress.text == ""
    assert texts(progress, INDICO_CORE) == ["migration 1 of 2", "migration 2 of 2"]
    assert progress.end(True) and progress.text == "2 of 2 migrations applied"


def test_alembic_without_a_total_and_a_failed_step():
    progress = StepProgress()
    assert progress.feed(INDICO_CORE) and progress.text == "migration 2"
    assert progress.end(False) and progress.text == "stopped at migration 2"
    single = StepProgress()
    single.feed(INDICO_CORE[:3])
    single.end(True)
    assert single.text == "1 migration applied"


def test_alembic_plugins_name_the_plugin_whose_migrations_run():
    progress = StepProgress(total=7)
    assert texts(progress, INDICO_PLUGINS) == [
        *(f"migration {n} of 7, plugin livesync" for n in range(1, 7)),
        "migration 7 of 7, plugin citadel",
    ]
    progress.end(True)
    assert progress.text == "7 of 7 migrations applied"


def test_a_count_past_its_total_drops_the_total():
    # A plugin without a version table yet is not in the total: the count goes past it.
    progress = StepProgress(total=6)
    progress.feed(INDICO_PLUGINS)
    assert progress.text == "migration 7, plugin citadel"
    progress.end(True)
    assert progress.text == "7 migrations applied"


def test_the_total_can_come_after_the_lines():
    progress = StepProgress()
    progress.feed(INDICO_CORE[:3])
    assert progress.text == "migration 1"
    progress.total = 2
    assert progress.total == 2 and progress.text == "migration 1 of 2"
    progress.total = None
    assert progress.text == "migration 1"


def test_django_counts_each_ok_against_the_planned_count():
    progress = StepProgress(total=24)
    assert texts(progress, PRETALX_MIGRATE) == [f"{n} of 24 migrations applied" for n in (1, 2, 3)]
    assert not progress.end(True) and progress.text == "3 of 24 migrations applied"
    alone = StepProgress()
    alone.feed(PRETALX_MIGRATE[:7])
    assert alone.text == "1 migration applied"
    alone.feed(PRETALX_MIGRATE[7:])
    assert alone.text == "3 migrations applied"


def test_django_shows_the_migration_in_progress_and_where_it_stopped():
    progress = StepProgress(total=3)
    # A warning written between the name and its OK leaves the name alone on its line; the OK follows.
    progress.feed(["  Applying submission.0078_submissioncomment...", "RuntimeWarning: naive datetime"])
    assert progress.text == "0 of 3 migrations applied, applying submission.0078_submissioncomment"
    assert progress.feed([" OK"]) and progress.text == "1 of 3 migrations applied"
    progress.feed(["  Applying person.0033_usereventpreferences... OK (0.012s)"])
    assert progress.text == "2 of 3 migrations applied"
    progress.feed(["  Applying submission.0087_question_limit_teams...Traceback (most recent call last):"])
    assert progress.text == "2 of 3 migrations applied, applying submission.0087_question_limit_teams"
    progress.feed(['  File "/venv/lib/python3.11/site-packages/django/db/backends/utils.py", line 89'])
    assert (
        progress.end(False)
        and progress.text == "2 of 3 migrations applied, stopped in submission.0087_question_limit_teams"
    )


def test_pip_collects_then_installs_then_says_what_it_installed():
    progress = StepProgress()
    assert texts(progress, PIP_OUTPUT) == [
        *(f"pip: collected {n} package{'s' if n > 1 else ''}" for n in range(1, 7)),
        "pip: installing 6 packages",
        "pip: installed 6 packages",
    ]


def test_pip_as_the_pretalx_reference_shows_it():
    lines = [
        "Requirement already satisfied: pretalx in ./venv/lib/python3.11/site-packages (2024.3.1)",
        "Collecting pretalx",
        "  Downloading pretalx-2025.2.2-py3-none-any.whl (4.8 MB)",
        "Collecting beautifulsoup4~=4.14.0 (from beautifulsoup4[lxml]~=4.14.0->pretalx)",
        "Collecting Beautifulsoup4==4.14.2 (from beautifulsoup4[lxml]~=4.14.0->pretalx)",  # the resolver again
    ]
    progress = StepProgress()
    progress.feed(lines)
    assert progress.text == "pip: collected 2 packages"
    progress.feed(["Successfully installed Django-5.2.19 pretalx-2025.2.2 whitenoise-6.11.0 zxcvbn-4.5.0"])
    assert progress.text == "pip: installed 4 packages"
    # a second pip run in the same step is counted afresh
    progress.feed(["Collecting six"])
    assert progress.text == "pip: collected 1 package"


def test_lines_that_merely_mention_the_words_are_not_counted():
    progress = StepProgress()
    mentions = [
        "",
        "   ",
        "note: Collecting packaging is what pip does first",
        "  Collecting indented is not pip's own line",
        "WARNING: Installing collected packages: is quoted here",
        "echo Successfully installed nothing",
        "Running upgrade 1 -> 2, said by something that is not alembic",
        "If the output stops after a 'Running upgrade' line, uWSGI is probably holding that table",
        "Each 'Applying ... OK' line is one migration done.",
        "Processing the request",  # no path, no file: not pip
        "  Unapplying submission.0078_submissioncomment... OK",
        "Installing collected packages: a, b",  # pip names what it collected first: nothing was
    ]
    assert not progress.feed(mentions) and progress.text == "" and progress.kind is None
    assert not any(progress.feed([line]) for line in mentions) and progress.text == ""
    assert not progress.feed([]) and not progress.end(True) and progress.text == ""


def test_feed_says_only_when_the_text_changed():
    progress = StepProgress()
    assert progress.feed(["Collecting six"])
    assert not progress.feed(["  Downloading six-1.17.0-py2.py3-none-any.whl (11 kB)", "Collecting six"])
    assert not progress.feed(["Requirement already satisfied: packaging in ./venv (26.4)"])


def test_a_step_counts_only_its_own_kind():
    assert kinds_for("core") == kinds_for("plugins") == ("alembic",)
    assert kinds_for("all") == ("django",) and kinds_for(None) == ("pip",)
    migrate = StepProgress.for_step(StepRecord(id="migrate", title="m", argv=["x"], migrates="all"), total=24)
    assert not migrate.feed(["Collecting six", f"{ALEMBIC} Running upgrade a -> b, x"]) and migrate.text == ""
    assert migrate.feed(PRETALX_MIGRATE) and migrate.text == "3 of 24 migrations applied"
    pip = StepProgress.for_step(StepRecord(id="pip-core", title="p", argv=["x"]))
    assert not pip.feed(PRETALX_MIGRATE + INDICO_CORE) and pip.feed(PIP_OUTPUT)


@pytest.mark.parametrize("kinds", ["every kind", "pip only"])
def test_a_flood_of_ordinary_lines_costs_next_to_nothing(kinds):
    lines = [
        f"2026-01-01 12:00:{i % 60:02d} webpack: built chunk {i} of the static assets in 12 ms" for i in range(100_000)
    ]
    progress = StepProgress() if kinds == "every kind" else StepProgress(kinds=("pip",))
    started = time.perf_counter()
    changed = [progress.feed(lines[i : i + 1000]) for i in range(0, len(lines), 1000)]
    elapsed = time.perf_counter() - started
    assert not any(changed) and progress.text == ""
    assert elapsed < 0.5, f"100,000 lines took {elapsed:.3f} s"  # about 0.01 s here; generous for a loaded CI
    # a countable line at the very end of a flood is still found
    assert progress.feed([*lines[:999], "Collecting indico==3.3.12"]) and progress.text == "pip: collected 1 package"


def test_the_demo_programs_output_is_counted(tmp_path, capsys):
    venv = tmp_path / "venv"
    (venv / "lib" / f"python3.{sys.version_info.minor}" / "site-packages").mkdir(parents=True)
    install_metadata(venv, CORE, "3.2.5")
    install_metadata(venv, PLUGIN, "3.2.1")
    assert programs.main(["--pace", "0", "pip-install", "--venv", str(venv), f"{CORE}==3.2.9"]) == 0
    pip = StepProgress.for_step(load_recipe("demo").steps[1])
    assert texts(pip, capsys.readouterr().out.splitlines()) == [
        "pip: collected 1 package", "pip: collected 2 packages", "pip: collected 3 packages",
        "pip: collected 4 packages", "pip: installing 4 packages", "pip: installed 4 packages",
    ]  # fmt: skip

    database = tmp_path / "indico.sqlite3"
    with sqlite3.connect(database) as conn:
        conn.executescript(SCHEMA)
    conn.close()
    steps = {step.id: step for step in load_recipe("demo").steps}
    for step_id, argv in (("db-upgrade", []), ("db-upgrade-plugins", ["--plugins"])):
        assert programs.main(["--pace", "0", "db-upgrade", "--database", str(database), *argv]) == 0
        progress = StepProgress.for_step(steps[step_id], total=2)
        plugin = ", plugin livesync" if argv else ""
        assert texts(progress, capsys.readouterr().out.splitlines()) == [
            f"migration 1 of 2{plugin}",
            f"migration 2 of 2{plugin}",
        ]
        assert progress.end(True) and progress.text == "2 of 2 migrations applied"


def test_the_plan_carries_what_a_step_migrates():
    pending = SchemaState("core at aba7935f9226, 54 migration(s) to apply", "warning", pending=True)
    plan = build_plan(
        load_recipe("indico"), instance("indico"), found("3.3.14", "3.3.14", schema=pending), INDICO_UNITS
    )
    assert {step.id: step.migrates for step in plan.steps if step.migrates} == {
        "db-upgrade": "core",
        "db-upgrade-plugins": "plugins",
    }
    plan = build_plan(load_recipe("pretalx"), instance("pretalx"), found("2025.1.0", "2025.2.2"), PRETALX_UNITS)
    assert {step.id: step.migrates for step in plan.steps if step.migrates} == {"migrate": "all"}


def test_a_session_saved_before_the_field_existed_still_loads():
    record = StepRecord(id="db-upgrade", title="Upgrade", argv=["indico", "db", "upgrade"], migrates="core")
    saved = record.model_dump(mode="json")
    assert saved["migrates"] == "core"
    del saved["migrates"]
    assert StepRecord.model_validate(saved).migrates is None
    session = Session(id="s1", instance="main", recipe="indico", steps=[record])
    assert Session.model_validate_json(session.model_dump_json()).steps[0].migrates == "core"


def test_the_schema_state_counts_what_each_step_applies():
    counted = SchemaState("core at a, 2 migration(s) to apply", "warning", pending=True,
                          counts={"core": 2, "plugins": 3, "all": 5})  # fmt: skip
    assert [counted.pending_count(which) for which in ("core", "plugins", "all")] == [2, 3, 5]
    assert SchemaState("not read: timeout", "warning").pending_count("core") is None
    # detection's own comparisons are unchanged by the counts
    assert counted == SchemaState("core at a, 2 migration(s) to apply", "warning", pending=True)
