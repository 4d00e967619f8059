"""Counted progress of a running step, read from its output, as one line of text above its log.

``StepProgress`` is pure (no IO, no Textual): it is fed the step's output lines
batch by batch and counts what the tools print as they go:

- alembic (Indico's ``indico db upgrade``): one ``INFO  [alembic.runtime.migration]
  Running upgrade A -> B, message`` line as each migration *starts*.  All of
  them run in one transaction, so none is applied before the step ends:
  "migration 3 of 12" while it runs (", plugin livesync" for the plugins' step),
  "12 of 12 migrations applied" once it succeeded, "stopped at migration 3 of 12"
  if it failed (``end``);
- Django (pretalx's ``migrate``): ``  Applying app.0001_name... OK`` for each
  migration done: "3 of 24 migrations applied".  Django prints the name first
  and ``OK`` once it is done; the log hands out whole lines, so a name without
  ``OK`` means something came in between (a warning, or the failure):
  "..., applying app.0004_x", after a failure "..., stopped in app.0004_x";
- pip: ``Collecting x`` (``Processing /path/x.whl`` for a local file), then
  ``Installing collected packages: a, b, c``, then ``Successfully installed a-1 b-2``:
  "pip: collected 14 packages", "pip: installing 9 packages", "pip: installed 9 packages".

Nothing countable seen: the text is "".  A count past its total (a plugin with
no version table yet is not in it) is shown without the total.
``StepProgress.for_step`` looks only for what the step's ``migrates`` says
(alembic, Django, or else pip): fewer substring searches per batch.

The total of an alembic or Django count is the number of migrations pending
when the step starts: ``pending_total`` reads it from the database and the
installed code, which takes seconds (Django runs ``showmigrations``), so the
caller runs it in a thread and sets ``StepProgress.total`` when it is known.
It must be read before the step starts: Django records each migration as it
is applied, so a count taken later would leave out those already done.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from steps.models import Migrates
from wizard.errors import WizardError
from wizard.host.detect import probe_venv, schema_of
from wizard.host.pgquery import QueryError

if TYPE_CHECKING:
    from steps.models import StepSpec
    from wizard.config.context import InstanceContext
    from wizard.session.state import StepRecord

Kind = Literal["alembic", "django", "pip"]
KINDS: tuple[Kind, ...] = ("alembic", "django", "pip")

# A batch is first searched for these (one substring search over the joined batch each, at C speed); only a
# batch that holds one of them is read line by line.  Every line counted holds one of them.
ALEMBIC = "[alembic.runtime.migration] Running upgrade "
PLUGIN = "executing command for plugin '"
APPLYING = "Applying "
COLLECTING = "Collecting "
PROCESSING = "Processing "
INSTALLING = "Installing collected packages: "
INSTALLED = "Successfully installed "

# INFO  [alembic.runtime.migration] Running upgrade 9b3fc740b722 -> aba7935f9226, Add is_event_not_happening ...
# (a plugin's first migration runs from no revision: "Running upgrade  -> aa0dbc6c14aa, Create tables")
ALEMBIC_LINE = re.compile(r"\[alembic\.runtime\.migration\] Running upgrade (\S*) -> (\w+)")
PLUGIN_LINE = re.compile(r"^executing command for plugin '([^']+)'")
# "  Applying submission.0078_submissioncomment... OK" (" OK (0.012s)" with -v 3, " FAKED" with --fake)
DJANGO_LINE = re.compile(r"^\s+Applying (\S+?)\.\.\.(.*)$")
DJANGO_DONE = re.compile(r"^\s*(?:OK|FAKED)\b")
# "Collecting charset_normalizer<4,>=2 (from requests)", "Processing /opt/wheels/six-1.17.0-py3-none-any.whl"
COLLECTING_LINE = re.compile(r"^Collecting (\S+)")
PROCESSING_LINE = re.compile(r"^Processing (\S*/\S*|\S+\.(?:whl|zip|tar\.gz))(?: \(from .*\))?$")
NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?")


def _name(requirement: str, from_file: bool) -> str:
    """The distribution a pip line is about, as pip compares names (a file's name ends at its first '-')."""
    if from_file:
        requirement = requirement.rstrip("/").rsplit("/", 1)[-1].split("-", 1)[0]
    found = NAME.match(requirement)
    return re.sub(r"[-_.]+", "-", found.group(0)).lower() if found else requirement


def _migrations(count: int) -> str:
    return "1 migration" if count == 1 else f"{count} migrations"


def _packages(count: int) -> str:
    return "1 package" if count == 1 else f"{count} packages"


def kinds_for(migrates: Migrates | None) -> tuple[Kind, ...]:
    """What a step's output is counted for: its migrations (alembic or Django), or else pip's lines."""
    if migrates is None:
        return ("pip",)
    return ("django",) if migrates == "all" else ("alembic",)


class StepProgress:
    """What a step has done so far, counted from its output; ``text`` says it in one line ("" until then).

    ``kinds`` limits what is looked for (fewer searches per batch); ``for_step``
    picks them from the step's ``migrates``.
    """

    def __init__(self, total: int | None = None, kinds: Iterable[Kind] = KINDS):
        self._total = total
        chosen = set(kinds)
        self._alembic, self._django, self._pip = ("alembic" in chosen), ("django" in chosen), ("pip" in chosen)
        self.kind: Kind | None = None  # the last kind of count seen
        self.ended: bool | None = None  # None while running, then whether the step succeeded
        self.started = 0  # alembic: "Running upgrade" lines (migrations begun)
        self.plugin: str | None = None  # alembic: the plugin of the last migration begun (indico db --all-plugins)
        self._announced: str | None = None  # alembic: the plugin named last ("executing command for plugin 'x'")
        self.applied = 0  # Django: migrations applied ("... OK")
        self.applying: str | None = None  # Django: the migration named last, without its OK (yet)
        self.collected: set[str] = set()  # pip: distributions collected (by canonical name)
        self.installing: int | None = None  # pip: "Installing collected packages" names these many
        self.installed: int | None = None  # pip: "Successfully installed" names these many
        self._text = ""
        self._markers = self._look_for()

    @classmethod
    def for_step(cls, step: StepRecord | StepSpec, total: int | None = None) -> StepProgress:
        return cls(total, kinds_for(step.migrates))

    @property
    def total(self) -> int | None:
        """Migrations pending when the step started (None: not known, or not yet)."""
        return self._total

    @total.setter
    def total(self, value: int | None) -> None:
        self._total = value
        self._text = self._render()

    @property
    def text(self) -> str:
        return self._text

    def feed(self, lines: Sequence[str]) -> bool:
        """Count what these new lines of the step's output say; True when the text changed."""
        if not lines:
            return False
        if self.applying is None:  # else an "OK" alone on its line may be the one awaited
            joined = lines[0] if len(lines) == 1 else "\n".join(lines)
            for marker in self._markers:
                if marker in joined:
                    break
            else:
                return False
        counted = False
        for line in lines:
            counted |= self._line(line)
        if not counted:
            return False
        self._markers = self._look_for()
        return self._update()

    def _look_for(self) -> tuple[str, ...]:
        markers = []
        if self._alembic:
            markers += [ALEMBIC, PLUGIN]
        if self._django:
            markers.append(APPLYING)
        if self._pip:
            markers += [COLLECTING, PROCESSING]
            if self.collected:  # pip names each package it installs first: these follow
                markers += [INSTALLING, INSTALLED]
        return tuple(markers)

    def end(self, succeeded: bool) -> bool:
        """The step ended: the text says what was applied, or where it stopped.  True when the text changed."""
        self.ended = succeeded
        return self._update()

    def _update(self) -> bool:
        text = self._render()
        changed, self._text = text != self._text, text
        return changed

    def _line(self, line: str) -> bool:
        if self.applying is not None and DJANGO_DONE.match(line):
            self.applied, self.applying, self.kind = self.applied + 1, None, "django"
        elif self._alembic and ALEMBIC in line and ALEMBIC_LINE.search(line):
            self.started += 1
            self.plugin = self._announced
            self.kind = "alembic"
        elif self._alembic and line.startswith(PLUGIN) and (found := PLUGIN_LINE.match(line)):
            self._announced = found.group(1)
        elif self._django and APPLYING in line and (found := DJANGO_LINE.match(line)):
            done = DJANGO_DONE.match(found.group(2)) is not None
            self.applied += done
            self.applying = None if done else found.group(1)
            self.kind = "django"
        elif not self._pip:
            return False
        elif line.startswith((COLLECTING, PROCESSING)) and (
            found := COLLECTING_LINE.match(line) or PROCESSING_LINE.match(line)
        ):
            if self.installed is not None:  # a new pip run in the same step: counted afresh
                self.collected, self.installing, self.installed = set(), None, None
            self.collected.add(_name(found.group(1), line.startswith(PROCESSING)))
            self.kind = "pip"
        elif self.collected and line.startswith(INSTALLING):
            self.installing = sum(1 for name in line[len(INSTALLING) :].split(",") if name.strip())
            self.kind = "pip"
        elif self.collected and line.startswith(INSTALLED):
            self.installed = len(line[len(INSTALLED) :].split())
            self.kind = "pip"
        else:
            return False
        return True

    def _of(self, count: int) -> str:
        """'3 of 12' against a total that still holds; past it (the total missed some), the count alone."""
        total = self._total
        return f"{count} of {total}" if total is not None and count <= total else str(count)

    def _applied(self, count: int) -> str:
        if self._total is not None and count <= self._total:
            return f"{count} of {self._total} migrations applied"
        return f"{_migrations(count)} applied"

    def _render(self) -> str:
        if self.kind == "alembic":
            if self.ended:
                return self._applied(self.started)
            where = f", plugin {self.plugin}" if self.plugin else ""
            stopped = "stopped at " if self.ended is False else ""
            return f"{stopped}migration {self._of(self.started)}{where}"
        if self.kind == "django":
            text = self._applied(self.applied)
            if self.applying is not None:
                text += f", stopped in {self.applying}" if self.ended is False else f", applying {self.applying}"
            return text
        if self.kind == "pip":
            if self.installed is not None:
                return f"pip: installed {_packages(self.installed)}"
            if self.installing is not None:
                return f"pip: installing {_packages(self.installing)}"
            return f"pip: collected {_packages(len(self.collected))}"
        return ""


def pending_total(context: InstanceContext, step: StepRecord | StepSpec) -> int | None:
    """How many migrations the step has to apply, read now from the database and the installed code.

    None for a step that applies none (``migrates`` unset), a recipe with no
    schema check, or a count that cannot be told (database or command not
    reachable, scripts not shipped, a revision the code does not know).  Never
    raises for such a problem.  It may take seconds: run it in a thread, before
    the step starts (see the module's docstring).
    """
    which: Migrates | None = step.migrates
    if which is None or context.recipe.schema_check is None:
        return None
    try:
        site_packages = Path(probe_venv(context.instance)["site_packages"])
        state = schema_of(context.instance, context.recipe, site_packages, context.database)
    except (WizardError, QueryError, sqlite3.Error, OSError, ValueError, KeyError, TypeError):
        return None
    return state.pending_count(which) if state is not None else None
