"""Backups the wizard takes itself, and proves readable before anything changes.

A backup is a folder ``wizard-<instance>-<time>-<random>`` under the instance's
backup directory: the database's dump (see :mod:`wizard.backup.dumps`, one module per
engine), a copy of the app's config files and the app's own files (uploads,
secret).  Free space is checked first; nothing is written when it is short.

While it is written the folder holds an ``UNFINISHED`` marker (naming the
instance); once it is complete, a record (``wizard-backup.json``: the instance,
the time it was taken, a sequence number, the folder's own name) says it is
this instance's finished backup.  Rotation goes by those records alone, so two
instances may share a backup directory, and a clock set back cannot make a new
backup delete itself.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shlex
import shutil
import stat
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from wizard.backup.dumps import Progress, engine_for
from wizard.backup.dumps.common import private_file
from wizard.config.appfiles import AppFile
from wizard.config.dbconf import Database
from wizard.errors import BackupError
from wizard.session.state import Backup, now
from wizard.views.sizes import free_space, human_bytes, tree_size

HEADROOM = 64 * 1024**2
PREFIX = "wizard-"
INCOMPLETE = "incomplete-"  # put before the name of a backup that failed half-way
NAME_TRIES = 50
UNFINISHED = "UNFINISHED"  # in a backup folder while it is written: a wizard killed half-way leaves it behind
RECORD = "wizard-backup.json"  # in a finished backup: whose it is, when it was taken (what rotation goes by)
RECORD_FORMAT = 1

__all__ = ["BackupError", "Estimate", "Part", "Record", "Unfinished", "estimate", "take_backup", "declared_backup",
           "rotate", "recorded_backups", "unfinished_backups"]  # fmt: skip


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class Part:
    """One thing a backup holds, or leaves out, with its size: what the backup screen lists."""

    label: str
    where: str
    size: int
    included: bool = True
    optional: bool = False  # the operator may choose
    why_not: str = ""


@dataclass(frozen=True)
class Estimate:
    """What a backup taken now would hold, and whether it fits where it goes."""

    root: Path
    free: int
    parts: tuple[Part, ...]

    @property
    def needed(self) -> int:
        return sum(part.size for part in self.parts if part.included)

    @property
    def fits(self) -> bool:
        return self.free >= self.needed + HEADROOM

    def size_of(self, label: str) -> int:
        return next(part.size for part in self.parts if part.label == label)


def estimate(db: Database, config_files: list[Path], root: Path, files: Sequence[AppFile] = ()) -> Estimate:
    """Measure before writing anything: the database (asked of the server), the config files, the app's files."""
    parts = [Part("database", db.describe(), engine_for(db).size(db))]
    parts += [Part("config", str(path), path.stat().st_size) for path in config_files if path.is_file()]
    parts += [Part(f.label, str(f.path), tree_size(f.path), f.included, f.optional, f.why_not) for f in files]
    return Estimate(root, free_space(root), tuple(parts))


def check_space(plan: Estimate) -> None:
    if not plan.fits:
        raise BackupError(
            f"not enough free space for the backup in {plan.root}: about {human_bytes(plan.needed)} needed "
            f"(plus {human_bytes(HEADROOM)} to spare), {human_bytes(plan.free)} free",
            "free some space there, or set backup_dir in the instance to a bigger filesystem; nothing was written",
        )


def take_backup(
    db: Database,
    config_files: list[Path],
    root: Path,
    keep: int,
    progress: Progress | None = None,
    files: Sequence[AppFile] = (),
    measured: Estimate | None = None,
    *,
    instance: str = "",
) -> Backup:
    """Back up the database, the config files and the app's files into a new folder under ``root``; verify; rotate.

    ``measured``: the estimate the operator was shown (measuring again walks the app's files a second time);
    its free space is read afresh, as it may have shrunk since.
    ``instance``: whose backup it is; it names the folder and its record, and only this instance's recorded
    backups are rotated.  Empty (a caller that does not say): the backup is written without a record and
    nothing is rotated.
    """
    plan = replace(measured, free=free_space(root)) if measured else estimate(db, config_files, root, files)
    check_space(plan)
    configs = [path for path in config_files if path.is_file()]
    moment = now()
    folder = new_folder(root, instance, moment)
    (folder / UNFINISHED).write_text(unfinished_text(instance))
    try:
        dump = engine_for(db).dump(db, folder, plan.size_of("database"), progress)
        contents = [f"{dump.path.name} ({dump.checked})"]
        restore = [dump.restore]
        for path in configs:
            copy = folder / "config" / path.name
            copy.parent.mkdir(exist_ok=True, mode=0o700)
            shutil.copy2(path, copy)
            copy.chmod(0o600)
            contents.append(f"config/{path.name}")
            restore.append(shlex.join(["cp", "--", str(copy), str(path)]))
        for item in files:
            size = plan.size_of(item.label)
            where = f"{item.label} ({item.path}, {human_bytes(size)})"
            if not item.included:
                contents.append(f"NOT included: {where}: {item.why_not}")
                continue
            contents.append(where)
            restore.append(save_files(item, folder / "files", size, progress))
        if instance:  # the record first, then the marker goes: never a moment without either
            sequence = max((r.sequence for r in recorded_backups(root, instance)), default=0) + 1
            write_record(folder, instance, moment, sequence)
    except BaseException:
        # Kept for a look, but never mistaken for a backup (nor counted when rotating).
        folder.rename(folder.with_name(INCOMPLETE + folder.name))
        raise
    (folder / UNFINISHED).unlink()
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    rotate(root, keep, instance=instance, just_taken=folder)
    return Backup(kind="taken", path=str(folder), size=size, checksum="sha256:" + sha256_of(dump.path), restore=restore,
                  contents=contents)  # fmt: skip


