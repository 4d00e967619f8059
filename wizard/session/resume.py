"""Coming back to a session found on disk: the choices it offers, in the order the operator should weigh them.

One decision for both faces: the resume screen lists them as options, `run --yes`
names the flags that make them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from wizard.rollback.plan import can_roll_back
from wizard.session.state import Session, StepStatus

ChoiceId = Literal["continue", "retry", "skip", "rollback", "abandon"]


@dataclass(frozen=True)
class Choice:
    id: ChoiceId
    label: str  # as the resume screen offers it
    flag: str | None  # how `run --yes` is told (None: a plain run does it, or it cannot be done there)


def resume_choices(session: Session) -> list[Choice]:
    """What can be done with an unfinished session, the likeliest right choice first."""
    step = session.current
    status = step.status if step else None
    abandon = Choice("abandon", "Abandon this session (it is kept on disk)", None)
    # Shown before a plain abandon: an abandoned upgrade is put aside, and no rollback finds it afterwards.
    way_back = (
        [Choice("rollback", "Take the upgrade back: see what that runs first", None)] if can_roll_back(session) else []
    )
    read_first = Choice("continue", "Read its log first, and decide on the run screen", None)
    if step is None or status is None or status == StepStatus.PENDING:
        return [Choice("continue", "Continue where it stopped", None), abandon]
    if status == StepStatus.RUNNING:
        # No abandoning here: the step would run on with no session watching it.
        return [Choice("continue", "Reattach: follow the running step's live log", None)]
    if status == StepStatus.INTERRUPTED:
        if step.safe_to_rerun:
            rerun = Choice(
                "retry", "Run it again (it is marked safe to run again)", "--retry (it is marked safe to run again)"
            )
        else:
            rerun = Choice("retry", "Run it again — careful: it is not marked safe to run twice", "--retry")
        skip = Choice(
            "skip", "Skip it, saying why (e.g. you finished it by hand)", "--skip 'REASON' to go on without it"
        )
        first = [rerun, skip] if step.safe_to_rerun else [skip, rerun]
        return [*first, read_first, *way_back, abandon]
    return [
        Choice("retry", "Run it again (after fixing the cause)", "--retry"),
        Choice("skip", "Skip it, saying why", "--skip 'REASON' to go on without it"),
        read_first,
        *way_back,
        abandon,
    ]


def flags_text(session: Session) -> str:
    """The command-line form of the decision: 'A, or B' with the flags in the same order as on screen."""
    flags = [choice.flag for choice in resume_choices(session) if choice.flag]
    return ", or ".join(flags)
