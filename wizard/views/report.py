"""Plain (non-interactive) views printed with Rich: the plan and a session's status."""

from __future__ import annotations

from collections.abc import Iterable

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from wizard.config.instance import Instance
from wizard.execution.runner import Alive, Finished, inspect
from wizard.planning.plan import Plan
from wizard.session.state import Note, Session, StepStatus
from wizard.views.facts import detection_rows
from wizard.views.rows import note_lines, note_sections, step_rows, where_lines, where_rows


def esc(value: object) -> str:
    """Data shown inside Rich markup: a path like [old] must print as itself."""
    return escape(str(value))


def print_plan(console: Console, instance: Instance, plan: Plan) -> None:
    console.print(
        f"[bold]Instance[/] {esc(instance.name)}  ([dim]{esc(instance.recipe)}[/], venv {esc(instance.venv)})"
    )
    facts = Table.grid(padding=(0, 2))
    for fact in detection_rows(instance, plan, "lines"):
        facts.add_row(fact.name, fact.rich_value())
    console.print(facts)
    if not plan.steps:
        console.print("\n" + esc(plan.nothing_to_do), soft_wrap=True)
    for head, notes in note_sections(plan):
        console.print(Text("\n").append_text(head))
        print_notes(console, notes)
    if not plan.steps:
        return
    table = Table(title="The plan", title_justify="left", expand=False)
    table.add_column("#", justify="right")
    table.add_column("step")
    table.add_column("runs as")
    table.add_column("command", overflow="fold")
    for row in step_rows(plan.steps):
        as_user = "root" if row.runs_as == "root" else (instance.user or "this user")
        marks = " [dim](re-runnable)[/]" if row.rerunnable else ""
        table.add_row(
            str(row.number), f"{esc(row.title)}{marks}\n[dim]{esc(row.id)}[/]", esc(as_user), Text(row.command)
        )
    console.print(table)


def print_notes(console: Console, notes: Iterable[Note]) -> None:
    for note in notes:
        for line in note_lines(note):
            console.print(line, soft_wrap=True)


def print_status(console: Console, session: Session) -> None:
    state = "finished" if session.done else "abandoned" if session.abandoned else "under way"
    console.print(
        f"[bold]Session[/] {session.id} of [bold]{esc(session.instance)}[/]: {esc(session.installed_version)} -> "
        f"{esc(session.target_version)}, {state}"
    )
    for line in where_lines(where_rows(session)):
        console.print(line, soft_wrap=True)
    table = Table(expand=False)
    for column in ("#", "step", "status", "exit", "time", "log"):
        table.add_column(column, overflow="fold")
    for row, step in zip(step_rows(session.steps), session.steps, strict=True):
        status = Text(row.result, style=row.look.style)
        if step.status == StepStatus.RUNNING:
            outcome = inspect(step)
            if isinstance(outcome, Alive):
                status.append(f" (pid {outcome.pid}, alive)")
            elif isinstance(outcome, Finished):
                status.append(f" (ended with {outcome.exit_code}; not yet recorded)")
            else:
                status.append(" (its process is gone)")
        table.add_row(str(row.number), row.id, status, row.exit, row.seconds, row.log)
    console.print(table)
