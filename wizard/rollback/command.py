"""``upgrade-wizard rollback``: what going back would do (changing nothing), or with --yes, doing it headless."""

from __future__ import annotations

from pathlib import Path

from wizard.config.context import InstanceContext
from wizard.config.instance import Instance
from wizard.errors import Exit, WizardError
from wizard.headless import Choices, follow_steps
from wizard.plainlines import PlainOutput
from wizard.rollback.plan import plan_rollback
from wizard.session.engine import Engine
from wizard.session.store import StateStore
from wizard.together.headless import for_each_venv
from wizard.together.progress import refuse_alone
from wizard.together.rollback import roll_back_together


def roll_back_instances(instances: list[Instance], root: Path, out: PlainOutput, choices: Choices, *,
                        restore_database: bool | None, go: bool) -> Exit:  # fmt: skip
    """One instance's rollback as ever; several: each venv's in turn, a shared venv's upgrade taken back together,
    every line labelled with its instance; the worst exit code."""
    if len(instances) == 1:
        instance = instances[0]
        return roll_back(instance, StateStore(root, instance.name), out, choices, restore_database=restore_database,
                         go=go)  # fmt: skip

    def take_back(group: list[Instance], mine: Choices) -> Exit:
        if len(group) == 1:
            return roll_back(group[0], StateStore(root, group[0].name), out.labelled(group[0].name), mine,
                             restore_database=restore_database, go=go)  # fmt: skip
        return roll_back_together(group, root, out, mine, restore_database=restore_database, go=go)

    return for_each_venv(instances, root, choices, take_back)


def roll_back(instance: Instance, store: StateStore, out: PlainOutput, choices: Choices, *,
              restore_database: bool | None, go: bool) -> Exit:  # fmt: skip
    """Plan the rollback of the last upgrade and print it; with ``go``, run it (or go on with one under way)."""
    with Engine(InstanceContext.open(instance), store, say=out.line) as engine:
        engine.reconcile()
        session = engine.session
        refuse_alone(store.dir.parent, instance, session)
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
