"""Plain (non-interactive) views printed with Rich: the plan and a session's status."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from rich.console import Console
from rich.markup import escape
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from wizard.config.instance import Instance
from wizard.execution.runner import Alive, Finished, inspect
from wizard.planning.plan import Plan
from wizard.session.state import Note, Session, StepRecord, StepStatus
from wizard.views.facts import detection_rows
from wizard.views.health import health_grid, verdict_text
from wizard.views.rows import (
    argv_text,
    env_rows,
    going_back_text,
    note_lines,
    note_sections,
    step_rows,
    where_lines,
    where_rows,
)


def esc(value: object) -> str:
    """Data shown inside Rich markup: a path like [old] must print as itself."""
    return escape(str(value))


def print_plan(console: Console, instance: Instance, plan: Plan) -> None:
    """Detection's facts, the notes, the environment the steps get and the steps, to fit the console's width.

    Each command is shown alone; the environment the steps get is shown once above the table, each variable
    under the steps that get it, as a command would carry it on every line of the table otherwise.
    """
    console.print(
        f"[bold]Instance[/] {esc(instance.name)}  ([dim]{esc(instance.recipe)}[/], venv {esc(instance.venv)})"
    )
    facts = Table.grid(padding=(0, 2))
    for fact in detection_rows(instance, plan, "lines"):
        facts.add_row(fact.name, fact.rich_value())
    console.print(facts)
    if not plan.steps:
        console.print()
        print_sentence(console, Text(plan.nothing_to_do))
    for head, notes in note_sections(plan):
        console.print(Text("\n").append_text(head))
        print_notes(console, notes)
    if not plan.steps:
        return
    print_environment(console, plan.steps)
    table = Table(title="The plan", title_justify="left", expand=False)
    table.add_column("#", justify="right")
    table.add_column("step", max_width=max(24, console.width // 3))
    table.add_column("command", overflow="fold")
    for row, step in zip(step_rows(plan.steps), plan.steps, strict=True):
        marks = " [dim](re-runnable)[/]" if row.rerunnable else ""
        command = Text(row.result, style=row.look.style) if step.status == StepStatus.SKIPPED else Text(argv_text(step))
        who = "[bold]root[/]" if row.runs_as == "root" else esc(instance.user or "this user")
        title = f"{esc(row.title)}{marks}\n[dim]{esc(row.id)}, as[/] {who}"
        table.add_row(str(row.number), title, command)
    console.print(table)
    print_sentence(console, Text(going_back_text(plan.steps), style="dim"))


def print_host_plan(console: Console, instance: Instance, plan: Plan, together: list[str]) -> None:
    """One instance of a host, briefly: its facts (versions, schema, services), what is planned, what stands out.

    ``together``: the instances planned with it (those on its venv), which `plan` names to show the plans whole."""
    shared = f", venv shared with {esc(', '.join(instance.shares_venv_with))}" if instance.shares_venv_with else ""
    console.print(f"[bold]Instance[/] {esc(instance.name)}  ([dim]{esc(instance.recipe)}[/], venv "
                  f"{esc(instance.venv)}{shared})")  # fmt: skip
    facts = Table.grid(padding=(0, 2))
    for fact in detection_rows(instance, plan, "lines"):
        facts.add_row(fact.name, fact.rich_value())
    console.print(Padding(facts, (0, 0, 0, 2), expand=False))
    counts = {severity: sum(note.severity == severity for note in plan.notes) for severity in ("blocker", "warning")}
    said = ", ".join(f"{n} {severity}{'s' if n > 1 else ''}" for severity, n in counts.items() if n) or "no notes"
    planned = f"{len(plan.steps)} steps planned" if plan.steps else plan.nothing_to_do
    code = next((note for note in plan.notes if note.id == "check-shared-venv"), None)
    if code is not None and code.severity == "info":  # who installs the shared venv's code
        planned += f" ({code.title})"
    named = " ".join(together)
    print_sentence(console, Text(f"  {planned}; {said}: `upgrade-wizard plan {named}` shows them whole"))
    console.print()


def print_environment(console: Console, steps: Sequence[StepRecord]) -> None:
    """Each variable the steps get, once, under the steps that get it (nothing when they get only the venv's)."""
    rows = env_rows(steps)
    if not rows:
        return
    console.print(Text.assemble("\n", ("Environment", "bold"), " the steps get, besides VIRTUAL_ENV (the venv):"))
    grid = Table.grid(padding=(0, 2))
    grid.add_column(no_wrap=True)
    grid.add_column(overflow="fold")
    for row in rows:
        grid.add_row(Text(row.steps, style="dim"), Text("\n".join(row.settings)))
    console.print(Padding(grid, (0, 0, 0, 2), expand=False))
    console.print()


def print_sentence(console: Console, line: Text) -> None:
    """A sentence as one line where the output goes to a file or a pipe (for grep), wrapped at words on a terminal.

    A line that starts indented keeps its indent on the lines it wraps to.
    """
    if not console.is_terminal:
        console.print(line, soft_wrap=True)
        return
    indent = len(line.plain) - len(line.plain.lstrip(" "))
    console.print(Padding(line[indent:], (0, 0, 0, indent), expand=False) if indent else line)


def print_notes(console: Console, notes: Iterable[Note]) -> None:
    for note in notes:
        for line in note_lines(note):
            print_sentence(console, line)


def print_status(console: Console, session: Session) -> None:
    state = "finished" if session.done else "abandoned" if session.abandoned else "under way"
    console.print(
        f"[bold]{'Rollback' if session.is_rollback else 'Session'}[/] {session.id} of [bold]{esc(session.instance)}[/]: "
        f"{esc(session.installed_version)} -> "
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
    if session.health is not None:
        console.print(verdict_text(session.health))
        console.print(health_grid(session.health))
