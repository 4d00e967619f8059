"""Backups taken by the wizard: real PostgreSQL and SQLite, read back, restorable, and gated."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import sqlite3
import subprocess
from pathlib import Path

import pytest

from steps import load_recipe
from wizard.appfiles import app_files
from wizard.backup import BackupError, rotate, take_backup
from wizard.dumps.postgres import verify as verify_postgres_dump
from wizard.dbconf import Database, database_of
from wizard.instance import Instance
from wizard.plan import build_plan
from wizard.secrets import secrets_for

from .conftest import kill_tree_leftovers, make_site, step_toml, wait_for
from .pg import PASSWORD, start_postgres, stop_postgres

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def postgres():
    pg = start_postgres()
    if pg is None:
        pytest.skip("PostgreSQL is not installed (.ci/run installs Debian's postgresql)")
    try:
        pg.sql("CREATE TABLE events (id serial PRIMARY KEY, title text); "
               "INSERT INTO events (title) SELECT 'event ' || n FROM generate_series(1, 5000) n; "
               "CREATE TABLE labels (id serial PRIMARY KEY, title text); INSERT INTO labels (title) VALUES ('a'), ('b');")  # fmt: skip
        yield pg
    finally:
        stop_postgres(pg)


def database(pg) -> Database:
    return Database("postgresql", pg.dbname, pg.host, pg.port, pg.user, pg.password)


def test_a_postgres_backup_reads_back_and_restores_with_the_same_rows(tmp_path, postgres):
    config = tmp_path / "indico.conf"
    config.write_text(f"SQLALCHEMY_DATABASE_URI = {postgres.url!r}\n")
    seen = []
    backup = take_backup(database(postgres), [config], tmp_path / "backups", keep=3, progress=lambda *args: seen.append(args))
    folder = Path(backup.path)
    dump = folder / "app.dump"
    assert backup.kind == "taken" and backup.checksum.startswith("sha256:") and dump.is_file()
    assert (folder / "config" / "indico.conf").read_text() == config.read_text()
    assert oct(dump.stat().st_mode & 0o777) == "0o600" and oct(folder.stat().st_mode & 0o777) == "0o700"
    assert verify_postgres_dump(dump) > 2
    assert seen[-1] == ("database", dump.stat().st_size, seen[0][2]) and seen[0][2] > 0  # the dump's growth, against the size
    assert backup.restore[0] == (f"pg_restore --clean --if-exists --no-owner --host=127.0.0.1 --port={postgres.port} "
                                 f"--username=app --dbname app {dump}")  # fmt: skip
    assert PASSWORD not in json.dumps(backup.model_dump(mode="json"))

    postgres.sql("CREATE DATABASE scratch OWNER app", superuser=True)
    restored = subprocess.run(["pg_restore", "--no-owner", "--dbname", "scratch", str(dump)],
                              env={**postgres.env(), "PGDATABASE": "scratch"}, capture_output=True, text=True)  # fmt: skip
    assert restored.returncode == 0, restored.stderr
    scratch = {**postgres.env(), "PGDATABASE": "scratch"}
    count = subprocess.run(["psql", "-X", "-At", "-c", "SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM labels)"],
                           env=scratch, capture_output=True, text=True).stdout.strip()  # fmt: skip
    assert count == postgres.sql("SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM labels)") == "5000|2"


def test_a_truncated_or_corrupted_dump_fails_its_check(tmp_path, postgres):
    backup = take_backup(database(postgres), [], tmp_path / "backups", keep=3)
    dump = Path(backup.path) / "app.dump"
    truncated = tmp_path / "truncated.dump"
    truncated.write_bytes(dump.read_bytes()[: dump.stat().st_size // 2])
    with pytest.raises(BackupError, match="cannot be read back"):
        verify_postgres_dump(truncated)
    corrupt = tmp_path / "corrupt.dump"
    corrupt.write_bytes(b"PGDMP" + os.urandom(2000))
    with pytest.raises(BackupError, match="cannot be read back"):
        verify_postgres_dump(corrupt)


def test_a_failing_dump_keeps_the_gate_closed_and_names_the_cause(site_root, postgres):
    wrong = postgres.url.replace("/app", "/no_such_database")
    site = make_site(site_root, step_toml("one", f"open({str(site_root / 'ran')!r}, 'w')"), app_config=f"SQLALCHEMY_DATABASE_URI = {wrong!r}\n")
    result = site.cli("run", "--yes")
    assert result.returncode == 2
    assert "cannot measure the database" in result.stderr or "pg_dump failed" in result.stderr
    assert not (site_root / "ran").exists() and site.session()["backup"] is None
    assert PASSWORD not in result.stdout + result.stderr


def test_headless_takes_the_backup_itself_and_the_session_says_how_to_restore(site_root, postgres):
    site = make_site(site_root, step_toml("one", "print('upgraded')"), app_config=f"SQLALCHEMY_DATABASE_URI = {postgres.url!r}\n")
    result = site.cli("run", "--yes")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "backed up: app.dump" in result.stdout and "restore with: pg_restore" in result.stdout
    assert re.search(r"  database: [\d.]+ \S+ of about [\d.]+ \S+\n", result.stdout)  # progress, for a log too
    assert re.search(r"backup into \S+/backups: about [\d.]+ \S+ needed, [\d.]+ \S+ free\n", result.stdout)
    assert "  database: postgresql database 'app' on 127.0.0.1:" in result.stdout  # measured first, before "taking"
    backup = site.session()["backup"]
    assert backup["kind"] == "taken" and Path(backup["path"]).parent == site.state / site.name / "backups"
    backups = Path(backup["path"])
    for path in site.state.rglob("*"):
        if path.is_file() and backups not in path.parents:  # logs, status files, the session
            assert PASSWORD not in path.read_text(errors="ignore"), path
        elif path.is_file():  # the backup holds the config as it is, password included: it must stay private
            assert oct(path.stat().st_mode & 0o777) == "0o600", path


def test_sqlite_backup_is_consistent_and_complete(tmp_path):
    db = tmp_path / "app.sqlite3"
    with sqlite3.connect(db) as conn:
        conn.executescript("CREATE TABLE talks (id INTEGER PRIMARY KEY, title TEXT);")
        conn.executemany("INSERT INTO talks (title) VALUES (?)", [(f"talk {n}",) for n in range(1000)])
    writer = sqlite3.connect(db, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # the app, half-way through a write while the backup runs
    writer.executemany("INSERT INTO talks (title) VALUES (?)", [(f"late {n}",) for n in range(500)])
    seen = []
    backup = take_backup(Database("sqlite", str(db)), [], tmp_path / "backups", keep=3, progress=lambda *args: seen.append(args))
    writer.execute("COMMIT")
    writer.close()
    copy = Path(backup.path) / "app.sqlite3"
    with sqlite3.connect(copy) as conn:
        assert conn.execute("SELECT count(*) FROM talks").fetchone()[0] == 1000  # committed rows only
    assert seen and seen[-1][0] == "database" and seen[-1][1] == seen[-1][2] == copy.stat().st_size
    assert backup.restore == [f"cp -- {copy} {db}"]


def test_old_wizard_backups_are_rotated_and_nothing_else_is_touched(tmp_path):
    root = tmp_path / "backups"
    for name in ("wizard-20261101-000000", "wizard-20261102-000000", "wizard-20261103-000000", "my-own-backup",
                 "wizard-20261104-000000"):  # fmt: skip
        (root / name).mkdir(parents=True)
    (root / "wizard-20261104-000000" / "UNFINISHED").touch()  # its wizard was killed while writing it
    gone = rotate(root, keep=2)
    assert [p.name for p in gone] == ["wizard-20261101-000000"]  # the unfinished one does not push a good one out
    assert sorted(p.name for p in root.iterdir()) == ["my-own-backup", "wizard-20261102-000000", "wizard-20261103-000000",
                                                      "wizard-20261104-000000"]  # fmt: skip


def test_a_wizard_killed_while_dumping_leaves_no_backup_that_looks_finished(site_root, postgres):
    # A pg_dump that writes a little and then hangs, so the wizard can be killed in the middle of it.
    bin_dir = site_root / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "pg_dump").write_text("#!/bin/sh\nprintf 'PGDMP-partial'\nexec sleep 60\n")
    (bin_dir / "pg_dump").chmod(0o755)
    site = make_site(site_root, step_toml("one", f"open({str(site_root / 'ran')!r}, 'w')"),
                     app_config=f"SQLALCHEMY_DATABASE_URI = {postgres.url!r}\n")  # fmt: skip
    backups = site.state / site.name / "backups"
    wizard = site.spawn("run", "--yes", env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"})
    try:
        wait_for(lambda: list(backups.glob("wizard-*/app.dump")), timeout=30, what="the dump to begin")
        os.killpg(wizard.pid, signal.SIGKILL)  # the SSH session and the wizard die together
        wizard.wait(timeout=10)
    finally:
        kill_tree_leftovers(site_root)
    [killed] = backups.glob("wizard-*")
    assert (killed / "UNFINISHED").is_file() and site.session()["backup"] is None and not (site_root / "ran").exists()
    result = site.cli("run", "--yes")  # again, with the real pg_dump
    assert result.returncode == 0, result.stdout + result.stderr
    taken = Path(site.session()["backup"]["path"])
    assert taken != killed and not (taken / "UNFINISHED").exists() and (killed / "UNFINISHED").is_file()
    assert rotate(backups, keep=1) == []  # the killed one is neither counted nor deleted


def test_not_enough_space_fails_before_writing_anything(tmp_path, postgres):
    small = tmp_path / "small"
    small.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("needs root to mount a small tmpfs")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(small)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        with pytest.raises(BackupError, match="not enough free space") as error:
            take_backup(database(postgres), [], small / "backups", keep=3)
        assert "needed" in error.value.message and "free" in error.value.message
        assert list(small.iterdir()) == []  # nothing written
    finally:
        subprocess.run(["umount", str(small)], capture_output=True)


def test_pretalx_media_and_secret_are_backed_up_and_restore(tmp_path):
    data = tmp_path / "data"
    (data / "media" / "democon").mkdir(parents=True)
    (data / "media" / "democon" / "slides.pdf").write_bytes(b"%PDF-1.4 talk slides")
    (data / ".secret").write_text("s3cr3t-key-material")
    db = data / "db.sqlite3"
    sqlite3.connect(db).close()
    cfg = tmp_path / "pretalx.cfg"
    cfg.write_text(f"[filesystem]\ndata = {data}\n[database]\nbackend = sqlite3\nname = {db}\n")
    instance = Instance(name="talks", recipe="pretalx", venv=tmp_path / "venv", config=cfg)
    recipe = load_recipe("pretalx")
    backup = take_backup(database_of(recipe, instance), [cfg], tmp_path / "backups", keep=3, files=app_files(recipe, instance))
    assert any(line.startswith("media (") for line in backup.contents) and any(line.startswith(".secret (") for line in backup.contents)
    # Restore into an empty place, by the recorded commands with the target moved there.
    restored = tmp_path / "restored"
    restored.mkdir()
    tar = next(c for c in backup.restore if c.startswith("tar "))
    subprocess.run(shlex.split(tar)[:-1] + [str(restored)], check=True)
    assert (restored / "media" / "democon" / "slides.pdf").read_bytes() == b"%PDF-1.4 talk slides"
    assert (Path(backup.path) / "files" / ".secret").read_text() == "s3cr3t-key-material"


def test_pretalx_secret_in_the_config_means_no_secret_file(tmp_path):
    data = tmp_path / "data"
    (data / "media").mkdir(parents=True)
    (data / ".secret").write_text("unused")
    cfg = tmp_path / "pretalx.cfg"
    cfg.write_text(f"[filesystem]\ndata = {data}\n[django]\nsecret = in-the-config\n")
    labels = [f.label for f in app_files(load_recipe("pretalx"), Instance(name="t", recipe="pretalx", venv=tmp_path, config=cfg))]
    assert labels == ["media"]


def test_pretalx_without_a_database_name_uses_sqlite_in_its_data_folder(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    sqlite3.connect(data / "db.sqlite3").close()
    for text in (f"[filesystem]\ndata = {data}\n", f"[filesystem]\ndata = {data}\n[database]\nbackend = sqlite3\n"):
        cfg = tmp_path / "pretalx.cfg"
        cfg.write_text(text)
        db = database_of(load_recipe("pretalx"), Instance(name="t", recipe="pretalx", venv=tmp_path, config=cfg))
        assert db == Database("sqlite", str(data / "db.sqlite3"))
    cfg.write_text("[site]\nurl = https://talks.example.org\n")  # neither: pretalx's default lies inside the venv
    assert database_of(load_recipe("pretalx"), Instance(name="t", recipe="pretalx", venv=tmp_path, config=cfg)) is None


def test_pretalx_settings_from_its_environment_win_over_its_config(tmp_path):
    data = tmp_path / "data"
    (data / "media").mkdir(parents=True)
    cfg = tmp_path / "pretalx.cfg"
    cfg.write_text("[filesystem]\ndata = /nowhere\n[database]\nbackend = sqlite3\nname = /nowhere/db.sqlite3\n")
    env = {"PRETALX_DATA_DIR": str(data), "PRETALX_DB_TYPE": "mysql", "PRETALX_DB_NAME": "talks", "PRETALX_DB_USER": "pretalx",
           "PRETALX_DB_PASS": "env-s3cret", "PRETALX_DB_HOST": "db.internal", "PRETALX_DB_PORT": "3307"}  # fmt: skip
    instance = Instance(name="talks", recipe="pretalx", venv=tmp_path, config=cfg, env=env)
    recipe = load_recipe("pretalx")
    assert database_of(recipe, instance) == Database("mysql", "talks", "db.internal", 3307, "pretalx", "env-s3cret")
    assert [(f.label, f.path) for f in app_files(recipe, instance)] == [("media", data / "media")]  # no .secret there yet
    assert "env-s3cret" in secrets_for(recipe, instance)  # masked in every log


def test_indico_archive_is_included_only_when_asked_and_its_size_is_said(tmp_path):
    archive = tmp_path / "archive"
    archive.mkdir()
    (archive / "file.bin").write_bytes(b"x" * 300_000)
    db = tmp_path / "indico.sqlite3"
    sqlite3.connect(db).close()
    conf = tmp_path / "indico.conf"
    conf.write_text(f"SQLALCHEMY_DATABASE_URI = 'sqlite:///{db}'\nSTORAGE_BACKENDS = {{'default': 'fs:{archive}'}}\n")
    recipe = load_recipe("indico")
    for include in (False, True):
        instance = Instance(name="i", recipe="indico", venv=tmp_path, config=conf, backup_archive=include)
        backup = take_backup(database_of(recipe, instance), [conf], tmp_path / f"b{include}", keep=3,
                             files=app_files(recipe, instance))  # fmt: skip
        line = next(c for c in backup.contents if "archive-default" in c)
        assert "293.0 KiB" in line
        assert line.startswith("NOT included") is not include
        assert (Path(backup.path) / "files" / "archive-default.tar.gz").exists() is include


def test_a_backup_that_fails_half_way_is_not_left_looking_like_one(tmp_path, postgres):
    broken = Database("postgresql", "no_such_database", postgres.host, postgres.port, postgres.user, postgres.password)
    root = tmp_path / "backups"
    root.mkdir()
    with pytest.raises(BackupError):
        take_backup(broken, [], root, keep=3)
    assert not list(root.glob("wizard-*"))  # measuring failed before anything was written
    db = tmp_path / "app.sqlite3"
    db.write_bytes(b"not a database at all" * 100)
    with pytest.raises(BackupError):
        take_backup(Database("sqlite", str(db)), [], root, keep=3)
    assert not list(root.glob("wizard-*")) and len(list(root.glob("incomplete-wizard-*"))) == 1


def test_preflight_warns_before_the_upgrade_when_the_backup_would_not_fit(tmp_path, monkeypatch):
    from wizard import backup as backup_module
    from wizard.preflight import disk_checks

    from .test_notes import found

    db = tmp_path / "db.sqlite3"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE t (x TEXT)")
        conn.executemany("INSERT INTO t VALUES (?)", [("y" * 1000,) for _ in range(3000)])
    data = tmp_path / "data"
    (data / "media").mkdir(parents=True)
    (data / "media" / "upload.bin").write_bytes(b"z" * 5_000_000)
    cfg = tmp_path / "pretalx.cfg"
    cfg.write_text(f"[filesystem]\ndata = {data}\n[database]\nname = {db}\n")
    instance = Instance(name="talks", recipe="pretalx", venv=tmp_path, config=cfg)
    plan = build_plan(load_recipe("pretalx"), instance, found("2024.3.1", "2024.3.1", host={"db": Database("sqlite", str(db))}), {})
    root = tmp_path / "backups"
    assert not [n for n in disk_checks(instance, plan, root) if n.id == "check-disk-backup"]  # this disk has room
    monkeypatch.setattr(backup_module, "free_space", lambda _: 70 * 1024**2)  # room for the database, not for media too
    [note] = [n for n in disk_checks(instance, plan, root) if n.id == "check-disk-backup"]
    assert note.severity == "warning" and "70.0 MiB are free" in note.text and "database, config and the app's files" in note.text
