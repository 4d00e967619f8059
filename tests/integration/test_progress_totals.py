"""How many migrations a step has ahead, read from a real database and the installed code (pending_total)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

from steps.models import SchemaCheck, StepSpec
from wizard.config.context import InstanceContext
from wizard.config.dbconf import Database
from wizard.config.instance import load_instances, pick_instance
from wizard.demo.catalog import CORE, CORE_REVISIONS, PLUGIN, TARGET_VERSION, installed_packages, site_packages
from wizard.demo.sandbox import INSTANCE, build
from wizard.execution.progress import StepProgress, pending_total
from wizard.host.schema import SchemaState, alembic_state
from wizard.session.state import StepRecord

from ..helpers.sites import PYTHON, make_site, step_toml, toml_str


def open_context(instances: Path, name: str) -> InstanceContext:
    return InstanceContext.open(pick_instance(load_instances(instances), name))


def ship_scripts(venv: Path, revisions: list[str]) -> None:
    """The alembic scripts a release of the demo package would ship: a chain of these revisions."""
    folder = site_packages(venv) / "indico_demo" / "migrations" / "versions"
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.py"):
        old.unlink()
    for down, revision in zip([None, *revisions], revisions, strict=False):
        (folder / f"{revision}_step.py").write_text(f"revision = {revision!r}\ndown_revision = {down!r}\n")


def demo_step(context: InstanceContext, step_id: str) -> StepSpec:
    return next(step for step in context.recipe.steps if step.id == step_id)


def run_demo_program(*args: str) -> list[str]:
    done = subprocess.run([PYTHON, "-m", "wizard.demo.programs", "--pace", "0", *args],
                          capture_output=True, text=True, timeout=60, check=True)  # fmt: skip
    return (done.stdout + done.stderr).splitlines()


def test_the_demo_counts_its_pending_revisions_before_and_after_the_new_version(tmp_path):
    folder = tmp_path / "demo sandbox"
    context = open_context(build(folder, pace=0), INSTANCE)
    venv = folder / "venv"
    db_upgrade, plugins = demo_step(context, "db-upgrade"), demo_step(context, "db-upgrade-plugins")
    assert pending_total(context, demo_step(context, "pip-core")) is None  # it applies no migrations
    # The installed release ships its scripts up to the database's revision: nothing pending yet.
    assert pending_total(context, db_upgrade) == 0
    assert pending_total(context, plugins) == 0

    # The new version (the demo's own pip-install writes its scripts): the two revisions it brings.
    run_demo_program("pip-install", "--venv", str(venv), f"{CORE}=={TARGET_VERSION}", f"{PLUGIN}==3.2.2")
    assert installed_packages(venv)[CORE] == TARGET_VERSION
    total = pending_total(context, db_upgrade)
    record = StepRecord(id="db-upgrade", title="Upgrade", argv=["x"], migrates="core")
    assert total == pending_total(context, record) == 2
    assert pending_total(context, plugins) == 2

    progress = StepProgress.for_step(db_upgrade)
    progress.total = total  # as the screen does with StepStarting's count
    for line in run_demo_program("db-upgrade", "--database", str(folder / "indico.sqlite3")):
        progress.feed([line])
    assert progress.text == "migration 2 of 2"
    progress.end(True)
    assert progress.text == "2 of 2 migrations applied"
    assert pending_total(context, db_upgrade) == 0


def test_no_answer_is_none_and_never_an_error(tmp_path):
    folder = tmp_path / "demo sandbox"
    instances = build(folder, pace=0)
    ship_scripts(folder / "venv", [revision for revision, _message, _sql in CORE_REVISIONS])
    context = open_context(instances, INSTANCE)
    db_upgrade = demo_step(context, "db-upgrade")
    assert pending_total(context, db_upgrade) == 2
    (folder / "indico.sqlite3").rename(folder / "elsewhere.sqlite3")  # the database cannot be opened
    assert pending_total(context, db_upgrade) is None
    (folder / "elsewhere.sqlite3").rename(folder / "indico.sqlite3")
    for python in (folder / "venv" / "bin").glob("python*"):
        python.unlink()  # the venv's Python is gone
    assert pending_total(context, db_upgrade) is None


def test_alembic_counts_core_and_plugins_apart(tmp_path):
    root = tmp_path / "site-packages"
    for folder, chain in (("app/migrations/versions", ["aaa", "bbb", "ccc"]), ("app_live/migrations", ["x1", "y2"])):
        (root / folder).mkdir(parents=True)
        for down, revision in zip([None, *chain], chain, strict=False):
            (root / folder / f"{revision}.py").write_text(f"revision = {revision!r}\ndown_revision = {down!r}\n")
    check = SchemaCheck(kind="alembic", versions="app/migrations/versions", plugin_versions="app_{name}/migrations")

    def state(core: str, **plugins: str) -> SchemaState:
        path = tmp_path / f"{core}-{'-'.join(plugins.values())}.sqlite3"
        with sqlite3.connect(path) as conn:
            for table, revision in {"alembic_version": core, **plugins}.items():
                conn.execute(f"CREATE TABLE {table} (version_num TEXT NOT NULL)")
                conn.execute(f"INSERT INTO {table} VALUES (?)", (revision,))
        conn.close()
        return alembic_state(check, Database("sqlite", str(path)), root)

    found = state("aaa", alembic_version_plugin_live="x1")
    assert found.text == "core at aaa, 2 migration(s) to apply; plugin live at x1, 1 migration(s) to apply"
    assert [found.pending_count(which) for which in ("core", "plugins", "all")] == [2, 1, 3]
    assert state("ccc").counts == {"core": 0, "plugins": 0, "all": 0}  # no plugin tables: none to apply
    # A plugin at a revision the code does not know, or whose scripts are not there: its count is not known.
    for plugins in ({"alembic_version_plugin_live": "z9"}, {"alembic_version_plugin_gone": "x1"}):
        found = state("bbb", **plugins)
        assert [found.pending_count(which) for which in ("core", "plugins", "all")] == [1, None, None]
    assert state("nope").counts == {"plugins": 0}  # the core at a revision the code does not know


def django_site(root: Path, showmigrations: str):
    schema_check = (
        '[schema_check]\nkind = "django"\n'
        f'argv = [{toml_str(sys.executable)}, "-c", {toml_str(showmigrations)}]\n\n'
    )  # fmt: skip
    steps = step_toml("migrate", "print('  Applying base.0002_x... OK')", migrates="all")
    return make_site(root, schema_check + steps)


def test_django_counts_what_showmigrations_marks_to_apply(tmp_path):
    plan = "[X]  base.0001_initial\n[ ]  base.0002_x\n[ ]  submission.0078_submissioncomment"
    site = django_site(tmp_path / "site", f"print({plan!r})")
    context = open_context(site.config, site.name)
    assert pending_total(context, context.recipe.steps[0]) == 2

    broken = django_site(tmp_path / "broken", "raise SystemExit('no database configured')")
    context = open_context(broken.config, broken.name)
    assert pending_total(context, context.recipe.steps[0]) is None
