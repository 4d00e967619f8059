"""The local PostgreSQL cluster's superuser, so the lock watch can see every session.

An ordinary role sees other roles' sessions in pg_stat_activity only as
``<insufficient privilege>``: no query, no client, no state.  As root on the
database's host the wizard logs in as the cluster's owner through its Unix
socket (peer authentication, what ``sudo -u postgres psql`` does).  The cluster
is found from the server process that really listens where the app connects,
and its socket folder from that server's own postmaster.pid: never guessed.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import psutil

from wizard.config.dbconf import Database

LOCAL_HOSTS = (None, "", "localhost", "127.0.0.1", "::1")
DEFAULT_SOCKET_DIR = "/var/run/postgresql"


def cluster_superuser(db: Database) -> Database | None:
    """The same database, reached as the cluster owner over its Unix socket; None when that cannot be proven."""
    if db.kind != "postgresql" or os.geteuid() != 0:
        return None
    port = db.port or 5432
    server = _server_process(db.host, port)
    if server is None:
        return None
    try:
        owner, data_dir = server.username(), server.cwd()  # the postmaster runs in its data folder
    except psutil.Error:
        return None
    socket_dir = _socket_dir(Path(data_dir) / "postmaster.pid", port)
    if socket_dir is None:
        return None
    return replace(db, host=socket_dir, port=port, user=owner, password=None, os_user=owner)


def _server_process(host: str | None, port: int) -> psutil.Process | None:
    """The process listening for this database: on a loopback TCP port, or on the socket in ``host``'s folder."""
    wanted: str | None  # the server's Unix socket, or None: its TCP port
    if host is not None and host.startswith("/"):
        wanted = os.path.join(host, f".s.PGSQL.{port}")
    elif host in LOCAL_HOSTS:
        wanted = None if host else os.path.join(DEFAULT_SOCKET_DIR, f".s.PGSQL.{port}")
    else:
        return None  # another host: its sessions cannot be tied to processes here anyway
    try:
        if wanted is None:
            pids = [c.pid for c in psutil.net_connections(kind="inet")
                    if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port]  # fmt: skip
        else:
            # A Unix socket's laddr is its path (a str); types-psutil types every laddr as an (ip, port) pair.
            pids = [c.pid for c in psutil.net_connections(kind="unix") if c.laddr == wanted]  # type: ignore[comparison-overlap,redundant-expr]
        pid = next(pid for pid in pids if pid)
        return psutil.Process(pid)
    except (StopIteration, psutil.Error, OSError):
        return None


def _socket_dir(pid_file: Path, port: int) -> str | None:
    """postmaster.pid: line 4 is the port, line 5 the first socket folder."""
    try:
        lines = pid_file.read_text().splitlines()
    except OSError:
        return None
    if len(lines) < 5 or lines[3].strip() != str(port) or not lines[4].strip():
        return None
    return lines[4].strip()
