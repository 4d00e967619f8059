"""Where the upgrade of a shared venv stands, from its record and each instance's session: what comes next.

First every instance is prepared (planned, its notes read, its backup taken), so that no code changes before
each database has its backup; then each instance's steps run in the record's order, the first installing the
code. Both faces ask ``next_stage`` and do what it says.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from wizard.config.instance import Instance
from wizard.errors import WizardError
from wizard.session.state import Session
from wizard.together.record import SharedRun, SharedRunStore
from wizard.views.services import nothing_started

ROLLBACK_CARRY_ON = "carry on with `upgrade-wizard rollback --yes --all` (or name every instance on the venv)"


@dataclass(frozen=True)
class Stage:
    instance: str
    phase: Literal["prepare", "run"]

    def says(self) -> str:
        if self.phase == "prepare":
            return f"next: {self.instance}'s plan, notes and backup (every backup before the code changes)"
        return f"next: {self.instance}'s steps"


def in_run(run: SharedRun, session: Session | None) -> Session | None:
    """The session if it is this run's, else None."""
    return session if session is not None and session.shared_run == run.id else None


def next_stage(run: SharedRun, sessions: dict[str, Session | None]) -> Stage | None:
    """The instance to prepare or run next; None when every instance of the run is done."""
    for name in run.instances:
        if name in run.nothing_to_do:
            continue
        session = in_run(run, sessions.get(name))
        if session is None or (session.backup is None and not session.done):
            return Stage(name, "prepare")
    for name in run.instances:
        session = in_run(run, sessions.get(name))
        if session is not None and not session.done:
            return Stage(name, "run")
    return None


def in_the_way(run: SharedRun, session: Session | None) -> Literal["none", "put aside", "under way"]:
    """An instance's current session, when it is not this run's: nothing to mind (none, or finished or abandoned),
    one to put aside (no step of it ever ran: a plan, perhaps refused for the shared venv), or an upgrade under way."""
    if session is None or in_run(run, session) is not None or session.done or session.abandoned:
        return "none"
    return "put aside" if nothing_started(session) else "under way"


def rollback_unfinished(run: SharedRun, sessions: dict[str, Session | None]) -> bool:
    """A rollback of this run has begun, and some instance's part of it is not done (or not begun yet)."""
    if not run.rollbacks:
        return False
    for name in run.sessions:
        session = sessions.get(name)
        if session is None or session.id != run.rollbacks.get(name) or not session.done:
            return True
    return False


def refuse_during_rollback(run: SharedRun, sessions: dict[str, Session | None]) -> None:
    """WizardError when this run's rollback is under way: nothing else starts on the venv until it is done."""
    if rollback_unfinished(run, sessions):
        raise WizardError(f"the rollback of the last upgrade of the shared venv {run.venv} is under way",
                          ROLLBACK_CARRY_ON)  # fmt: skip


def refuse_alone(root: Path, instance: Instance, session: Session | None) -> None:
    """WizardError when the instance's session is its part of a shared venv's rollback under way: that goes on with
    the other instances, in its order (the code first), never alone."""
    if session is None or not session.is_rollback or session.done or session.abandoned:
        return
    run = SharedRunStore(root, instance.venv).load()
    if run is not None and run.rollbacks.get(instance.name) == session.id:
        raise WizardError(f"{instance.name}'s rollback {session.id} is its part of the rollback of the shared venv "
                          f"{run.venv}, which goes on with every instance on it", ROLLBACK_CARRY_ON)  # fmt: skip
