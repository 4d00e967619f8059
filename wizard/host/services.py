"""Which unit each service role really is on this host (configured, found, or said so: assumed), and its state.

The state is asked of the service manager the instance names, never guessed:
``systemctl is-active UNIT`` or ``supervisorctl … status PROGRAM``, each with a
timeout.  Anything else, a command that fails, or an answer it does not know is
"unknown", with why.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import sh

from steps import Recipe
from wizard.config.instance import Instance

State = Literal["running", "starting", "stopped", "failed", "unknown"]
STATE_TIMEOUT = 10.0  # seconds for one question to the service manager

# systemd's words (`systemctl is-active`), and supervisord's (`supervisorctl status`).
SYSTEMD_STATES: dict[str, State] = {
    "active": "running", "activating": "starting", "reloading": "starting", "refreshing": "starting",
    "inactive": "stopped", "failed": "failed",
}  # fmt: skip
SUPERVISOR_STATES: dict[str, State] = {
    "RUNNING": "running", "STARTING": "starting", "STOPPED": "stopped", "EXITED": "stopped",
    "FATAL": "failed", "BACKOFF": "failed",
}  # fmt: skip
SUPERVISOR_WORDS = {*SUPERVISOR_STATES, "STOPPING", "UNKNOWN"}


@dataclass(frozen=True)
class Unit:
    role: str
    name: str | None
    how: str  # "configured", "none here" (configured empty), "found" (looked up), "default" (the recipe's), "assumed" (not found)
    state: State = "unknown"
    said: str = ""  # what the service manager answered (BACKOFF, inactive), or why the state is unknown

    @property
    def down(self) -> bool:
        """Known not to be running: stopped, or failed."""
        return self.state in ("stopped", "failed")


class ServiceManager:
    """The instance's service manager, the one way to ask about and act on its services.

    Built from the instance's own command (``service_manager``: systemctl, supervisorctl,
    or a wrapper around them) and its ``service_pid`` template; systemd's pid lookup is built in.
    """

    def __init__(self, instance: Instance):
        self.instance = instance

    def argv(self, action: str, unit: str) -> list[str]:
        """The command for ``action`` on ``unit`` (start, stop, restart, status…), each part filled on its own."""
        return self.instance.service_argv(action, unit)

    def state(self, unit: str, timeout: float | None = None) -> tuple[State, str]:
        return service_state(self.instance, unit, timeout)

    def main_pid(self, unit: str) -> int | None:
        """The service's main process, to recognise its database sessions (None when unknown)."""
        template = self.instance.service_pid
        if template is not None:
            argv = [part.replace("{service}", unit) for part in template]
        elif manager_kind(self.instance) == "systemd":
            argv = [*self.argv("show", unit), "--property=MainPID", "--value"]  # as the instance calls systemctl
        else:
            return None
        try:
            out = str(sh.Command(argv[0])(*argv[1:], _tty_out=False, _timeout=10)).strip()
        except (sh.ErrorReturnCode, sh.CommandNotFound, sh.TimeoutException, OSError):
            return None
        return int(out) if out.isdigit() and int(out) > 0 else None

    def units(self, recipe: Recipe, states: bool = True) -> list[Unit]:
        """The unit of each role the recipe or the instance names, with its state unless ``states`` is False."""
        return resolve_units(self.instance, recipe, states)


def manager_kind(instance: Instance) -> Literal["systemd", "supervisor"] | None:
    program = Path(instance.service_manager[0]).name
    if program.endswith("systemctl"):
        return "systemd"
    if program == "supervisorctl":
        return "supervisor"
    return None


def state_argv(instance: Instance, unit: str) -> list[str] | None:
    """The command that asks for the unit's state; None when the wizard cannot read this manager's answer."""
    kind = manager_kind(instance)
    if kind is None:
        return None
    return instance.service_argv("is-active" if kind == "systemd" else "status", unit)


def status_argv(instance: Instance, unit: str) -> list[str]:
    """What the operator runs to see why a service is down (systemd's and supervisord's `status`)."""
    return instance.service_argv("status", unit)


