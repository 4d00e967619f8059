"""Is a silent step waiting on a database lock?  Silence + an idle process tree, then the database says who.

The verdict never touches the step: it only explains, and names who blocks it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Literal

import psutil

from wizard.config.dbconf import Database
from wizard.host.pgquery import QueryError, activity
from wizard.lockwatch.peers import client_process, tcp_client
from wizard.lockwatch.pgsuper import cluster_superuser
from wizard.session.state import StepRecord

HIDDEN = "<insufficient privilege>"
BUSY_CPU_SECONDS = 0.05  # more CPU than this between two looks means the step is working
DIAGNOSE_EVERY = 2.0
TREE_EVERY = 2.0  # finding the step's processes walks all of /proc: their CPU is read every look, the list less often

Kind = Literal["running", "busy", "not_a_lock", "lock_wait"]


@dataclass(frozen=True)
class Blocker:
    pid: int  # the database backend's pid (for SQLite: the OS process holding the file)
    who: str  # e.g. "uwsgi (pid 4021)", "psql (pid 88)", or the application name
    session: bool  # pid names a database session (PostgreSQL), not a local process (SQLite)
    state: str  # e.g. "idle in transaction"
    seconds: int | None
    query: str
    app_server: bool | None  # None: its program could not be identified (a remote client, or one hidden from us)
    role: str = ""  # the database role the session logged in as


@dataclass(frozen=True)
class Verdict:
    kind: Kind
    silent_for: float
    confirmed: bool = False  # the database itself showed the wait
    blockers: tuple[Blocker, ...] = ()
    waiting_query: str = ""
    db_note: str = ""  # why the database could not be asked, when it could not

    @property
    def app_server_blocks(self) -> bool:
        return any(b.app_server for b in self.blockers)

    @property
    def restart_would_help(self) -> bool:
        """A lock wait the app server causes, may cause (a blocker not identified), or one not confirmed.

        Enough to offer the operator a restart; never enough to restart without asking (see restart_proven).
        """
        unknown = any(b.app_server is None for b in self.blockers)
        return self.kind == "lock_wait" and (self.app_server_blocks or unknown or not self.confirmed)

    @property
    def restart_proven(self) -> bool:
        """The database named every holder of the lock, and each one is the app server's own process."""
        return (
            self.kind == "lock_wait"
            and self.confirmed
            and bool(self.blockers)
            and all(b.app_server for b in self.blockers)
        )

    def key(self) -> tuple:
        """What changes the advice (not the seconds counting up)."""
        return (self.kind, self.confirmed, tuple((b.pid, b.app_server) for b in self.blockers), self.db_note)


def application_tag(step_id: str) -> str:
    """Set as PGAPPNAME on a step, so its own backend can be told apart in pg_stat_activity."""
    return f"upgrade-wizard:{step_id}"


def process_tree(pid: int | None) -> list[psutil.Process]:
    if not pid:
        return []
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def cpu_seconds(processes: list[psutil.Process]) -> dict[int, float]:
    """The CPU time each process has used so far (user + system), by pid; one that has ended is left out."""
    used = {}
    for proc in processes:
        try:
            times = proc.cpu_times()
        except psutil.Error:
            continue
        used[proc.pid] = times.user + times.system
    return used


def describe_process(pid: int) -> str:
    try:
        return f"{psutil.Process(pid).name()} (pid {pid})"
    except psutil.Error:
        return f"pid {pid}"


APP_SERVER_NAMES = ("uwsgi", "gunicorn")
CLIENT_TOOLS = ("psql", "pg_dump", "pg_restore", "pgcli")  # a person's or a script's session, never the app server


def looks_like_app_server(pid: int, app_server_pids: set[int]) -> bool | None:
    """Is this process (or a parent) the app server?  None when there is no evidence either way.

    With the service's main pid known, the answer is exact.  Without it, a process
    named like an app server (uWSGI renames its workers, in any case) counts as one,
    and anything else is unknown: never a confident "no" without evidence.
    """
    try:
        proc = psutil.Process(pid)
        chain = [proc, *proc.parents()]
        name = proc.name()
    except psutil.Error:
        return None
    if app_server_pids:
        return any(p.pid in app_server_pids for p in chain)
    if name in CLIENT_TOOLS:
        return False
    for candidate in chain:
        try:
            words = " ".join([candidate.name(), *candidate.cmdline()[:2]]).lower()
        except psutil.Error:
            continue
        if any(name in words for name in APP_SERVER_NAMES):
            return True
    return None


