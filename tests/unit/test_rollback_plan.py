"""The rollback's arithmetic: which freeze lines go back, what is removed, and when it refuses to plan."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from steps import load_recipe
from wizard.backup.take import sha256_of
from wizard.config.dbconf import Database
from wizard.config.instance import Instance
from wizard.errors import StateError, WizardError
from wizard.rollback import database
from wizard.rollback.plan import (
    SharedCode,
    install_arguments,
    migrating_step,
    package_changes,
    refuse_unless_undoable,
    rollback_step_ids,
)
from wizard.session.binding import check_belongs
from wizard.session.packages import pinned_versions, requirement_name
from wizard.session.state import Backup, PackageSet, Session, StepRecord, StepStatus


def test_names_are_read_from_every_form_pip_freeze_writes():
    assert requirement_name("Flask_Login==0.6.3") == "flask-login"
    assert requirement_name("indico-plugin-citadel==3.2.2") == "indico-plugin-citadel"
    assert requirement_name("mylib @ file:///srv/wheels/mylib-1.0-py3-none-any.whl") == "mylib"
    assert requirement_name("-e git+https://example.org/x.git@abc#egg=My.Plugin") == "my-plugin"
    assert requirement_name("# Editable install with no version control (x==1)") is None
    assert requirement_name("") is None


def test_versions_are_read_only_from_pinned_lines():
    lines = ["Flask==2.2.5", "mylib @ file:///srv/mylib-1.0.whl", "-e git+https://example.org/x.git@abc#egg=x"]
    assert pinned_versions(lines) == {"flask": "2.2.5", "mylib": None, "x": None}


def test_each_freeze_line_is_one_argument_and_an_editable_one_two():
    lines = ["indico==3.2.6", "-e git+https://example.org/x.git@abc#egg=x", "# a comment", "  "]
    assert install_arguments(lines) == ["indico==3.2.6", "-e", "git+https://example.org/x.git@abc#egg=x"]


def test_only_what_differs_goes_back_and_what_the_upgrade_added_is_removed():
    recorded = ["indico==3.2.6", "Flask==2.2.5", "pip==24.0", "gone-since==1.0"]
    now = ["indico==3.2.9", "flask==2.2.5", "pip==24.0", "marshmallow-oneofschema==3.1.1"]
    changes = package_changes(recorded, now)
    assert changes.back == ["indico==3.2.6", "gone-since==1.0"]  # Flask == flask: the same, left alone
    assert changes.added == ["marshmallow-oneofschema"]
    assert package_changes(recorded, recorded).none


def session(**fields) -> Session:
    steps = fields.pop("steps", [StepRecord(id="pip-core", title="pip", argv=["pip"], attempts=1,
                                            status=StepStatus.SUCCEEDED)])  # fmt: skip
    return Session(id="s1", instance="main", recipe="indico", steps=steps, **fields)


RECORD = PackageSet(pip="24.0", requirements=["indico==3.2.6"])


@pytest.mark.parametrize(
    ("made", "says"),
    [
        (lambda: None, "there is no upgrade of this instance to take back"),
        (lambda: session(kind="rollback", packages_before=RECORD), "is a rollback already"),
        (lambda: session(steps=[StepRecord(id="pip-core", title="pip", argv=["pip"])], packages_before=RECORD),
         "no step of this upgrade has run"),
        (lambda: session(steps=[StepRecord(id="pip-core", title="pip", argv=["pip"], attempts=1,
                                           status=StepStatus.RUNNING)], packages_before=RECORD), "is still running"),
        (session, "did not record the venv's packages"),
    ],
)  # fmt: skip
def test_what_cannot_be_taken_back_is_refused_with_the_reason(made, says):
    with pytest.raises(WizardError) as refused:
        refuse_unless_undoable(made())
    assert says in refused.value.message


def test_a_shared_venvs_part_is_taken_back_only_with_the_others():
    part = session(shared_run="r1", packages_before=RECORD)
    with pytest.raises(WizardError) as refused:
        refuse_unless_undoable(part)
    assert "part of the upgrade of a shared venv (r1)" in refused.value.message
    assert "rollback --all" in (refused.value.hint or "")
    code = SharedCode("main", RECORD, "3.2.6", puts_back=True)
    assert refuse_unless_undoable(part, code) is part
    # Another instance's part restarts its services under the old code even if no step of it ran (the code
    # changed under it) and whatever it recorded; one still running is refused all the same.
    other = SharedCode("main", RECORD, "3.2.6", puts_back=False)
    idle = session(shared_run="r1", steps=[StepRecord(id="db-upgrade", title="db", argv=["db"])])
    assert refuse_unless_undoable(idle, other) is idle
    running = session(shared_run="r1", steps=[StepRecord(id="db-upgrade", title="db", argv=["db"], attempts=1,
                                                          status=StepStatus.RUNNING)])  # fmt: skip
    with pytest.raises(WizardError, match="still running"):
        refuse_unless_undoable(running, other)


def test_the_first_step_that_ran_a_migration_is_what_makes_the_database_matter():
    steps = [StepRecord(id="pip-core", title="pip", argv=["pip"], attempts=1, status=StepStatus.SUCCEEDED),
             StepRecord(id="db-upgrade", title="db", argv=["indico"], migrates="core", attempts=1,
                        status=StepStatus.FAILED),
             StepRecord(id="db-upgrade-plugins", title="db", argv=["indico"], migrates="plugins")]  # fmt: skip
    assert migrating_step(session(steps=steps)).id == "db-upgrade"
    assert migrating_step(session(steps=steps[:1])) is None


def test_a_saved_rollback_is_this_instances_to_run_and_a_foreign_step_is_refused(tmp_path):
    recipe = load_recipe("indico")
    instance = Instance(name="main", recipe="indico", venv=tmp_path / "venv", config=None)
    services = {"uwsgi": "uwsgi", "celery": "celery"}
    steps = [StepRecord(id=step_id, title=step_id, argv=["true"]) for step_id in sorted(rollback_step_ids(
        session(services=services), recipe))]  # fmt: skip
    rollback = session(kind="rollback", services=services, venv=str(tmp_path / "venv"), steps=steps)
    check_belongs(rollback, instance, recipe, Path("session.json"))
    rollback.steps.append(StepRecord(id="rm-everything", title="rm", argv=["rm", "-rf", "/"]))
    with pytest.raises(StateError, match="rm-everything"):
        check_belongs(rollback, instance, recipe, Path("session.json"))


# -- the database's restore step ---------------------------------------------------------------------------


def taken_backup(tmp_path, name: str) -> Backup:
    folder = tmp_path / "wizard-main-backup"
    folder.mkdir()
    (folder / name).write_bytes(b"PGDMP the dump")
    return Backup(kind="taken", path=str(folder), checksum="sha256:" + sha256_of(folder / name),
                  restore=[f"pg_restore --clean --dbname indico {folder / name}"])  # fmt: skip


def postgres_context(tmp_path):
    db = Database(kind="postgresql", name="indico", host="127.0.0.1", port=5432, user="indico", os_user="indico")
    return SimpleNamespace(database=db, instance=SimpleNamespace(python=tmp_path / "venv" / "bin" / "python"))


def test_postgresql_is_restored_by_the_cluster_superuser_with_the_dump_on_stdin(tmp_path, monkeypatch):
    backup = taken_backup(tmp_path, "indico.dump")
    superuser = Database(kind="postgresql", name="indico", host="/run/postgresql", port=5432, user="postgres",
                         os_user="postgres")  # fmt: skip
    monkeypatch.setattr(database, "cluster_superuser", lambda db: superuser)
    monkeypatch.setattr(database.shutil, "which", lambda tool: f"/usr/bin/{tool}")
    step = database.restore_step(postgres_context(tmp_path), backup)
    assert step.run_as == "root" and step.stdin == str(Path(backup.path) / "indico.dump")
    assert step.argv == ["runuser", "-u", "postgres", "--", "/usr/bin/pg_restore", "--clean", "--if-exists",
                         "--create", "--exit-on-error", "--no-password", "--host=/run/postgresql", "--port=5432",
                         "--username=postgres", "--dbname=template1"]  # fmt: skip


def test_without_the_superuser_the_restore_is_refused_with_the_recorded_command(tmp_path, monkeypatch):
    backup = taken_backup(tmp_path, "indico.dump")
    monkeypatch.setattr(database, "cluster_superuser", lambda db: None)  # not root, or the server is elsewhere
    with pytest.raises(database.CannotRestore) as refused:
        database.restore_step(postgres_context(tmp_path), backup)
    assert "cluster's superuser" in refused.value.message
    assert backup.restore[0] in refused.value.hint and "--keep-database" in refused.value.hint


def test_a_declared_backup_is_never_restored_by_the_wizard(tmp_path):
    with pytest.raises(database.CannotRestore, match="declared by the operator"):
        database.restore_step(postgres_context(tmp_path), Backup(kind="declared", path=str(tmp_path)))
