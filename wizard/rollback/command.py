"""``upgrade-wizard rollback``: what going back would do (changing nothing), or with --yes, doing it headless."""

from __future__ import annotations

from wizard.config.context import InstanceContext
from wizard.config.instance import Instance
from wizard.errors import Exit, WizardError
from wizard.headless import Choices, PlainOutput, follow_steps
from wizard.rollback.plan import plan_rollback
from wizard.session.engine import Engine
from wizard.session.store import StateStore


def roll_back(instance: Instance, store: StateStore, out: PlainOutput, choices: Choices, *,
              restore_database: bool | None, go: bool) -> Exit:  # fmt: skip
    """Plan the rollback of the last upgrade and print it; with ``go``, run it (or go on with one under way)."""
    with Engine(InstanceContext.open(instance), store, say=out.line) as engine:
        engine.reconcile()
        session = engine.session
        if session is not None and session.is_rollback and not (session.done or session.abandoned):
            if not go:
                out.line(f"the rollback {session.id} is under way: add --yes to go on with it")
                return Exit.DONE
            out.line(f"going on with the rollback {session.id} (of the upgrade {session.undoes})")
            return follow_steps(engine, out, choices)
        if choices.retry or choices.skip_reason is not None:
            raise WizardError("--retry and --skip apply to a rollback under way, and there is none")
        plan = plan_rollback(engine.context, session, restore_database)
        out.lines(plan.lines())
        if not go:
            out.line("nothing was changed: add --yes to carry it out")
            return Exit.DONE
        engine.begin_rollback(plan)
        return follow_steps(engine, out, choices)
