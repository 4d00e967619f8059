"""The upgrade of one instance as a sequence of saved transitions.

Every change to the Session goes through a method here and is saved before
the method returns, so what a screen or a log line shows is already on disk.
"""

from __future__ import annotations

import secrets as random_tokens
import time
from collections.abc import Callable
from pathlib import Path

from wizard.backup.instance import InstanceBackups
from wizard.backup.take import declared_backup
from wizard.config.context import InstanceContext
from wizard.config.dbconf import Database
from wizard.config.instance import Instance
from wizard.config.secrets import secret_env
from wizard.errors import WizardError
from wizard.execution.runner import (
    Alive,
    Finished,
    Gone,
    Outcome,
    StepProcesses,
    inspect,
    prepare_attempt,
    sweep_secret_files,
)
from wizard.health.result import Health
from wizard.host.detect import os_family
from wizard.lockwatch.remedies import LockRemedies
from wizard.lockwatch.watchdog import LockWatch
from wizard.planning.plan import Plan
from wizard.planning.preflight import missing_tools
from wizard.rollback.plan import RollbackPlan
from wizard.session.binding import check_belongs
from wizard.session.next import (
    AllEnded,
    Blocked,
    Done,
    Failed,
    GateClosed,
    NeedsDecision,
    Next,
    NotesPending,
    NotNeeded,
    Run,
    Running,
)
from wizard.session.packages import record_packages
from wizard.session.state import (
    FINISHED,
    Backup,
    Note,
    Session,
    SideJob,
    StepRecord,
    StepStatus,
    now,
)
from wizard.session.store import InstanceLock, StateStore


def new_session_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + random_tokens.token_hex(2)


def real_processes(instance: Instance, redact: list[str]) -> StepProcesses:
    """Steps launched detached through the wrapper, as the app's user, with the instance's secrets."""
    return StepProcesses(instance.user, secret_env(instance.env), redact)