def ask(argv: list[str], timeout: float) -> tuple[int, str, str] | str:
    """(exit code, stdout, stderr), or why there is no answer.  Its own process group, ended whole on timeout."""
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, errors="replace", start_new_session=True)  # fmt: skip
    except OSError as exc:
        return f"{argv[0]} could not be run: {exc.strerror or exc}"
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.communicate()
        return f"`{shlex.join(argv)}` did not answer within {timeout:g} s"
    return proc.returncode, out, err


def message(text: str, limit: int = 200) -> str:
    """A program's message on one line, cut to ``limit`` characters."""
    joined = " ".join(line.strip() for line in text.splitlines() if line.strip())
    return joined if len(joined) <= limit else joined[: limit - 1] + "…"


def systemd_state(code: int, out: str, err: str) -> tuple[State, str]:
    word = out.strip().splitlines()[0].strip() if out.strip() else ""
    if word in SYSTEMD_STATES:
        return SYSTEMD_STATES[word], word
    if word:
        return "unknown", f"systemctl says {word!r}"
    return "unknown", f"systemctl gave no state (exit {code}): {message(err) or 'no message'}"


def supervisor_state(code: int, out: str, err: str, program: str) -> tuple[State, str]:
    """supervisorctl's status lines: `NAME  STATE  description`; NAME is group:name for a group's member."""
    group = program[:-2] if program.endswith(":*") else program[:-1] if program.endswith(":") else None
    found: list[tuple[State, str]] = []
    for line in out.splitlines():
        parts = line.split(None, 2)
        if len(parts) < 2 or parts[1] not in SUPERVISOR_WORDS:
            continue
        if parts[0] == program or (group is not None and parts[0].startswith(group + ":")):
            said = " ".join(line.split()[1:])
            found.append((SUPERVISOR_STATES.get(parts[1], "unknown"), said))
    if not found:
        return "unknown", f"supervisorctl gave no state (exit {code}): {message(out + err) or 'no message'}"
    states = {state for state, _ in found}
    said = "; ".join(said for _, said in found)
    if len(states) == 1:
        state = states.pop()
        return state, said if state != "unknown" else f"supervisorctl says {said}"
    if "failed" in states:
        return "failed", said
    return "unknown", f"the group's programs differ: {said}"


def service_state(instance: Instance, unit: str, timeout: float | None = None) -> tuple[State, str]:
    """Ask the instance's service manager; (state, what it said or why unknown)."""
    argv = state_argv(instance, unit)
    if argv is None:
        return "unknown", "not asked: the wizard reads states from systemctl and supervisorctl only"
    answer = ask(argv, STATE_TIMEOUT if timeout is None else timeout)
    if isinstance(answer, str):
        return "unknown", answer
    if manager_kind(instance) == "systemd":
        state, said = systemd_state(*answer)
        if state == "stopped" and unknown_to_systemd(instance, unit, timeout):
            # is-active says "inactive" of a unit systemd has never heard of: that is no stopped service.
            return "unknown", f"systemd knows no unit {unit} (is-active says inactive of any name)"
        return state, said
    return supervisor_state(*answer, unit)


def unknown_to_systemd(instance: Instance, unit: str, timeout: float | None) -> bool:
    """systemd says it has no such unit (LoadState not-found); False when it says otherwise or nothing."""
    answer = ask([*instance.service_argv("show", unit), "--property=LoadState", "--value"],
                 STATE_TIMEOUT if timeout is None else timeout)  # fmt: skip
    return not isinstance(answer, str) and answer[0] == 0 and answer[1].strip() == "not-found"


