"""Where a session stands: the Engine's answer to "what comes next?" (Engine.next, Engine.settle).

The faces and the driver act on these: run a step, follow one, stop for a decision, or end.
"""

from __future__ import annotations

from dataclasses import dataclass

from wizard.session.state import Note, StepRecord


@dataclass(frozen=True)
class Done:
    pass


@dataclass(frozen=True)
class Blocked:
    """A release note says this upgrade cannot go on as it is."""

    notes: list[Note]


@dataclass(frozen=True)
class NotesPending:
    """Warnings the operator has not acknowledged yet."""

    notes: list[Note]


@dataclass(frozen=True)
class GateClosed:
    """No upgrade step may run before a backup is recorded."""


@dataclass(frozen=True)
class Run:
    step: StepRecord


@dataclass(frozen=True)
class Running:
    step: StepRecord


@dataclass(frozen=True)
class NeedsDecision:
    """An interrupted step: re-run it or skip it, the operator says which."""

    step: StepRecord


@dataclass(frozen=True)
class Failed:
    step: StepRecord


@dataclass(frozen=True)
class NotNeeded:
    """A step made unnecessary by what happened beside it (its service was restarted): settle() skips it."""

    step: StepRecord
    reason: str


@dataclass(frozen=True)
class AllEnded:
    """Every step has ended and nothing runs beside them: settle() marks the session finished."""


Next = Done | Blocked | NotesPending | GateClosed | Run | Running | NeedsDecision | Failed | NotNeeded | AllEnded
