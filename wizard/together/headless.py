"""``run --yes`` for several instances: each on its own venv as ever, those on a shared venv together.

On a shared venv every instance's notes and backup come first; then the first instance's session installs the new
code and migrates its database; then each other instance's session migrates its own. A wizard killed on the way
is taken up again where it stood: a finished instance is never run again.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from wizard.config.context import InstanceContext
from wizard.config.instance import Instance
from wizard.errors import Exit, WizardError
from wizard.headless import Choices, follow_steps, get_ready, run_upgrade
from wizard.plainlines import PlainOutput, print_notes, report_done
from wizard.planning.plan import Plan, plan_for
from wizard.planning.shared import Together, by_venv, venv_steps
from wizard.session.engine import Engine, new_session_id
from wizard.session.state import FINISHED, StepStatus, now
from wizard.session.store import StateStore
from wizard.together.progress import in_run, in_the_way, refuse_during_rollback
from wizard.together.record import SharedRun, SharedRunStore
from wizard.views.rows import going_back_text

CARRY_ON = "carry on with `upgrade-wizard run --yes --all` (or name every instance on the venv)"
SIGNALLED = {Exit.STOPPED, Exit.HUNG_UP, Exit.TERMINATED}


def worst(codes: list[Exit]) -> Exit:
    """The exit code of a run over several instances: the highest one (0 only when every one is 0)."""
    return max(codes, default=Exit.DONE)


def run_instances(
    instances: list[Instance], root: Path, out: PlainOutput, choices: Choices, *, new: bool = False
) -> Exit:
    """Each venv's instances upgraded in turn, every line labelled with its instance; the worst exit code wins.

    ``--retry``/``--skip`` go to the one instance that stands at a failed or interrupted step."""

    def upgrade(group: list[Instance], mine: Choices) -> Exit:
        if len(group) == 1:
            return run_upgrade(group[0], StateStore(root, group[0].name), out.labelled(group[0].name), mine, new=new)
        return run_together(group, root, out, mine, new=new)

    return for_each_venv(instances, root, choices, upgrade)


def for_each_venv(instances: list[Instance], root: Path, choices: Choices,
                  act: Callable[[list[Instance], Choices], Exit]) -> Exit:  # fmt: skip
    """``act`` on each venv's instances in turn; the worst exit code. One venv that cannot go on does not stop the
    others (its error is said on stderr); the operator stopping the wizard does. ``--retry``/``--skip`` go to the
    one instance that stands at a failed or interrupted step, and to its venv's act alone."""
    deciding = deciding_instance(instances, root) if choices.retry or choices.skip_reason is not None else None
    plain = Choices(**{**vars(choices), "retry": False, "skip_reason": None})
    codes = []
    for group in by_venv(instances):
        try:
            code = act(group, choices if deciding in [i.name for i in group] else plain)
        except WizardError as exc:
            names = ", ".join(instance.name for instance in group)
            hint = f"\nhint: {exc.hint}" if exc.hint else ""
            print(f"error: {names}: {exc.message}{hint}", file=sys.stderr, flush=True)
            code = exc.exit_code
        codes.append(code)
        if code in SIGNALLED:
            break  # the operator stopped the wizard: nothing more is started
    return worst(codes)


def deciding_instance(instances: list[Instance], root: Path) -> str:
    """The instance a --retry or --skip is meant for: the only one standing at a failed or interrupted step."""
    waiting = []
    for instance in instances:
        session = StateStore(root, instance.name).load()
        step = session.current if session is not None and not session.done else None
        if step is not None and step.status in (StepStatus.FAILED, StepStatus.INTERRUPTED):
            waiting.append(instance.name)
    if len(waiting) != 1:
        said = ", ".join(waiting) if waiting else "none of them"
        raise WizardError(f"--retry and --skip apply to the one instance at a failed or interrupted step: {said}",
                          "name that instance alone, with the others of its venv if it shares one")  # fmt: skip
    return waiting[0]