def folder_label(instance: str) -> str:
    """The instance's name as a folder name may hold it: letters, digits, '.', '_', '-' (the record has it exactly)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", instance).strip("._-")[:40] or "instance"


def new_folder(root: Path, instance: str, moment: datetime) -> Path:
    """A new private folder ``wizard-<instance>-<time>-<random>``; never one that is already there."""
    try:
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:  # a file there, a symlink to nowhere, no permission
        raise BackupError(f"the backup folder {root} cannot be used: {exc.strerror or exc}",
                          "point backup_dir in the instance at a folder (or a place one can be made)") from None  # fmt: skip
    middle = f"{folder_label(instance)}-" if instance else ""
    for _ in range(NAME_TRIES):
        folder = root / f"{PREFIX}{middle}{moment.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"
        try:
            folder.mkdir(mode=0o700)  # never through a link: mkdir does not follow its last part
            return folder
        except FileExistsError:
            continue
    raise BackupError(f"could not make a new folder in {root}: {NAME_TRIES} names in a row were taken",
                      "look at what is in that folder")  # fmt: skip


def read_small(path: Path) -> str:
    """A small text file of a backup folder, read without following a link or blocking on a FIFO."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    with open(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise OSError(f"{path} is not a plain file")
        return handle.read(1 << 16).decode("utf-8")


def unfinished_text(instance: str) -> str:
    text = "The wizard was writing this backup and did not finish it: do not restore from it.\n"
    return text + (f"instance: {json.dumps(instance)}\n" if instance else "")


def unfinished_owner(folder: Path) -> str | None:
    """The instance an ``UNFINISHED`` marker names; None when it names none (an older wizard's) or cannot be read."""
    try:
        lines = read_small(folder / UNFINISHED).splitlines()
    except (OSError, ValueError):
        return None
    for line in lines:
        if line.startswith("instance: "):
            try:
                name = json.loads(line.removeprefix("instance: "))
            except ValueError:
                return None
            return name if isinstance(name, str) and name else None
    return None


def save_files(item: AppFile, into: Path, expected: int = 0, progress: Progress | None = None) -> str:
    """A folder as a .tar.gz (paths relative to its parent), a single file as a copy; returns how to restore it."""
    into.mkdir(exist_ok=True, mode=0o700)
    if item.path.is_file():
        copy = into / item.path.name
        shutil.copy2(item.path, copy)
        copy.chmod(0o600)
        return shlex.join(["cp", "--", str(copy), str(item.path)])
    archive = into / f"{item.label}.tar.gz"
    done = 0

    def counted(member: tarfile.TarInfo) -> tarfile.TarInfo:
        nonlocal done
        if progress:
            progress(item.label, done, expected)  # before the member is written: what is behind us
        done += member.size
        return member

    with private_file(archive) as out, tarfile.open(fileobj=out, mode="w:gz") as tar:
        tar.add(item.path, arcname=item.path.name, filter=counted)
    if progress:
        progress(item.label, done, expected)
    return shlex.join(["tar", "-xzf", str(archive), "-C", str(item.path.parent)])


@dataclass(frozen=True)
class Record:
    """What a finished backup's ``wizard-backup.json`` says, once read and found sound."""

    folder: Path
    instance: str
    taken_at: datetime
    sequence: int

    @property
    def order(self) -> tuple:
        """Oldest first: by the sequence (the clock may have been set back since), then the time, then the name."""
        return (self.sequence, self.taken_at, self.folder.name)


def write_record(folder: Path, instance: str, taken_at: datetime, sequence: int) -> None:
    """The record that makes ``folder`` this instance's finished backup; written whole or not at all."""
    data = {"format": RECORD_FORMAT, "instance": instance, "folder": folder.name, "taken_at": taken_at.isoformat(),
            "finished_at": now().isoformat(), "sequence": sequence}  # fmt: skip
    partial = folder / f".{RECORD}.partial"
    with private_file(partial) as out:
        out.write((json.dumps(data, indent=2) + "\n").encode())
        out.flush()
        os.fsync(out.fileno())
    partial.replace(folder / RECORD)