def with_states(instance: Instance, units: list[Unit]) -> list[Unit]:
    """Each unit with the state its service manager gives it, asked side by side (each question has its timeout)."""

    def one(unit: Unit) -> Unit:
        if unit.name is None:
            return unit
        if unit.how == "assumed":
            # systemd says "inactive" for a unit it has never heard of: that would be a guess.
            return replace(unit, said="not asked: no such unit was found on this host")
        state, said = service_state(instance, unit.name)
        return replace(unit, state=state, said=said)

    if not units:
        return []
    # Daemon threads, not a ThreadPoolExecutor: the interpreter joins an executor's threads when it exits, so a
    # health check still asking (in the TUI's daemon thread) would hold the wizard's exit for as long as it asks.
    answers: list[Unit] = list(units)

    def ask(index: int) -> None:
        answers[index] = one(units[index])

    threads = [
        threading.Thread(target=ask, args=(index,), name="service-state", daemon=True) for index in range(len(units))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


TEMPLATE_INSTANCE = re.compile(r"^[^@/]+@[^@/]+\.[a-z]+$")  # indico-celery@main.service, not indico-celery@.service


def installed_systemd_units(instance: Instance, candidates: list[str]) -> set[str]:
    """Which of these units exist, asking systemctl the way the instance calls it (works offline).

    A plain unit is found by its file. An instance of a template (``indico-celery@main.service``) has no file of
    its own, and every instance name of an existing template would pass for one; it counts only once systemd says
    that very instance is enabled (what `systemctl enable indico-celery@main.service` made it)."""
    prefix = [part for part in instance.service_manager if "{action}" not in part and "{service}" not in part]
    plain = [unit for unit in candidates if not TEMPLATE_INSTANCE.match(unit)]
    found: set[str] = set()
    if plain:
        try:
            out = sh.Command(prefix[0])(*prefix[1:], "list-unit-files", "--no-legend", "--plain", *plain,
                                        _tty_out=False, _timeout=15, _ok_code=[0, 1])  # fmt: skip
            found |= {line.split()[0] for line in str(out).splitlines() if line.strip()}
        except (sh.ErrorReturnCode, sh.CommandNotFound, sh.TimeoutException, OSError):
            pass
    for unit in candidates:
        if unit not in plain:
            answer = ask([*prefix, "is-enabled", unit], STATE_TIMEOUT)
            if not isinstance(answer, str) and answer[1].strip() in ("enabled", "enabled-runtime"):
                found.add(unit)
    return found


def resolve_units(instance: Instance, recipe: Recipe, states: bool = True) -> list[Unit]:
    """The unit of each role, with its state asked of the service manager (unless ``states`` is False)."""
    units = []
    is_systemd = instance.service_manager[0].endswith("systemctl")
    for role in sorted(set(recipe.services) | set(instance.services) | set(recipe.service_candidates)):
        if role in instance.services:
            configured = instance.unit(instance.services[role])
            units.append(Unit(role, configured or None, "configured" if configured else "none here"))
            continue
        candidates = [instance.unit(candidate) for candidate in recipe.service_candidates.get(role, [])]
        default = instance.unit(recipe.services[role]) if role in recipe.services else None
        if candidates and is_systemd:
            found = installed_systemd_units(instance, candidates)
            match = next((unit for unit in candidates if unit in found), None)
            units.append(Unit(role, match, "found") if match else Unit(role, default, "assumed"))
        else:
            units.append(Unit(role, default, "default" if default else "unknown"))
    return with_states(instance, units) if states else units


# -- How a unit is shown: one line in detection and in `plan`, and a hint when it needs one.

HOW_TEXT = {"default": "the recipe's name for it"}


@dataclass(frozen=True)
class UnitLine:
    name: str  # "uwsgi service"
    value: str  # "failed · indico-uwsgi.service (configured)"
    verdict: Literal["ok", "warning", "unknown"]
    hint: str = ""


def unit_line(instance: Instance, unit: Unit) -> UnitLine:
    name = f"{unit.role} service"
    if unit.name is None and unit.how == "none here":
        return UnitLine(name, "none (the instance has no such service)", "ok")
    if unit.name is None:
        return UnitLine(name, "unknown", "warning", "name it under services in the instances file")
    value = f"{unit.state} · {unit.name} ({HOW_TEXT.get(unit.how, unit.how)})"
    if unit.how == "assumed":
        return UnitLine(name, value, "warning", "not found on this host; name it under services in the instances file")
    manager = Path(instance.service_manager[0]).name
    if unit.state == "failed":
        return UnitLine(name, value, "warning",
                        f"{manager} reports {unit.said}; see why: `{shlex.join(status_argv(instance, unit.name))}`")  # fmt: skip
    if unit.state == "stopped":
        return UnitLine(name, value, "warning", f"{manager} reports {unit.said}; start it: "
                        f"`{shlex.join(instance.service_argv('start', unit.name))}`")  # fmt: skip
    if unit.state == "unknown":
        return UnitLine(name, value, "unknown", f"state unknown: {unit.said}")
    return UnitLine(name, value, "ok")
