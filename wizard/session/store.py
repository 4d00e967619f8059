"""Where sessions live on disk: atomic saves, one lock per instance, nothing ever overwritten blindly.

Layout under the state dir, one folder per instance::

    <instance>/session.json        the current Session (mode 0600)
    <instance>/lock                flock'd by the wizard working on it; holds its pid
    <instance>/runs/<session id>/  step logs and status files of that session
    <instance>/session-<id>.json   sessions put aside (abandoned, or finished and replaced)

Root runs this on behalf of a whole host, so nothing in here may be another
user's to change: the state dir and each instance folder must belong to the
wizard's user and be writable by nobody else (checked every time, refused
otherwise), and files are opened so that a symlink planted in their place is
never followed.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import pwd
import stat
from pathlib import Path

from pydantic import ValidationError

from wizard.errors import LockHeld, StateError
from wizard.host.procs import alive, start_ticks
from wizard.session.state import SCHEMA_VERSION, Session, now

# The state dir: others may look up an instance by name (so another user's wizard can tell
# the instance is kept here) but neither list nor change it.  Instance folders are private.
ROOT_MODE = 0o711
INSTANCE_MODE = 0o700
KEEP = "it was left exactly as it is; move it aside to start a new session, or restore it from a copy"


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
    """Write a file so that a reader sees the old or the new content, never a mix.

    The temporary file is created new (never through a symlink or over a file planted
    in its place) and removed whatever goes wrong, so a full disk is not kept full by it.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        os.unlink(tmp)  # one of ours left by a killed process with this pid (unlink never follows a link)
    except FileNotFoundError:
        pass
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    try:
        try:
            os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def check_private_dir(path: Path, what: str, *, follow: bool) -> None:
    """A folder the wizard keeps state in: its user's, and writable by nobody else; StateError otherwise."""
    try:
        info = os.stat(path) if follow else os.lstat(path)
    except OSError as exc:
        raise StateError(f"cannot look at the {what} {path}: {exc.strerror}") from None
    fix = "or pass --state-dir with a folder of your own"
    if stat.S_ISLNK(info.st_mode):
        raise StateError(f"the {what} {path} is a symbolic link; the wizard does not follow links there",
                         f"move the link aside (the wizard makes a real folder), {fix}")  # fmt: skip
    if not stat.S_ISDIR(info.st_mode):
        raise StateError(f"the {what} {path} is not a folder", f"move it aside, {fix}")
    if info.st_uid != os.geteuid():
        raise StateError(
            f"the {what} {path} belongs to {_user_name(info.st_uid)}, not to {_user_name(os.geteuid())} "
            "who runs the wizard: the wizard will not keep its state where another user can change it",
            f"run the wizard as {_user_name(info.st_uid)}, or check who made it and `chown` it, {fix}",
        )
    if info.st_mode & 0o022:
        raise StateError(
            f"the {what} {path} can be written by other users (mode {stat.S_IMODE(info.st_mode):04o}): "
            "anyone could plant files the wizard would trust",
            f"check nothing foreign is in it, then `chmod go-w {path}`, {fix}",
        )


def _user_name(uid: int) -> str:
    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


