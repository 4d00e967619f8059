"""The app's own files a backup needs besides its database, as its config says where they are.

pretalx: the ``media/`` folder (uploads) and ``.secret`` (only when no secret is set
in the config: losing it logs everybody out).  Indico: the ``archive`` storage
(every uploaded file), which can be large: included when the instance says so,
and its size reported either way.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from wizard.config.secrets import ini_values, python_assignments

if TYPE_CHECKING:
    from wizard.config.context import InstanceContext


@dataclass(frozen=True)
class AppFile:
    label: str
    path: Path
    included: bool
    why_not: str = ""
    optional: bool = False  # the operator chooses (on the backup screen, or in the instance's settings)


def app_files(context: InstanceContext, chosen: set[str] | None = None) -> list[AppFile]:
    """The app's files to back up; ``chosen``: the optional ones the operator picked (None: as the instance says)."""
    texts = context.config_texts
    found: list[AppFile] = []
    if context.recipe.config_format == "ini":
        found.extend(_pretalx_files(ini_values(texts, context.overrides)))
    else:
        for text in texts:
            found.extend(_indico_files(dict(python_assignments(text)), context.instance.backup_archive))
    if chosen is not None:
        found = [replace(f, included=f.label in chosen, why_not="left out on the backup screen") if f.optional else f
                 for f in found]  # fmt: skip
    return [f for f in found if f.path.exists()]


def _pretalx_files(values: dict[str, str]) -> list[AppFile]:
    data = values.get("filesystem.data")
    if not data:
        return []
    media = Path(values.get("filesystem.media") or Path(data) / "media")
    files = [AppFile("media", media, True)]
    if not values.get("django.secret"):
        files.append(AppFile(".secret", Path(data) / ".secret", True))
    return files


def _indico_files(values: dict[str, object], include_archive: bool) -> list[AppFile]:
    backends = values.get("STORAGE_BACKENDS")
    if not isinstance(backends, dict):
        return []
    files = []
    for name, spec in backends.items():
        if isinstance(spec, str) and spec.startswith("fs:"):
            why = "" if include_archive else "set backup_archive = true in the instance to include it"
            files.append(AppFile(f"archive-{name}", Path(spec[3:].split(",")[0]), include_archive, why, optional=True))
    return files