def read_record(folder: Path) -> Record | None:
    """The folder's record, or None when it has none, or one that cannot be read, or one not made for this folder."""
    try:
        data = json.loads(read_small(folder / RECORD))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("format") != RECORD_FORMAT or data.get("folder") != folder.name:
        return None  # a copy of a backup under another name is the operator's, not the wizard's
    instance, taken_at, sequence = data.get("instance"), data.get("taken_at"), data.get("sequence")
    if not (isinstance(instance, str) and instance and isinstance(taken_at, str) and type(sequence) is int):
        return None
    try:
        moment = datetime.fromisoformat(taken_at)
    except ValueError:
        return None
    return Record(folder, instance, moment, sequence) if moment.tzinfo is not None else None


def recorded_backups(root: Path, instance: str) -> list[Record]:
    """This instance's finished backups in ``root``, as their records say, oldest first.

    Only folders holding a sound record that names ``instance``, and no ``UNFINISHED`` marker, count:
    another instance's, the operator's own, and old-style ones (made before records, ``wizard-<time>``) do not.
    """
    try:
        candidates = [p for p in root.glob(f"{PREFIX}*") if p.is_dir() and not p.is_symlink()]
    except OSError:
        return []
    found = (read_record(p) for p in candidates if not (p / UNFINISHED).exists())
    return sorted((r for r in found if r is not None and r.instance == instance), key=lambda r: r.order)


def rotate(root: Path, keep: int, *, instance: str = "", just_taken: Path | None = None) -> list[Path]:
    """Keep this instance's newest ``keep`` recorded backups in ``root`` (and ``just_taken``, always); delete the others.

    Only folders whose record names ``instance`` are touched (see :func:`recorded_backups`): a folder without
    a sound record, with another instance's, or old-style (named ``wizard-<time>``, from before records) is left
    alone, and so is an unfinished one (its wizard was killed), which neither counts as a backup nor is deleted.
    Newest is what the records say (the sequence, then the time taken), not the folders' names.
    Without ``instance`` nothing is rotated.
    """
    if not instance:
        return []
    newest_first = sorted(
        recorded_backups(root, instance), key=lambda r: (r.folder == just_taken, r.order), reverse=True
    )
    gone = [
        record.folder for record in newest_first[max(keep, 1 if just_taken else 0) :] if record.folder != just_taken
    ]
    deleted = []
    for folder in gone:
        try:
            (
                folder / RECORD
            ).unlink()  # first: what is left if deleting fails half-way is no longer counted as a backup
            shutil.rmtree(folder)
        except OSError:
            continue  # kept: the backup just taken is good, and an old one staying is no harm
        deleted.append(folder)
    return deleted


@dataclass(frozen=True)
class Unfinished:
    """A backup folder the wizard did not finish: not a backup, kept for a look; the operator may remove it."""

    path: Path
    size: int
    failed: bool  # renamed incomplete-…: it failed half-way; else its wizard was stopped while writing it

    def says(self) -> str:
        why = "it failed half-way" if self.failed else "its wizard was stopped while writing it"
        return (f"not a usable backup ({why}): {self.path} ({human_bytes(self.size)}); "
                "you may remove it, the wizard never deletes it")  # fmt: skip


def unfinished_backups(root: Path, instance: str) -> list[Unfinished]:
    """This instance's unfinished backups in ``root``, with their sizes: folders still holding ``UNFINISHED``.

    Those of a wizard killed while writing (``wizard-…``) and those that failed half-way (``incomplete-wizard-…``).
    One whose marker names another instance is not listed; one whose marker names none (an older wizard's) is.
    """
    try:
        candidates = sorted([*root.glob(f"{PREFIX}*"), *root.glob(f"{INCOMPLETE}{PREFIX}*")])
    except OSError:
        return []
    found = []
    for folder in candidates:
        if not folder.is_dir() or folder.is_symlink() or not (folder / UNFINISHED).is_file():
            continue
        if unfinished_owner(folder) not in (None, instance):
            continue
        found.append(Unfinished(folder, tree_size(folder), folder.name.startswith(INCOMPLETE)))
    return found


def declared_backup(path: str) -> Backup:
    """The operator says a backup exists at ``path``; it must at least be there, and hold something."""
    where = Path(path).expanduser()
    if not where.exists():
        raise BackupError(
            f"the declared backup {where} does not exist",
            "take the backup first, then pass the path where it is",
        )
    if not holds_data(where):
        raise BackupError(f"the declared backup {where} is empty",
                          "point at the dump or the folder that holds it, not at an empty place")  # fmt: skip
    return Backup(kind="declared", path=str(where.resolve()))


def holds_data(where: Path) -> bool:
    """A non-empty file, or a folder with one somewhere inside (stops at the first)."""
    try:
        if where.is_file():
            return where.stat().st_size > 0
        return any(path.is_file() and path.stat().st_size > 0 for path in where.rglob("*"))
    except OSError:
        return True  # unreadable to the wizard's user: the operator's word stands