@contextlib.contextmanager
def holding_the_venv(
    instances: list[Instance], root: Path, out: PlainOutput
) -> Iterator[tuple[SharedRunStore, dict[str, Engine], dict[str, PlainOutput]]]:
    """The shared venv's lock and every instance's engine (its lock held, its session reconciled), each one's lines
    labelled with its name; all let go of on the way out."""
    store = SharedRunStore(root, instances[0].venv)
    outs = {instance.name: out.labelled(instance.name) for instance in instances}
    with store.lock(), contextlib.ExitStack() as stack:
        engines: dict[str, Engine] = {}
        for instance in instances:
            engine = Engine(
                InstanceContext.open(instance), StateStore(root, instance.name), say=outs[instance.name].line
            )
            engines[instance.name] = stack.enter_context(engine)
            engine.reconcile()
        yield store, engines, outs


def run_together(
    instances: list[Instance], root: Path, out: PlainOutput, choices: Choices, *, new: bool = False
) -> Exit:
    """Every instance on one shared venv: their locks and the venv's lock held throughout."""
    names = [instance.name for instance in instances]
    with holding_the_venv(instances, root, out) as (store, engines, outs):
        run = store.load()
        if run is not None:
            refuse_during_rollback(run, {name: engine.session for name, engine in engines.items()})
        if run is not None and run.finished is None:
            if sorted(run.instances) != sorted(names):
                raise WizardError(f"the upgrade of the shared venv {store.venv} under way is of {', '.join(run.instances)}",
                                  f"{CARRY_ON}; the instances on a venv are upgraded together or not at all")  # fmt: skip
            begin_missing(run, store, engines, outs)
        else:
            if run is not None and not new:
                for name in run.instances:
                    if run.sessions.get(name) and engines[name].session is not None:
                        report_done(engines[name], outs[name])
                ended = "was taken back" if run.rollbacks else "is finished"
                out.line(f"the upgrade of the shared venv {store.venv} {ended}; pass --new to plan another one")
                return Exit.DONE
            started = start_run(instances, store, engines, outs, previous=run)
            if isinstance(started, Exit):
                return started
            run = started
        return drive(run, store, engines, outs, choices)


def start_run(
    instances: list[Instance],
    store: SharedRunStore,
    engines: dict[str, Engine],
    outs: dict[str, PlainOutput],
    previous: SharedRun | None,
) -> SharedRun | Exit:
    """Plan every instance (nothing written until all are planned and none is blocked), then begin them."""
    put_aside_plans(engines, outs, previous)
    together = Together(tuple(engines))
    plans: dict[str, Plan] = {}
    for name, engine in engines.items():
        plans[name] = plan_for(engine.context, engine.backup_root, together)
    targets = {plan.found.target_version for plan in plans.values()}
    if len(targets) > 1:
        pinned = ", ".join(f"{name}: {plan.found.target_version}" for name, plan in plans.items())
        raise WizardError(f"the instances on {store.venv} aim at different releases ({pinned})",
                          "one venv holds one release: pin the same target in each instance, or none")  # fmt: skip
    blocked = [name for name, plan in plans.items() if plan.blocked]
    for name in blocked:
        print_notes(outs[name], [note for note in plans[name].notes if note.severity == "blocker"])
    if blocked:
        for name in blocked:
            outs[name].line("this upgrade cannot go on until the blockers above are dealt with")
        return Exit.USAGE
    if not any(plan.steps for plan in plans.values()):
        for name, plan in plans.items():
            outs[name].line(plan.nothing_to_do)
        return Exit.DONE
    if previous is not None:
        kept = store.put_aside(previous)
        outs[together.code_by].line(f"the record of the last upgrade of the shared venv was kept as {kept}")
    run = SharedRun(id=new_session_id(), venv=store.venv, instances=list(engines))
    code = venv_steps(plans[together.code_by].steps)
    run.note(f"planned for {', '.join(run.instances)}; the code ({len(code)} steps) by {together.code_by}'s session")
    store.save(run)
    for name, plan in plans.items():
        begin(run, store, engines[name], plan, outs[name])
    return run


