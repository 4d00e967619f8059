"""The venv's exact package set, read just before an upgrade's first step: what a rollback installs again."""

from __future__ import annotations

import re
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


def requirement_name(line: str) -> str | None:
    """The distribution a `pip freeze` line names, normalized as pip compares names; None for a comment."""
    line = line.strip()
    if not line or line.startswith("#"):
        return None
    egg = re.search(r"[#&]egg=([A-Za-z0-9._-]+)", line)
    if line.startswith("-e") and egg:
        name = egg.group(1)
    else:
        found = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", line)
        if found is None:
            return None
        name = found.group(0)
    return re.sub(r"[-_.]+", "-", name).lower()


def canonical(line: str) -> str:
    """A freeze line with its name spelled as pip compares names (``Flask==2.2.5`` is ``flask==2.2.5``)."""
    line = line.strip()
    found = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", line)
    return re.sub(r"[-_.]+", "-", found.group(0)).lower() + line[found.end() :] if found else line


def pinned_versions(lines: list[str]) -> dict[str, str | None]:
    """Each distribution the freeze lines name, with its version when the line pins one (``name==version``)."""
    found: dict[str, str | None] = {}
    for line in lines:
        name = requirement_name(line)
        if name is not None:
            version = line.split("==", 1)[1].strip() if "==" in line and " @ " not in line else None
            found[name] = None if line.lstrip().startswith("-e") else version
    return found
