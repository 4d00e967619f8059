"""The state folder under hostile or broken conditions: planted links, open folders, foreign or odd session files."""

from __future__ import annotations

import errno
import json
import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from wizard.config.context import InstanceContext
from wizard.config.instance import load_instances
from wizard.errors import StateError
from wizard.session.engine import Engine
from wizard.session.state import Session, StepRecord, StepStatus
from wizard.session.store import StateStore, write_atomic

from ..helpers.sites import make_site, run_cli, step_toml

ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: a folder owned by another user")


def site_with_state(site_root):
    site = make_site(site_root, step_toml("one", "print('one ran')"))
    site.session_file.parent.mkdir(parents=True)
    return site


def session_json(**changes) -> bytes:
    session = Session(id="s1", instance="site", recipe="site", steps=[StepRecord(id="one", title="One", argv=["true"])])
    return session.model_copy(update=changes).model_dump_json(indent=2).encode()


def test_new_state_folders_are_made_private_whatever_the_umask(tmp_path):
    old = os.umask(0)
    try:
        store = StateStore(tmp_path / "state", "main")
        store.ensure_dir()
    finally:
        os.umask(old)
    assert stat.S_IMODE(store.dir.parent.stat().st_mode) == 0o711  # names can be looked up, not listed
    assert stat.S_IMODE(store.dir.stat().st_mode) == 0o700


@pytest.mark.parametrize("where", ["state folder", "instance folder"])
def test_a_folder_others_can_write_is_refused(site_root, where):
    site = site_with_state(site_root)
    folder = site.state if where == "state folder" else site.state / site.name
    folder.chmod(0o777)
    result = site.cli("run", "--yes", "--backup-done", str(site_root))
    assert result.returncode == 2, result.stderr
    assert f"{folder} can be written by other users (mode 0777)" in result.stderr
    assert "chmod go-w" in result.stderr and "Traceback" not in result.stderr
    assert not (site.state / site.name / "runs").exists()


@ROOT_ONLY
def test_a_folder_owned_by_another_user_is_refused(site_root):
    site = site_with_state(site_root)
    os.chown(site.state / site.name, 65534, 65534)
    result = site.cli("status")
    assert result.returncode == 2
    assert "belongs to" in result.stderr and "uid 65534" in result.stderr and "not to root" in result.stderr


def test_a_symlinked_instance_folder_is_refused(site_root, tmp_path):
    site = make_site(site_root, step_toml("one", "print('x')"))
    site.state.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (site.state / site.name).symlink_to(elsewhere)
    result = site.cli("run", "--yes", "--backup-done", str(site_root))
    assert result.returncode == 2 and "is a symbolic link" in result.stderr
    assert list(elsewhere.iterdir()) == []


def test_a_planted_lock_symlink_is_never_followed(site_root, tmp_path):
    site = site_with_state(site_root)
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    (site.state / site.name / "lock").symlink_to(victim)
    result = site.cli("run", "--yes", "--backup-done", str(site_root))
    assert result.returncode == 2, result.stderr
    assert "lock is a symbolic link" in result.stderr
    assert victim.read_text() == "precious\n"


def test_a_planted_hard_link_as_lock_is_refused(tmp_path):
    store = StateStore(tmp_path / "state", "main")
    store.ensure_dir()
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    os.link(victim, store.dir / "lock")
    with pytest.raises(StateError, match="hard link"):
        store.lock().acquire()
    assert victim.read_text() == "precious\n"


