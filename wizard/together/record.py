"""The record of one upgrade of a shared venv: which instances, in which order, each one's session, how far.

It lives beside the instances' folders, under the state dir::

    .venvs/<venv key>/run.json           the current SharedRun (mode 0600)
    .venvs/<venv key>/lock               flock'd while a wizard works on the shared venv
    .venvs/<venv key>/run-<id>.json      earlier runs, put aside when a new one starts

Saved the way a Session is: atomically, with a schema version, in private folders, never through a
link. Where each instance stands is in its own Session; the record holds only what ties them together.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from datetime import datetime
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

from wizard.errors import StateError
from wizard.session.state import Event, now
from wizard.session.store import (
    INSTANCE_MODE,
    KEEP,
    ROOT_MODE,
    InstanceLock,
    check_private_dir,
    write_atomic,
)

SCHEMA_VERSION = 1
VENVS = ".venvs"  # instance names may not start with a dot, so no instance's folder is ever called this


def venv_key(venv: str | Path) -> str:
    """A folder name for the venv: readable, and unique by a hash of its real path."""
    real = os.path.realpath(venv)
    tail = "-".join(part for part in Path(real).parts[-2:] if part != "/") or "root"
    return f"{tail}-{hashlib.sha256(real.encode()).hexdigest()[:10]}"


class SharedRun(BaseModel):
    """One upgrade of every instance on a shared venv: the first one's session installs the code."""

    schema_version: int = Field(SCHEMA_VERSION, strict=True, ge=1)
    id: str
    venv: str
    instances: list[str] = Field(min_length=2, description="in the order they are upgraded")
    sessions: dict[str, str] = Field({}, description="instance -> the id of its session in this run")
    nothing_to_do: list[str] = Field([], description="instances planned with no step to run (already up to date)")
    created: datetime = Field(default_factory=now)
    updated: datetime = Field(default_factory=now)
    finished: datetime | None = None
    rollbacks: dict[str, str] = Field({}, description="instance -> the id of its rollback of this run, once begun")
    events: list[Event] = []

    @property
    def code_by(self) -> str:
        return self.instances[0]

    def note(self, message: str) -> None:
        self.events.append(Event(message=message))


class SharedRunStore:
    """The record of the upgrades of one shared venv, and its lock."""

    def __init__(self, root: Path, venv: str | Path):
        self.root = root
        self.venv = str(venv)
        self.dir = root / VENVS / venv_key(venv)
        self.path = self.dir / "run.json"

    def ensure_dir(self) -> None:
        if not self.root.exists():
            self.root.mkdir(parents=True, mode=ROOT_MODE)
            os.chmod(self.root, ROOT_MODE)
        check_private_dir(self.root, "state folder", follow=True)
        for folder, what in ((self.dir.parent, "folder of shared venvs"), (self.dir, "shared venv's state folder")):
            try:
                folder.mkdir(mode=INSTANCE_MODE)
            except FileExistsError:
                pass
            check_private_dir(folder, what, follow=False)

    def load(self) -> SharedRun | None:
        """The current record, None when there is none; StateError (file untouched) when it cannot be trusted."""
        if not self.dir.exists() and not self.dir.is_symlink():
            return None
        self.ensure_dir()
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        except OSError as exc:
            reason = "is a symbolic link" if exc.errno == errno.ELOOP else f"cannot be read: {exc.strerror}"
            raise StateError(f"the record of the shared venv's upgrade {self.path} {reason}", KEEP) from None
        with open(fd, "rb") as handle:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise StateError(f"the record of the shared venv's upgrade {self.path} is not a plain file", KEEP)
            data = handle.read()
        try:
            run = SharedRun.model_validate_json(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "(top level)"
            raise StateError(f"the record of the shared venv's upgrade {self.path} is damaged "
                             f"({where}: {first['msg']})", KEEP) from None  # fmt: skip
        if os.path.realpath(run.venv) != os.path.realpath(self.venv):
            raise StateError(f"the record {self.path} is of the venv {run.venv}, not {self.venv}",
                             "it was probably copied here by hand; " + KEEP)  # fmt: skip
        return run

    def save(self, run: SharedRun) -> None:
        self.ensure_dir()
        run.updated = now()
        try:
            write_atomic(self.path, run.model_dump_json(indent=2).encode())
        except OSError as exc:
            raise StateError(f"could not save the record of the shared venv's upgrade to {self.path}: "
                             f"{exc.strerror or exc}", "free space or fix that folder, then run the wizard again") from None  # fmt: skip

    def put_aside(self, run: SharedRun) -> Path:
        """Keep a finished record under its own name; nothing is deleted."""
        target = self.dir / f"run-{run.id}.json"
        write_atomic(target, run.model_dump_json(indent=2).encode())
        self.path.unlink()
        return target

    def lock(self) -> InstanceLock:
        """Held while a wizard upgrades the shared venv (the instances' own locks are held as well)."""
        self.ensure_dir()
        return InstanceLock(self.dir / "lock", self.venv, subject=f"the instances on the shared venv {self.venv}")
