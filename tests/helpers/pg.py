"""A private PostgreSQL cluster for the tests: initdb + pg_ctl on a loopback port, torn down afterwards.

It runs as the `postgres` user when the tests run as root (initdb refuses root),
as the current user otherwise.  Debian's `postgresql` package provides the
binaries; .ci/run installs it when it is missing.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

PASSWORD = "pg-Wiz4rd-s3cret"  # the tests check it never shows up anywhere


def find_bindir() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), reverse=True)
    return found[0].parent if found else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Postgres:
    bindir: Path
    root: Path
    port: int
    user: str = "app"
    password: str = PASSWORD
    dbname: str = "app"
    host: str = "127.0.0.1"

    @property
    def url(self) -> str:
        return f"postgresql://{self.user}:{self.password}@{self.host}:{self.port}/{self.dbname}"

    def env(self) -> dict[str, str]:
        """For psql sessions the tests open themselves (the password through the environment)."""
        return {**os.environ, "PGHOST": self.host, "PGPORT": str(self.port), "PGUSER": self.user,
                "PGDATABASE": self.dbname, "PGPASSWORD": self.password}  # fmt: skip

    def sql(self, statement: str, superuser: bool = False) -> str:
        env = self.env()
        if superuser:
            env.update(PGUSER="postgres", PGDATABASE="postgres")
            env.pop("PGPASSWORD")
            env["PGHOST"] = str(self.root / "sock")
        done = subprocess.run(["psql", "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", statement],
                              env=env, capture_output=True, text=True, timeout=30)  # fmt: skip
        if done.returncode:
            raise RuntimeError(done.stderr)
        return done.stdout.strip()


def _as_owner(argv: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


def start_postgres() -> Postgres | None:
    bindir = find_bindir()
    if bindir is None or shutil.which("psql") is None:
        return None
    root = Path(tempfile.mkdtemp(prefix="uw-pg-"))
    (root / "sock").mkdir()
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        shutil.chown(root / "sock", "postgres")
    pg = Postgres(bindir=bindir, root=root, port=free_port())
    subprocess.run(_as_owner([str(bindir / "initdb"), "-D", str(root / "data"), "-U", "postgres", "--auth-local=trust",
                              "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8"]),
                   check=True, capture_output=True, timeout=120)  # fmt: skip
    options = f"-p {pg.port} -k {root / 'sock'} -c listen_addresses=127.0.0.1"
    subprocess.run(_as_owner([str(bindir / "pg_ctl"), "-D", str(root / "data"), "-l", str(root / "pg.log"),
                              "-o", options, "-w", "start"]), check=True, capture_output=True, timeout=60)  # fmt: skip
    pg.sql(f"CREATE ROLE {pg.user} LOGIN PASSWORD '{pg.password}'", superuser=True)
    pg.sql(f"CREATE DATABASE {pg.dbname} OWNER {pg.user}", superuser=True)
    pg.sql(f"GRANT pg_signal_backend TO {pg.user}", superuser=True)
    return pg


def stop_postgres(pg: Postgres) -> None:
    subprocess.run(_as_owner([str(pg.bindir / "pg_ctl"), "-D", str(pg.root / "data"), "-m", "immediate", "-w", "stop"]),
                   capture_output=True, timeout=60)  # fmt: skip
    shutil.rmtree(pg.root, ignore_errors=True)
