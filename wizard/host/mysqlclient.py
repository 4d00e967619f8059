"""Asking MySQL / MariaDB through its own command-line clients.

The password never goes on a command line or into the environment: it is
written to an option file in a private temporary folder (mode 0600), named by
``--defaults-extra-file`` (which must be a client's first argument), and the
folder is removed afterwards.  Without a password in the app's config the
client runs as the app's Unix user, as MariaDB's unix_socket login expects.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from wizard.config.dbconf import Database
from wizard.errors import WizardError
from wizard.host.clientcall import client_output
from wizard.host.privilege import as_db_client

CLIENTS = {"mysql": ("mariadb", "mysql"), "mysqldump": ("mariadb-dump", "mysqldump")}


class MySQLError(WizardError):
    """The database could not be asked (no client, not reachable, refused)."""


def client_path(tool: str) -> str | None:
    """MariaDB's own name first (newer MariaDB drops the mysql* names), then MySQL's."""
    return next((found for name in CLIENTS[tool] if (found := shutil.which(name))), None)


def option_file_value(text: str) -> str:
    if "\n" in text or "\r" in text:
        raise MySQLError("the database password holds a line break, which a MySQL option file cannot carry",
                         "back the database up yourself, then declare the backup")  # fmt: skip
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def connection_options(db: Database) -> list[str]:
    options = []
    if db.host and db.host.startswith("/"):
        options.append(f"--socket={db.host}")  # Django's way of naming a Unix socket
    elif db.host:
        options.append(f"--host={db.host}")
    if db.port:
        options.append(f"--port={db.port}")
    if db.user:
        options.append(f"--user={db.user}")
    return options


def client_env() -> dict[str, str]:
    """The wizard's environment without the operator's own MYSQL_* settings (host, password)."""
    return {key: value for key, value in os.environ.items() if not key.startswith("MYSQL_")}


@contextmanager
def client(db: Database, tool: str) -> Iterator[list[str]]:
    """The argv that starts ``tool`` connected as the app (its options follow; the database name last)."""
    path = client_path(tool)
    if path is None:
        raise MySQLError(
            f"{tool} is not installed on this host", "install the MariaDB or MySQL client (mariadb-client)"
        )
    with tempfile.TemporaryDirectory(prefix="uw-mysql-") as private:
        if not db.password:
            yield as_db_client([path, *connection_options(db)], db.os_user, has_password=False)
            return
        options = Path(private) / "client.cnf"
        options.write_text(f"[client]\npassword={option_file_value(db.password)}\n")
        options.chmod(0o600)
        yield [path, f"--defaults-extra-file={options}", *connection_options(db)]


def run_query(db: Database, statement: str) -> str:
    """One statement's rows, tab-separated, without column names."""
    with client(db, "mysql") as argv:
        query = [*argv, "--connect-timeout=5", "--batch", "--skip-column-names", "-e", statement, db.name]
        return client_output(query, client_env(), 30, MySQLError)
