"""What the plan does to the services, before step 1: which it stops, starts, restarts or reloads, and when.

Read from the recipe's steps (a planned step names its recipe step by id, a later hop's copy as
``<id>-<version>``); the ready screen shows it.
"""

from __future__ import annotations

from dataclasses import dataclass

from steps.models import Recipe, StepSpec
from wizard.session.state import Session, StepRecord, StepStatus

DONE_WORD = {"stop": "stopped", "start": "started", "restart": "restarted", "reload": "reloaded"}


def nothing_started(session: Session) -> bool:
    """No step has been attempted (a step the plan skipped does not count) and nothing ran beside them."""
    return not session.side_jobs and all(
        step.attempts == 0 and step.status in (StepStatus.PENDING, StepStatus.SKIPPED) for step in session.steps
    )


def spec_of(record: StepRecord, recipe: Recipe, hops: list[str]) -> StepSpec | None:
    """The recipe step a planned step comes from (a later hop's copy is named ``<id>-<version>``)."""
    for spec in recipe.steps:
        if record.id == spec.id or any(record.id == f"{spec.id}-{version}" for version in hops):
            return spec
    return None


@dataclass(frozen=True)
class ServiceUse:
    role: str
    unit: str | None
    acts: list[tuple[int, str]]  # (step number, action), in the order they run

    def line(self) -> str:
        unit = f" ({self.unit})" if self.unit and self.unit != self.role else ""
        acts, stopped = [], False
        for number, action in self.acts:
            again = " again" if stopped and action == "start" else ""
            acts.append(f"{DONE_WORD.get(action, action)}{again} at step {number}")
            stopped = action == "stop"
        return f"{self.role}{unit}: {', '.join(acts)}"

    def stopped_spans(self) -> list[tuple[int, int | None]]:
        """From each stop to the start that follows it (None: it stays stopped after the last step)."""
        spans: list[tuple[int, int | None]] = []
        stopped = None
        for number, action in self.acts:
            if action == "stop":
                stopped = number
            elif action in ("start", "restart") and stopped is not None:
                spans.append((stopped, number))
                stopped = None
        if stopped is not None:
            spans.append((stopped, None))
        return spans


def service_uses(session: Session, recipe: Recipe) -> list[ServiceUse]:
    """The services the steps stop, start, restart or reload, from the recipe's steps (a skipped step does nothing)."""
    acts: dict[str, list[tuple[int, str]]] = {}
    for number, record in enumerate(session.steps, 1):
        if record.status == StepStatus.SKIPPED:
            continue
        if record.service is not None:  # a rollback's step says it itself
            acts.setdefault(record.service.role, []).append((number, record.service.action))
            continue
        spec = spec_of(record, recipe, session.path)
        if spec is None:
            continue
        if spec.service is not None:
            acts.setdefault(spec.service.role, []).append((number, spec.service.action))
        elif spec.reloads:
            acts.setdefault(spec.reloads, []).append((number, "reload"))
    return [ServiceUse(role, session.services.get(role), found) for role, found in acts.items()]
