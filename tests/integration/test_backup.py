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
from datetime import UTC, datetime
from pathlib import Path

import pytest

from steps import load_recipe
from wizard.backup.dumps.postgres import verify as verify_postgres_dump
from wizard.backup.take import BackupError, rotate, take_backup, unfinished_backups, unfinished_text
from wizard.config.appfiles import app_files
from wizard.config.context import InstanceContext
from wizard.config.dbconf import Database, database_of
from wizard.config.instance import Instance
from wizard.config.secrets import secrets_for
from wizard.planning.plan import build_plan
from wizard.views.sizes import human_bytes, tree_size

from ..helpers.pg import PASSWORD, start_postgres, stop_postgres
from ..helpers.processes import kill_tree_leftovers, wait_for
from ..helpers.sites import make_site, step_toml

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
    backup = take_backup(
        database(postgres), [config], tmp_path / "backups", keep=3, progress=lambda *args: seen.append(args)
    )
    folder = Path(backup.path)
    dump = folder / "app.dump"
    assert backup.kind == "taken" and backup.checksum.startswith("sha256:") and dump.is_file()
    assert (folder / "config" / "indico.conf").read_text() == config.read_text()
    assert oct(dump.stat().st_mode & 0o777) == "0o600" and oct(folder.stat().st_mode & 0o777) == "0o700"
    assert verify_postgres_dump(dump) > 2
    # the dump's growth, against the size
    assert seen[-1] == ("database", dump.stat().st_size, seen[0][2]) and seen[0][2] > 0
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
    site = make_site(
        site_root,
        step_toml("one", f"open({str(site_root / 'ran')!r}, 'w')"),
        app_config=f"SQLALCHEMY_DATABASE_URI = {wrong!r}\n",
    )
    result = site.cli("run", "--yes")
    assert result.returncode == 2
    assert "cannot measure the database" in result.stderr or "pg_dump failed" in result.stderr
    assert not (site_root / "ran").exists() and site.session()["backup"] is None
    assert PASSWORD not in result.stdout + result.stderr


def test_headless_takes_the_backup_itself_and_the_session_says_how_to_restore(site_root, postgres):
    site = make_site(
        site_root, step_toml("one", "print('upgraded')"), app_config=f"SQLALCHEMY_DATABASE_URI = {postgres.url!r}\n"
    )
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
    backup = take_backup(
        Database("sqlite", str(db)), [], tmp_path / "backups", keep=3, progress=lambda *args: seen.append(args)
    )
    writer.execute("COMMIT")
    writer.close()
    copy = Path(backup.path) / "app.sqlite3"
    with sqlite3.connect(copy) as conn:
        assert conn.execute("SELECT count(*) FROM talks").fetchone()[0] == 1000  # committed rows only
    assert seen and seen[-1][0] == "database" and seen[-1][1] == seen[-1][2] == copy.stat().st_size
    assert backup.restore == [f"cp -- {copy} {db}"]


def small_sqlite(folder: Path) -> Database:
    folder.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(folder / "app.sqlite3") as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS t (x TEXT)")
    return Database("sqlite", str(folder / "app.sqlite3"))


def a_record(where: Path, instance: str, taken_at: str, sequence: int = 1, **changes) -> Path:
    """A folder as the wizard leaves a finished backup: its record, written here by hand."""
    where.mkdir(parents=True)
    (where / "app.sqlite3").write_bytes(b"a backup")
    record = {
        "format": 1,
        "instance": instance,
        "folder": where.name,
        "taken_at": taken_at,
        "sequence": sequence,
        **changes,
    }
    (where / "wizard-backup.json").write_text(json.dumps(record))
    return where


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_old_style_folders_and_the_operator_s_are_never_rotated_only_recorded_ones_are(tmp_path):
    root = tmp_path / "backups"
    for name in ("wizard-20261101-000000", "wizard-20261102-000000", "my-own-backup"):  # before records: left alone
        (root / name).mkdir(parents=True)
    for day in (1, 2, 3):
        a_record(root / f"wizard-main-2026110{day}-000000-abcd", "main", f"2026-11-0{day}T00:00:00+00:00", day)
    a_record(root / "wizard-main-20261104-000000-abcd", "main", "2026-11-04T00:00:00+00:00", 4)
    (root / "wizard-main-20261104-000000-abcd" / "UNFINISHED").touch()  # its wizard was killed before the marker went
    assert rotate(root, keep=2) == []  # no instance said: nothing is rotated
    gone = rotate(root, keep=2, instance="main")
    # the unfinished one does not push a good one out
    assert [p.name for p in gone] == ["wizard-main-20261101-000000-abcd"]
    assert sorted(p.name for p in root.iterdir()) == ["my-own-backup", "wizard-20261101-000000", "wizard-20261102-000000",
                                                      "wizard-main-20261102-000000-abcd", "wizard-main-20261103-000000-abcd",
                                                      "wizard-main-20261104-000000-abcd"]  # fmt: skip


