"""Exit codes (a promise to our users' scripts, see DESIGN.md) and the errors that carry them."""

from __future__ import annotations

from enum import IntEnum


class Exit(IntEnum):
    DONE = 0
    STEP_FAILED = 1
    USAGE = 2  # also: a blocker applies, a config or state file is unusable
    LOCKED = 3
    NEEDS_DECISION = 4
    HUNG_UP = 129  # the terminal hung up (SIGHUP) while following a step; it goes on detached
    STOPPED = 130  # the operator pressed Ctrl-C; a running step goes on detached
    TERMINATED = 143  # SIGTERM while following a step; it goes on detached


class WizardError(Exception):
    """An error the operator can act on: what happened, and what to do."""

    exit_code: Exit = Exit.USAGE

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint


class ConfigError(WizardError):
    """The instances file or an instance's paths are wrong."""


class StateError(WizardError):
    """A saved session cannot be read; the file is left exactly as it was."""


class LockHeld(WizardError):
    """Another wizard is working on this instance."""

    exit_code = Exit.LOCKED

    def __init__(self, instance: str, pid: int | None, subject: str | None = None):
        """``subject``: what the lock guards, when not the instance (the instances on a shared venv)."""
        holder = f"pid {pid}" if pid else "a process whose pid was not recorded"
        super().__init__(
            f"another upgrade-wizard ({holder}) is working on {subject or f'instance {instance!r}'}",
            "wait for it to finish, or attach to its terminal; if that process is not a wizard, "
            "report it: the lock is released by the kernel when its holder exits",
        )
        self.pid = pid


class BackupError(WizardError):
    """The backup could not be taken or did not read back: the gate stays closed."""
