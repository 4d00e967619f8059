"""Plain (non-interactive) views printed with Rich: the plan and a session's status."""

from __future__ import annotations

import shlex
from collections.abc import Iterable
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from .detect import Detection
from .instance import Instance
from .plan import Plan
from .preflight import tool_paths
from .runner import Alive, Finished, inspect
from .services import Unit
from .state import Note, Session, StepRecord, StepStatus


def esc(value: object) -> str:
    """Data shown inside Rich markup: a path like [old] must print as itself."""
    return escape(str(value))


STATUS_STYLE = {
    StepStatus.PENDING: "dim",
    StepStatus.RUNNING: "bold cyan",
    StepStatus.SUCCEEDED: "green",
    StepStatus.FAILED: "bold red",
    StepStatus.SKIPPED: "yellow",
    StepStatus.INTERRUPTED: "bold magenta",
}


def command_text(step: StepRecord) -> str:
    env = " ".join(f"{k}={shlex.quote(v)}" for k, v in step.env.items() if k != "VIRTUAL_ENV")
    return (env + " " if env else "") + shlex.join(step.argv)


def print_plan(console: Console, instance: Instance, plan: Plan) -> None:
    found, steps = plan.found, plan.steps
    console.print(
        f"[bold]Instance[/] {esc(instance.name)}  ([dim]{esc(instance.recipe)}[/], venv {esc(instance.venv)})"
    )
    facts = Table.grid(padding=(0, 2))
    facts.add_row("installed", esc(found.installed_version) if found.installed_version else "[red]not installed[/]")
    facts.add_row("target", f"{esc(found.target_version)}  [dim]({found.target_source})[/]")
    if found.newest_version:
        facts.add_row("newest", esc(newest_text(found)))
    if len(plan.hops) > 1:
        facts.add_row(
            "path",
            esc(" -> ".join([found.installed_version or "?", *plan.hops]))
            + "  [dim](one feature release at a time)[/]",
        )
    facts.add_row("python", esc(found.python_version))
    if plan.needs:
        tools = tool_paths(instance, plan.needs)
        facts.add_row("tools", ", ".join(f"{esc(t)} [green]found[/]" if p else f"{esc(t)} [bold red]missing[/]"
                                         for t, p in tools.items()))  # fmt: skip
    facts.add_row("plugins", esc(", ".join(f"{n} {v}" for n, v in found.plugins.items()) or "none"))
    facts.add_row("os family", esc(found.os_family))
    if found.host.database:
        facts.add_row("database", esc(found.host.database_text()))
    if found.schema is not None:
        style = {"ok": "", "warning": "yellow", "blocker": "bold red"}[found.schema.state]
        facts.add_row("schema", f"[{style}]{esc(found.schema.text)}[/]" if style else esc(found.schema.text))
    for unit in plan.units:
        facts.add_row(f"{esc(unit.role)} service", unit_text(unit))
    console.print(facts)
    if not plan.steps:
        console.print("\n" + esc(plan.nothing_to_do), soft_wrap=True)
    if plan.beyond:
        console.print(f"\n[bold]Beyond {esc(found.target_version)}[/] (not part of this upgrade):")
        print_notes(console, plan.beyond)
    if plan.notes:
        console.print("\n[bold]This upgrade[/]:" if plan.steps else "\n[bold]Here and now[/]:")
        print_notes(console, plan.notes)
    if not plan.steps:
        return
    table = Table(title="The plan", title_justify="left", expand=False)
    table.add_column("#", justify="right")
    table.add_column("step")
    table.add_column("runs as")
    table.add_column("command", overflow="fold")
    for number, step in enumerate(steps, 1):
        as_user = "root" if step.run_as == "root" else (instance.user or "this user")
        marks = " [dim](re-runnable)[/]" if step.safe_to_rerun else ""
        table.add_row(
            str(number), f"{esc(step.title)}{marks}\n[dim]{step.id}[/]", esc(as_user), Text(command_text(step))
        )
    console.print(table)


STATE_STYLE = {"running": "green", "starting": "cyan", "stopped": "yellow", "failed": "bold red"}


def unit_text(unit: Unit) -> str:
    """The unit, how it was named, and its state as the service manager gave it (unknown: why)."""
    if unit.name is None:
        return "none  [dim](the instance has no such service)[/]" if unit.how == "none here" else "[yellow]unknown[/]"
    how = "[yellow]assumed: not found on this host[/]" if unit.how == "assumed" else unit.how
    text = f"{esc(unit.name)}  [dim]({how})[/]  "
    if unit.state == "unknown":
        return text + f"state unknown [dim]({esc(unit.said)})[/]"
    state = f"[{STATE_STYLE[unit.state]}]{unit.state}[/]"
    return text + (state if unit.state == "running" else f"{state} [dim]({esc(unit.said)})[/]")


def newest_text(found: Detection) -> str:
    if not found.out_of_reach:
        return f"{found.newest_version} (within reach)"
    needs = (
        f"needs Python {found.newest_requires_python}" if found.newest_requires_python else "pip will not pick it here"
    )
    return f"{found.newest_version} ({needs}; this venv has {found.python_version})"


def print_notes(console: Console, notes: Iterable[Note]) -> None:
    for note in notes:
        style = {"blocker": "bold red", "warning": "yellow", "info": "dim"}[note.severity]
        version = f" ({esc(note.version)})" if note.version else ""
        console.print(f"[{style}]{note.severity.upper()}[/]{version} {esc(note.title)}", soft_wrap=True)
        console.print(f"  {esc(note.text)}", soft_wrap=True)
        if note.way_out:
            console.print(f"  [bold]way out:[/] {esc(note.way_out)}", soft_wrap=True)


def print_status(console: Console, session: Session) -> None:
    state = "finished" if session.done else "abandoned" if session.abandoned else "under way"
    console.print(
        f"[bold]Session[/] {session.id} of [bold]{esc(session.instance)}[/]: {esc(session.installed_version)} -> "
        f"{esc(session.target_version)}, {state}"
    )
    if session.backup:
        console.print(f"backup: {session.backup.kind} at {esc(session.backup.path)}", soft_wrap=True)
    else:
        console.print("backup: [yellow]not recorded yet (no step runs before it is)[/]")
    logs = {str(Path(step.log).parent) for step in session.steps if step.log}
    if logs:
        console.print(f"logs in: {esc(' '.join(sorted(logs)))}", soft_wrap=True)
    table = Table(expand=False)
    for column in ("#", "step", "status", "exit", "time", "log"):
        table.add_column(column, overflow="fold")
    for number, step in enumerate(session.steps, 1):
        status = Text(step.status.value, style=STATUS_STYLE[step.status])
        if step.status == StepStatus.RUNNING:
            outcome = inspect(step)
            if isinstance(outcome, Alive):
                status.append(f" (pid {outcome.pid}, alive)")
            elif isinstance(outcome, Finished):
                status.append(f" (ended with {outcome.exit_code}; not yet recorded)")
            else:
                status.append(" (its process is gone)")
        if step.skip_reason:
            status.append(f": {step.skip_reason}")
        seconds = f"{step.duration:.1f}s" if step.duration is not None else ""
        exit_code = "" if step.exit_code is None else str(step.exit_code)
        table.add_row(str(number), step.id, status, exit_code, seconds, Path(step.log).name if step.log else "")
    console.print(table)
