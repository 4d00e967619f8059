"""``run --yes``: the upgrade without a screen, as plain timestamped lines for logs and automation."""

from __future__ import annotations

import argparse
import contextlib
import signal
from collections.abc import Iterator
from dataclasses import dataclass

from wizard.config.context import InstanceContext
from wizard.config.instance import Instance
from wizard.errors import Exit, WizardError
from wizard.execution.driver import Allowances, Driver
from wizard.health.check import check_health
from wizard.health.result import Health
from wizard.plainlines import EventLines, PlainOutput, ProgressLines, print_notes, report_done
from wizard.planning.plan import plan_for
from wizard.rollback.plan import way_back
from wizard.session.engine import Engine
from wizard.session.next import Blocked, Done, Failed, GateClosed, NeedsDecision, NotesPending
from wizard.session.resume import flags_text
from wizard.session.state import Backup, StepStatus
from wizard.session.store import StateStore
from wizard.together.progress import refuse_alone
from wizard.views.health import health_lines
from wizard.views.rows import going_back_text, note_sections, room_text
from wizard.views.sizes import human_bytes


@dataclass
class Choices:
    """What the operator decided on the command line."""

    retry: bool = False
    skip_reason: str | None = None
    backup_done: str | None = None
    lock_threshold: float | None = None
    restart_after: float | None = None
    end_blocker_after: float | None = None
    end_blocker_roles: tuple[str, ...] = ()


def run_steps(engine: Engine, out: PlainOutput, choices: Choices) -> Exit:
    """Drive the session until it is done, a step fails, or the operator must decide."""
    if not isinstance(engine.next(), Blocked):  # a --retry is kept for when the blocker is gone
        apply_choices(engine, out, choices)
    allowances = Allowances(choices.restart_after, choices.end_blocker_after, choices.end_blocker_roles)
    printer = EventLines(out, engine.recipe.app_server_role, choices.restart_after)
    driver = Driver(engine, printer, lock_threshold=choices.lock_threshold, allowances=allowances)
    session = engine.session
    assert session is not None
    while True:
        stopped = get_ready(engine, out, choices)
        if stopped is not None:
            return stopped
        nxt = driver.run()
        if isinstance(nxt, Done):
            report_done(engine, out)
            check_after(engine, out)  # the upgrade's exit code stays 0; `check` exits 1 for a site that is not well
            return Exit.DONE
        if isinstance(nxt, (Blocked, NotesPending, GateClosed)):
            continue  # get_ready answers them
        if isinstance(nxt, NeedsDecision):
            step = nxt.step
            out.line(f"step {step.id!r} ({step.title}) was interrupted: its process ended without an exit status")
            if step.log:
                out.line(f"its log: {step.log}")
            out.line(f"decide with {flags_text(session)}")
            return Exit.NEEDS_DECISION
        if isinstance(nxt, Failed):
            step = nxt.step
            out.line(f"step {step.id!r} ({step.title}) failed with exit code {step.exit_code}; log: {step.log}")
            waiting = [s.title for s in session.steps if s.status == StepStatus.PENDING]
            if waiting:  # e.g. the services still run the old code on what the steps before changed
                out.line(f"not run yet: {'; '.join(waiting)}")
            out.line(f"fix the cause, then run again with {flags_text(session)}")
            if back := way_back(session):
                out.line(back)
            return Exit.STEP_FAILED
        raise AssertionError(f"the driver stopped at {nxt!r}")  # it returns only the answers above


def get_ready(engine: Engine, out: PlainOutput, choices: Choices) -> Exit | None:
    """Everything before the first step: the notes (acknowledged "with --yes") and the backup gate.

    None when the session is ready to run its steps (or is further on); Exit.USAGE when a blocker stands."""
    session = engine.session
    assert session is not None
    while True:
        nxt = engine.settle()
        if isinstance(nxt, Blocked):
            print_notes(out, nxt.notes)
            out.line("this upgrade cannot go on until the blockers above are dealt with")
            return Exit.USAGE
        if isinstance(nxt, NotesPending):
            for note in nxt.notes:
                print_notes(out, [note])
                engine.acknowledge(note.id, "with --yes")
        elif isinstance(nxt, GateClosed):
            # Info notes need no acknowledging, but are said before the gate, as the interactive wizard shows them.
            print_notes(out, [note for note in session.notes if note.severity == "info"])
            backup = _pass_gate(engine, choices, out)
            engine.pass_gate(backup)
            out.line(f"backup gate passed: {backup.kind} backup at {backup.path}")
        else:
            return None


def apply_choices(engine: Engine, out: PlainOutput, choices: Choices) -> None:
    if not (choices.retry or choices.skip_reason is not None):
        return
    step = engine.session.current if engine.session else None
    if step is None or step.status not in (StepStatus.FAILED, StepStatus.INTERRUPTED):
        raise WizardError("--retry and --skip apply to a failed or interrupted step, and there is none")
    if choices.retry:
        engine.retry(step)
        out.line("will run this step again, as asked", step.id)
    else:
        engine.skip(step, choices.skip_reason or "")
        out.line(f"skipped, as asked: {choices.skip_reason}", step.id)


