"""Instances that run from one virtualenv: new code there reaches all of them, so they are upgraded together.

The first instance's session installs the code (the steps of scope "venv", pip); each instance's session
then does what is its own: stop its workers, migrate its database with its own config, reload its app server,
start its workers.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from wizard.session.state import StepRecord

if TYPE_CHECKING:
    from wizard.config.instance import Instance


@dataclass(frozen=True)
class Together:
    """The instances of one venv upgraded in one go, in their order."""

    order: tuple[str, ...]

    @property
    def code_by(self) -> str:
        """The instance whose session installs the new code for all of them."""
        return self.order[0]

    def leaves_out(self, names: list[str]) -> list[str]:
        return [name for name in names if name not in self.order]


def venv_steps(steps: list[StepRecord]) -> list[StepRecord]:
    """The steps that change the venv itself: on a shared venv, run once for every instance on it."""
    return [step for step in steps if step.scope == "venv"]


def instance_steps(steps: list[StepRecord]) -> list[StepRecord]:
    return [step for step in steps if step.scope != "venv"]


def by_venv(instances: list[Instance]) -> list[list[Instance]]:
    """The instances grouped by the venv they run from (its real path), in the order given."""
    groups: dict[str, list[Instance]] = {}
    for instance in instances:
        groups.setdefault(os.path.realpath(instance.venv), []).append(instance)
    return list(groups.values())
