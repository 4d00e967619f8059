"""The venv's exact package set, read just before an upgrade's first step: what a rollback installs again."""

from __future__ import annotations

from dataclasses import dataclass

from wizard.config.instance import Instance
from wizard.errors import WizardError
from wizard.host import pipquery
from wizard.host.detect import probe_venv
from wizard.session.state import PackageSet


@dataclass(frozen=True)
class Recorded:
    packages: PackageSet | None  # None: neither pip nor the venv's Python answered
    event: str  # for the session's history
    warning: str | None = None  # for the operator, when nothing could be recorded


def record_packages(instance: Instance) -> Recorded:
    """``pip freeze --all`` through the venv's own pip; without pip, the distributions' metadata."""
    try:
        pip, lines = pipquery.freeze(instance)
    except pipquery.PipQueryError as exc:
        try:
            dists = probe_venv(instance)["dists"]
        except WizardError as probe:
            return Recorded(None, f"the venv's packages could not be recorded: {exc}; {probe.message}",
                            f"the venv's packages could not be recorded ({exc}): a rollback will need you to name them")  # fmt: skip
        requirements = sorted(f"{name}=={version}" for name, version in dists.items())
        return Recorded(PackageSet(pip=None, requirements=requirements),
                        f"the venv's packages recorded from their metadata (pip could not answer: {exc})")  # fmt: skip
    return Recorded(
        PackageSet(pip=pip, requirements=lines), f"the venv's {len(lines)} packages recorded (pip {pip}) for a rollback"
    )