def test_two_instances_sharing_a_backup_dir_each_keep_their_own(tmp_path):
    root = tmp_path / "shared"
    taken = {"main": [], "conference": []}
    for _ in range(3):
        for name in taken:
            backup = take_backup(small_sqlite(tmp_path / name), [], root, keep=1, instance=name)
            taken[name].append(Path(backup.path))
            assert Path(backup.path).is_dir() and Path(backup.path).name.startswith(f"wizard-{name}-")
    assert sorted(root.iterdir()) == sorted([taken["main"][-1], taken["conference"][-1]])  # each its own last one
    record = json.loads((taken["main"][-1] / "wizard-backup.json").read_text())
    assert record["instance"] == "main" and record["folder"] == taken["main"][-1].name and record["sequence"] == 3
    assert datetime.fromisoformat(record["taken_at"]).utcoffset().total_seconds() == 0


def test_a_clock_set_back_keeps_the_new_backups_and_rotates_in_the_order_they_were_taken(tmp_path, monkeypatch):
    from wizard.backup import take as backup_module

    clock = iter([])
    monkeypatch.setattr(backup_module, "now", lambda: next(clock))
    db, root = small_sqlite(tmp_path / "db"), tmp_path / "backups"

    def take(moment: str, keep: int = 2) -> Path:
        nonlocal clock
        clock = iter([at(moment)] * 2)  # the folder's name and its record; then the record's finishing time
        return Path(take_backup(db, [], root, keep=keep, instance="main").path)

    nov10, nov11, nov12 = take("2026-11-10 12:00:00"), take("2026-11-11 12:00:00"), take("2026-11-12 12:00:00")
    assert sorted(root.iterdir()) == [nov11, nov12] and not nov10.exists()
    set_back = take("2026-11-01 08:00:00")  # named and recorded as the oldest of all, and yet just taken: kept
    assert sorted(root.iterdir()) == [set_back, nov12]  # nov11 went: the older of the two taken before
    again = take("2026-11-01 08:00:05")
    assert sorted(root.iterdir()) == [set_back, again]  # the two taken last, whatever the clock said
    same_second = take("2026-11-01 08:00:05", keep=3)
    fourth = take("2026-11-01 08:00:05", keep=3)  # three recorded at the same second: their sequence decides
    assert sorted(root.iterdir()) == sorted([again, same_second, fourth]) and not set_back.exists()


def test_a_backup_dir_that_is_a_dangling_symlink_is_a_clear_error(tmp_path):
    root = tmp_path / "backups"
    root.symlink_to(tmp_path / "nowhere")
    with pytest.raises(BackupError, match="cannot be used"):
        take_backup(small_sqlite(tmp_path / "db"), [], root, keep=1, instance="main")  # it looped forever


def test_a_fifo_in_place_of_a_record_or_marker_is_not_read(tmp_path):
    root = tmp_path / "backups"
    for name in ("wizard-main-20200101-000000-0000", "wizard-main-20200102-000000-0000"):
        (root / name).mkdir(parents=True)
    os.mkfifo(root / "wizard-main-20200101-000000-0000" / "wizard-backup.json")
    os.mkfifo(root / "wizard-main-20200102-000000-0000" / "UNFINISHED")
    assert rotate(root, keep=0, instance="main") == []  # it blocked on the FIFO
    assert unfinished_backups(root, "main") == []  # a FIFO is no marker of ours


def test_a_rotation_that_cannot_delete_keeps_the_new_backup_good(tmp_path, monkeypatch):
    db, root = small_sqlite(tmp_path / "db"), tmp_path / "backups"
    first = Path(take_backup(db, [], root, keep=1, instance="main").path)

    def busy(path, *args, **kwargs):
        raise OSError(16, "Device or resource busy", str(path))

    monkeypatch.setattr("wizard.backup.take.shutil.rmtree", busy)
    second = take_backup(db, [], root, keep=1, instance="main")
    assert Path(second.path).is_dir() and first.is_dir()  # the old one stays; the new one is the gate's


