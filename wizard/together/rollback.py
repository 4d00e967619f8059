"""``rollback --all``: a shared venv's upgrade taken back, every instance on the venv together.

The old code goes back once, in the rollback of the instance whose session installed the new code; every
instance's rollback (that one's too) stops its own services, restores its own database when asked, and starts its
services again on the old code. Each is a rollback Session of its instance, run by the same Engine and Driver as
any. All of them are planned before anything is touched (one that cannot be taken back stops them all), then run
in the upgrade's order; the shared venv's record names each rollback once begun, so a wizard killed between two
takes up the next one where it stood and never runs a finished one again.
"""

from __future__ import annotations

from pathlib import Path

from wizard.config.instance import Instance
from wizard.errors import Exit, WizardError
from wizard.headless import Choices, follow_steps
from wizard.plainlines import PlainOutput
from wizard.rollback.plan import RollbackPlan, SharedCode, plan_rollback
from wizard.session.engine import Engine
from wizard.session.state import Session, now
from wizard.together.headless import holding_the_venv
from wizard.together.progress import ROLLBACK_CARRY_ON, rollback_unfinished
from wizard.together.record import SharedRun, SharedRunStore


def roll_back_together(instances: list[Instance], root: Path, out: PlainOutput, choices: Choices, *,
                       restore_database: bool | None, go: bool) -> Exit:  # fmt: skip
    """Plan the rollback of the shared venv's last upgrade and print it; with ``go``, run it (or go on with it)."""
    names = [instance.name for instance in instances]
    with holding_the_venv(instances, root, out) as (store, engines, outs):
        run = store.load()
        if run is None:
            raise WizardError(f"there is no upgrade of the shared venv {store.venv} on record to take back",
                              "`upgrade-wizard status` shows where each instance stands")  # fmt: skip
        if sorted(run.instances) != sorted(names):
            raise WizardError(f"the last upgrade of the shared venv {store.venv} was of {', '.join(run.instances)}, "
                              f"not of {', '.join(names)}: those go back together, and only those",
                              f"name them: `upgrade-wizard rollback {' '.join(run.instances)}`")  # fmt: skip
        if run.nothing_to_do:
            raise WizardError(f"{', '.join(run.nothing_to_do)} had nothing to upgrade when the shared venv was upgraded: "
                              "putting the old code back would put it under a database the upgrade never touched",
                              "take the venv back by hand (the packages recorded before the upgrade are in "
                              f"`upgrade-wizard status {run.code_by} --json`, packages_before)")  # fmt: skip
        taking_part = [name for name in run.instances if name in run.sessions]
        sessions = {name: rollback_or_upgrade(run, name, engines[name].session) for name in taking_part}
        if run.rollbacks:
            if not rollback_unfinished(run, dict(sessions)):
                out.line(f"the last upgrade of the shared venv {run.venv} was taken back: every instance's rollback "
                         "is finished")  # fmt: skip
                return Exit.DONE
            if not go:
                out.line(f"the rollback of the shared venv's upgrade {run.id} is under way: add --yes to go on with it")
                return Exit.DONE
            begin_all(run, store, engines, outs, plan_all(run, sessions, engines, restore_database))
            return drive(run, engines, outs, choices)
        if choices.retry or choices.skip_reason is not None:
            raise WizardError("--retry and --skip apply to a rollback under way, and there is none")
        plans = plan_all(run, sessions, engines, restore_database)
        if not any(plan.restores_database or not plan.changes.none for plan in plans.values()):
            raise WizardError("the venv already holds exactly the packages recorded before the upgrade, and the "
                              "databases are to be kept: there is nothing to take back",
                              "`upgrade-wizard check INSTANCE` says how each site is")  # fmt: skip
        for name, plan in plans.items():
            outs[name].lines(plan.lines())
        if not go:
            out.line("nothing was changed: add --yes to carry it out")
            return Exit.DONE
        begin_all(run, store, engines, outs, plans)
        return drive(run, engines, outs, choices)


def rollback_or_upgrade(run: SharedRun, name: str, session: Session | None) -> Session:
    """The instance's session now: its upgrade in the run, or the rollback of that upgrade (else refused)."""
    upgrade_id = run.sessions[name]
    if session is not None and (session.id == upgrade_id or (session.is_rollback and session.undoes == upgrade_id)):
        return session
    now_there = f"its session now is {session.id}" if session is not None else "it has no session now"
    raise WizardError(f"{name}'s part of the shared venv's upgrade ({upgrade_id}) is no longer its current session "
                      f"({now_there})", "`upgrade-wizard status` shows where each instance stands; take that one "
                      "back by hand")  # fmt: skip


def plan_all(run: SharedRun, sessions: dict[str, Session], engines: dict[str, Engine],
             restore_database: bool | None) -> dict[str, RollbackPlan]:  # fmt: skip
    """The rollback of each instance whose rollback has not begun, in the run's order (WizardError: none begins)."""
    code = sessions.get(run.code_by)
    if code is None:
        raise WizardError(f"{run.code_by}, whose session was to install the new code, has no session in this upgrade "
                          "of the shared venv: there is no record of the packages to put back")  # fmt: skip
    record, version = (code.restores, code.target_version) if code.is_rollback else (code.packages_before,
                                                                                     code.installed_version)  # fmt: skip
    plans = {}
    for name, session in sessions.items():
        if session.is_rollback:
            continue
        shared = SharedCode(run.code_by, record, version, puts_back=name == run.code_by)
        try:
            plans[name] = plan_rollback(engines[name].context, session, restore_database, shared)
        except WizardError as exc:  # said with the instance it is about; none of them begins
            raise WizardError(f"{name}: {exc.message}; no instance's rollback begins", exc.hint) from None
    return plans


def begin_all(run: SharedRun, store: SharedRunStore, engines: dict[str, Engine], outs: dict[str, PlainOutput],
              plans: dict[str, RollbackPlan]) -> None:  # fmt: skip
    for name, plan in plans.items():
        session = engines[name].begin_rollback(plan)
        run.rollbacks[name] = session.id
        if run.finished is None:
            run.finished = now()  # this upgrade goes no further: a new one is planned with `run --new`
        run.note(f"{name}: taken back by its rollback {session.id}")
        store.save(run)
        outs[name].line(f"the rollback {session.id} begins")


def drive(run: SharedRun, engines: dict[str, Engine], outs: dict[str, PlainOutput], choices: Choices) -> Exit:
    """Each instance's rollback in the run's order, the one that puts the code back first; a finished one is not run
    again, and one that stops stops the rest."""
    for name in (name for name in run.instances if name in run.rollbacks):
        engine, out = engines[name], outs[name]
        session = engine.session
        if session is None or session.id != run.rollbacks[name]:
            raise WizardError(f"{name}'s rollback of this upgrade ({run.rollbacks[name]}) is no longer its current "
                              "session", "`upgrade-wizard status` shows where each instance stands")  # fmt: skip
        if session.done:
            out.line("its rollback finished earlier: not run again")
            continue
        code = follow_steps(engine, out, choices)
        if code != Exit.DONE:
            if code in (Exit.STEP_FAILED, Exit.NEEDS_DECISION):
                out.line(f"the other instances on the venv wait; {ROLLBACK_CARRY_ON}")
            return code
        choices = Choices(**{**vars(choices), "retry": False, "skip_reason": None})  # a decision was for this one
    outs[run.code_by].line(f"every instance on {run.venv} is taken back: {', '.join(run.rollbacks)}")
    return Exit.DONE
