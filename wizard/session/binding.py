"""Is a saved session this instance's to run?  A session names the commands its steps run, so one that
belongs elsewhere (another instance, recipe or venv, steps no recipe of ours plans) is refused, never run."""

from __future__ import annotations

import os
from pathlib import Path

from steps import Recipe
from wizard.config.instance import Instance
from wizard.errors import StateError
from wizard.rollback.plan import rollback_step_ids
from wizard.session.state import Session
from wizard.session.store import KEEP


def same_place(planned: str, now: str | None) -> bool:
    """Do two spellings of a path name the same place (a symlink, a trailing slash, ``..``)?"""
    return now is not None and os.path.realpath(planned) == os.path.realpath(now)


def belongs_to(step_id: str, recipe: Recipe, hops: list[str]) -> bool:
    """Could this recipe's plan have a step with this id (its own steps and its notes', per hop when there are several)?"""
    known = {step.id for step in recipe.steps} | {extra.id for note in recipe.notes for extra in note.steps}
    return step_id in known or any(step_id == f"{base}-{hop}" for base in known for hop in hops)


def check_belongs(session: Session, instance: Instance, recipe: Recipe, path: Path) -> None:
    """StateError (the file at ``path`` left as it is) when the session's steps are not this instance's to run.

    A finished or abandoned session runs nothing again (it is put aside when a new upgrade begins): not checked.
    """
    if session.done or session.abandoned:
        return
    if session.recipe != recipe.name:
        raise StateError(
            f"the saved session {path} is an upgrade with the recipe {session.recipe!r}, "
            f"but instance {instance.name!r} uses {recipe.name!r}",
            "if the instances file changed, put it back as it was to finish that upgrade; " + KEEP,
        )
    now_named = {"venv": str(instance.venv), "app_config": str(instance.config) if instance.config else None}
    for field, value in now_named.items():
        planned = getattr(session, field)
        if planned is not None and not same_place(planned, value):
            raise StateError(
                f"the saved session {path} was planned for the {field.replace('_', ' ')} {planned}, "
                f"but instance {instance.name!r} now names {value or 'none'}: its steps' commands are not this one's",
                "put the instances file back as it was to finish that upgrade (or copy the session where it belongs); "
                + KEEP,
            )
    if session.is_rollback:
        known = rollback_step_ids(session, recipe)
        foreign = [step.id for step in session.steps if step.id not in known]
    else:
        foreign = [step.id for step in session.steps if not belongs_to(step.id, recipe, session.path)]
    if foreign:
        raise StateError(
            f"the saved session {path} has steps the recipe {recipe.name!r} does not know: "
            + ", ".join(repr(step_id) for step_id in foreign),
            "it was written by another recipe or edited by hand; " + KEEP,
        )
