"""A shared venv's upgrade as an interactive face walks it: its lock held, its record kept up to date.

The TUI opens one when the operator picks "all on venv" (or an instance of one under way), asks ``stage()``
what comes next, and calls ``make_way`` as it opens each instance. The headless run (together/headless.py)
holds every instance at once and needs none of this.
"""

from __future__ import annotations

from pathlib import Path

from wizard.errors import WizardError
from wizard.planning.shared import Together
from wizard.session.engine import Engine, new_session_id
from wizard.session.state import now
from wizard.session.store import InstanceLock, StateStore
from wizard.together.progress import Stage, in_run, in_the_way, next_stage, refuse_during_rollback
from wizard.together.record import SharedRun, SharedRunStore


class SharedUpgrade:
    def __init__(self, root: Path, store: SharedRunStore, lock: InstanceLock, run: SharedRun):
        self.root, self.store, self.lock, self.run = root, store, lock, run

    @classmethod
    def open(cls, root: Path, venv: Path, names: list[str]) -> SharedUpgrade:
        """Take the venv's lock; go on with its upgrade under way, or record a new one (LockHeld, WizardError)."""
        store = SharedRunStore(root, venv)
        lock = store.lock().acquire()
        try:
            run = store.load()
            if run is not None:
                refuse_during_rollback(run, {name: StateStore(root, name).load() for name in run.sessions})
            if run is not None and run.finished is None and sorted(run.instances) != sorted(names):
                raise WizardError(f"the upgrade of {store.venv} under way is of {', '.join(run.instances)}",
                                  "go on with it from the host table's row of that venv")  # fmt: skip
        except WizardError:
            lock.release()
            raise
        if run is None or run.finished is not None:
            if run is not None:
                store.put_aside(run)
            run = SharedRun(id=new_session_id(), venv=store.venv, instances=names)
            run.note("begun in the interactive wizard")
            store.save(run)
        return cls(root, store, lock, run)

    @property
    def together(self) -> Together:
        return Together(tuple(self.run.instances))

    def stage(self) -> Stage | None:
        """What comes next; the record keeps each session begun, and when every instance is done."""
        run = self.run
        sessions = {name: StateStore(self.root, name).load() for name in run.instances}
        for name, session in sessions.items():
            if session is not None and in_run(run, session) and run.sessions.get(name) != session.id:
                run.sessions[name] = session.id
                self.store.save(run)
        stage = next_stage(run, sessions)
        if stage is None and run.finished is None:
            run.finished = now()
            run.note("every instance on the venv upgraded")
            self.store.save(run)
        return stage

    def nothing_to_do(self, name: str) -> None:
        """The instance was planned and is up to date: the upgrade goes on without it."""
        if name not in self.run.nothing_to_do:
            self.run.nothing_to_do.append(name)
            self.run.note(f"{name}: nothing to do")
            self.store.save(self.run)

    def owns(self, engine: Engine) -> bool:
        """The engine's session is this upgrade's."""
        return in_run(self.run, engine.session) is not None

    def make_way(self, engine: Engine) -> str | None:
        """The instance's own session, when it is not this upgrade's: put aside if no step of it ever ran (a plan,
        perhaps refused for the shared venv), said in the returned sentence; WizardError for one under way."""
        session = engine.session
        standing = in_the_way(self.run, session)
        if session is None or standing == "none":
            return None
        if standing == "under way":
            raise WizardError(f"instance {engine.instance.name!r} has an upgrade of its own under way "
                              f"(session {session.id})", "finish it or abandon it first, alone")  # fmt: skip
        engine.abandon("for the upgrade of the shared venv: no step of it had run")
        return f"{engine.instance.name}'s plan, in which no step had run, was put aside (kept)"

    def close(self) -> None:
        self.lock.release()
