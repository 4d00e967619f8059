"""The view layer: what the operator reads, as plain rows with one look, for every face.

Rows are built here from the model (steps, notes, a session, a backup estimate; detection's
facts in ``wizard.views.facts``) and rendered by three faces: Rich for ``plan`` and ``status``
(``wizard/views/report.py``), plain timestamped lines for ``run --yes`` (``wizard/headless.py``,
which prints ``Text.plain``: the same words, no styles), and the Textual screens. The words
are the rows'; a face chooses the layout and, where it has colour, the style named here.

Two faces: "lines" (Rich and plain lines: ``plan``, ``status``, ``run --yes``) and "screen"
(the TUI). Where their words differ the builder says so and why; a few differences are
promised by tests and snapshots.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, NamedTuple

from rich.text import Text

from wizard.session.state import Note, Session, StepRecord, StepStatus, now
from wizard.views.sizes import human_bytes

if TYPE_CHECKING:
    from wizard.backup.take import Estimate
    from wizard.planning.plan import Plan

Severity = Literal["ok", "info", "warning", "blocker", "unknown"]  # unknown: no one could tell (not a failure)
Face = Literal["lines", "screen"]


class Look(NamedTuple):
    word: str  # as a label on screen; plain lines head a note with it in capitals
    style: str


STYLE: dict[Severity, Look] = {
    "ok": Look("ok", "green"),
    "info": Look("info", "dim"),
    "warning": Look("warning", "yellow"),
    "blocker": Look("BLOCKER", "bold red"),
    "unknown": Look("unknown", "dim"),
}


class StatusLook(NamedTuple):
    glyph: str
    style: str
    word: str


STATUS: dict[StepStatus, StatusLook] = {
    StepStatus.PENDING: StatusLook("·", "dim", "pending"),
    StepStatus.RUNNING: StatusLook("▶", "bold cyan", "running"),
    StepStatus.SUCCEEDED: StatusLook("✓", "green", "succeeded"),
    StepStatus.FAILED: StatusLook("✗", "bold red", "failed"),
    StepStatus.SKIPPED: StatusLook("↷", "yellow", "skipped"),
    StepStatus.INTERRUPTED: StatusLook("!", "bold magenta", "interrupted"),
}

LABEL_WIDTH = 9  # "session: " — the where-things-are labels line their values up


def styled(value: str, severity: Severity) -> Text:
    """A value in its severity's colour; an ok one as it is."""
    return Text.assemble((value, "" if severity == "ok" else STYLE[severity].style))


# -- Facts (built from detection in wizard.views.facts) ----------------------------------------


@dataclass(frozen=True)
class FactRow:
    name: str  # "target", "uwsgi service"
    value: str
    severity: Severity = "ok"
    hint: str = ""  # what to do about it, said on screen under the table when it is not ok
    aside: str = ""  # where the value comes from or what it means, shown after it in parentheses

    @property
    def state(self) -> Severity:
        """The severity, by the name ``facts_for``'s callers know."""
        return self.severity

    def screen_value(self) -> str:
        return f"{self.value} ({self.aside})" if self.aside else self.value

    def rich_value(self) -> Text:
        """For ``plan``: the value in its colour, the aside dimmed and set apart."""
        text = styled(self.value, self.severity)
        if self.aside:
            text.append(f"  ({self.aside})", style="dim")
        return text


# -- Notes: state.Note already is the plain row (severity, version, title, text, way out) -------


def note_lines(note: Note) -> list[Text]:
    """A note as lines for ``plan`` and ``run --yes``: its severity in capitals, what it says, the way out."""
    look = STYLE[note.severity]
    head = Text.assemble(
        (look.word.upper(), look.style), f" ({note.version})" if note.version else "", f" {note.title}"
    )
    lines = [head, Text(f"  {note.text}")]
    if note.way_out:
        lines.append(Text.assemble("  ", ("way out:", "bold"), f" {note.way_out}"))
    return lines