class Engine:
    """Holds the instance's lock and its Session for as long as the wizard works on it."""

    def __init__(
        self,
        context: InstanceContext,
        store: StateStore,
        say: Callable[[str], None] = lambda _: None,
        *,
        processes: Callable[[Instance, list[str]], StepProcesses] | None = None,
    ):
        """``processes``: makes what launches the steps, from the instance and the secrets to mask
        (default: the detached wrapper; tests of screens may hand in a stand-in).
        ``context``: the instance as read for this run (InstanceContext.open)."""
        self.context = context
        self.instance = instance = context.instance
        self.store = store
        self.say = say
        self.session: Session | None = None
        self.tools_missing: list[Note] = []  # found when a session is resumed; the next wizard looks again
        self._lock: InstanceLock | None = None
        self.recipe = context.recipe
        self._secrets = context.secrets  # a config that cannot be read stops us here: nothing of it would be masked
        self.processes = (processes or real_processes)(instance, self._secrets)
        self.remedies = LockRemedies(context)
        self.backups = InstanceBackups(context, lambda: store.backup_root(instance.backup_dir))

    # -- opening and closing ------------------------------------------------

    def open(self) -> Engine:
        """Take the instance's lock and load its session (LockHeld / StateError when that fails)."""
        lock = self.store.lock().acquire()
        try:
            self.store.sweep()
            self.session = self.store.load()
            if self.session is not None:
                check_belongs(self.session, self.instance, self.recipe, self.store.session_path)
        except WizardError:
            self.session = None
            lock.release()
            raise
        self._lock = lock
        sweep_secret_files(self.store.dir / "runs")  # left by a killed wizard, or a wrapper that never ran
        self.tools_missing = self._tools_missing()
        self._say_notices()
        if lock.taken_over_from:
            message = (f"the lock left by an earlier wizard (pid {lock.taken_over_from}) was taken over; "
                       f"that wizard is {lock.previous_state}")  # fmt: skip
            self.say(message)
            if self.session:
                self._save_note(message)
        return self

    def _say_notices(self) -> None:
        """What the store found and put right (a session file others could read), said once."""
        while self.store.notices:
            self.say(self.store.notices.pop(0))

    def _tools_missing(self) -> list[Note]:
        """Resuming: the tools of the steps still to run may have gone since the plan was made (npm removed)."""
        if self.session is None or self.session.done:
            return []
        to_run = (StepStatus.PENDING, StepStatus.FAILED, StepStatus.INTERRUPTED)
        tools = {tool for step in self.session.steps if step.status in to_run for tool in step.needs}
        return missing_tools(self.instance, tools, os_family()) if tools else []

    def close(self) -> None:
        self.processes.reap()  # what has ended; the rest goes on without us
        if self._lock:
            self._lock.release()
            self._lock = None

    def __enter__(self) -> Engine:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def secrets(self) -> list[str]:
        return list(self._secrets)

    @property
    def is_open(self) -> bool:
        """It holds the instance's lock: only then may it change the session."""
        return self._lock is not None

    # -- the session --------------------------------------------------------

    def begin(self, plan: Plan, shared_run: str | None = None) -> Session:
        """Start a new session; one that is finished or abandoned is put aside first, never deleted.

        ``shared_run``: the upgrade of a shared venv this session is part of (wizard.together)."""
        if self.session is not None:
            if not (self.session.done or self.session.abandoned):
                raise WizardError(f"instance {self.instance.name!r} already has an upgrade under way")
            kept = self.store.put_aside(self.session)
            self.say(f"the previous session was kept as {kept}")
        found = plan.found
        self.session = Session(
            id=new_session_id(),
            instance=self.instance.name,
            recipe=plan.recipe.name,
            shared_run=shared_run,
            venv=str(self.instance.venv),
            app_config=str(self.instance.config) if self.instance.config else None,
            installed_version=found.installed_version,
            target_version=found.target_version,
            python_version=found.python_version,
            path=plan.hops,
            services=plan.services,
            notes=plan.session_notes,
            steps=plan.steps,
        )
        self.session.note(f"planned {found.installed_version} -> {found.target_version}, {len(plan.steps)} steps")
        self.save()
        return self.session

    def begin_rollback(self, rollback: RollbackPlan) -> Session:
        """Start the rollback of the current upgrade; the upgrade is put aside, kept (abandoned if it was not done)."""
        upgrade = self.session
        assert upgrade is not None and upgrade.id == rollback.upgrade.id, "a rollback of the session this engine holds"
        if not (upgrade.done or upgrade.abandoned):
            upgrade.abandoned = now()
            upgrade.note("abandoned: taken back by a rollback")
            self.save()
        session = Session(
            id=new_session_id(), kind="rollback", undoes=upgrade.id, instance=upgrade.instance, recipe=upgrade.recipe,
            venv=upgrade.venv, app_config=upgrade.app_config, installed_version=rollback.from_version,
            target_version=rollback.to_version, python_version=upgrade.python_version, services=upgrade.services,
            backup=upgrade.backup, steps=rollback.steps,
            restores=upgrade.packages_before if rollback.restores is None else rollback.restores,
        )  # fmt: skip
        restore = "with" if rollback.restores_database else "without"
        session.note(f"rollback of {upgrade.id} planned, {restore} the database restore: {len(rollback.steps)} steps")
        kept = self.store.put_aside(upgrade, replaced_by=session)
        self.session = session
        self.say(f"the upgrade's session was kept as {kept}")
        return session

    def save(self) -> None:
        assert self.session is not None
        self.store.save(self.session)

    def _save_note(self, message: str) -> None:
        assert self.session is not None
        self.session.note(message)
        self.save()

    def record_health(self, health: Health) -> None:
        """Keep the last health check with the session (the done screen, status and the report show it)."""
        assert self.session is not None and self.is_open, "a health check is recorded only under the instance's lock"
        self.session.health = health
        self.session.note(f"health check: {health.verdict()}")
        self.save()

    def abandon(self, why: str = "by the operator") -> Path:
        """Stop working on this session; it is kept on disk under its own name."""
        assert self.session is not None
        self.session.abandoned = now()
        self.session.note(f"abandoned {why}")
        self.save()
        kept = self.store.put_aside(self.session)
        self.session = None
        return kept

    # -- what comes next -----------------------------------------------------

    def next(self) -> Next:
        """Where the session stands: what runs, waits or is to be decided next (a query: changes nothing)."""
        session = self.session
        assert session is not None
        if session.done:
            return Done()
        if session.blockers:
            return Blocked(session.blockers)
        if self.tools_missing:
            return Blocked(self.tools_missing)
        if session.unacknowledged:
            return NotesPending(session.unacknowledged)
        if session.backup is None:
            return GateClosed()
        for step in session.steps:
            if step.status in FINISHED:
                continue
            if step.status == StepStatus.RUNNING:
                return Running(step)
            if step.status == StepStatus.INTERRUPTED:
                return NeedsDecision(step)
            if step.status == StepStatus.FAILED:
                return Failed(step)
            if step.unless_restarted:
                restarting = self.restart_running(step.unless_restarted)
                if restarting is not None:
                    return Running(restarting)  # wait: whether this step is needed depends on it
                if session.restarted(step.unless_restarted):
                    return NotNeeded(step, f"not needed: {step.unless_restarted} was restarted during the upgrade")
            return Run(step)
        side = next((job.run for job in session.side_jobs if job.run.status == StepStatus.RUNNING), None)
        if side is not None:
            return Running(side)  # a restart still winding down: the session ends after it
        return AllEnded()

    def settle(self) -> Next:
        """Make the changes that need no one's decision, then say what comes next (never NotNeeded or AllEnded).

        Recorded and saved: side jobs that have ended, a step a restart made unnecessary, the end of the session.
        """
        self.poll_side_jobs()
        while True:
            nxt = self.next()
            if isinstance(nxt, NotNeeded):
                self.skip(nxt.step, nxt.reason)
            elif isinstance(nxt, AllEnded):
                assert self.session is not None
                self.session.finished = now()
                self._save_note("all steps finished")
                return Done()
            else:
                return nxt

    def acknowledge(self, note_id: str, how: str = "by the operator") -> None:
        assert self.session is not None
        note = next((n for n in self.session.notes if n.id == note_id), None)
        if note is None or note.severity != "warning":
            raise WizardError(f"there is no warning {note_id!r} to acknowledge")
        if note_id not in self.session.acknowledged:
            self.session.acknowledged[note_id] = now()
            self._save_note(f"warning {note_id} acknowledged {how}")

    def declare_backup(self, path: str, typed_name: str) -> None:
        """The operator says a backup exists, confirming with the instance's name typed out."""
        if typed_name.strip() != self.instance.name:
            raise WizardError(f"type the instance name, {self.instance.name!r}, exactly, to confirm")
        self.pass_gate(declared_backup(path))

    @property
    def backup_root(self) -> Path:
        return self.backups.root

    def pass_gate(self, backup: Backup) -> None:
        assert self.session is not None
        self.session.backup = backup
        self._save_note(f"backup gate passed: {backup.kind} backup at {backup.path}")

    # -- steps ----------------------------------------------------------------

    def start(self, step: StepRecord) -> None:
        """Launch the step detached; the session says 'running' before the process exists."""
        assert self.session is not None
        if self.session.packages_before is None and all(s.attempts == 0 for s in self.session.steps):
            recorded = record_packages(self.instance)  # before anything changes; saved with the step's start, below
            self.session.packages_before = recorded.packages
            self.session.note(recorded.event)
            if recorded.warning:
                self.say(recorded.warning)
        index = self.session.steps.index(step) + 1
        run_dir = self.store.run_dir(self.session)  # first: when it cannot be made, nothing has changed
        self._say_notices()
        step.status = StepStatus.RUNNING
        step.attempts += 1
        step.skip_reason = None
        # A new token, log and status file, saved before the launch: a wizard dying
        # in between leaves a record the next one can check, never an old attempt's.
        prepare_attempt(step, run_dir, index)
        self.save()
        try:
            self.processes.launch(step, step.id)
        except WizardError:
            step.status = StepStatus.FAILED
            step.ended = now()
            self._save_note(f"step {step.id} could not be launched")
            raise
        self._save_note(f"step {step.id} started (attempt {step.attempts}, pid {step.pid})")

    def poll(self, step: StepRecord) -> Outcome:
        """Look at a running step; when it has ended, record how (once)."""
        if step.status != StepStatus.RUNNING:
            return Finished(step.exit_code, step.ended) if step.exit_code is not None else Gone()
        self.processes.reap(step.id)
        outcome = inspect(step)
        if isinstance(outcome, Finished):
            self._record_end(step, outcome)
        elif isinstance(outcome, Gone):
            step.status = StepStatus.INTERRUPTED
            step.ended = now()
            self._save_note(f"step {step.id} was interrupted: its process is gone and left no exit status")
        return outcome

    def reconcile(self) -> Outcome | None:
        """On start-up: settle a step (and side jobs) that an earlier wizard left running."""
        if self.session is None:
            return None
        self.poll_side_jobs()
        if (step := self.session.running) is None:
            return None
        outcome = self.poll(step)
        if isinstance(outcome, Alive):
            self._save_note(f"reattached to step {step.id}, still running")
        elif isinstance(outcome, Finished):
            self.say(f"step {step.id} finished while no wizard was watching (exit code {outcome.exit_code})")
        return outcome

    def _record_end(self, step: StepRecord, outcome: Finished) -> None:
        step.exit_code = outcome.exit_code
        step.ended = outcome.ended or now()
        step.status = StepStatus.SUCCEEDED if outcome.exit_code == 0 else StepStatus.FAILED
        self._save_note(f"step {step.id} {step.status.value} (exit code {outcome.exit_code})")

    def retry(self, step: StepRecord) -> None:
        """Put a failed or interrupted step back in line; the next start runs it again."""
        if step.status not in (StepStatus.FAILED, StepStatus.INTERRUPTED):
            raise WizardError(
                f"step {step.id} is {step.status.value}; only a failed or interrupted step can be retried"
            )
        was = step.status.value
        step.status = StepStatus.PENDING
        self._save_note(f"operator chose to run the {was} step {step.id} again")

    def skip(self, step: StepRecord, reason: str) -> None:
        reason = reason.strip()
        if not reason:
            raise WizardError("skipping a step needs a reason", "say why, e.g. --skip 'did it by hand'")
        step.status = StepStatus.SKIPPED
        step.skip_reason = reason
        step.ended = step.ended or now()
        self._save_note(f"step {step.id} skipped: {reason}")

    # -- beside the steps: the lock watch and its remedies ------------------------------------

    def database(self) -> Database | None:
        """The instance's database as its config says, asked as the app's own Unix user."""
        return self.context.database

    def service_unit(self, role: str) -> str | None:
        """The unit this session found for a role at planning time (else the configured one)."""
        found = self.session.services.get(role) if self.session else None
        return found or self.instance.service_unit(self.recipe, role)

    def lock_watch(self, step: StepRecord, threshold: float | None = None) -> LockWatch | None:
        """A watch for a step that can hang on a database lock (None for other steps)."""
        return self.remedies.watch(step, threshold, self.service_unit(self.recipe.app_server_role))

    def restart_service(self, role: str, reason: str, for_step: str | None = None) -> SideJob:
        """Restart a service beside the running step (never touching it), detached, with its own log."""
        assert self.session is not None
        unit = self.service_unit(role)
        run = self.remedies.restart_record(role, unit)
        job = SideJob(kind="restart", role=role, reason=reason, for_step=for_step, run=run)
        prepare_attempt(run, self.store.run_dir(self.session), 90 + len(self.session.side_jobs))
        self.session.side_jobs.append(job)
        self.save()
        self.processes.launch(run, f"side-{len(self.session.side_jobs)}")
        self._save_note(f"{unit} restart started: {reason}")
        return job

    def restart_running(self, role: str) -> StepRecord | None:
        jobs = self.session.side_jobs if self.session else []
        return next(
            (j.run for j in jobs if j.kind == "restart" and j.role == role and j.run.status == StepStatus.RUNNING), None
        )

    def poll_side_jobs(self) -> list[SideJob]:
        """Record the end of side jobs that have finished; returns those that just did."""
        ended = []
        for job in self.session.side_jobs if self.session else []:
            if job.run.status != StepStatus.RUNNING:
                continue
            outcome = inspect(job.run)
            if isinstance(outcome, Finished):
                job.run.exit_code, job.run.ended = outcome.exit_code, outcome.ended or now()
                job.run.status = StepStatus.SUCCEEDED if outcome.exit_code == 0 else StepStatus.FAILED
            elif isinstance(outcome, Gone):
                job.run.status, job.run.ended = StepStatus.INTERRUPTED, now()
            else:
                continue
            ended.append(job)
            self._save_note(f"{job.run.title}: {job.run.status.value} (exit code {job.run.exit_code})")
        return ended

    def end_session(self, backend_pid: int) -> bool:
        """pg_terminate_backend on one blocking session (only the query: records nothing)."""
        return self.remedies.end_session(backend_pid)

    def record_ended_session(self, backend_pid: int, ended: bool, reason: str) -> None:
        assert self.session is not None
        run = StepRecord(id="terminate-session", title=f"End database session {backend_pid}",
                         argv=["pg_terminate_backend", str(backend_pid)], attempts=1, started=now(), ended=now(),
                         exit_code=0 if ended else 1, status=StepStatus.SUCCEEDED if ended else StepStatus.FAILED)  # fmt: skip
        self.session.side_jobs.append(SideJob(kind="terminate", role="database", reason=reason, run=run))
        self._save_note(f"database session {backend_pid} {'ended' if ended else 'was already gone'}: {reason}")
