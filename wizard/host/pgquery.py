"""Asking PostgreSQL who waits on whom, through psql: the password goes in its environment only."""

from __future__ import annotations

import json
import os
import shutil

from wizard.config.dbconf import Database
from wizard.host.clientcall import client_output
from wizard.host.privilege import as_db_client

ACTIVITY = """
SELECT coalesce(json_agg(row_to_json(a)), '[]') FROM (
  SELECT pid, usename AS role, application_name, host(client_addr) AS client_addr, client_port, state,
         wait_event_type, wait_event, pg_blocking_pids(pid) AS blocked_by,
         extract(epoch FROM now() - state_change)::int AS state_seconds,
         left(regexp_replace(query, '\\s+', ' ', 'g'), 160) AS query
         , backend_type
  FROM pg_stat_activity
  WHERE (datname = current_database() OR datname IS NULL) AND pid <> pg_backend_pid()
) a
"""


class QueryError(Exception):
    """The database could not be asked (not reachable, no psql, refused): say so and fall back."""


def psql_env(db: Database, purpose: str = "watch") -> dict[str, str]:
    """A client's environment: the connection (password included) and a name that shows in pg_stat_activity.

    The watch's quick questions get short timeouts, so a locked catalog never
    stalls it; a backup (``purpose="backup"``) runs as long as it takes.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update(PGDATABASE=db.name, PGCONNECT_TIMEOUT="3", PGAPPNAME=f"upgrade-wizard-{purpose}")
    if purpose == "watch":
        env["PGOPTIONS"] = "-c statement_timeout=3000 -c lock_timeout=1000"
    for key, value in (("PGHOST", db.host), ("PGPORT", db.port), ("PGUSER", db.user), ("PGPASSWORD", db.password)):
        if value:
            env[key] = str(value)
    return env


def run_sql(db: Database, statement: str) -> str:
    """Run one statement; as the app's Unix user when no password is set (peer login), else the password in the environment."""
    if db.kind != "postgresql":
        raise QueryError(f"{db.kind} cannot be asked about locks")
    psql = shutil.which("psql")
    if psql is None:
        raise QueryError("psql is not installed on this host")
    psql_argv = [psql, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", statement]
    argv = as_db_client(psql_argv, db.os_user, bool(db.password))
    return client_output(argv, psql_env(db), 10, QueryError)


def activity(db: Database) -> list[dict]:
    try:
        rows = json.loads(run_sql(db, ACTIVITY) or "[]")
    except ValueError:
        raise QueryError("psql's answer could not be read") from None
    if not isinstance(rows, list):
        raise QueryError("psql's answer was not the list of sessions asked for")
    return rows


def terminate(db: Database, pid: int) -> bool:
    return run_sql(db, f"SELECT pg_terminate_backend({int(pid)})") == "t"
