"""The database's schema state against the installed migration scripts: SQLite and a real PostgreSQL."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from steps import load_recipe
from steps.models import SchemaCheck
from wizard.config.dbconf import Database
from wizard.host.detect import Detection
from wizard.host.schema import SchemaState, alembic_state
from wizard.planning.plan import build_plan

from ..helpers.pg import PASSWORD, start_postgres, stop_postgres
from ..helpers.planning import INDICO_UNITS, instance

CHECK = SchemaCheck(kind="alembic", versions="app/migrations/versions", plugin_versions="app_{name}/migrations",
                    releases={"bbb111": "1.1"})  # fmt: skip


def write_scripts(folder: Path, chain: list[tuple[str, object]]) -> None:
    """alembic scripts as alembic writes them: a revision and the one(s) it follows."""
    folder.mkdir(parents=True, exist_ok=True)
    for revision, down in chain:
        (folder / f"20260101_0000_{revision}_step.py").write_text(
            f'"""A step"""\nfrom alembic import op\n\nrevision = {revision!r}\ndown_revision = {down!r}\n\n\ndef upgrade():\n    pass\n'
        )


@pytest.fixture
def site_packages(tmp_path) -> Path:
    root = tmp_path / "site-packages"
    # a branch and a merge: aaa -> bbb111 -> ddd, aaa -> ccc -> ddd
    write_scripts(
        root / "app/migrations/versions", [("aaa", None), ("bbb111", "aaa"), ("ccc", "aaa"), ("ddd", ("bbb111", "ccc"))]
    )
    write_scripts(root / "app_live/migrations", [("x1", None), ("y2", "x1")])
    return root


def sqlite_db(path: Path, core: str, live: str | None = None) -> Database:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE alembic_version (version_num TEXT NOT NULL)")
        conn.execute("INSERT INTO alembic_version VALUES (?)", (core,))
        if live:
            conn.execute("CREATE TABLE alembic_version_plugin_live (version_num TEXT NOT NULL)")
            conn.execute("INSERT INTO alembic_version_plugin_live VALUES (?)", (live,))
    return Database("sqlite", str(path))


def test_pending_migrations_are_counted_across_a_merge(tmp_path, site_packages):
    state = alembic_state(CHECK, sqlite_db(tmp_path / "db.sqlite3", "bbb111", "y2"), site_packages)
    assert state.state == "warning" and state.pending and not state.unknown
    assert state.text == "core at bbb111 (the schema of 1.1), 2 migration(s) to apply; plugin live at y2 (head)"


def test_up_to_date(tmp_path, site_packages):
    state = alembic_state(CHECK, sqlite_db(tmp_path / "db.sqlite3", "ddd", "y2"), site_packages)
    assert (
        state.state == "ok" and state.pending is False and state.text == "core at ddd (head); plugin live at y2 (head)"
    )


def test_a_revision_the_code_does_not_know_is_a_blocker(tmp_path, site_packages):
    state = alembic_state(CHECK, sqlite_db(tmp_path / "db.sqlite3", "ddd", "z9-from-a-newer-release"), site_packages)
    assert state.state == "blocker" and state.unknown == ("plugin live at z9-from-a-newer-release",)


def test_no_history_and_no_database(tmp_path, site_packages):
    empty = tmp_path / "empty.sqlite3"
    sqlite3.connect(empty).close()
    assert "no migration history" in alembic_state(CHECK, Database("sqlite", str(empty)), site_packages).text
    missing = alembic_state(CHECK, Database("sqlite", str(tmp_path / "nope.sqlite3")), site_packages)
    assert missing.state == "warning" and missing.text.startswith("not read:")


def test_code_upgraded_but_database_not_plans_the_rest():
    found = Detection("3.3.14", "3.3.14", "3.12.4",
                      schema=SchemaState("core at aba7935f9226, 54 migration(s) to apply", "warning", pending=True))  # fmt: skip
    plan = build_plan(load_recipe("indico"), instance("indico"), found, INDICO_UNITS)
    assert "db-upgrade" in [step.id for step in plan.steps] and plan.notes == []
    found.schema = SchemaState("core at af9d03d7073c (head)", pending=False)
    assert build_plan(load_recipe("indico"), instance("indico"), found, INDICO_UNITS).steps == []


@pytest.mark.slow
def test_revisions_read_from_a_real_postgres(site_packages):
    pg = start_postgres()
    if pg is None:
        pytest.skip("PostgreSQL is not installed (.ci/run installs Debian's postgresql)")
    try:
        pg.sql("CREATE TABLE alembic_version (version_num varchar(32) NOT NULL); INSERT INTO alembic_version VALUES ('ccc');"
               "CREATE TABLE alembic_version_plugin_live (version_num varchar(32) NOT NULL);"
               "INSERT INTO alembic_version_plugin_live VALUES ('x1');")  # fmt: skip
        db = Database("postgresql", pg.dbname, pg.host, pg.port, pg.user, pg.password)
        state = alembic_state(CHECK, db, site_packages)
        assert state.text == "core at ccc, 2 migration(s) to apply; plugin live at x1, 1 migration(s) to apply"
        assert PASSWORD not in state.text
    finally:
        stop_postgres(pg)


def test_django_migrations_are_counted_with_the_instance_environment():
    import sys

    from wizard.host.schema import django_state

    # A stand-in for `pretalx showmigrations --plan` that needs both its plain and its secret settings.
    code = ("import os\nassert os.environ['PRETALX_DATA_DIR'] == '/var/pretalx' and os.environ['PRETALX_DB_PASS'] == 's3cret'\n"
            "print('[X] base.0001\\n[X] base.0002\\n[ ] base.0003')")  # fmt: skip
    state = django_state(
        [sys.executable, "-c", code], {"PRETALX_DATA_DIR": "/var/pretalx"}, {"PRETALX_DB_PASS": "s3cret"}, None
    )
    assert (state.text, state.state, state.pending) == ("1 migration(s) to apply, 2 applied", "warning", True)
    failed = django_state([sys.executable, "-c", "raise SystemExit('no database configured')"], {}, {}, None)
    assert failed.state == "warning" and failed.text == "not read: no database configured"
