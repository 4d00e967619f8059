"""The host as the wizard sees it: every instance of the instances file, which share a venv, where each stands.

`status` with no instance named, on a file with several, prints these rows (or, with --json, every instance's
session). A session that cannot be read is said on its row; the others are still shown.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from wizard.config.instance import Instance
from wizard.session.state import Session, StepStatus


@dataclass(frozen=True)
class HostRow:
    instance: str
    recipe: str
    venv: str
    shares_with: list[str]  # the other instances on the same venv (their code changes together)
    session: str  # "upgrade 3.2.6 -> 3.2.9, finished", "none recorded", "unreadable: …"
    now: str  # the step that runs or waits, or the last health check's verdict
    step: str = ""  # the TUI's host table: the step the session stands at ("" when none)
    status: str = ""  # and what it is doing there, in a few words


def step_and_status(session: Session | None) -> tuple[str, str]:
    """The host table's two columns: the step the session stands at, and its state in a few words."""
    if session is None:
        return "", "no session"
    if session.done:
        health = session.health
        verdict = "not checked" if health is None else "healthy" if health.healthy else "NOT healthy"
        return "", verdict
    step = session.current
    if step is None:
        return "", "under way"
    if step.status == StepStatus.PENDING:
        return step.id, "backup gate" if session.backup is None else "next"
    return step.id, step.status.value


def venv_groups(instances: dict[str, Instance]) -> dict[str, list[str]]:
    """Instance names per venv, the venv named as it really is (a symlink or a trailing slash is the same one)."""
    groups: dict[str, list[str]] = {}
    for name, instance in instances.items():
        groups.setdefault(os.path.realpath(instance.venv), []).append(name)
    return groups


def session_text(session: Session | None) -> str:
    if session is None:
        return "none recorded"
    state = "finished" if session.done else "abandoned" if session.abandoned else "under way"
    return f"{session.kind} {session.installed_version} -> {session.target_version}, {state}"


def now_text(session: Session | None) -> str:
    if session is None:
        return ""
    if session.done:
        health = session.health
        if health is None:
            return "not checked"
        return "healthy" if health.healthy else f"NOT healthy ({len(health.failed)} failed)"
    step = session.current
    if step is None:
        return ""
    if step.status == StepStatus.PENDING:
        return "waiting at the backup gate" if session.backup is None else f"next: {step.id}"
    return f"{step.id} {step.status.value}"


def host_rows(instances: dict[str, Instance], sessions: dict[str, Session | str | None]) -> list[HostRow]:
    """``sessions``: each instance's saved session, None, or why it could not be read."""
    groups = venv_groups(instances)
    rows = []
    for name, instance in instances.items():
        venv = os.path.realpath(instance.venv)
        saved = sessions.get(name)
        unreadable = isinstance(saved, str)
        session = None if isinstance(saved, str) else saved
        rows.append(HostRow(
            instance=name, recipe=instance.recipe, venv=str(instance.venv),
            shares_with=[other for other in groups[venv] if other != name],
            session=f"unreadable: {saved}" if unreadable else session_text(session), now=now_text(session),
            step=step_and_status(session)[0], status="unreadable" if unreadable else step_and_status(session)[1],
        ))  # fmt: skip
    return rows