def test_a_folder_named_like_ours_without_our_record_survives(tmp_path):
    root = tmp_path / "backups"
    no_record = root / "wizard-main-20200101-000000-0000"
    no_record.mkdir(parents=True)
    (no_record / "app.sqlite3").write_bytes(b"someone's")
    foreign = a_record(root / "wizard-main-20200102-000000-0000", "conference", "2020-01-02T00:00:00+00:00")
    copied = a_record(
        root / "wizard-main-copy", "main", "2020-01-03T00:00:00+00:00", folder="wizard-main-20200103-000000-0000"
    )
    linked = root / "wizard-main-20200104-000000-0000"
    linked.symlink_to(a_record(tmp_path / "elsewhere" / linked.name, "main", "2020-01-04T00:00:00+00:00"))
    db = small_sqlite(tmp_path / "db")
    first = Path(take_backup(db, [], root, keep=1, instance="main").path)
    second = Path(take_backup(db, [], root, keep=1, instance="main").path)
    assert sorted(root.iterdir()) == sorted([no_record, foreign, copied, linked, second]) and not first.exists()
    assert (linked / "wizard-backup.json").is_file() and (no_record / "app.sqlite3").is_file()


def test_a_record_that_cannot_be_read_is_left_alone(tmp_path):
    root = tmp_path / "backups"

    def record(folder: str, taken_at: str) -> str:
        return json.dumps({"format": 1, "instance": "main", "folder": folder, "taken_at": taken_at, "sequence": 1})

    broken = {
        "corrupt": '{"format": 1, "instance": "main", "taken_at": ',
        "not-an-object": "[1, 2]",
        "no-time-zone": record("wizard-main-no-time-zone", "2020-01-01T00:00:00"),
        "bad-time": record("wizard-main-bad-time", "yesterday"),
        "not-utf8": b"\xff\xfe{}",
    }
    for name, text in broken.items():
        folder = root / f"wizard-main-{name}"
        folder.mkdir(parents=True)
        (folder / "wizard-backup.json").write_bytes(text if isinstance(text, bytes) else text.encode())
    db = small_sqlite(tmp_path / "db")
    for _ in range(2):
        taken = Path(take_backup(db, [], root, keep=1, instance="main").path)
    assert sorted(p.name for p in root.iterdir()) == sorted([*(f"wizard-main-{name}" for name in broken), taken.name])


def test_unfinished_and_incomplete_backups_are_listed_with_their_sizes_and_kept(tmp_path):
    root = tmp_path / "backups"
    killed = root / "wizard-main-20261101-000000-abcd"  # as a wizard killed while dumping leaves it
    killed.mkdir(parents=True)
    (killed / "UNFINISHED").write_text(unfinished_text("main"))
    (killed / "app.dump").write_bytes(b"x" * 3000)
    older = root / "wizard-20261001-000000"  # an older wizard's: its marker names no instance
    older.mkdir()
    (older / "UNFINISHED").write_text("The wizard was writing this backup and did not finish it\n")
    theirs = root / "wizard-conference-20261101-000000-abcd"
    theirs.mkdir()
    (theirs / "UNFINISHED").write_text(unfinished_text("conference"))
    bad = tmp_path / "bad.sqlite3"
    bad.write_bytes(b"not a database at all" * 100)
    with pytest.raises(BackupError):
        take_backup(Database("sqlite", str(bad)), [], root, keep=1, instance="main")
    [failed] = root.glob("incomplete-wizard-main-*")
    finished = Path(take_backup(small_sqlite(tmp_path / "db"), [], root, keep=1, instance="main").path)
    left = unfinished_backups(root, "main")
    assert [(u.path, u.failed) for u in left] == [(failed, True), (older, False), (killed, False)]
    assert left[2].size == 3000 + len(unfinished_text("main")) and finished not in [u.path for u in left]
    assert left[2].says() == (f"not a usable backup (its wizard was stopped while writing it): {killed} (3.0 KiB); "
                              "you may remove it, the wizard never deletes it")  # fmt: skip
    assert [u.path for u in unfinished_backups(root, "conference")] == [older, theirs]
    assert all(p.is_dir() for p in (killed, older, theirs, failed))
    assert unfinished_backups(tmp_path / "nowhere", "main") == []


