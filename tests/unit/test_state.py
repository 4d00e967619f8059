"""The saved session: atomic, private, versioned; never overwritten when it cannot be read."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

import pytest

from wizard.errors import LockHeld, StateError
from wizard.session.state import SCHEMA_VERSION, Session, StepRecord
from wizard.session.store import StateStore

from ..helpers.sites import make_site, step_toml


def sample_session() -> Session:
    return Session(id="s1", instance="main", recipe="indico", steps=[StepRecord(id="a", title="A", argv=["true"])])


def test_save_is_private_and_loads_back(tmp_path):
    store = StateStore(tmp_path / "state", "main")
    session = sample_session()
    store.save(session)
    assert stat.S_IMODE(store.session_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.dir.stat().st_mode) == 0o700
    assert store.load().steps[0].id == "a"
    assert json.loads(store.session_path.read_text())["schema_version"] == SCHEMA_VERSION
    assert [p.name for p in store.dir.iterdir()] == ["session.json"]  # no temp file left behind


def test_put_aside_keeps_the_old_session(tmp_path):
    store = StateStore(tmp_path, "main")
    store.save(sample_session())
    kept = store.put_aside(sample_session())
    assert kept.name == "session-s1.json" and kept.exists()
    assert store.load() is None


BROKEN = {
    "corrupt": b'{"schema_version": 1, "id": "s1", "steps": [{"id": oops}]}',
    "truncated": sample_session().model_dump_json(indent=2).encode()[:120],
    "future": json.dumps({"schema_version": SCHEMA_VERSION + 1, "id": "s1", "anything": "new"}).encode(),
    "wrong shape": json.dumps({"schema_version": 1, "id": "s1", "instance": "main"}).encode(),
    "binary": b"\xff\xfe\x00garbage",
}


@pytest.mark.parametrize("kind", BROKEN)
def test_an_unreadable_session_is_reported_and_left_alone(site_root, kind):
    site = make_site(site_root, step_toml("one", "print('hi')"))
    site.session_file.parent.mkdir(parents=True)
    site.session_file.write_bytes(BROKEN[kind])
    before = site.session_file.stat()
    for args in (["run", "--yes", "--backup-done", str(site_root)], ["status"], ["status", "--json"]):
        result = site.cli(*args)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert "saved session" in result.stderr and "left exactly as it is" in result.stderr
        assert "Traceback" not in result.stderr
    if kind == "future":
        assert "newer upgrade-wizard" in result.stderr
    assert site.session_file.read_bytes() == BROKEN[kind]
    assert site.session_file.stat().st_mtime_ns == before.st_mtime_ns
    assert not (site.state / site.name / "runs").exists()  # no step ran


def test_second_lock_holder_is_refused_with_the_holders_pid(tmp_path):
    store = StateStore(tmp_path, "main")
    with store.lock():
        with pytest.raises(LockHeld) as held:
            store.lock().acquire()
        assert held.value.pid == os.getpid()
        assert held.value.exit_code == 3


def test_a_lock_left_by_a_dead_process_is_taken_over(tmp_path):
    store = StateStore(tmp_path, "main")
    store.ensure_dir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (store.dir / "lock").write_text(f"{dead.pid}\n")
    lock = store.lock().acquire()
    try:
        assert lock.taken_over_from == dead.pid
        assert (store.dir / "lock").read_text().split()[0] == str(os.getpid())
    finally:
        lock.release()
    assert store.lock().acquire().taken_over_from is None  # a clean release leaves no pid behind


def test_state_error_has_exit_code_2():
    assert StateError("x").exit_code == 2
