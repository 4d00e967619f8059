"""What to tell the operator about a silent step, in the same words on screen and in headless logs."""

from __future__ import annotations

from wizard.lockwatch.watchdog import Blocker, Verdict


def _blocker_line(blocker: Blocker, app_server: str) -> str:
    since = f" for {blocker.seconds} s" if blocker.seconds is not None else ""
    owner = f"the {server_title(app_server)} service, " if blocker.app_server else ""
    query = f"; last statement: {blocker.query}" if blocker.query else ""
    role = f" (role {blocker.role})" if blocker.role else ""
    session = f"session {blocker.pid}{role} of " if blocker.session else ""
    return f"{session}{owner}{blocker.who}: {blocker.state}{since}{query}"


SERVER_TITLES = {"uwsgi": "uWSGI", "web": "the web server"}


def server_title(role: str) -> str:
    return SERVER_TITLES.get(role, role)


def summary(verdict: Verdict, app_server: str) -> list[str]:
    """The first lines: what is happening and who blocks (what the operator must see at once)."""
    lines = explain(verdict, app_server)
    keep = 1 + (not verdict.confirmed) + len(verdict.blockers) if verdict.kind == "lock_wait" else len(lines)
    return lines[:keep]


def explain(verdict: Verdict, app_server: str) -> list[str]:
    """Lines of advice for a verdict; empty while the step simply runs."""
    app_server = server_title(app_server)
    silent = f"No output for {verdict.silent_for:.0f} s"
    if verdict.kind == "running":
        return []
    if verdict.kind == "busy":
        return [f"{silent}, but it is working on the CPU: busy, not waiting on a lock. Let it run."]
    if verdict.kind == "not_a_lock":
        return [f"{silent} and no CPU use, but it is not waiting on a database lock ({verdict.db_note}).",
                "It may be waiting on something else (the network, a slow disk). Let it run and watch its log."]  # fmt: skip
    lines = [f"{silent} and no CPU use: it is waiting on a database lock."]
    if not verdict.confirmed:
        lines.append(f"That is a guess from silence and idle CPU: {verdict.db_note}.")
    for blocker in verdict.blockers:
        lines.append("Blocked by " + _blocker_line(blocker, app_server) + ".")
    if verdict.waiting_query:
        lines.append(f"It waits to run: {verdict.waiting_query}")
    lines.append("Do not abort it: Ctrl-C does nothing while it waits, and a killed client leaves its"
                 " database session queued behind the lock.")  # fmt: skip
    if any(b.app_server is None for b in verdict.blockers) and not verdict.app_server_blocks:
        lines.append("Which program holds that session could not be told (a remote client, or one this user"
                     " may not look at).")  # fmt: skip
    if verdict.restart_proven:
        lines.append(f"Restarting {app_server} drops the app's database sessions and releases the lock;"
                     " the upgrade then carries on by itself.")  # fmt: skip
    elif verdict.restart_would_help:
        lines.append(f"Restarting {app_server} releases the lock only if it holds it, which could not be proven:"
                     " the wizard will not restart it by itself. Find who holds the lock, or restart it if you know.")  # fmt: skip
    else:
        lines.append(f"The blocker is not {app_server}: restarting it would not help. End that session"
                     " (or the program that holds it), and the upgrade carries on.")  # fmt: skip
    return lines
