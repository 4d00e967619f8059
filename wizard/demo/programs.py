"""The demo's stand-ins for pip and ``indico db upgrade``: real files, a real SQLite database.

``pip-install`` really swaps the package metadata in the sandbox venv, so the
wizard's detection sees the new version afterwards.  ``db-upgrade`` really
alters the SQLite schema inside one transaction, and its COMMIT really waits
while the demo uWSGI holds a read transaction, exactly as an ``ALTER TABLE``
waits behind an idle-in-transaction uWSGI worker on PostgreSQL.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import time
from pathlib import Path

from packaging.version import Version

from wizard.demo.catalog import (
    AVAILABLE,
    CORE,
    CORE_REVISIONS,
    PLUGIN,
    PLUGIN_NEEDS,
    PLUGIN_REVISIONS,
    install_metadata,
    install_scripts,
    installed_packages,
    remove_package,
)

ALEMBIC = "INFO  [alembic.runtime.migration]"


def say(text: str = "") -> None:
    print(text, flush=True)


def pip_install(venv: Path, requirements: list[str], pace: float) -> int:
    installed = installed_packages(venv)
    wanted: dict[str, str] = {}
    for requirement in requirements:
        name, _, version = requirement.partition("==")
        if name not in AVAILABLE:
            say(f"ERROR: Could not find a version that satisfies the requirement {requirement} (from versions: none)")
            say(f"ERROR: No matching distribution found for {name}")
            return 1
        wanted[name] = version or AVAILABLE[name][-1]
        if wanted[name] not in AVAILABLE[name]:
            say(f"ERROR: No matching distribution found for {requirement}")
            return 1
    changes = {name: v for name, v in wanted.items() if installed.get(name) != v}
    for name, version in wanted.items():
        if name not in changes:
            say(f"Requirement already satisfied: {name}=={version} in {venv}/lib/site-packages ({version})")
    for name, version in changes.items():
        say(f"Collecting {name}=={version}")
        time.sleep(0.6 * pace)
        wheel = f"{name.replace('-', '_')}-{version}-py3-none-any.whl"
        say(f"  Downloading {wheel} ({4.8 if 'plugin' in name else 31.2} MB)")
        time.sleep(1.2 * pace)
    if not changes:
        return 0
    for dep in ("cryptography==41.0.7", "pillow==10.2.0", "werkzeug==2.3.8"):
        say(f"Collecting {dep} (from indico-demo)")
        time.sleep(0.3 * pace)
    say(f"Installing collected packages: cryptography, pillow, werkzeug, {', '.join(changes)}")
    time.sleep(1.0 * pace)
    for name, version in changes.items():
        if name in installed:
            old = installed[name]
            say(f"  Attempting uninstall: {name}")
            say(f"    Found existing installation: {name} {old}")
            say(f"    Uninstalling {name}-{old}:")
            time.sleep(0.4 * pace)
            say(f"      Successfully uninstalled {name}-{old}")
        install_metadata(venv, name, version)
        install_scripts(venv, name, version)
    listed = " ".join(f"{n}-{v}" for n, v in changes.items())
    say(f"Successfully installed cryptography-41.0.7 pillow-10.2.0 werkzeug-2.3.8 {listed}")
    return 0


def pip_uninstall(venv: Path, names: list[str]) -> int:
    """As ``pip uninstall --yes``: each named package's metadata and scripts go."""
    installed = installed_packages(venv)
    for name in names:
        if name not in installed:
            say(f"WARNING: Skipping {name} as it is not installed.")
            continue
        say(f"Found existing installation: {name} {installed[name]}")
        remove_package(venv, name)
        say(f"  Successfully uninstalled {name}-{installed[name]}")
    return 0


def db_upgrade(database: Path, plugins: bool, pace: float) -> int:
    if not database.exists():
        say(f"sqlite3.OperationalError: unable to open database file {database}")
        return 1
    time.sleep(1.5 * pace)  # the app takes a while to start, as indico's CLI does
    say(f"{ALEMBIC} Context impl SQLiteImpl.")
    say(f"{ALEMBIC} Will assume transactional DDL.")
    chains = {"livesync": PLUGIN_REVISIONS} if plugins else {None: CORE_REVISIONS}
    # A long busy timeout: like PostgreSQL's lock queue, the upgrade waits as long as it must.
    conn = sqlite3.connect(database, timeout=24 * 3600, isolation_level=None)
    try:
        if plugins:
            say("skipping plugin 'payment_manual' (no migrations folder)")
        for plugin, chain in chains.items():
            table = f"alembic_version_plugin_{plugin}" if plugin else "alembic_version"
            if plugin:
                say(f"executing command for plugin '{plugin}'")
            conn.execute("BEGIN IMMEDIATE")
            current = conn.execute(f"SELECT version_num FROM {table}").fetchone()[0]
            revisions = [r[0] for r in chain]
            if current not in revisions:
                conn.execute("ROLLBACK")
                return 1  # like alembic with an unknown revision: exit 1, nothing said
            for revision, message, sql in chain[revisions.index(current) + 1 :]:
                say(f"{ALEMBIC} Running upgrade {current} -> {revision}, {message}")
                time.sleep(0.8 * pace)
                conn.execute(sql)
                conn.execute(f"UPDATE {table} SET version_num = ?", (revision,))
                current = revision
            # COMMIT needs the exclusive lock: it waits here while uWSGI holds its read transaction.
            conn.execute("COMMIT")
    finally:
        conn.close()
    return 0


def pip_check(venv: Path) -> int:
    """As ``pip check``: each installed plugin release needs a core release at least as new as PLUGIN_NEEDS says."""
    installed = installed_packages(venv)
    core = installed.get(CORE)
    broken = [
        f"{PLUGIN} {version} has requirement {CORE}>={PLUGIN_NEEDS[version]}, but you have {CORE} {core}."
        for name, version in installed.items()
        if name == PLUGIN
        and version in PLUGIN_NEEDS
        and (core is None or Version(core) < Version(PLUGIN_NEEDS[version]))
    ]
    for line in broken:
        say(line)
    if not broken:
        say("No broken requirements found.")
    return 1 if broken else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m wizard.demo.programs")
    parser.add_argument("--pace", type=float, default=1.0, help="scale every delay (0.1 = ten times faster)")
    sub = parser.add_subparsers(dest="program", required=True)
    pip = sub.add_parser("pip-install")
    pip.add_argument("--venv", type=Path, required=True)
    pip.add_argument("requirements", nargs="+")
    uninstall = sub.add_parser("pip-uninstall")
    uninstall.add_argument("--venv", type=Path, required=True)
    uninstall.add_argument("names", nargs="+")
    check = sub.add_parser("pip-check")
    check.add_argument("--venv", type=Path, required=True)
    db = sub.add_parser("db-upgrade")
    db.add_argument("--database", type=Path, required=True)
    db.add_argument("--plugins", action="store_true")
    args = parser.parse_args(argv)
    if args.program == "pip-install":
        return pip_install(args.venv, args.requirements, args.pace)
    if args.program == "pip-uninstall":
        return pip_uninstall(args.venv, args.names)
    if args.program == "pip-check":
        return pip_check(args.venv)
    return db_upgrade(args.database, args.plugins, args.pace)


if __name__ == "__main__":
    sys.exit(main())
