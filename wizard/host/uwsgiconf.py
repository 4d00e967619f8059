"""Does the running uWSGI reload when a file is touched?  Read from its own command line and ini files.

Indico's reload step only touches the WSGI file: without `touch-reload` on that
file, uWSGI keeps serving the old code and the step "succeeds" doing nothing.
The answer is None ("cannot tell") whenever uWSGI's settings are not plainly
readable (not running, a YAML/XML/JSON config, placeholders, includes).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass

import psutil

from wizard.host.services import ServiceManager
from wizard.session.state import Note

KEYS = ("touch-reload", "touch_reload")
UNREAD_FORMATS = (".xml", ".yaml", ".yml", ".json", ".js")


@dataclass(frozen=True)
class Watched:
    files: frozenset[str] | None  # the touch-reload files (real paths); None: could not be told
    why: str  # where that was read, or why it could not be


def touch_reload_files(pid: int) -> Watched:
    try:
        proc = psutil.Process(pid)
        args, cwd, exe = proc.cmdline(), proc.cwd(), proc.exe()
    except psutil.Error as exc:
        return Watched(None, f"its process {pid} could not be looked at ({exc.__class__.__name__})")
    if _renamed(args, exe, cwd):
        # auto-procname and the like write a title ("indico uWSGI master") over the command line
        return Watched(
            None, f"it has renamed its process ({' '.join(args)!r}), so its command line no longer shows its settings"
        )
    files: set[str] = set()
    configs: list[str] = []
    rest = iter(args[1:])
    for arg in rest:
        name, eq, value = arg.partition("=")
        if name.lstrip("-").replace("_", "-") in ("touch-reload", "ini"):
            value = value if eq else next(rest, "")
            (files.add(value) if "touch" in name else configs.append(value))
        elif arg.endswith(".ini") and not arg.startswith("-"):
            configs.append(arg)
        elif arg.lower().endswith(UNREAD_FORMATS) or arg.lstrip("-") in ("yaml", "yml", "xml", "json"):
            return Watched(None, f"it reads {arg}, a format the wizard does not read")
    if not configs and not files and len(args) < 2:
        return Watched(None, "its command line does not show its settings")
    for config in configs:
        found = _ini_touch_reload(os.path.join(cwd, config))
        if found is None:
            return Watched(None, f"{config} could not be read plainly (missing, or with includes or placeholders)")
        files |= found
    if any("%" in f or "$(" in f for f in files):
        return Watched(None, "its touch-reload uses placeholders")
    source = ", ".join(configs) or "its command line"
    return Watched(frozenset(os.path.realpath(os.path.join(cwd, f)) for f in files), f"read from {source}")


def _renamed(args: list[str], exe: str, cwd: str) -> bool:
    """Is the command line no longer the one it was started with (its first word is not its program)?"""
    first = args[0] if args else ""
    path = os.path.join(cwd, first) if "/" in first else shutil.which(first)
    return not path or os.path.realpath(path) != os.path.realpath(exe)


def _ini_touch_reload(spec: str) -> set[str] | None:
    """The touch-reload values of one uWSGI ini file (``file.ini:section``, default section ``uwsgi``)."""
    path, _, section = spec.partition(":")
    try:
        lines = open(path, encoding="utf-8").read().splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    wanted, current, found = f"[{section or 'uwsgi'}]", None, set()
    for raw in lines:
        line = raw.strip()
        if line.startswith("["):
            current = line
        elif current == wanted and "=" in line and not line.startswith((";", "#")):
            key, _, value = (part.strip() for part in line.partition("="))
            if key in ("ini", "include", "inherit", "for", "if-env", "if-exists"):
                return None  # settings from elsewhere: not read
            if key in KEYS:
                found.add(value)
    return found


def touch_reload_check(services: ServiceManager, role: str, unit: str, touched: str) -> tuple[bool | None, Note]:
    """Does the running service reload when ``touched`` changes?  With the note that says what was found."""
    pid = services.main_pid(unit)
    watched = touch_reload_files(pid) if pid else Watched(None, f"{unit} is not running (or its pid is unknown)")
    note_id, real = f"check-reload-{role}", os.path.realpath(touched)
    if watched.files is None:
        return None, Note(id=note_id, version="", severity="warning",
                          title=f"Whether {unit} reloads when {touched} is touched could not be checked",
                          text=f"{watched.why}. Without touch-reload on that file, the reload step does nothing"
                               " and the old code keeps running.",
                          way_out=f"Check that {unit}'s config has `touch-reload = {touched}`, or restart {unit}"
                                  " after the upgrade.")  # fmt: skip
    if real in watched.files:
        return True, Note(id=note_id, version="", severity="info", title=f"{unit} reloads when {touched} is touched",
                          text=f"touch-reload is set for it ({watched.why}).")  # fmt: skip
    return False, Note(id=note_id, version="", severity="info",
                       title=f"{unit} does not reload when {touched} is touched: the plan restarts it instead",
                       text=f"Its touch-reload ({watched.why}) does not name that file, so touching it would"
                            f" change nothing; the reload step restarts {unit} through the service manager.")  # fmt: skip
