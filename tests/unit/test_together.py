"""The pieces of a shared venv's upgrade that need no running instance: its record, where it stands, the refusal."""

from __future__ import annotations

import json
import os

import pytest

from wizard.config.instance import Instance
from wizard.errors import LockHeld, StateError
from wizard.planning.shared import Together, by_venv, instance_steps, venv_steps
from wizard.session.state import Backup, Session, StepRecord, StepStatus
from wizard.together.progress import Stage, in_the_way, next_stage
from wizard.together.record import SharedRun, SharedRunStore, venv_key


def session(name: str, run: str | None, *, backup: bool = False, done: bool = False, ran: bool = False) -> Session:
    step = StepRecord(id="db-upgrade", title="db", argv=["indico"], attempts=1 if ran else 0,
                      status=StepStatus.SUCCEEDED if ran else StepStatus.PENDING)  # fmt: skip
    made = Session(id=f"s-{name}", instance=name, recipe="indico", shared_run=run, steps=[step])
    if backup:
        made.backup = Backup(kind="declared", path="/var/backups")
    if done:
        from wizard.session.state import now

        made.finished = now()
    return made


def test_every_instance_is_prepared_before_any_runs_then_each_runs_in_order():
    run = SharedRun(id="r1", venv="/opt/venv", instances=["a", "b"])
    assert next_stage(run, {"a": None, "b": None}) == Stage("a", "prepare")
    assert next_stage(run, {"a": session("a", "r1", backup=True), "b": None}) == Stage("b", "prepare")
    # b planned but its gate still closed: b again, even though a is ready to run.
    assert next_stage(run, {"a": session("a", "r1", backup=True), "b": session("b", "r1")}) == Stage("b", "prepare")
    ready = {"a": session("a", "r1", backup=True), "b": session("b", "r1", backup=True)}
    assert next_stage(run, ready) == Stage("a", "run")
    ready["a"] = session("a", "r1", backup=True, done=True)
    assert next_stage(run, ready) == Stage("b", "run")
    ready["b"] = session("b", "r1", backup=True, done=True)
    assert next_stage(run, ready) is None
    # An instance planned with nothing to do (up to date) is passed over.
    run.nothing_to_do.append("a")
    assert next_stage(run, {"a": None, "b": None}) == Stage("b", "prepare")
    assert next_stage(run, {"a": None, "b": session("b", "r1", backup=True, done=True)}) is None
    run.nothing_to_do.clear()
    # A finished session of an earlier run is not this run's: the instance is prepared anew.
    assert next_stage(run, {"a": session("a", "old", backup=True, done=True), "b": None}) == Stage("a", "prepare")


def test_a_session_of_the_instance_s_own_is_put_aside_only_when_no_step_of_it_ran():
    run = SharedRun(id="r1", venv="/opt/venv", instances=["a", "b"])
    assert in_the_way(run, None) == "none"
    assert in_the_way(run, session("a", "r1")) == "none"  # this run's
    assert in_the_way(run, session("a", None, done=True, ran=True)) == "none"  # finished
    assert in_the_way(run, session("a", None)) == "put aside"  # a plan, perhaps refused
    assert in_the_way(run, session("a", None, ran=True)) == "under way"


def test_the_venv_steps_are_the_first_instance_s_and_instances_group_by_real_venv(tmp_path):
    steps = [StepRecord(id="pip-core", title="pip", argv=["pip"], scope="venv"),
             StepRecord(id="db-upgrade", title="db", argv=["indico"])]  # fmt: skip
    assert [s.id for s in venv_steps(steps)] == ["pip-core"] and [s.id for s in instance_steps(steps)] == ["db-upgrade"]
    together = Together(("a", "b", "c"))
    assert together.code_by == "a" and together.leaves_out(["b", "d"]) == ["d"]
    (tmp_path / "venv").mkdir()
    os.symlink(tmp_path / "venv", tmp_path / "link")
    made = [Instance(name=name, recipe="indico", venv=venv) for name, venv in
            (("a", tmp_path / "venv"), ("b", tmp_path / "other"), ("c", tmp_path / "link"))]  # fmt: skip
    assert [[i.name for i in group] for group in by_venv(made)] == [["a", "c"], ["b"]]
    assert venv_key(tmp_path / "link") == venv_key(tmp_path / "venv")


def test_instance_names_may_not_begin_with_a_dot_the_wizard_s_own_folders_do():
    with pytest.raises(ValueError, match="not beginning with"):
        Instance(name=".venvs", recipe="indico", venv="/opt/venv")


def test_the_record_is_saved_private_and_a_damaged_or_foreign_one_is_refused_and_kept(tmp_path):
    root = tmp_path / "state"
    store = SharedRunStore(root, tmp_path / "venv")
    assert store.load() is None
    store.save(SharedRun(id="r1", venv=str(tmp_path / "venv"), instances=["a", "b"]))
    assert oct(store.path.stat().st_mode & 0o777) == "0o600"
    assert store.load().instances == ["a", "b"]

    store.path.write_text("{not json")
    with pytest.raises(StateError, match="is damaged"):
        store.load()
    assert store.path.read_text() == "{not json"  # left as it was

    store.path.write_text(json.dumps({"id": "r2", "venv": "/elsewhere", "instances": ["a", "b"]}))
    with pytest.raises(StateError, match="is of the venv /elsewhere"):
        store.load()


def test_the_venv_lock_names_the_venv_when_held(tmp_path):
    store = SharedRunStore(tmp_path / "state", tmp_path / "venv")
    with store.lock():
        with pytest.raises(LockHeld, match=f"the instances on the shared venv {tmp_path / 'venv'}"):
            SharedRunStore(tmp_path / "state", tmp_path / "venv").lock().acquire()