def test_a_symlink_in_place_of_the_save_s_temporary_file_is_not_followed(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    target = tmp_path / "session.json"
    (tmp_path / f".session.json.{os.getpid()}.tmp").symlink_to(victim)
    write_atomic(target, b"{}")
    assert victim.read_text() == "precious\n" and target.read_bytes() == b"{}"
    assert not stat.S_ISLNK(target.lstat().st_mode)


FOREIGN = {
    "another instance": (session_json(instance="other"), "belongs to instance 'other', not to 'site'"),
    "another recipe": (session_json(recipe="indico"), "recipe 'indico', but instance 'site' uses 'site'"),
    "an unknown step": (
        session_json(
            steps=[
                StepRecord(id="one", title="One", argv=["true"]),
                StepRecord(id="evil", title="x", argv=["touch", "/tmp/x"]),
            ]
        ),
        "has steps the recipe 'site' does not know: 'evil'",
    ),
}


@pytest.mark.parametrize("kind", FOREIGN)
def test_a_session_of_another_instance_or_recipe_is_refused_and_kept(site_root, kind):
    site = site_with_state(site_root)
    data, said = FOREIGN[kind]
    site.session_file.write_bytes(data)
    result = site.cli("run", "--yes", "--backup-done", str(site_root))
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert said in result.stderr and "left exactly as it is" in result.stderr
    assert site.session_file.read_bytes() == data
    assert not (site.state / site.name / "runs").exists()  # none of its commands ran


def test_steps_of_every_hop_and_of_notes_are_known(tmp_path):
    from steps import load_recipe
    from wizard.session.binding import belongs_to

    recipe = load_recipe("pretalx")
    note_step = next(extra.id for note in recipe.notes for extra in note.steps)
    assert belongs_to("migrate", recipe, [])
    assert belongs_to("migrate-2025.1.0", recipe, ["2025.1.0", "2025.2.2"])
    assert belongs_to(note_step, recipe, [])
    assert not belongs_to("migrate-9.9", recipe, ["2025.1.0"])
    assert not belongs_to("rm-rf", recipe, [])


ODD = {
    "deeply nested": b'{"schema_version": 1, "id": ' + b"[" * 200_000 + b"]" * 200_000 + b"}",
    "a 5,000-digit number": b'{"schema_version": 1, "id": "s1", "attempts": ' + b"9" * 5000 + b"}",
    "schema_version as text": session_json().replace(b'"schema_version": 1', b'"schema_version": "2"'),
    "schema_version true": session_json().replace(b'"schema_version": 1', b'"schema_version": true'),
    "a list": b"[1, 2, 3]",
}


@pytest.mark.parametrize("kind", ODD)
def test_odd_json_is_a_clear_error_with_exit_2(site_root, kind):
    site = site_with_state(site_root)
    site.session_file.write_bytes(ODD[kind])
    for args in (["run", "--yes", "--backup-done", str(site_root)], ["status"]):
        result = site.cli(*args)
        assert result.returncode == 2, (kind, result.stderr[-2000:])
        assert "saved session" in result.stderr and "Traceback" not in result.stderr
        assert len(result.stderr) < 2000  # says what is wrong, does not echo the file
    assert site.session_file.read_bytes() == ODD[kind]


def test_a_failed_save_leaves_no_temporary_file_and_says_the_session_is_intact(tmp_path, monkeypatch):
    store = StateStore(tmp_path / "state", "main")
    store.save(Session(id="s1", instance="main", recipe="site", steps=[]))
    before = store.session_path.read_bytes()
    real_write = os.write

    def full_disk(fd, data):
        if len(data) > 100:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", full_disk)
    with pytest.raises(StateError) as error:
        store.save(
            Session(id="s1", instance="main", recipe="site", steps=[StepRecord(id="a", title="A", argv=["true"])])
        )
    assert str(store.session_path) in error.value.message and "No space left" in error.value.message
    assert "intact" in error.value.hint
    assert store.session_path.read_bytes() == before
    assert [p.name for p in store.dir.iterdir()] == ["session.json"]


def test_stale_temporary_files_of_killed_saves_are_swept_when_the_instance_is_opened(site_root):
    site = site_with_state(site_root)
    stale = [site.state / site.name / ".session.json.99999.tmp", site.state / site.name / ".session-s0.json.4242.tmp"]
    for path in stale:
        path.write_bytes(b"x" * 10_000)
    kept = site.state / site.name / "notes.txt"
    kept.write_text("the operator's own file\n")
    result = site.cli("run", "--yes", "--backup-done", str(site_root))
    assert result.returncode == 0, result.stderr
    assert not any(path.exists() for path in stale) and kept.exists()


def test_a_session_file_others_can_read_is_made_private_and_said(site_root):
    site = site_with_state(site_root)
    data = session_json()
    site.session_file.write_bytes(data)
    site.session_file.chmod(0o644)
    result = site.cli("run", "--yes", "--backup-done", str(site_root))
    assert "could be read by other users (mode 0644); it is private again (0600)" in result.stdout + result.stderr
    assert stat.S_IMODE(site.session_file.stat().st_mode) == 0o600


def _engine(site) -> Engine:
    instance = load_instances(site.config)[site.name]
    return Engine(InstanceContext.open(instance), StateStore(site.state, site.name))


def test_the_takeover_note_says_what_became_of_the_earlier_pid(site_root):
    site = site_with_state(site_root)
    lock = site.state / site.name / "lock"
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    living = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        cases = {
            f"{ended.pid} 12345": "that wizard is no longer running",
            f"{living.pid} 1": "that wizard is gone; its pid now belongs to another process",  # recorded start time differs
            f"{living.pid}": "that wizard is gone from the lock; a process with that pid runs, most likely another program",
        }
        for content, said in cases.items():
            lock.write_text(content + "\n")
            heard: list[str] = []
            engine = _engine(site)
            engine.say = heard.append
            with engine:
                pass
            assert any(said in line for line in heard), (content, heard)
            assert not any("no longer running" in line for line in heard) or said == "that wizard is no longer running"
    finally:
        living.kill()
        living.wait()


def test_a_secrets_file_left_by_a_killed_wizard_is_swept_when_the_instance_is_opened(site_root):
    site = site_with_state(site_root)
    runs = site.state / site.name / "runs" / "20261201-000000-abcd"
    runs.mkdir(parents=True)
    leftover = runs / ".01-one.0123abcd.env"
    leftover.write_text('{"env": {"PGPASSWORD": "hunter22"}, "redact": ["hunter22"]}')
    os.utime(leftover, (0, 0))  # long before: no wrapper is still about to read it
    result = site.cli("run", "--yes", "--backup-done", str(site_root))
    assert result.returncode == 0, result.stderr
    assert not leftover.exists()


@pytest.mark.parametrize("folder", ["runs", "backups"])
def test_a_symlinked_folder_inside_the_instance_folder_is_refused(site_root, tmp_path, folder):
    database = site_root / "app.sqlite3"
    site = make_site(site_root, step_toml("one", "print('one ran')"),
                     app_config=f"SQLALCHEMY_DATABASE_URI = 'sqlite:///{database}'\n")  # fmt: skip
    sqlite3.connect(database).close()
    (site.state / site.name).mkdir(parents=True)
    open_to_all = tmp_path / "open"
    open_to_all.mkdir(mode=0o777)
    (site.state / site.name / folder).symlink_to(open_to_all)
    result = site.cli("run", "--yes")
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"{site.state / site.name / folder} is a symbolic link" in result.stderr
    assert list(open_to_all.iterdir()) == []  # no log, status or secrets file went there


def test_a_group_writable_runs_folder_left_by_an_older_wizard_is_put_right_not_refused(site_root):
    site = site_with_state(site_root)
    runs = site.state / site.name / "runs"
    runs.mkdir()
    os.chmod(runs, 0o775)  # what mkdir(parents=True) gave under a umask of 002
    result = site.cli("run", "--yes", "--backup-done", str(site_root))
    assert result.returncode == 0, result.stdout + result.stderr
    assert (
        f"the folder of step logs {runs} could be written by other users (mode 0775); it no longer can (0755)"
        in result.stdout
    )
    assert stat.S_IMODE(runs.stat().st_mode) == 0o755


def test_a_group_writable_backups_folder_is_put_right_and_plan_still_answers(site_root):
    site = site_with_state(site_root)
    backups = site.state / site.name / "backups"
    backups.mkdir()
    os.chmod(backups, 0o775)
    result = site.cli("plan")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "it no longer can (0755)" in result.stderr and stat.S_IMODE(backups.stat().st_mode) == 0o755


def test_a_full_disk_when_the_run_folder_is_made_is_a_clear_error(tmp_path, monkeypatch):
    store = StateStore(tmp_path / "state", "main")
    store.ensure_dir()
    real_mkdir = Path.mkdir

    def full(self, *args, **kwargs):
        if self.name == "runs":
            raise OSError(errno.ENOSPC, "No space left on device", str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", full)
    with pytest.raises(StateError, match=r"cannot make the folder of step logs .*No space left on device"):
        store.run_dir(Session(id="s1", instance="main", recipe="site", steps=[]))


def test_new_run_folders_are_private(site_root):
    site = site_with_state(site_root)
    old = os.umask(0)
    try:
        assert site.cli("run", "--yes", "--backup-done", str(site_root)).returncode == 0
    finally:
        os.umask(old)
    runs = site.state / site.name / "runs"
    assert {stat.S_IMODE(p.stat().st_mode) for p in [runs, *runs.iterdir()]} == {0o700}


@pytest.mark.parametrize("kind", ["fifo", "folder"])
def test_a_session_file_that_is_not_a_plain_file_is_a_clear_error(site_root, kind):
    site = site_with_state(site_root)
    if kind == "fifo":
        os.mkfifo(site.session_file)
    else:
        site.session_file.mkdir()
    result = site.cli("status", timeout=60)  # a FIFO made it wait for a writer forever
    assert result.returncode == 2
    assert f"the saved session {site.session_file} is not a plain file" in result.stderr


def test_status_says_it_made_a_readable_session_private(site_root):
    site = site_with_state(site_root)
    site.session_file.write_bytes(session_json())
    site.session_file.chmod(0o644)
    result = site.cli("status")
    assert result.returncode == 0 and "it is private again (0600)" in result.stderr


def test_a_session_planned_for_another_venv_is_refused(site_root):
    site = site_with_state(site_root)
    site.session_file.write_bytes(session_json(venv="/srv/elsewhere/.venv"))
    result = site.cli("run", "--yes", "--backup-done", str(site_root))
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"planned for the venv /srv/elsewhere/.venv, but instance 'site' now names {site.venv}" in result.stderr
    assert not (site.state / site.name / "runs").exists()


def test_a_new_session_records_the_venv_and_config_it_was_planned_for(site_root):
    site = make_site(site_root, step_toml("one", "print('one')"), app_config="X = 1\n")
    assert site.cli("run", "--yes", "--backup-done", str(site_root)).returncode == 0
    saved = json.loads(site.session_file.read_text())
    assert saved["venv"] == str(site.venv) and saved["app_config"] == str(site_root / "app.conf")


def test_a_session_planned_for_the_same_venv_spelled_otherwise_is_resumed(site_root, tmp_path):
    site = site_with_state(site_root)
    alias = tmp_path / "alias-venv"
    alias.symlink_to(site.venv)
    site.session_file.write_bytes(session_json(venv=str(alias) + "/"))
    result = site.cli("status")
    assert result.returncode == 0, result.stderr
    result = site.cli("run", "--yes", "--backup-done", str(site_root))
    assert "planned for the venv" not in result.stderr, result.stderr


def test_a_finished_session_does_not_hold_back_a_new_upgrade_with_another_venv(site_root):
    site = site_with_state(site_root)
    finished = Session.model_validate_json(session_json(venv="/srv/the-old/.venv"))
    finished.finished = finished.created
    finished.steps[0].status = StepStatus.SUCCEEDED
    site.session_file.write_text(finished.model_dump_json())
    result = site.cli("run", "--yes", "--new", "--backup-done", str(site_root))
    assert result.returncode == 0, result.stdout + result.stderr
    assert (site.state / site.name / "session-s1.json").exists()  # kept, put aside


def test_status_with_several_instances_and_none_named_shows_the_host(tmp_path):
    """Three instances, two on one venv: `status` names each, which share a venv, and where each stands;
    --json lists every instance's session (null where none is recorded)."""
    from wizard.session.state import Session, StepRecord, StepStatus
    from wizard.session.store import StateStore

    (tmp_path / "shared").mkdir()
    (tmp_path / "alone").mkdir()
    config = tmp_path / "instances.toml"
    config.write_text("".join(f'[instances.{name}]\nrecipe = "indico"\nvenv = "{tmp_path / venv}"\n\n'
                              for name, venv in (("a", "shared"), ("b", "shared/"), ("c", "alone"))))  # fmt: skip
    state = tmp_path / "state"
    StateStore(state, "a").save(Session(id="s-a", instance="a", recipe="indico", installed_version="3.2.6",
                                        target_version="3.2.9", steps=[StepRecord(
                                            id="db-upgrade", title="db", argv=["indico"], attempts=1,
                                            status=StepStatus.FAILED)]))  # fmt: skip
    done = run_cli("--config", str(config), "--state-dir", str(state), "status", timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    text = " ".join(done.stdout.split())
    assert "│ a │ indico │ upgrade 3.2.6 -> 3.2.9, under way │ db-upgrade failed │" in text, done.stdout
    assert "│ b │ indico │ none recorded │" in text and "│ c │ indico │ none recorded │" in text, done.stdout
    assert f"venv {tmp_path / 'shared'}: a, b (shared: its code changes under all of them at once)" in text
    assert f"venv {tmp_path / 'alone'}: c" in text
    listed = json.loads(run_cli("--config", str(config), "--state-dir", str(state), "status", "--json").stdout)
    assert set(listed) == {"a", "b", "c"}
    assert listed["a"]["session"]["id"] == "s-a" and listed["a"]["shares_venv_with"] == ["b"]
    assert listed["c"]["session"] is None and listed["c"]["shares_venv_with"] == []
