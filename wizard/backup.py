"""Backups the wizard takes itself, and proves readable before anything changes.

A backup is a folder ``wizard-<time>`` under the instance's backup directory:
the database's dump (see :mod:`wizard.dumps`, one module per engine), a copy of
the app's config files and the app's own files (uploads, secret).  Free space
is checked first; nothing is written when it is short.  Older wizard backups
are rotated away.
"""

from __future__ import annotations

import hashlib
import shlex
import shutil
import tarfile
from dataclasses import dataclass, replace
from pathlib import Path

from .appfiles import AppFile
from .dbconf import Database
from .dumps import Progress, engine_for
from .dumps.common import private_file
from .errors import BackupError
from .sizes import free_space, human_bytes, tree_size
from .state import Backup, now

HEADROOM = 64 * 1024**2
PREFIX = "wizard-"
UNFINISHED = "UNFINISHED"  # in a backup folder while it is written: a wizard killed half-way leaves it behind

__all__ = ["BackupError", "Estimate", "Part", "estimate", "take_backup", "declared_backup", "rotate"]


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


def estimate(db: Database, config_files: list[Path], root: Path, files: list[AppFile] = ()) -> Estimate:
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
    files: list[AppFile] = (),
    measured: Estimate | None = None,
) -> Backup:
    """Back up the database, the config files and the app's files into a new folder under ``root``; verify; rotate.

    ``measured``: the estimate the operator was shown (measuring again walks the app's files a second time);
    its free space is read afresh, as it may have shrunk since.
    """
    plan = replace(measured, free=free_space(root)) if measured else estimate(db, config_files, root, files)
    check_space(plan)
    configs = [path for path in config_files if path.is_file()]
    folder = root / f"{PREFIX}{now().strftime('%Y%m%d-%H%M%S')}"
    folder.mkdir(parents=True, mode=0o700)
    (folder / UNFINISHED).write_text("The wizard was writing this backup and did not finish it: do not restore from it.\n")
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
    except BaseException:
        # Kept for a look, but never mistaken for a backup (nor counted when rotating).
        folder.rename(folder.with_name("incomplete-" + folder.name))
        raise
    (folder / UNFINISHED).unlink()
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    rotate(root, keep)
    return Backup(kind="taken", path=str(folder), size=size, checksum="sha256:" + sha256_of(dump.path), restore=restore,
                  contents=contents)  # fmt: skip


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


def rotate(root: Path, keep: int) -> list[Path]:
    """Keep the newest ``keep`` wizard backups in ``root``; only finished folders the wizard made are touched.

    An unfinished one (its wizard was killed) neither counts as a backup nor is deleted: it is left for a look.
    """
    finished = (p for p in root.glob(f"{PREFIX}*") if p.is_dir() and not (p / UNFINISHED).exists())
    ours = sorted(finished, key=lambda p: p.name)
    gone = ours[: max(len(ours) - keep, 0)]
    for folder in gone:
        shutil.rmtree(folder)
    return gone


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
