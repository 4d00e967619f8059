"""What verifying a backup costs: the wizard's whole backup against the bare dump tool, per engine.

Run on demand (not part of the test suite):

    .venv/bin/python -m tests.bench.bench_backup [--rows 300000] [--runs 3]

It starts a private PostgreSQL and MariaDB (as the tests do), fills each and a
SQLite file with the same rows, then times, `--runs` times each: the bare tool
(pg_dump -Fc, mysqldump, a plain file copy) and the wizard's take_backup
(dump, read back, checksum).  It prints medians and the ratio of the two.
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from wizard.backup.take import take_backup
from wizard.config.dbconf import Database
from wizard.views.sizes import human_bytes

from ..helpers.mysql import start_mariadb, stop_mariadb
from ..helpers.pg import start_postgres, stop_postgres


def median_seconds(action, runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def wizard_backup(db: Database, root: Path) -> int:
    backup = take_backup(db, [], root, keep=1)
    return backup.size or 0


def bench_postgres(rows: int, runs: int, work: Path) -> tuple | None:
    pg = start_postgres()
    if pg is None:
        return None
    try:
        pg.sql("CREATE TABLE talk (id serial PRIMARY KEY, title text, abstract text); "
               f"INSERT INTO talk (title, abstract) SELECT 'talk ' || n, repeat(md5(n::text), 8) FROM generate_series(1, {rows}) n")  # fmt: skip
        db = Database("postgresql", pg.dbname, pg.host, pg.port, pg.user, pg.password)
        size = int(pg.sql("SELECT pg_database_size(current_database())"))
        out = work / "bare.dump"
        bare = median_seconds(
            lambda: subprocess.run(["pg_dump", "-Fc", "-f", str(out)], env=pg.env(), check=True), runs
        )
        whole = median_seconds(lambda: wizard_backup(db, work / "pg"), runs)
        return "PostgreSQL", size, wizard_backup(db, work / "pg"), bare, whole
    finally:
        stop_postgres(pg)


def bench_mariadb(rows: int, runs: int, work: Path) -> tuple | None:
    my = start_mariadb()
    if my is None:
        return None
    try:
        my.sql(f"CREATE TABLE talk (id INT AUTO_INCREMENT PRIMARY KEY, title VARCHAR(100), abstract TEXT); "
               f"INSERT INTO talk (title, abstract) SELECT CONCAT('talk ', seq), REPEAT(MD5(seq), 8) FROM seq_1_to_{rows}",
               database="app")  # fmt: skip
        my.sql(
            "ANALYZE TABLE talk", database="app"
        )  # the size comes from InnoDB's statistics, seconds behind a bulk insert
        db = Database("mysql", my.dbname, my.host, my.port, my.user, my.password)
        size = int(
            my.sql("SELECT SUM(data_length + index_length) FROM information_schema.tables WHERE table_schema = 'app'")
        )
        out = work / "bare.sql"

        def bare_dump() -> None:
            with open(out, "wb") as target:
                subprocess.run(["mysqldump", "--no-defaults", f"--socket={my.socket}", "--user=root", "--single-transaction",
                                "--quick", "app"], stdout=target, check=True)  # fmt: skip

        bare = median_seconds(bare_dump, runs)
        whole = median_seconds(lambda: wizard_backup(db, work / "my"), runs)
        return "MariaDB", size, wizard_backup(db, work / "my"), bare, whole
    finally:
        stop_mariadb(my)


def bench_sqlite(rows: int, runs: int, work: Path) -> tuple:
    path = work / "app.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE talk (id INTEGER PRIMARY KEY, title TEXT, abstract TEXT)")
        conn.executemany("INSERT INTO talk (title, abstract) VALUES (?, ?)",
                         ((f"talk {n}", f"{n:032x}" * 8) for n in range(rows)))  # fmt: skip
    db = Database("sqlite", str(path))
    bare = median_seconds(lambda: shutil.copyfile(path, work / "copy.sqlite3"), runs)
    whole = median_seconds(lambda: wizard_backup(db, work / "lite"), runs)
    return "SQLite", path.stat().st_size, wizard_backup(db, work / "lite"), bare, whole


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    table = Table(
        title=f"Backup: the bare tool against the wizard's verified backup ({args.rows:,} rows, median of {args.runs})"
    )
    for column in ("engine", "database", "backup", "bare tool", "wizard (dump + read back + sha256)", "ratio"):
        table.add_column(column, justify="left" if column == "engine" else "right")
    with tempfile.TemporaryDirectory(prefix="uw-bench-") as tmp:
        for bench in (bench_postgres, bench_mariadb, bench_sqlite):
            work = Path(tmp) / bench.__name__
            work.mkdir()
            result = bench(args.rows, args.runs, work)
            if result is None:
                table.add_row(bench.__name__.removeprefix("bench_"), "not installed", "", "", "", "")
                continue
            engine, size, backup_size, bare, whole = result
            table.add_row(engine, human_bytes(size), human_bytes(backup_size), f"{bare:.2f} s", f"{whole:.2f} s",
                          f"{whole / bare:.1f}x")  # fmt: skip
    Console().print(table)


if __name__ == "__main__":
    main()