def note_sections(plan: Plan) -> list[tuple[Text, list[Note]]]:
    """The plan's notes under their headings: what lies beyond the target, then this upgrade's (or here and now's)."""
    sections = []
    if plan.beyond:
        head = Text.assemble(("Beyond " + str(plan.found.target_version), "bold"), " (not part of this upgrade):")
        sections.append((head, plan.beyond))
    if plan.notes:
        sections.append((Text.assemble(("This upgrade" if plan.steps else "Here and now", "bold"), ":"), plan.notes))
    return sections


# -- Steps ---------------------------------------------------------------------------


def command_text(step: StepRecord) -> str:
    """The step's command as a shell would take it, with the environment it adds (the venv's is implied)."""
    env = " ".join(env_settings(step))
    return (env + " " if env else "") + argv_text(step)


def argv_text(step: StepRecord) -> str:
    """The step's command alone, as a shell would take it: ``plan`` shows its environment apart (``env_rows``)."""
    return shlex.join(step.argv)


def env_settings(step: StepRecord) -> list[str]:
    """``NAME=value`` for each variable the step adds to the environment, quoted as a shell would take it.

    The venv's own (VIRTUAL_ENV) is implied.  A secret of the instance's env is never among them: planning keeps
    those out of the step's record (``public_env``) and the engine hands them to the step only when it launches it.
    """
    return [f"{key}={shlex.quote(value)}" for key, value in step.env.items() if key != "VIRTUAL_ENV"]


@dataclass(frozen=True)
class EnvRow:
    steps: str  # "every step", "steps 4, 5", "step 4", "steps 1-3, 7"
    settings: list[str]  # ["INDICO_CONFIG=/opt/indico/etc/indico.conf", ...]


def step_numbers(numbers: Sequence[int]) -> str:
    """ "step 4", "steps 4, 5", "steps 1-3, 7": runs of three or more as a range."""
    runs: list[list[int]] = []
    for number in sorted(numbers):
        if runs and number == runs[-1][-1] + 1:
            runs[-1].append(number)
        else:
            runs.append([number])
    parts = [f"{run[0]}-{run[-1]}" if len(run) >= 3 else ", ".join(map(str, run)) for run in runs]
    return ("steps " if len(numbers) > 1 else "step ") + ", ".join(parts)


def env_rows(steps: Sequence[StepRecord]) -> list[EnvRow]:
    """The environment the steps get, each variable once, under the steps that get it (numbered as ``step_rows``).

    What every step that runs gets comes first ("every step"), then the rest by the first step that gets it, what
    more steps share before what one step alone gets.  A step that is skipped runs nothing and gets nothing.
    """
    running = [number for number, step in enumerate(steps, 1) if step.argv and step.status != StepStatus.SKIPPED]
    who: dict[str, list[int]] = {}  # "NAME=value" -> the steps that get it, in the order first met
    for number in running:
        for setting in env_settings(steps[number - 1]):
            who.setdefault(setting, []).append(number)
    groups: dict[tuple[int, ...], list[str]] = {}
    for setting, numbers in who.items():
        groups.setdefault(tuple(numbers), []).append(setting)
    every = tuple(running)
    order = sorted(groups, key=lambda numbers: (numbers != every, numbers[0], -len(numbers)))
    return [
        EnvRow("every step" if numbers == every and len(every) > 1 else step_numbers(numbers), groups[numbers])
        for numbers in order
    ]


def elapsed_text(step: StepRecord) -> str:
    """A step's time for a narrow column: whole seconds, minutes from 10 minutes on; a running one's so far."""
    if step.status == StepStatus.SKIPPED or step.started is None:
        return ""
    seconds = ((step.ended or now()) - step.started).total_seconds()
    return f"{seconds:.0f}s" if seconds < 600 else f"{seconds / 60:.0f}m"


def seconds_text(step: StepRecord) -> str:
    """A finished step's time for lines: "3.2 s" (nothing for a skipped one)."""
    if step.status == StepStatus.SKIPPED or step.duration is None:
        return ""
    return f"{step.duration:.1f} s"