def _pass_gate(engine: Engine, choices: Choices, out: PlainOutput) -> Backup:
    from wizard.backup.take import declared_backup

    backups = engine.backups
    for left in backups.unfinished():  # said, never deleted
        out.line(f"left in the backup folder: {left.says()}")
    if choices.backup_done:
        return declared_backup(choices.backup_done)
    if backups.possible():
        plan = backups.estimate()
        out.line(f"backup into {room_text(plan)}")
        for part in plan.parts:
            left_out = "" if part.included else f" - left out: {part.why_not}"
            out.line(f"  {part.label}: {part.where} ({human_bytes(part.size)}){left_out}")
        out.line("taking the backup (the gate stays closed until it has been read back)...")
        backup = backups.take(ProgressLines(out), measured=plan)
        for what in backup.contents:
            out.line(f"  backed up: {what}")
        for command in backup.restore:
            out.line(f"  restore with: {command}")
        return backup
    raise WizardError(
        "the backup gate is closed: no upgrade step runs before a backup is recorded",
        "take a backup, then pass --backup-done PATH (where it is)",
    )


def check_after(engine: Engine, out: PlainOutput) -> Health:
    """The health check at the end of the upgrade, printed and kept with the session."""
    out.line("checking that the site works: the code, the schema, the services, the site itself")
    health = check_health(engine.context, engine.session, progress=lambda what: out.line(f"checking {what}"))
    engine.record_health(health)
    out.lines([line.plain for line in health_lines(health)])
    if not health.healthy:
        out.line("every step finished, but the site is NOT healthy: see the findings above; "
                 "`upgrade-wizard check` exits 1 until it is")  # fmt: skip
        if engine.session is not None and (back := way_back(engine.session)):
            out.line(back)
    return health


def run_upgrade(
    instance: Instance,
    store: StateStore,
    out: PlainOutput,
    choices: Choices,
    *,
    new: bool = False,
) -> Exit:
    """The whole headless run: lock, resume or plan, then the steps."""
    with Engine(InstanceContext.open(instance), store, say=out.line) as engine:
        engine.reconcile()
        session = engine.session
        refuse_alone(store.dir.parent, instance, session)
        if session is not None and session.shared_run and not session.done:
            raise WizardError(f"instance {instance.name!r} is being upgraded together with the other instances on its "
                              f"venv ({instance.venv}); its session is one part of that upgrade",
                              "carry it on with `upgrade-wizard run --yes --all` (or name every instance on the venv)")  # fmt: skip
        if session is not None and session.done and not new:
            if choices.retry or choices.skip_reason is not None:
                raise WizardError("this upgrade is finished: there is no failed or interrupted step to decide on")
            report_done(engine, out)
            if session.health is not None:  # the last check, as recorded (`check` asks again)
                out.lines([line.plain for line in health_lines(session.health)])
            out.line("this upgrade is finished; pass --new to plan another one")
            return Exit.DONE
        if session is None or new:
            plan = plan_for(engine.context, engine.backup_root)
            found = plan.found
            if not plan.steps or plan.blocked:  # a blocked plan begins no session: nothing to come back to
                out.line(plan.nothing_to_do if not plan.steps else "this upgrade cannot begin: see the blockers below")
                for head, notes in note_sections(plan):
                    out.line(head.plain)
                    print_notes(out, notes)
                return Exit.USAGE if plan.blocked else Exit.DONE
            engine.begin(plan)
            route = " -> ".join([found.installed_version or "?", *plan.hops]) if plan.hops else found.target_version
            out.line(f"planned {route} ({found.target_source}): {len(plan.steps)} steps")
            out.line(going_back_text(plan.steps))
        return follow_steps(engine, out, choices)


def follow_steps(engine: Engine, out: PlainOutput, choices: Choices) -> Exit:
    """run_steps, stopped by Ctrl-C, a hang-up or SIGTERM without stopping the running step."""
    try:
        with stopped_by_hangup_or_term():
            return run_steps(engine, out, choices)
    except (KeyboardInterrupt, StoppedBySignal) as stop:
        running = engine.session.running if engine.session else None
        if running:
            with contextlib.suppress(OSError):  # after a hang-up the terminal may be gone
                out.line(f"stopped following; the step goes on (pid {running.pid}): run again to reattach", running.id)
        return stop.exit if isinstance(stop, StoppedBySignal) else Exit.STOPPED


class StoppedBySignal(Exception):
    """SIGHUP or SIGTERM while the wizard follows a step: stop following as Ctrl-C does; the step goes on."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.exit = Exit.HUNG_UP if signum == signal.SIGHUP else Exit.TERMINATED


@contextlib.contextmanager
def stopped_by_hangup_or_term() -> Iterator[None]:
    def stop(signum: int, _frame: object) -> None:
        raise StoppedBySignal(signum)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGHUP, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def require_yes(args: argparse.Namespace) -> None:
    if not args.yes:
        raise WizardError(
            "a headless run asks no questions, so it needs --yes to go ahead",
            "or run `upgrade-wizard tui` to be walked through it",
        )


def choices_from(args: argparse.Namespace) -> Choices:
    if args.end_blocker_after is not None and not args.end_blocker_role:
        raise WizardError(
            "--end-blocker-after needs --end-blocker-role ROLE: the database roles whose sessions it may end",
            "e.g. --end-blocker-after 60 --end-blocker-role reporting (never the app server's own role)",
        )
    if args.end_blocker_role and args.end_blocker_after is None:
        raise WizardError("--end-blocker-role is used only with --end-blocker-after N")
    return Choices(retry=args.retry, skip_reason=args.skip, backup_done=args.backup_done,
                   lock_threshold=args.lock_wait_seconds, restart_after=args.restart_after,
                   end_blocker_after=args.end_blocker_after, end_blocker_roles=tuple(args.end_blocker_role or ()))  # fmt: skip
