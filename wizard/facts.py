"""What detection found, as facts with a verdict each: ok, warning or blocker."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from typing import Literal

from .instance import Instance
from .plan import Plan
from .preflight import tool_paths
from .services import unit_line
from .sizes import human_bytes

GIB = 1024**3
DISK_WARNING = 2 * GIB  # a venv rebuild plus a database dump can take that much
DISK_BLOCKER = 256 * 1024**2

State = Literal["ok", "warning", "blocker", "unknown"]  # unknown: no one could tell (not a failure)


@dataclass(frozen=True)
class Fact:
    name: str
    value: str
    state: State = "ok"
    hint: str = ""


def free_disk(instance: Instance) -> Fact:
    try:
        free = shutil.disk_usage(instance.venv).free
    except OSError as exc:
        return Fact("free disk", f"unknown ({exc.strerror})", "warning", "check the venv's filesystem by hand")
    value = f"{human_bytes(free)} free where the venv is"
    if free < DISK_BLOCKER:
        return Fact("free disk", value, "blocker", "free some space: pip needs room to unpack the new release")
    if free < DISK_WARNING:
        return Fact("free disk", value, "warning", "tight for a new release plus a backup")
    return Fact("free disk", value)


def facts_for(instance: Instance, plan: Plan) -> list[Fact]:
    found, recipe = plan.found, plan.recipe
    facts = [Fact("installed", f"{recipe.package} {found.installed_version}")]
    if found.up_to_date:
        facts.append(Fact("target", f"{found.target_version} ({found.target_source})", "ok", "nothing to upgrade"))
    else:
        facts.append(Fact("target", f"{found.target_version} ({found.target_source})"))
    if found.newest_version and found.out_of_reach:
        needs = (
            f"needs Python {found.newest_requires_python}" if found.newest_requires_python else "pip will not pick it"
        )
        facts.append(
            Fact(
                "newest", f"{found.newest_version} ({needs})", "warning", f"{found.newest_version} is beyond this venv"
            )
        )
    elif found.newest_version:
        facts.append(Fact("newest", found.newest_version))
    if len(plan.hops) > 1:
        facts.append(
            Fact(
                "path", " → ".join([found.installed_version or "?", *plan.hops]), "ok", "one feature release at a time"
            )
        )
    facts.append(Fact("python", f"{found.python_version} in {instance.venv}"))
    for tool, where in tool_paths(instance, plan.needs).items():
        facts.append(
            Fact(f"tool {tool}", where or "missing", "ok" if where else "blocker", "" if where else "see the notes")
        )
    host = found.host
    if host.database:
        facts.append(Fact("database", host.database_text()))
    if found.schema is not None:
        hint = ""
        if found.schema.state == "blocker":
            hint = "see the notes"
        elif found.schema.pending:
            hint = "the plan applies them"
        facts.append(Fact("schema", found.schema.text, found.schema.state, hint))
    if found.plugins:
        facts.append(Fact("plugins", ", ".join(f"{name} {version}" for name, version in found.plugins.items())))
    else:
        facts.append(Fact("plugins", "none installed"))
    for unit in plan.units:  # each with its state, as the service manager tells it (or unknown, and why)
        line = unit_line(instance, unit)
        facts.append(Fact(line.name, line.value, line.verdict, line.hint))
    facts.append(free_disk(instance))
    facts.append(Fact("os family", found.os_family))
    blockers = [n for n in plan.notes if n.severity == "blocker"]
    if blockers:
        facts.append(Fact("notes", f"{len(blockers)} blocker(s)", "blocker", "see the release notes"))
    return facts