class StateStore:
    """The sessions of one instance."""

    def __init__(self, root: Path, instance: str):
        self.dir = root / instance
        self.instance = instance
        self.session_path = self.dir / "session.json"
        self.notices: list[str] = []  # what opening the folder found and put right, for the operator

    def ensure_dir(self) -> None:
        """Make the folders (private) or check the ones that are there; StateError when they cannot be trusted."""
        root = self.dir.parent
        if not root.exists():
            root.mkdir(parents=True, mode=ROOT_MODE)
            os.chmod(root, ROOT_MODE)  # mkdir's mode passes through the umask
        check_private_dir(root, "state folder", follow=True)
        try:
            self.dir.mkdir(mode=INSTANCE_MODE)
        except FileExistsError:
            pass
        check_private_dir(self.dir, "instance's state folder", follow=False)

    def sweep(self) -> list[Path]:
        """Remove the temporary files of saves that failed or were killed (call it holding the lock)."""
        gone = []
        for path in self.dir.glob(".session*.json.*.tmp"):
            try:
                path.unlink()
                gone.append(path)
            except FileNotFoundError:
                continue
        return gone

    def backup_root(self, chosen: Path | None) -> Path:
        """Where the wizard's backups of this instance go: the instance's backup_dir, else beside its sessions.

        The default one is part of the private state and checked as such; a chosen one is the operator's.
        """
        if chosen:
            return chosen
        default = self.dir / "backups"
        if default.exists() or default.is_symlink():
            self._check_inner(default, "backup folder",
                              "to keep backups elsewhere, set backup_dir in the instance instead of a link")  # fmt: skip
        return default

    def run_dir(self, session: Session) -> Path:
        """The folder of a session's step logs, status files and (briefly) secrets files: private, made or checked."""
        path = self.dir
        for part in ("runs", session.id):
            path = path / part
            try:
                path.mkdir(mode=INSTANCE_MODE)
            except FileExistsError:
                pass
            except OSError as exc:  # a full disk, a read-only filesystem
                raise StateError(f"cannot make the folder of step logs {path}: {exc.strerror or exc}",
                                 "nothing was started; free space or fix that folder, then run the wizard again") from None  # fmt: skip
            self._check_inner(path, "folder of step logs", "move it aside: the wizard makes it again")
        return path

    def _check_inner(self, path: Path, what: str, fix: str) -> None:
        """A folder inside the (private) instance folder: a real folder of the wizard's user, not a link out of it.

        One that others may write to, as older wizards could leave behind under a umask of 002, is
        put right (nobody else can reach it through the instance folder) and said.
        """
        try:
            info = os.lstat(path)
        except OSError as exc:
            raise StateError(f"cannot look at the {what} {path}: {exc.strerror}") from None
        if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
            kind = "a symbolic link" if stat.S_ISLNK(info.st_mode) else "not a folder of the wizard's own"
            raise StateError(f"the {what} {path} is {kind}; the wizard keeps its files only in folders it made", fix)
        mode = stat.S_IMODE(info.st_mode)
        if mode & 0o022:
            os.chmod(path, mode & ~0o022)
            self.notices.append(f"the {what} {path} could be written by other users (mode {mode:04o}); "
                                f"it no longer can ({mode & ~0o022:04o})")  # fmt: skip

    def load(self) -> Session | None:
        """The saved session, None when there is none; StateError (file untouched) when unreadable or foreign."""
        if self.dir.exists() or self.dir.is_symlink():
            self.ensure_dir()
        try:
            fd = os.open(self.session_path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise StateError(f"the saved session {self.session_path} is a symbolic link; the wizard does not follow it",
                                 KEEP) from None  # fmt: skip
            raise StateError(f"cannot read the saved session {self.session_path}: {exc.strerror}") from None
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            os.close(fd)
            raise StateError(f"the saved session {self.session_path} is not a plain file", KEEP)
        with open(fd, "rb") as handle:
            try:
                data = handle.read()
            except OSError as exc:
                raise StateError(f"cannot read the saved session {self.session_path}: {exc.strerror}") from None
            session = parse_session(data, self.session_path)
            if session.instance != self.instance:
                raise StateError(
                    f"the saved session {self.session_path} belongs to instance {session.instance!r}, not to {self.instance!r}",
                    "it was probably copied or moved here by hand; " + KEEP,
                )
            mode = stat.S_IMODE(info.st_mode)
            if mode & 0o077:
                os.fchmod(handle.fileno(), 0o600)  # the file read, not whatever is at that path now
                self.notices.append(f"the saved session {self.session_path} could be read by other users "
                                    f"(mode {mode:04o}); it is private again (0600)")  # fmt: skip
        return session

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
        data = session.model_dump_json(indent=2).encode()
        try:
            write_atomic(self.session_path, data)
        except OSError as exc:
            raise StateError(
                f"could not save the session to {self.session_path}: {exc.strerror or exc}",
                "the session on disk is intact as it was last saved (nothing half-written was left); "
                "free space or fix that folder, then run the wizard again: it resumes from there",
            ) from None

    def put_aside(self, session: Session, replaced_by: Session | None = None) -> Path:
        """Keep a session under its own name so a new one can start; nothing is deleted.

        ``replaced_by``: saved in its place in the same move, so no moment is without a current session
        (a wizard killed in between would otherwise leave none: a rollback could not be found again)."""
        target = self.dir / f"session-{session.id}.json"
        write_atomic(target, session.model_dump_json(indent=2).encode())
        if replaced_by is None:
            self.session_path.unlink()
        else:
            self.save(replaced_by)
        return target

    def lock(self) -> InstanceLock:
        self.ensure_dir()
        return InstanceLock(self.dir / "lock", self.instance)


def parse_session(data: bytes, path: Path) -> Session:
    """A session from the bytes of its file; StateError saying what is wrong with it otherwise."""
    try:
        raw = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:  # ValueError: JSONDecodeError, a number of 5,000 digits
        raise StateError(f"the saved session {path} is not valid JSON ({_short(exc)})", KEEP) from None
    except RecursionError:
        raise StateError(f"the saved session {path} is not a session (nested too deeply to read)", KEEP) from None
    version = raw.get("schema_version") if isinstance(raw, dict) else None
    if type(version) is int and version > SCHEMA_VERSION:
        raise StateError(
            f"the saved session {path} was written by a newer upgrade-wizard "
            f"(schema {_short(str(version), 12)}; this one reads up to {SCHEMA_VERSION})",
            "run the newer upgrade-wizard that wrote it; " + KEEP,
        )
    try:
        return Session.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise StateError(f"the saved session {path} is damaged ({where}: {first['msg']})", KEEP) from None
    except (RecursionError, ValueError) as exc:
        raise StateError(f"the saved session {path} is damaged ({_short(exc)})", KEEP) from None


def _short(what: object, most: int = 160) -> str:
    text = str(what)
    return text if len(text) <= most else text[: most - 1] + "…"


class InstanceLock:
    """An flock on the instance's lock file, released by the kernel when its holder dies.

    The file records the holder's pid and start time.  When the lock is free but
    the file still names a process, the previous wizard died without cleaning up:
    ``taken_over_from`` says which, and ``previous_state`` what became of that pid.
    """

    def __init__(self, path: Path, instance: str, subject: str | None = None):
        self.path = path
        self.instance = instance
        self.subject = subject  # what the lock guards, when not the instance (see LockHeld)
        self.fd: int | None = None
        self.taken_over_from: int | None = None
        self.previous_state = ""

    def acquire(self) -> InstanceLock:
        fd = open_private(self.path, os.O_RDWR | os.O_CREAT)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder, _ = _read_holder(fd)
            os.close(fd)
            raise LockHeld(self.instance, holder, self.subject) from None
        previous, ticks = _read_holder(fd)
        if previous and previous != os.getpid():
            self.taken_over_from = previous
            self.previous_state = describe_previous(previous, ticks)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {start_ticks(os.getpid()) or 0}\n".encode(), 0)
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

    def __exit__(self, *exc: object) -> None:
        self.release()


def open_private(path: Path, flags: int) -> int:
    """Open a file of the wizard's own: never through a symlink, never another user's or a hard link to one."""
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise StateError(f"{path} is a symbolic link; the wizard does not follow links in its state folder",
                             "someone put it there: look at where it points, then remove the link") from None  # fmt: skip
        raise
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid() or info.st_nlink != 1:
        os.close(fd)
        raise StateError(f"{path} is not a plain file of the wizard's own (a device, another user's file or a hard link)",
                         "someone put it there: look at it, then remove it")  # fmt: skip
    return fd


def describe_previous(pid: int, ticks: int | None) -> str:
    """What became of the process named in a lock file whose lock was free: said as it is, not assumed."""
    if ticks and alive(pid, ticks):
        return "still running, but no longer holds the lock"
    if start_ticks(pid) is not None:
        if ticks:
            return "gone; its pid now belongs to another process"
        return "gone from the lock; a process with that pid runs, most likely another program that reused it"
    return "no longer running"


def _read_holder(fd: int) -> tuple[int | None, int | None]:
    """The pid (and start ticks, when recorded) in a lock file: "<pid> <ticks>", or just "<pid>" as older wizards wrote."""
    try:
        parts = os.pread(fd, 64, 0).decode().split()
        pid = int(parts[0]) if parts else None
        ticks = int(parts[1]) if len(parts) > 1 and int(parts[1]) > 0 else None
        return (pid, ticks) if pid and pid > 0 else (None, None)
    except (ValueError, OSError, UnicodeDecodeError):
        return None, None
