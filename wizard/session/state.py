"""The Session: everything one upgrade of one instance has done, saved after every change."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, Field

from steps.models import Migrates
from wizard.health.result import Health
from wizard.views.sizes import human_bytes

SCHEMA_VERSION = 1


def now() -> datetime:
    return datetime.now(UTC)


class StepStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    INTERRUPTED = "interrupted"


FINISHED = {StepStatus.SUCCEEDED, StepStatus.SKIPPED}


class ServiceAct(BaseModel):
    """What a step does to a service (a rollback's steps are not the recipe's, so they carry it themselves)."""

    role: str
    action: Literal["stop", "start", "restart"]


class StepRecord(BaseModel):
    """A planned step, filled in for this instance, and what became of it."""

    id: str
    title: str
    argv: list[str]
    env: dict[str, str] = {}
    run_as: Literal["root", "app"] = "app"
    safe_to_rerun: bool = False
    can_hang_on_lock: bool = False
    unless_restarted: str | None = None
    advice: str = ""
    needs: list[str] = Field([], description="the tools the step runs, checked again when a wizard resumes the session")
    migrates: Migrates | None = Field(None, description="which pending migrations the step applies (its progress)")
    stdin: str | None = Field(None, description="a file the wrapper opens as the command's standard input")
    service: ServiceAct | None = Field(None, description="the service it stops or starts, when no recipe step says")
    scope: Literal["instance", "venv"] = Field("instance", description="venv: it changes the shared code (pip)")

    status: StepStatus = StepStatus.PENDING
    attempts: int = 0
    pid: int | None = None
    start_ticks: int | None = Field(None, description="the wrapper's start time (ticks since boot), against pid reuse")
    boot_id: str | None = None
    token: str | None = Field(None, description="names the current attempt in the status file")
    started: datetime | None = None
    launched_boottime: float | None = Field(
        None,
        description="CLOCK_BOOTTIME when the attempt was prepared: "
        "its start grace is measured on it, not on the wall clock",
    )
    ended: datetime | None = None
    exit_code: int | None = None
    log: str | None = None
    log_offset: int = Field(
        0, description="where this attempt's output begins in the log (earlier attempts come before)"
    )
    status_file: str | None = None
    skip_reason: str | None = None

    @property
    def duration(self) -> float | None:
        if self.started and self.ended:
            return (self.ended - self.started).total_seconds()
        return None


Severity = Literal["blocker", "warning", "info"]


class Note(BaseModel):
    """A release note that applies to this upgrade, as planned."""

    id: str
    version: str
    severity: Severity
    title: str
    text: str
    way_out: str = ""


class Backup(BaseModel):
    """How the backup gate was passed."""

    kind: Literal["declared", "taken"]
    path: str
    at: datetime = Field(default_factory=now)
    size: int | None = None
    checksum: str | None = None
    restore: list[str] = Field([], description="the commands that would restore it")
    contents: list[str] = Field([], description="what it holds")

    def summary(self) -> str:
        """One line for the operator: when, how big, its checksum, and who vouches for it."""
        when = self.at.astimezone().strftime("%Y-%m-%d %H:%M")
        if self.kind == "declared":
            return f"declared by the operator at {when} (not read by the wizard)"
        size = f", {human_bytes(self.size)}" if self.size is not None else ""
        checksum = f", {self.checksum[:19]}…" if self.checksum else ""
        return f"taken and read back at {when}{size}{checksum}"


class PackageSet(BaseModel):
    """The venv's packages just before the first step ran: what a rollback installs again."""

    at: datetime = Field(default_factory=now)
    pip: str | None = Field(description="pip's own version; None: the venv has no pip (read from its metadata)")
    requirements: list[str] = Field(description="`pip freeze --all` lines (name==version, or how pip names it)")


class SideJob(BaseModel):
    """Work done beside the plan while a step runs: a service restart, a blocking session ended."""

    kind: Literal["restart", "terminate"]
    role: str = Field(description="the service restarted, or 'database' for a terminated session")
    reason: str = ""
    for_step: str | None = Field(None, description="the step it was done for (the one waiting on a lock)")
    at: datetime = Field(default_factory=now)
    run: StepRecord = Field(description="the job's own process, log and outcome")


class Event(BaseModel):
    at: datetime = Field(default_factory=now)
    message: str


class Session(BaseModel):
    """One upgrade of one instance, from plan to done; or the rollback of one (``kind``), run the same way."""

    schema_version: int = Field(SCHEMA_VERSION, strict=True, ge=1, description='an integer: "2" is not 2')
    id: str
    instance: str
    recipe: str
    kind: Literal["upgrade", "rollback"] = "upgrade"
    undoes: str | None = Field(None, description="a rollback: the id of the upgrade session it takes back")
    shared_run: str | None = Field(
        None, description="the upgrade of a shared venv this session is part of (its record names every instance)"
    )
    venv: str | None = Field(
        None, description="the instance's virtualenv when it was planned: the steps' commands name it"
    )
    app_config: str | None = Field(None, description="the app's config file the instance named when it was planned")
    created: datetime = Field(default_factory=now)
    updated: datetime = Field(default_factory=now)
    installed_version: str | None = None
    target_version: str | None = None
    python_version: str | None = None
    path: list[str] = Field([], description="the versions installed one after the other (the last is the target)")
    services: dict[str, str] = Field({}, description="service role -> the unit found or configured on this host")
    notes: list[Note] = []
    acknowledged: dict[str, datetime] = Field({}, description="warning note id -> when the operator acknowledged it")
    backup: Backup | None = None
    packages_before: PackageSet | None = Field(None, description="recorded before the first step ran")
    restores: PackageSet | None = Field(None, description="a rollback: the set it puts back (its upgrade's record)")
    steps: list[StepRecord]
    side_jobs: list[SideJob] = []
    events: list[Event] = []
    finished: datetime | None = None
    abandoned: datetime | None = None
    health: Health | None = Field(None, description="the last health check of this upgrade's result")

    @property
    def is_rollback(self) -> bool:
        return self.kind == "rollback"

    def step(self, step_id: str) -> StepRecord:
        for record in self.steps:
            if record.id == step_id:
                return record
        raise KeyError(step_id)

    def note(self, message: str) -> None:
        self.events.append(Event(message=message))

    @property
    def running(self) -> StepRecord | None:
        return next((s for s in self.steps if s.status == StepStatus.RUNNING), None)

    @property
    def current(self) -> StepRecord | None:
        """The first step that is not finished: the one to run, decide on, or follow."""
        return next((s for s in self.steps if s.status not in FINISHED), None)

    @property
    def done(self) -> bool:
        return self.finished is not None

    @property
    def blockers(self) -> list[Note]:
        return [n for n in self.notes if n.severity == "blocker"]

    @property
    def unacknowledged(self) -> list[Note]:
        return [n for n in self.notes if n.severity == "warning" and n.id not in self.acknowledged]

    def restarted(self, role: str) -> bool:
        return any(job.kind == "restart" and job.role == role and job.run.exit_code == 0 for job in self.side_jobs)