@dataclass(frozen=True)
class StepRow:
    number: int
    id: str
    title: str
    status: StepStatus
    result: str  # "succeeded", "skipped: the instance has no worker service"
    exit: str  # the exit code, or ""
    elapsed: str  # for a narrow column ("3s")
    seconds: str  # for lines ("3.0 s")
    log: str  # the log file's name, or ""
    runs_as: Literal["root", "app"]
    rerunnable: bool
    command: str

    @property
    def look(self) -> StatusLook:
        return STATUS[self.status]


def step_rows(steps: Sequence[StepRecord]) -> list[StepRow]:
    """Planned or run steps, numbered from 1."""
    return [
        StepRow(
            number=number,
            id=step.id,
            title=step.title,
            status=step.status,
            result=STATUS[step.status].word + (f": {step.skip_reason}" if step.skip_reason else ""),
            exit="" if step.exit_code is None else str(step.exit_code),
            elapsed=elapsed_text(step),
            seconds=seconds_text(step),
            log=Path(step.log).name if step.log else "",
            runs_as=step.run_as,
            rerunnable=step.safe_to_rerun,
            command=command_text(step),
        )
        for number, step in enumerate(steps, 1)
    ]


def total_seconds(session: Session) -> float:
    return sum(step.duration or 0 for step in session.steps)


# -- Where things are: logs, the session, the backup and its restore --------------------


@dataclass(frozen=True)
class SummaryRow:
    label: str  # "logs", "session", "backup", "restore"; "" goes on with the row above
    value: str
    severity: Severity = "ok"


def going_back_text(steps: Sequence[StepRecord]) -> str:
    """Before anything runs: what going back would take, and from which step on it needs the backup."""
    for number, step in enumerate(steps, 1):
        if step.migrates is not None and step.status != StepStatus.SKIPPED:
            return (f"Going back: until step {number} ({step.title}) starts, the packages recorded as step 1 "
                    f"starts give the old version back; from step {number} on, the database must also be restored "
                    "from the backup.")  # fmt: skip
    return "Going back: no step changes the database; the packages recorded as step 1 starts give the old version back."


def where_rows(session: Session, session_path: Path | str | None = None) -> list[SummaryRow]:
    rows = []
    logs = sorted({str(Path(step.log).parent) for step in session.steps if step.log})
    if logs:
        rows.append(SummaryRow("logs", " ".join(logs)))
    if session_path is not None:
        rows.append(SummaryRow("session", str(session_path)))
    packages = session.packages_before
    if packages is not None:
        source = f"pip freeze, pip {packages.pip}" if packages.pip else "read from their metadata: the venv has no pip"
        use = "as the upgrade left them" if session.is_rollback else "what a rollback installs again"
        rows.append(SummaryRow("venv", f"{len(packages.requirements)} packages recorded before step 1 ({source}), "
                                       f"in the session: {use}"))  # fmt: skip
    if session.is_rollback:
        rows.append(SummaryRow("undoes", f"the upgrade {session.undoes} (kept beside this session)"))
    backup = session.backup
    if backup is None:
        rows.append(SummaryRow("backup", "not recorded yet (no step runs before it is)", "warning"))
        return rows
    rows += [SummaryRow("backup", backup.path), SummaryRow("", backup.summary())]
    rows += [SummaryRow("restore", command) for command in backup.restore]
    return rows


def where_lines(rows: Iterable[SummaryRow]) -> list[Text]:
    """A line each, the labels bold and the values lined up: the done screen, ``status`` and ``run --yes``."""
    return [
        Text.assemble((f"{row.label}:".ljust(LABEL_WIDTH), "bold") if row.label else " " * LABEL_WIDTH,
                      styled(row.value, row.severity))
        for row in rows
    ]  # fmt: skip


# -- The backup's room ----------------------------------------------------------------


def room_text(plan: Estimate) -> str:
    """Where the backup goes and whether it fits: "/var/backups: about 1.2 GiB needed, 40.0 GiB free"."""
    return f"{plan.root}: about {human_bytes(plan.needed)} needed, {human_bytes(plan.free)} free"
