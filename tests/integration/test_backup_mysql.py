"""Backups of a MySQL / MariaDB database (pretalx before 2024.3), against a real MariaDB server."""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
from pathlib import Path

import pytest

from wizard.backup.dumps import mysql as mysql_dump
from wizard.backup.take import BackupError, take_backup
from wizard.config.dbconf import Database, database_in

from ..helpers.mysql import PASSWORD, start_mariadb, stop_mariadb
from ..helpers.sites import make_site, step_toml

pytestmark = pytest.mark.slow

ROWS = "SELECT (SELECT count(*) FROM talk), (SELECT count(*) FROM `odd``name`), (SELECT sum(length(data)) FROM talk)"


@pytest.fixture(scope="module")
def mariadb():
    db = start_mariadb()
    if db is None:
        pytest.skip("MariaDB is not installed (.ci/run installs Debian's mariadb-server)")
    try:
        db.sql("CREATE TABLE talk (id INT AUTO_INCREMENT PRIMARY KEY, title VARCHAR(200), data BLOB) CHARACTER SET utf8mb4; "
               "INSERT INTO talk (title, data) SELECT CONCAT('Vortrag über Ünïcode 🎤 ', seq), UNHEX(REPEAT('00FF0A27', seq % 50)) "
               "FROM seq_1_to_3000; CREATE TABLE `odd``name` (id INT PRIMARY KEY); INSERT INTO `odd``name` VALUES (1), (2);",
               database="app")  # fmt: skip
        yield db
    finally:
        stop_mariadb(db)


def database(db) -> Database:
    return Database("mysql", db.dbname, db.host, db.port, db.user, db.password)


def config_text(db, **changes) -> str:
    values = {"backend": "mysql", "name": db.dbname, "user": db.user, "password": db.password, "host": db.host,
              "port": str(db.port), **changes}  # fmt: skip
    return "[database]\n" + "".join(f"{key} = {value}\n" for key, value in values.items())


def test_pretalx_config_names_the_mysql_database(mariadb):
    found = database_in([config_text(mariadb)], "ini")
    assert found == database(mariadb)


def test_a_mysql_backup_reads_back_and_restores_with_the_same_rows(tmp_path, mariadb):
    seen = []
    before = set(os.listdir(tempfile.gettempdir()))
    backup = take_backup(database(mariadb), [], tmp_path / "backups", keep=3, progress=lambda *args: seen.append(args))
    dump = Path(backup.path) / "app.sql"
    assert backup.contents[0] == "app.sql (2 tables, complete)"
    assert oct(dump.stat().st_mode & 0o777) == "0o600" and backup.checksum.startswith("sha256:")
    assert seen[-1] == ("database", dump.stat().st_size, seen[0][2]) and seen[0][2] > 0
    assert PASSWORD not in json.dumps(backup.model_dump(mode="json"))
    # the option file is gone
    assert not [name for name in set(os.listdir(tempfile.gettempdir())) - before if name.startswith("uw-mysql-")]
    assert backup.restore[0] == f"mysql --host=127.0.0.1 --port={mariadb.port} --user=app --password app < {dump}"

    mariadb.sql("CREATE DATABASE scratch")
    with open(dump, "rb") as replay:
        done = subprocess.run(["mysql", "--no-defaults", f"--socket={mariadb.socket}", "--user=root", "--default-character-set=utf8mb4", "scratch"],
                              stdin=replay, capture_output=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert mariadb.sql(ROWS, database="scratch") == mariadb.sql(ROWS, database="app")
    assert mariadb.sql(ROWS, database="scratch").startswith("3000\t2\t")
    assert (
        mariadb.sql("CHECKSUM TABLE talk", "scratch").split()[-1]
        == mariadb.sql("CHECKSUM TABLE talk", "app").split()[-1]
    )


def test_a_cut_off_damaged_or_incomplete_mysql_dump_fails_its_check(tmp_path, mariadb):
    backup = take_backup(database(mariadb), [], tmp_path / "backups", keep=3)
    whole = (Path(backup.path) / "app.sql").read_bytes()
    tables = {"talk", "odd`name"}
    assert mysql_dump.verify(Path(backup.path) / "app.sql", tables) == 2
    cut = tmp_path / "cut.sql"
    cut.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(BackupError, match="cut off"):
        mysql_dump.verify(cut, tables)
    damaged = tmp_path / "damaged.sql"
    damaged.write_bytes(whole[:1000] + os.urandom(64) + b"\xff" + whole[1065:])
    with pytest.raises(BackupError, match="damaged"):
        mysql_dump.verify(damaged, tables)
    with pytest.raises(BackupError, match="lacks 1 table"):
        mysql_dump.verify(Path(backup.path) / "app.sql", tables | {"sessions"})


def test_headless_backs_up_mysql_without_the_password_on_any_command_line(site_root, mariadb):
    # A wrapper in front of the real client records the argv it was given.
    bin_dir = site_root / "bin"
    bin_dir.mkdir(parents=True)
    argv_log = site_root / "argv.log"
    for tool in ("mariadb-dump", "mariadb"):
        real = subprocess.run(["sh", "-c", f"command -v {tool} || command -v {tool.replace('mariadb', 'mysql')}"],
                              capture_output=True, text=True).stdout.strip()  # fmt: skip
        wrapper = bin_dir / tool
        wrapper.write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> {argv_log}\nexec {real} "$@"\n')
        wrapper.chmod(0o755)
    site = make_site(
        site_root, step_toml("one", "print('upgraded')"), app_config=config_text(mariadb), config_format="ini"
    )
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    result = site.cli("run", "--yes", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "backed up: app.sql (2 tables, complete)" in result.stdout and "restore with: mysql " in result.stdout
    assert re.search(r"  database: [\d.]+ \S+ of about [\d.]+ \S+\n", result.stdout)
    recorded = argv_log.read_text()
    assert "--defaults-extra-file=" in recorded and "--single-transaction" in recorded
    assert PASSWORD not in recorded and PASSWORD not in result.stdout + result.stderr
    for path in site.state.rglob("*"):
        if path.is_file() and "backups" not in path.parts:
            assert PASSWORD not in path.read_text(errors="ignore"), path


def test_a_refused_mysql_login_keeps_the_gate_closed(site_root, mariadb):
    site = make_site(site_root, step_toml("one", f"open({str(site_root / 'ran')!r}, 'w')"),
                     app_config=config_text(mariadb, password="wrong-one"), config_format="ini")  # fmt: skip
    result = site.cli("run", "--yes")
    assert result.returncode == 2
    assert "cannot measure the database" in result.stderr and "Access denied" in result.stderr
    assert not (site_root / "ran").exists() and site.session()["backup"] is None


def test_detection_asks_the_server_its_version(mariadb):
    from wizard.host.hostfacts import server_facts

    found, unknowns = server_facts(database(mariadb))
    assert found["mysql_flavour"] == "mariadb" and found["mysql_version"].startswith("10.") and unknowns == []
    refused = Database("mysql", mariadb.dbname, mariadb.host, mariadb.port, mariadb.user, "wrong-one")
    found, unknowns = server_facts(refused)
    assert found == {} and "the MySQL/MariaDB server's version could not be read" in unknowns[0]
    assert "wrong-one" not in unknowns[0]
