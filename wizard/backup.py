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

__all__ = ["BackupError", "take_backup", "declared_backup", "rotate", "check_space"]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_space(folder: Path, needed: int) -> None:
    free = free_space(folder)
    if free < needed + HEADROOM:
        raise BackupError(
            f"not enough free space for the backup in {folder}: about {human_bytes(needed)} needed "
            f"(plus {human_bytes(HEADROOM)} to spare), {human_bytes(free)} free",
            "free some space there, or set backup_dir in the instance to a bigger filesystem; nothing was written",
        )


def take_backup(
    db: Database,
    config_files: list[Path],
    root: Path,
    keep: int,
    progress: Progress | None = None,
    files: list[AppFile] = (),
) -> Backup:
    """Back up the database, the config files and the app's files into a new folder under ``root``; verify; rotate."""
    engine = engine_for(db)
    expected = engine.size(db)
    configs = [path for path in config_files if path.is_file()]
    sizes = {f.label: tree_size(f.path) for f in files}
    included = sum(sizes[f.label] for f in files if f.included)
    check_space(root, expected + sum(path.stat().st_size for path in configs) + included)
    folder = root / f"{PREFIX}{now().strftime('%Y%m%d-%H%M%S')}"
    folder.mkdir(parents=True, mode=0o700)
    try:
        dump = engine.dump(db, folder, expected, progress)
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
            where = f"{item.label} ({item.path}, {human_bytes(sizes[item.label])})"
            if not item.included:
                contents.append(f"NOT included: {where}: {item.why_not}")
                continue
            contents.append(where)
            restore.append(save_files(item, folder / "files", sizes[item.label], progress))
    except BaseException:
        # Kept for a look, but never mistaken for a backup (nor counted when rotating).
        folder.rename(folder.with_name("incomplete-" + folder.name))
        raise
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
    """Keep the newest ``keep`` wizard backups in ``root``; only folders the wizard made are touched."""
    ours = sorted((p for p in root.glob(f"{PREFIX}*") if p.is_dir()), key=lambda p: p.name)
    gone = ours[: max(len(ours) - keep, 0)]
    for folder in gone:
        shutil.rmtree(folder)
    return gone


def declared_backup(path: str) -> Backup:
    """The operator says a backup exists at ``path``; it must at least be there."""
    where = Path(path).expanduser()
    if not where.exists():
        raise BackupError(
            f"the declared backup {where} does not exist",
            "take the backup first, then pass the path where it is",
        )
    return Backup(kind="declared", path=str(where.resolve()))