@dataclass
class LockWatch:
    """Watches one running step that can hang on a lock; ``observe`` is called every fraction of a second."""

    step: StepRecord
    threshold: float
    database: Database | None
    app_server_pids: Callable[[], set[int]] = set
    clock: Callable[[], float] = time.monotonic
    _last_output: float = field(init=False)
    _last_busy: float = field(init=False)
    _log_size: int = field(init=False, default=-1)
    _cpu: dict[int, float] | None = field(init=False, default=None)  # by pid, at the last look
    _last_diagnosis: tuple[float, Verdict] | None = field(init=False, default=None)
    _superuser: Database | bool | None = field(init=False, default=False)  # False: not looked for yet
    _tree: list[psutil.Process] = field(init=False, default_factory=list)
    _tree_at: float = field(init=False, default=float("-inf"))

    def __post_init__(self) -> None:
        self._last_output = self._last_busy = self.clock()

    def look_again(self) -> Verdict:
        """After a restart: the verdict now, not one kept from before (the usual rules of silence and CPU hold)."""
        self._last_diagnosis = None
        return self.observe()

    def observe(self) -> Verdict:
        now = self.clock()
        size = _file_size(self.step.log)
        if size != self._log_size:
            self._log_size, self._last_output = size, now
        tree = self._processes(now)
        cpu = cpu_seconds(tree)
        # Only what each process used since the last look: a process first seen now (its tree is
        # found again every TREE_EVERY seconds) does not bring the CPU of its start-up as a burst.
        before = self._cpu
        if before is None or sum(used - before.get(pid, used) for pid, used in cpu.items()) > BUSY_CPU_SECONDS:
            self._last_busy = now
        self._cpu = cpu
        silent = now - self._last_output
        if silent < self.threshold:
            self._last_diagnosis = None
            return Verdict("running", silent)
        if now - self._last_busy < self.threshold:
            return Verdict("busy", silent)
        if self._last_diagnosis and now - self._last_diagnosis[0] < DIAGNOSE_EVERY:
            cached = self._last_diagnosis[1]
            return Verdict(cached.kind, silent, cached.confirmed, cached.blockers, cached.waiting_query, cached.db_note)
        verdict = self.diagnose(silent, {p.pid for p in tree})
        self._last_diagnosis = (now, verdict)
        return verdict

    def _processes(self, now: float) -> list[psutil.Process]:
        """The step's process tree, found again every TREE_EVERY seconds or when one of it has ended."""
        if now - self._tree_at >= TREE_EVERY or not all(proc.is_running() for proc in self._tree):
            self._tree, self._tree_at = process_tree(self.step.pid), now
        return self._tree

    def diagnose(self, silent: float, own_pids: set[int]) -> Verdict:
        db = self.database
        if db is None:
            return Verdict("lock_wait", silent, db_note="the instance's database settings were not found")
        if db.kind == "sqlite":
            return self._diagnose_sqlite(silent, db, own_pids)
        hidden = ""
        if superuser := self.superuser():
            try:
                return self._diagnose_postgres(silent, activity(superuser), own_pids)
            except QueryError as exc:
                hidden = f" (asked as its role: the cluster's superuser {superuser.user} could not log in: {exc})"
        try:
            rows = activity(db)
        except QueryError as exc:
            return Verdict("lock_wait", silent, db_note=f"the database could not be asked: {exc}")
        verdict = self._diagnose_postgres(silent, rows, own_pids)
        return replace(verdict, db_note=verdict.db_note + hidden) if hidden and verdict.db_note else verdict

    def superuser(self) -> Database | None:
        """The cluster's superuser login, looked for once (only as root, only for a local cluster)."""
        if self._superuser is False:
            self._superuser = cluster_superuser(self.database) if self.database else None
        return self._superuser if isinstance(self._superuser, Database) else None

    def _diagnose_postgres(self, silent: float, rows: list[dict], own_pids: set[int]) -> Verdict:
        by_pid = {row["pid"]: row for row in rows}
        tag = application_tag(self.step.id)
        mine = [row for row in rows if row.get("application_name") == tag]
        if not mine:
            # Not tagged (the app names its own sessions): its sessions are those of its own processes.
            mine = [row for row in rows if tcp_client(row.get("client_addr"), row.get("client_port")) in own_pids]
        if not mine:
            return Verdict("lock_wait", silent, db_note="its database session could not be found (a local-socket"
                           " client that names its sessions itself?)")  # fmt: skip
        waiting = [row for row in mine if row.get("wait_event_type") == "Lock"]
        if not waiting:
            state = mine[0].get("state") or "unknown"
            return Verdict(
                "not_a_lock", silent, confirmed=True, db_note=f"its database session is {state}, not waiting"
            )
        own = {row["pid"] for row in mine}
        roots = root_blockers(waiting, by_pid, own)
        if not roots:
            return Verdict("lock_wait", silent, db_note="the database showed the wait but not who holds the lock")
        pids = self.app_server_pids()
        blockers = tuple(self._describe_blocker(pid, by_pid.get(pid, {"pid": pid}), pids) for pid in roots)
        return Verdict(
            "lock_wait", silent, confirmed=True, blockers=blockers, waiting_query=waiting[0].get("query") or ""
        )

    @staticmethod
    def _describe_blocker(pid: int, row: dict, app_server_pids: set[int]) -> Blocker:
        state, seconds, query = row.get("state") or "unknown", row.get("state_seconds"), row.get("query") or ""
        role = row.get("role") or ""
        if pid == 0:
            return Blocker(0, "a prepared transaction (see pg_prepared_xacts)", False, "prepared", None, "", False)
        kind = row.get("backend_type") or "client backend"
        if kind != "client backend":
            return Blocker(pid, kind, True, state, seconds, query, False, role)  # autovacuum and the like: not the app
        if query == HIDDEN:  # another role's session, seen without the right to see it
            return Blocker(
                pid, "a session of another role (hidden from the app's role)", True, "unknown", None, "", None, role
            )
        client = "the local socket" if row.get("client_port") == -1 else row.get("client_addr") or "the local socket"
        local = client_process(row)
        if local:
            who = f"{describe_process(local)} via {client}"
            return Blocker(pid, who, True, state, seconds, query, looks_like_app_server(local, app_server_pids), role)
        # A remote client, or one whose process this user may not look at: unknown.
        return Blocker(
            pid, f"{row.get('application_name') or 'a client'} via {client}", True, state, seconds, query, None, role
        )

    def _diagnose_sqlite(self, silent: float, db: Database, own_pids: set[int]) -> Verdict:
        path = os.path.realpath(db.name)
        pids = self.app_server_pids()
        blockers, unseen = [], False
        for proc in psutil.process_iter(["pid"]):
            if proc.pid in own_pids or proc.pid == os.getpid():
                continue
            try:
                if any(os.path.realpath(f.path) == path for f in proc.open_files()):
                    blockers.append(Blocker(proc.pid, describe_process(proc.pid), False, "has the database open", None, "",
                                            looks_like_app_server(proc.pid, pids)))  # fmt: skip
            except psutil.AccessDenied:
                unseen = True
            except psutil.Error:
                continue
        if not blockers:
            if unseen:
                return Verdict(
                    "lock_wait", silent, db_note="some processes could not be looked at (run as root to see them)"
                )
            return Verdict("not_a_lock", silent, db_note="nothing else has the database file open")
        return Verdict("lock_wait", silent, confirmed=True, blockers=tuple(blockers))


def root_blockers(waiting: list[dict], by_pid: dict[int, dict], own: set[int]) -> list[int]:
    """Who really holds the lock: follow sessions that are themselves only queued, to the holders."""
    roots: list[int] = []
    seen: set[int] = set(own)
    frontier = [pid for row in waiting for pid in row.get("blocked_by") or []]
    while frontier:
        pid = frontier.pop(0)
        if pid in seen:
            continue
        seen.add(pid)
        row = by_pid.get(pid, {})
        if row.get("wait_event_type") == "Lock" and row.get("blocked_by"):
            frontier.extend(row["blocked_by"])  # queued too: what it waits for is the cause
        else:
            roots.append(pid)
    return roots


def _file_size(path: str | None) -> int:
    try:
        return os.stat(path).st_size if path else 0
    except OSError:
        return 0
