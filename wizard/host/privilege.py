"""Who runs a step: root, or the app's own user, reached with runuser or sudo -n."""

from __future__ import annotations

import os
import pwd


def current_user() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())


def as_runner(argv: list[str], run_as: str, app_user: str | None, env: dict[str, str]) -> list[str]:
    """The argv that runs ``argv`` as the right user from the wizard's own user.

    runuser keeps the environment (but HOME, SHELL, USER, LOGNAME), so the step's
    variables reach the command.  sudo resets it, so they are passed through
    ``env NAME=value``: only the step's declared, non-secret variables go there.
    """
    is_root = os.geteuid() == 0
    if run_as == "root":
        return argv if is_root else ["sudo", "-n", "--", *_env_prefix(env), *argv]
    if app_user is None or app_user == current_user():
        return argv
    if is_root:
        return ["runuser", "-u", app_user, "--", *argv]
    return ["sudo", "-n", "-u", app_user, "--", *_env_prefix(env), *argv]


def _env_prefix(env: dict[str, str]) -> list[str]:
    return ["env", *(f"{k}={v}" for k, v in env.items())] if env else []


def as_db_client(argv: list[str], os_user: str | None, has_password: bool) -> list[str]:
    """A database client's argv: as the app's Unix user for a password-less (peer / unix_socket) login.

    With a password the wizard's own user connects: sudo would drop the
    password from the environment, and the login does not depend on who asks.
    """
    return argv if has_password else as_runner(argv, "app", os_user, {})