def test_headless_names_the_unfinished_backups_it_finds_and_leaves_them(site_root):
    database = small_sqlite(site_root / "data")
    site = make_site(site_root, step_toml("one", "print('upgraded')"),
                     app_config=f"SQLALCHEMY_DATABASE_URI = 'sqlite:///{database.name}'\n")  # fmt: skip
    backups = site.state / site.name / "backups"
    killed = backups / f"wizard-{site.name}-20261101-000000-abcd"
    killed.mkdir(parents=True)
    (killed / "UNFINISHED").write_text(unfinished_text(site.name))
    (killed / "app.sqlite3").write_bytes(b"x" * 5000)
    failed = backups / f"incomplete-wizard-{site.name}-20261102-000000-abcd"
    failed.mkdir()
    (failed / "UNFINISHED").write_text(unfinished_text(site.name))
    theirs = backups / "wizard-other-20261101-000000-abcd"
    theirs.mkdir()
    (theirs / "UNFINISHED").write_text(unfinished_text("other"))
    result = site.cli("run", "--yes")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = [line for line in result.stdout.splitlines() if "not a usable backup" in line]
    assert len(lines) == 2, result.stdout
    assert lines[0].endswith(f" left in the backup folder: not a usable backup (it failed half-way): {failed} "
                             f"({human_bytes(tree_size(failed))}); you may remove it, the wizard never deletes it")  # fmt: skip
    assert lines[1].endswith(f" left in the backup folder: not a usable backup (its wizard was stopped while writing it): "
                             f"{killed} ({human_bytes(tree_size(killed))}); you may remove it, the wizard never deletes it")  # fmt: skip
    assert result.stdout.index(lines[1]) < result.stdout.index("backup gate passed")
    assert killed.is_dir() and failed.is_dir() and theirs.is_dir() and site.session()["backup"]["kind"] == "taken"
    taken = Path(site.session()["backup"]["path"])  # the engine names it by its instance and records it as its own
    assert taken.name.startswith(f"wizard-{site.name}-")
    assert json.loads((taken / "wizard-backup.json").read_text())["instance"] == site.name


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
    assert (
        f"left in the backup folder: not a usable backup (its wizard was stopped while writing it): {killed} ("
        in result.stdout
    )
    assert rotate(backups, keep=1, instance=site.name) == []  # the killed one is neither counted nor deleted


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
    backup = take_backup(
        database_of(recipe, instance),
        [cfg],
        tmp_path / "backups",
        keep=3,
        files=app_files(InstanceContext.open(instance)),
    )
    assert any(line.startswith("media (") for line in backup.contents) and any(
        line.startswith(".secret (") for line in backup.contents
    )
    # Restore into an empty place, by the recorded commands with the target moved there.
    restored = tmp_path / "restored"
    restored.mkdir()
    tar = next(c for c in backup.restore if c.startswith("tar "))
    subprocess.run([*shlex.split(tar)[:-1], str(restored)], check=True)
    assert (restored / "media" / "democon" / "slides.pdf").read_bytes() == b"%PDF-1.4 talk slides"
    assert (Path(backup.path) / "files" / ".secret").read_text() == "s3cr3t-key-material"


def test_pretalx_secret_in_the_config_means_no_secret_file(tmp_path):
    data = tmp_path / "data"
    (data / "media").mkdir(parents=True)
    (data / ".secret").write_text("unused")
    cfg = tmp_path / "pretalx.cfg"
    cfg.write_text(f"[filesystem]\ndata = {data}\n[django]\nsecret = in-the-config\n")
    labels = [
        f.label
        for f in app_files(InstanceContext.open(Instance(name="t", recipe="pretalx", venv=tmp_path, config=cfg)))
    ]
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
    assert [(f.label, f.path) for f in app_files(InstanceContext.open(instance))] == [
        ("media", data / "media")
    ]  # no .secret yet
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
                             files=app_files(InstanceContext.open(instance)))  # fmt: skip
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
    from wizard.backup import take as backup_module
    from wizard.planning.preflight import disk_checks

    from ..helpers.planning import found

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
    plan = build_plan(
        load_recipe("pretalx"), instance, found("2024.3.1", "2024.3.1", host={"db": Database("sqlite", str(db))}), {}
    )
    root = tmp_path / "backups"
    assert not [
        n for n in disk_checks(InstanceContext.open(instance), plan, root) if n.id == "check-disk-backup"
    ]  # this disk has room
    monkeypatch.setattr(backup_module, "free_space", lambda _: 70 * 1024**2)  # room for the database, not for media too
    [note] = [n for n in disk_checks(InstanceContext.open(instance), plan, root) if n.id == "check-disk-backup"]
    assert (
        note.severity == "warning"
        and "70.0 MiB are free" in note.text
        and "database, config and the app's files" in note.text
    )
