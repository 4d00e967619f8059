"""Which local process is on the other end of a database session's connection.

A session over TCP from this host is found by its client port; one over a Unix
socket (Indico's usual ``postgresql:///indico``, or ``sudo -u postgres psql``)
by the socket's peer, as ``ss -xp`` shows it.  Both answer None when they cannot
tell: a remote client, or a process this user may not look at.
"""

from __future__ import annotations

import re
import shutil
import subprocess

import psutil

LOOPBACK = ("127.0.0.1", "::1")


def tcp_client(client_addr: str | None, client_port: int | None) -> int | None:
    """The local process on the other end of a backend's TCP connection (None for remote or socket clients)."""
    if not client_port or client_port < 0 or client_addr not in LOOPBACK:
        return None
    try:
        for conn in psutil.net_connections(kind="tcp"):
            if conn.laddr and conn.laddr.port == client_port and conn.pid:
                return conn.pid
    except (psutil.Error, OSError):
        return None
    return None


def unix_socket_client(backend_pid: int) -> int | None:
    """The process connected to this backend through a Unix socket (None when ``ss`` cannot say)."""
    ends = _unix_socket_ends()
    for pids, peer in ends.values():
        if backend_pid in pids and peer in ends:
            others = [pid for pid in ends[peer][0] if pid != backend_pid]
            return others[0] if others else None
    return None


_PID = re.compile(r"pid=(\d+)")


def _unix_socket_ends() -> dict[str, tuple[list[int], str]]:
    """Each connected Unix socket's inode -> (the processes holding it, its peer's inode)."""
    ss = shutil.which("ss")
    if ss is None:
        return {}
    try:
        out = subprocess.run([ss, "-x", "-p", "-n", "-H", "state", "connected"], capture_output=True, text=True,
                             timeout=10, stdin=subprocess.DEVNULL).stdout  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return {}
    return parse_ss(out)


# u_str [ESTAB] RECV-Q SEND-Q LOCAL LOCAL-INODE PEER PEER-INODE [users:(("name",pid=N,fd=M))]; a path may hold spaces
_SS_LINE = re.compile(r"^u_\S+\s+(?:[A-Z-]+\s+)?\d+\s+\d+\s+.*?\s+(\d+)\s+.*?\s+(\d+)(?:\s+users:(.*))?$")


def parse_ss(out: str) -> dict[str, tuple[list[int], str]]:
    """``ss -xpn`` lines -> each socket's inode: (the processes holding it, its peer's inode)."""
    ends: dict[str, tuple[list[int], str]] = {}
    for line in out.splitlines():
        if match := _SS_LINE.match(line.strip()):
            inode, peer, users = match.groups()
            ends[inode] = ([int(pid) for pid in _PID.findall(users or "")], peer)
    return ends


def client_process(row: dict) -> int | None:
    """The local process behind a pg_stat_activity row: over TCP by its port, over a Unix socket by its peer."""
    if row.get("client_addr"):
        return tcp_client(row.get("client_addr"), row.get("client_port"))
    if row.get("client_port") == -1 and row.get("pid"):  # -1: a Unix-socket connection
        return unix_socket_client(int(row["pid"]))
    return None
