"""What the demo's package index offers, its schema history, and the venv metadata and scripts it edits."""

from __future__ import annotations

import shutil
from pathlib import Path

from packaging.utils import canonicalize_name
from packaging.version import Version

CORE = "indico-demo"
PLUGIN = "indico-demo-plugin-livesync"
START_VERSION = "3.2.5"
TARGET_VERSION = "3.2.9"

AVAILABLE = {
    CORE: ["3.2.5", "3.2.6", "3.2.7", "3.2.8", "3.2.9"],
    PLUGIN: ["3.2.1", "3.2.2"],
}
PLUGIN_NEEDS = {"3.2.1": "3.2.5", "3.2.2": "3.2.6"}  # the core release each plugin release requires at least

# (revision, message, SQL) in chain order.  A fresh demo's database starts at the second entry, the head of
# 3.2.5's scripts; with several instances (demo --instances N) the others start one revision further behind.
CORE_REVISIONS = [
    ("7551bd141960", "The 3.2.3 schema (where the demo's history begins)", ""),
    ("5d05eda06776", "Add undone state to editing revisions", ""),
    (
        "9b3fc740b722",
        "Fix user name_format values",
        "UPDATE users_settings SET value = 'first_last' WHERE name = 'name_format' AND value = 'full'",
    ),
    (
        "aba7935f9226",
        "Add is_event_not_happening to EventLabel",
        "ALTER TABLE events_labels ADD COLUMN is_event_not_happening BOOLEAN NOT NULL DEFAULT 0",
    ),
]
PLUGIN_REVISIONS = [
    ("aa0dbc6c14aa", "Create tables", ""),
    (
        "6ef9616e57cb",
        "Add note_id and update constraints",
        "ALTER TABLE plugin_livesync_queue ADD COLUMN note_id INTEGER",
    ),
    (
        "d8e65cb6160d",
        "Add attachment_id to queue",
        "ALTER TABLE plugin_livesync_queue ADD COLUMN attachment_id INTEGER",
    ),
]

START_REVISION = CORE_REVISIONS[1][0]

SCHEMA = f"""
CREATE TABLE alembic_version (version_num TEXT NOT NULL);
INSERT INTO alembic_version VALUES ('{START_REVISION}');
CREATE TABLE alembic_version_plugin_livesync (version_num TEXT NOT NULL);
INSERT INTO alembic_version_plugin_livesync VALUES ('{PLUGIN_REVISIONS[0][0]}');
CREATE TABLE events_labels (id INTEGER PRIMARY KEY, title TEXT NOT NULL, color TEXT NOT NULL);
INSERT INTO events_labels (title, color) VALUES ('Cancelled', 'red'), ('Postponed', 'orange'), ('Online', 'blue');
CREATE TABLE users_settings (id INTEGER PRIMARY KEY, module TEXT, name TEXT, value TEXT);
INSERT INTO users_settings (module, name, value) VALUES ('users', 'name_format', 'full'), ('users', 'lang', 'en_GB');
CREATE TABLE plugin_livesync_queue (id INTEGER PRIMARY KEY, change TEXT);
"""


def site_packages(venv: Path) -> Path:
    found = sorted(venv.glob("lib/python3*/site-packages"))
    if not found:
        raise FileNotFoundError(f"no site-packages under {venv}")
    return found[0]


def _dist_info(venv: Path, name: str) -> list[Path]:
    stem = canonicalize_name(name).replace("-", "_")
    return list(site_packages(venv).glob(f"{stem}-*.dist-info"))


def installed_packages(venv: Path) -> dict[str, str]:
    found = {}
    for name in AVAILABLE:
        for info in _dist_info(venv, name):
            found[name] = info.name.removesuffix(".dist-info").rsplit("-", 1)[1]
    return found


# Where each package keeps its alembic scripts (the demo recipe's schema_check names the same folders), from
# which release on it ships the whole chain, and how many revisions the releases before that ship.
SCRIPTS = {CORE: ("indico_demo/migrations/versions", "3.2.6", 2),
           PLUGIN: ("indico_demo_plugin_livesync/migrations/versions", "3.2.2", 1)}  # fmt: skip
CHAINS = {CORE: CORE_REVISIONS, PLUGIN: PLUGIN_REVISIONS}


def install_scripts(venv: Path, name: str, version: str) -> None:
    """The migration scripts this release of the package ships, as alembic's files (revision, down_revision):
    what detection and the progress count read to tell how many migrations are pending."""
    where, full_from, early = SCRIPTS[name]
    folder = site_packages(venv) / where
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.py"):
        old.unlink()
    chain = CHAINS[name] if Version(version) >= Version(full_from) else CHAINS[name][:early]
    down = None
    for revision, message, _sql in chain:
        (folder / f"{revision}_{message.lower().replace(' ', '_')}.py").write_text(
            f'"""{message}"""\n\nrevision = {revision!r}\ndown_revision = {down!r}\n'
        )
        down = revision


def remove_package(venv: Path, name: str) -> None:
    """What uninstalling takes away: the dist-info and the migration scripts."""
    for old in _dist_info(venv, name):
        shutil.rmtree(old)
    shutil.rmtree(site_packages(venv) / SCRIPTS[name][0], ignore_errors=True)


def install_metadata(venv: Path, name: str, version: str) -> None:
    """Replace the package's dist-info, which is what importlib.metadata (and so detection) reads."""
    for old in _dist_info(venv, name):
        shutil.rmtree(old)
    info = site_packages(venv) / f"{canonicalize_name(name).replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (info / "INSTALLER").write_text("upgrade-wizard-demo\n")
    (info / "RECORD").write_text("")
