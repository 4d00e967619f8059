"""A private MariaDB server for the tests: mariadb-install-db + mariadbd on a loopback port, torn down afterwards.

Runs as the `mysql` user when the tests run as root, as the current user
otherwise.  Debian's `mariadb-server` package provides the binaries; .ci/run
installs it when it is missing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .pg import free_port

PASSWORD = 'my-Wiz4rd "s3cret" #1\\'  # quotes, a hash and a backslash: the option file must carry them all


@dataclass
class MariaDB:
    root: Path
    port: int
    process: subprocess.Popen
    user: str = "app"
    password: str = PASSWORD
    dbname: str = "app"
    host: str = "127.0.0.1"

    @property
    def socket(self) -> Path:
        return self.root / "sock" / "mysqld.sock"

    def sql(self, statement: str, database: str | None = None) -> str:
        """As the server's root, over its socket (the tests' own questions, never the wizard's)."""
        argv = ["mysql", "--no-defaults", f"--socket={self.socket}", "--user=root", "--default-character-set=utf8mb4", "--batch",
                "--skip-column-names",
                "-e", statement, *([database] if database else [])]  # fmt: skip
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        if done.returncode:
            raise RuntimeError(done.stderr)
        return done.stdout.strip()


def quoted(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "''") + "'"


def start_mariadb() -> MariaDB | None:
    install, server = shutil.which("mariadb-install-db"), shutil.which("mariadbd") or "/usr/sbin/mariadbd"
    if install is None or not Path(server).exists() or shutil.which("mysql") is None:
        return None
    root = Path(tempfile.mkdtemp(prefix="uw-mariadb-"))
    (root / "sock").mkdir()
    as_root = os.geteuid() == 0
    user = ["--user=mysql"] if as_root else []
    if as_root:
        shutil.chown(root, "mysql")
        shutil.chown(root / "sock", "mysql")
    subprocess.run([install, "--no-defaults", f"--datadir={root / 'data'}", *user, "--auth-root-authentication-method=normal",
                    "--skip-test-db"], check=True, capture_output=True, timeout=120)  # fmt: skip
    port = free_port()
    log = open(root / "server.log", "wb")
    process = subprocess.Popen([server, "--no-defaults", f"--datadir={root / 'data'}", f"--socket={root / 'sock' / 'mysqld.sock'}",
                                f"--port={port}", "--bind-address=127.0.0.1", f"--pid-file={root / 'mysqld.pid'}", *user,
                                "--skip-log-bin", "--innodb-buffer-pool-size=32M"], stdout=log, stderr=log)  # fmt: skip
    db = MariaDB(root=root, port=port, process=process)
    deadline = time.monotonic() + 60
    while True:
        try:
            db.sql("SELECT 1")
            break
        except RuntimeError:
            if process.poll() is not None or time.monotonic() > deadline:
                stop_mariadb(db)
                raise RuntimeError(
                    f"MariaDB did not start: {(root / 'server.log').read_text(errors='replace')[-2000:]}"
                ) from None
            time.sleep(0.2)
    try:
        db.sql(f"CREATE USER '{db.user}'@'%' IDENTIFIED BY {quoted(db.password)}; CREATE DATABASE {db.dbname}; "
               f"GRANT ALL ON {db.dbname}.* TO '{db.user}'@'%'")  # fmt: skip
    except BaseException:
        stop_mariadb(db)
        raise
    return db


def stop_mariadb(db: MariaDB) -> None:
    db.process.terminate()
    try:
        db.process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        db.process.kill()
    shutil.rmtree(db.root, ignore_errors=True)
