"""Which process is which, across wizard restarts: pid plus start time, on this boot.

The start time is read raw from /proc (clock ticks since boot).  psutil's
create_time() adds the boot time as the wall clock sees it now, so it moves
when NTP or an operator steps the clock, and a live step would look dead.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path


def boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "unknown"


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, ValueError):
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its last ')'.
    return text.rsplit(")", 1)[1].split()


def start_ticks(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[19]) if fields else None  # field 22 of stat(5), counted from field 3


def alive(pid: int | None, ticks: int | None) -> bool:
    """Is this very process still running (not exited, not a zombie, not a newer one with its pid)?"""
    if not pid or ticks is None:
        return False
    fields = _stat_fields(pid)
    if not fields:
        return False
    return fields[0] not in ("Z", "X") and int(fields[19]) == ticks


def command_lines() -> Iterator[tuple[int, list[bytes]]]:
    """(pid, arguments as bytes) of every process we may look at (all of them as root, else at least our own)."""
    try:
        entries = [name for name in os.listdir("/proc") if name.isdigit()]
    except OSError:
        return
    for name in entries:
        try:
            raw = Path(f"/proc/{name}/cmdline").read_bytes()
        except OSError:
            continue  # gone meanwhile, or hidden from us
        yield int(name), raw.rstrip(b"\0").split(b"\0")