def put_aside_plans(engines: dict[str, Engine], outs: dict[str, PlainOutput], run: SharedRun | None) -> None:
    """An instance's own session in which no step ever ran (a plan, perhaps refused for the shared venv) is put
    aside, kept; one under way stops the run before anything is planned."""
    probe = run or SharedRun(id="", venv="", instances=list(engines))
    for name, engine in engines.items():
        session = engine.session
        standing = in_the_way(probe, session)
        if session is not None and standing == "under way":
            raise WizardError(f"instance {name!r} has an upgrade of its own under way (session {session.id})",
                              f"finish it or abandon it first (`upgrade-wizard tui {name}`)")  # fmt: skip
        if session is not None and standing == "put aside":
            kept = engine.abandon("for the upgrade of the shared venv: no step of it had run")
            outs[name].line(f"its session {session.id}, in which no step had run, was put aside as {kept}")


def begin(run: SharedRun, store: SharedRunStore, engine: Engine, plan: Plan, out: PlainOutput) -> None:
    if not plan.steps:
        out.line(plan.nothing_to_do)
        run.nothing_to_do.append(engine.instance.name)
        store.save(run)
        return
    session = engine.begin(plan, shared_run=run.id)
    run.sessions[engine.instance.name] = session.id
    store.save(run)
    found = plan.found
    code = "installs the new code for the venv" if venv_steps(plan.steps) else f"the code comes from {run.code_by}"
    out.line(f"planned {found.installed_version} -> {found.target_version}: {len(plan.steps)} steps ({code})")
    out.line(going_back_text(plan.steps))


def begin_missing(
    run: SharedRun, store: SharedRunStore, engines: dict[str, Engine], outs: dict[str, PlainOutput]
) -> None:
    """Each instance's session of this run, found; or planned now: the wizard was killed while beginning them (no
    code has changed yet: every backup comes before the first step), or its session was abandoned since."""
    together = Together(tuple(run.instances))
    for name in run.instances:
        if name in run.nothing_to_do:
            continue
        engine = engines[name]
        session = in_run(run, engine.session)
        if session is not None:
            if run.sessions.get(name) != session.id:
                run.sessions[name] = session.id
                store.save(run)
            continue
        if name in run.sessions:
            outs[name].line(
                f"its session of this upgrade ({run.sessions.pop(name)}) is no longer current: planned anew"
            )
            store.save(run)
        put_aside_plans({name: engine}, outs, run)
        begin(run, store, engine, plan_for(engine.context, engine.backup_root, together), outs[name])


def drive(
    run: SharedRun, store: SharedRunStore, engines: dict[str, Engine], outs: dict[str, PlainOutput], choices: Choices
) -> Exit:
    """Each instance's notes and backup, then each instance's steps in the run's order (the code with the first)."""
    taking_part = [name for name in run.instances if name in run.sessions]
    for name in taking_part:
        try:
            stopped = get_ready(engines[name], outs[name], choices)
        except KeyboardInterrupt:  # while a backup is taken: nothing of the upgrade has run
            outs[name].line("stopped before any step ran; run again to go on")
            return Exit.STOPPED
        if stopped is not None:
            return stopped
    for name in taking_part:
        engine, out = engines[name], outs[name]
        session = engine.session
        if session is None or session.id != run.sessions[name]:
            raise WizardError(f"{name}'s session of this upgrade ({run.sessions[name]}) is no longer its current one "
                              "(abandoned, or replaced by hand)",
                              f"the record of the shared venv's upgrade is {store.path}: look at both before going on")  # fmt: skip
        if session.done:
            out.line("finished earlier in this run: not run again")
            continue
        if name != run.code_by and run.code_by in run.sessions and not code_installed(engines[run.code_by]):
            raise WizardError(f"{run.code_by}'s session has not installed the new code yet: {name} cannot be migrated",
                              CARRY_ON)  # fmt: skip
        code = follow_steps(engine, out, choices)
        if code != Exit.DONE:
            if code not in SIGNALLED:
                out.line(f"the other instances on the venv wait; {CARRY_ON}")
            return code
        choices = Choices(**{**vars(choices), "retry": False, "skip_reason": None})  # a decision was for this one
    run.finished = now()
    run.note("every instance on the venv upgraded")
    store.save(run)
    outs[run.code_by].line(f"every instance on {store.venv} is upgraded: {', '.join(taking_part)}")
    return Exit.DONE


def code_installed(engine: Engine) -> bool:
    """The code instance's session has run (or skipped, as the operator decided) every step that changes the venv."""
    session = engine.session
    return session is not None and all(step.status in FINISHED for step in venv_steps(session.steps))
