"""Sizes as people read them."""

from __future__ import annotations

import os
import shutil
from pathlib import Path


def human_bytes(count: int) -> str:
    size = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def tree_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    total = 0
    for folder, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(folder, name)).st_size
            except OSError:
                pass
    return total


def free_space(path: Path) -> int:
    """Free bytes on the filesystem that holds ``path``, or would hold it once created."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return shutil.disk_usage(path).free
