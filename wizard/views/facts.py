"""What detection found, as fact rows with a severity each: for the detection screen and ``plan``.

One builder for both faces (``wizard.views.rows`` holds the row and its look). Their words differ in
three places, each promised by a test or a snapshot: the path's arrow (``->`` in lines, ``→``
on screen), the newest release out of reach (lines add "this venv has" the Python), and each
service (lines: name, how it was named, state; screen: state · name, as ``services.unit_line``).
"""

from __future__ import annotations

import shutil

from wizard.config.instance import Instance
from wizard.host.services import Unit, unit_line
from wizard.planning.plan import Plan
from wizard.planning.preflight import tool_paths
from wizard.views.rows import Face, FactRow
from wizard.views.sizes import human_bytes


def free_disk(instance: Instance, plan: Plan) -> FactRow:
    """The free space where the venv is, judged as pre-flight judged it (its note, when it made one).

    One judgement, not two: pre-flight weighs the venv's own size against the free space; a plan
    with nothing to install has no note, and then the space is no concern.
    """
    try:
        free = shutil.disk_usage(instance.venv).free
    except OSError as exc:
        return FactRow("free disk", f"unknown ({exc.strerror})", "warning", "check the venv's filesystem by hand")
    value = f"{human_bytes(free)} free where the venv is"
    note = next((n for n in plan.notes if n.id == "check-disk-venv"), None)
    if note is None:
        return FactRow("free disk", value)
    return FactRow("free disk", value, note.severity, note.way_out)


def unit_words(unit: Unit) -> tuple[str, str]:
    """A service for lines: the unit, how it was named and its state; and what the manager said (the aside)."""
    if unit.name is None:
        return ("none", "the instance has no such service") if unit.how == "none here" else ("unknown", "")
    how = "assumed: not found on this host" if unit.how == "assumed" else unit.how
    if unit.state == "unknown":
        return f"{unit.name}  ({how})  state unknown", unit.said
    return f"{unit.name}  ({how})  {unit.state}", "" if unit.state == "running" else unit.said


def detection_rows(instance: Instance, plan: Plan, face: Face = "screen") -> list[FactRow]:
    found, recipe = plan.found, plan.recipe
    rows = [
        FactRow("installed", f"{recipe.package} {found.installed_version}")
        if found.installed_version
        else FactRow("installed", f"{recipe.package} not installed", "blocker"),
        FactRow("target", str(found.target_version), aside=found.target_source),
    ]
    if found.newest_version and found.out_of_reach:
        req = found.newest_requires_python
        needs = f"needs Python {req}" if req else "pip will not pick it here"
        if face == "lines":
            needs += f"; this venv has {found.python_version}"
        rows.append(FactRow("newest", f"{found.newest_version} ({needs})", "warning",
                            f"{found.newest_version} is beyond this venv"))  # fmt: skip
    elif found.newest_version:
        rows.append(FactRow("newest", f"{found.newest_version} (within reach)"))
    if len(plan.hops) > 1:
        arrow = " -> " if face == "lines" else " → "
        route = arrow.join([found.installed_version or "?", *plan.hops])
        rows.append(FactRow("path", route, aside="one feature release at a time"))
    rows.append(FactRow("python", f"{found.python_version} in {instance.venv}"))
    tools = tool_paths(instance, plan.needs)
    if tools:
        said = ", ".join(f"{tool} {'found' if where else 'missing'}" for tool, where in tools.items())
        rows.append(
            FactRow("tools", said, "ok") if all(tools.values()) else FactRow("tools", said, "blocker", "see the notes")
        )
    if found.host.database:
        rows.append(FactRow("database", found.host.database_text()))
    if found.schema is not None:
        hint = ""
        if found.schema.state == "blocker":
            hint = "see the notes"
        elif found.schema.pending:
            hint = "the plan applies them"
        rows.append(FactRow("schema", found.schema.text, found.schema.state, hint))
    plugins = ", ".join(f"{name} {version}" for name, version in found.plugins.items())
    rows.append(FactRow("plugins", plugins or "none installed"))
    for unit in plan.units:  # each with its state, as the service manager tells it (or unknown, and why)
        line = unit_line(instance, unit)
        value, aside = unit_words(unit) if face == "lines" else (line.value, "")
        rows.append(FactRow(line.name, value, line.verdict, line.hint, aside))
    rows.append(free_disk(instance, plan))
    rows.append(FactRow("os family", found.os_family))
    blockers = [n for n in plan.notes if n.severity == "blocker"]
    if blockers:
        rows.append(FactRow("notes", f"{len(blockers)} blocker(s)", "blocker", "see the release notes"))
    return rows


facts_for = detection_rows  # the older name, which tests/integration/test_services.py imports
