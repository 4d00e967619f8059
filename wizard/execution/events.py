"""What a running upgrade tells its face, as typed events in the order they happen.

The Driver emits them; `run --yes` prints them as lines, the TUI posts them to
its run screen as messages.  An event carries the records it is about; a face
reads them and never changes them (changes go through the Engine, in the
driver's thread).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from wizard.execution.runner import Finished, Gone
from wizard.lockwatch.watchdog import Verdict
from wizard.session.state import SideJob, StepRecord

if TYPE_CHECKING:
    from wizard.session.next import Next


@dataclass(frozen=True)
class StepStarting:
    """About to launch this step (a launch that fails raises from the driver after this)."""

    step: StepRecord
    pending: int | None = None  # migrations it has to apply, read just before (a step that migrates)


@dataclass(frozen=True)
class StepStarted:
    """Launched: the session says running and has the attempt's log; the pid may still be unknown."""

    step: StepRecord


@dataclass(frozen=True)
class Reattached:
    """An earlier wizard left this step running; ``tail`` is the end of what it wrote so far."""

    step: StepRecord
    tail: list[str]


@dataclass(frozen=True)
class Output:
    """New whole lines of the followed step's log, cleaned for a terminal."""

    step: StepRecord
    lines: list[str]


@dataclass(frozen=True)
class StepEnded:
    step: StepRecord
    outcome: Finished | Gone


@dataclass(frozen=True)
class VerdictChanged:
    """The lock watch's verdict on the followed step (sent when it or its seconds of silence change).

    ``after_restart``: the first verdict after a restart of the app server ended.
    """

    step: StepRecord
    verdict: Verdict
    after_restart: bool = False


@dataclass(frozen=True)
class SideJobStarted:
    """A restart beside the step began; ``automatic`` when a command-line allowance did it, not the operator."""

    job: SideJob
    automatic: bool


@dataclass(frozen=True)
class SideJobEnded:
    job: SideJob


@dataclass(frozen=True)
class Declined:
    """The wizard may act by itself here but will not: ``reason`` says why (e.g. the holder is not proven)."""

    step: StepRecord
    reason: str


@dataclass(frozen=True)
class SessionEnding:
    """A blocking database session is about to be ended, as a command-line allowance says."""

    step: StepRecord
    pid: int
    role: str
    who: str


@dataclass(frozen=True)
class SessionEnded:
    """The outcome of ending a blocking database session; ``error`` when it could not be asked."""

    step: StepRecord | None
    pid: int
    ended: bool
    error: str | None = None


@dataclass(frozen=True)
class DecisionNeeded:
    """The driver stopped: the operator (or the headless run's flags) must act before anything runs.

    ``next`` is the engine's answer: a failed or interrupted step, a blocker, warnings
    not acknowledged, or the backup gate.
    """

    next: Next


@dataclass(frozen=True)
class UpgradeDone:
    """Every step has ended as it should; the session is finished and saved."""


Event = (
    StepStarting
    | StepStarted
    | Reattached
    | Output
    | StepEnded
    | VerdictChanged
    | SideJobStarted
    | SideJobEnded
    | Declined
    | SessionEnding
    | SessionEnded
    | DecisionNeeded
    | UpgradeDone
)
