"""Where sessions live on disk: atomic saves, one lock per instance, nothing ever overwritten blindly.

Layout under the state dir, one folder per instance::

    <instance>/session.json        the current Session (mode 0600)
    <instance>/lock                flock'd by the wizard working on it; holds its pid
    <instance>/runs/<session id>/  step logs and status files of that session
    <instance>/session-<id>.json   sessions put aside (abandoned, or finished and replaced)
"""

from __future__ import annotations

import fcntl
import json
import os
import pwd
from pathlib import Path

from pydantic import ValidationError

from .errors import LockHeld, StateError
from .state import SCHEMA_VERSION, Session, now


def default_state_dir() -> Path:
    if os.geteuid() == 0:
        return Path("/var/lib/upgrade-wizard")
    base = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(base) / "upgrade-wizard"


def state_dir_conflict(instance: str) -> Path | None:
    """Another user's default state dir that already holds this instance (root's, or the sudo caller's).

    Without this check, `sudo upgrade-wizard` and plain `upgrade-wizard` would keep
    two sessions and two locks for the same installation.
    """
    if os.geteuid() == 0:
        caller = os.environ.get("SUDO_USER")
        if not caller or caller == "root":
            return None
        try:
            home = Path(pwd.getpwnam(caller).pw_dir)
        except KeyError:
            return None
        other = home / ".local" / "state" / "upgrade-wizard"
    else:
        other = Path("/var/lib/upgrade-wizard")
    try:
        return other if (other / instance).is_dir() else None
    except OSError:
        return None


def write_atomic(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write a file so that a reader sees the old or the new content, never a mix."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class StateStore:
    """The sessions of one instance."""

    def __init__(self, root: Path, instance: str):
        self.dir = root / instance
        self.instance = instance
        self.session_path = self.dir / "session.json"

    def ensure_dir(self) -> None:
        # The top folder only lists instance names (so another user can see one is taken);
        # each instance's folder, with its sessions and logs, is private.
        self.dir.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        self.dir.mkdir(exist_ok=True, mode=0o700)

    def backup_root(self, chosen: Path | None) -> Path:
        """Where the wizard's backups of this instance go: the instance's backup_dir, else beside its sessions."""
        return chosen or self.dir / "backups"

    def run_dir(self, session: Session) -> Path:
        path = self.dir / "runs" / session.id
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        return path

    def load(self) -> Session | None:
        """The saved session, None when there is none; StateError (file untouched) when unreadable."""
        try:
            data = self.session_path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StateError(f"cannot read the saved session {self.session_path}: {exc}") from None
        keep = "it was left exactly as it is; move it aside to start a new session, or restore it from a copy"
        try:
            raw = json.loads(data)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise StateError(f"the saved session {self.session_path} is not valid JSON ({exc})", keep) from None
        version = raw.get("schema_version") if isinstance(raw, dict) else None
        if isinstance(version, int) and version > SCHEMA_VERSION:
            raise StateError(
                f"the saved session {self.session_path} was written by a newer upgrade-wizard "
                f"(schema {version}; this one reads up to {SCHEMA_VERSION})",
                "run the newer upgrade-wizard that wrote it; " + keep,
            )
        try:
            return Session.model_validate(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise StateError(
                f"the saved session {self.session_path} is damaged ({where}: {first['msg']})", keep
            ) from None

    def load_done(self) -> bool:
        """Is the saved session a finished one? (False when there is none or it cannot be read.)"""
        try:
            session = self.load()
        except StateError:
            return False
        return session is not None and session.done

    def save(self, session: Session) -> None:
        self.ensure_dir()
        session.updated = now()
        write_atomic(self.session_path, session.model_dump_json(indent=2).encode())

    def put_aside(self, session: Session) -> Path:
        """Keep a session under its own name so a new one can start; nothing is deleted."""
        target = self.dir / f"session-{session.id}.json"
        write_atomic(target, session.model_dump_json(indent=2).encode())
        self.session_path.unlink()
        return target

    def lock(self) -> InstanceLock:
        self.ensure_dir()
        return InstanceLock(self.dir / "lock", self.instance)


class InstanceLock:
    """An flock on the instance's lock file, released by the kernel when its holder dies.

    The file records the holder's pid.  When the lock is free but the file still
    names a pid, the previous wizard died without cleaning up: ``taken_over_from``
    says which, so the caller can tell the operator.
    """

    def __init__(self, path: Path, instance: str):
        self.path = path
        self.instance = instance
        self.fd: int | None = None
        self.taken_over_from: int | None = None

    def acquire(self) -> InstanceLock:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            raise LockHeld(self.instance, holder) from None
        previous = _read_pid(fd)
        if previous and previous != os.getpid():
            self.taken_over_from = previous
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        os.fsync(fd)
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is not None:
            os.ftruncate(self.fd, 0)
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> InstanceLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 64, 0).decode().strip()
        return int(text) if text else None
    except (ValueError, OSError):
        return None
