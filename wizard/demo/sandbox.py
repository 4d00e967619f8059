"""Building the demo sandbox: a throwaway instance anyone can upgrade, no root and no network.

The sandbox folder holds a real venv (with the demo package's metadata), a
SQLite database, an ``indico.conf``, a WSGI file, the demo services and an
``instances.toml`` describing the instance.  Running the demo again on the
same folder finds the instances file and resumes that sandbox's session.
"""

from __future__ import annotations

import json
import secrets
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

from wizard.demo.catalog import (
    CORE,
    CORE_REVISIONS,
    PLUGIN,
    SCHEMA,
    START_VERSION,
    TARGET_VERSION,
    install_metadata,
    install_scripts,
    site_packages,
)
from wizard.demo.svc import SERVICES, unpark

INSTANCE = "demo"


def toml_string(value: str | Path) -> str:
    # A JSON string is a valid TOML basic string (same escapes), whatever the path holds.
    return json.dumps(str(value))


def free_port() -> int:
    """A loopback port nothing listens on now, for the demo uWSGI's pages."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def is_sandbox(folder: Path) -> bool:
    return (folder / "instances.toml").is_file() and (folder / "services.json").is_file()


def instance_name(number: int) -> str:
    """demo, demo2, demo3, ...: the first instance keeps the name a one-instance sandbox has."""
    return INSTANCE if number == 1 else f"{INSTANCE}{number}"


def service_folders(folder: Path) -> list[Path]:
    """The folder of each instance's database, config and services: the sandbox itself for the first,
    a folder of its own for each other one (demo2/, demo3/, ...)."""
    others = [path.parent for path in folder.glob(f"{INSTANCE}*/services.json")]
    return [folder, *sorted(others, key=lambda path: int(path.name.removeprefix(INSTANCE) or 1))]


def build(folder: Path, pace: float = 1.0, instances: int = 1) -> Path:
    """Create the sandbox in ``folder`` (empty or new); returns its instances file.

    ``instances``: how many instances run from its one venv, each with its own database, config and services;
    the first one's database is at the head of the installed release's scripts, the others' one revision behind."""
    folder.mkdir(parents=True, exist_ok=True)
    venv = folder / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    for name, version in ((CORE, START_VERSION), (PLUGIN, "3.2.1")):
        install_metadata(venv, name, version)
        install_scripts(venv, name, version)
    (site_packages(venv) / "indico_demo.py").write_text('"""The demo sandbox\'s stand-in for the indico package."""\n')
    tables = [instance_table(folder, venv, number, pace) for number in range(1, instances + 1)]
    shared = " (one venv, shared by all of them)" if instances > 1 else ""
    instances_file = folder / "instances.toml"
    instances_file.write_text(
        f"# The demo sandbox's instances{shared}, written by `upgrade-wizard demo`.\n" + "\n".join(tables)
    )
    return instances_file


def instance_table(sandbox: Path, venv: Path, number: int, pace: float) -> str:
    """Make one instance's database, config, WSGI file and service settings; returns its table of instances.toml."""
    name = instance_name(number)
    folder = sandbox if number == 1 else sandbox / name
    folder.mkdir(exist_ok=True)
    database = folder / "indico.sqlite3"
    with sqlite3.connect(database) as conn:
        conn.executescript(SCHEMA)
        if number > 1:
            conn.execute("UPDATE alembic_version SET version_num = ?", (CORE_REVISIONS[0][0],))
    conn.close()
    (folder / "etc").mkdir(exist_ok=True)
    config = folder / "etc" / "indico.conf"
    port = free_port()
    config.write_text(
        f"SQLALCHEMY_DATABASE_URI = {('sqlite:///' + str(database))!r}\n"
        f"SECRET_KEY = {secrets.token_hex(16)!r}\n"
        f"BASE_URL = 'http://127.0.0.1:{port}'\n"
    )
    config.chmod(0o600)
    (folder / "web").mkdir(exist_ok=True)
    wsgi_file = folder / "web" / "indico.wsgi"
    wsgi_file.write_text("# uWSGI reloads when this file is touched\n")

    settings = {"pace": pace, "database": str(database), "wsgi_file": str(wsgi_file), "venv": str(venv),
                "http_port": port}  # fmt: skip
    (folder / "services.json").write_text(json.dumps(settings))
    manager = [sys.executable, "-m", "wizard.demo.svc", "--dir", str(folder), "{action}", "{service}"]
    return (
        f"[instances.{name}]\n"
        'recipe = "demo"\n'
        f"venv = {toml_string(venv)}\n"
        f"config = {toml_string(config)}\n"
        f"target = {toml_string(TARGET_VERSION)}\n"
        f"service_manager = [{', '.join(toml_string(part) for part in manager)}]\n"
        f"service_pid = [{', '.join(toml_string(part) for part in [*manager[:-2], 'pid', '{service}'])}]\n"
        f"\n[instances.{name}.vars]\n"
        f"demo_python = {toml_string(sys.executable)}\n"
        f"database = {toml_string(database)}\n"
        f"wsgi_file = {toml_string(wsgi_file)}\n"
        f"pace = {toml_string(str(pace))}\n"
    )


def _service(folder: Path, action: str, service: str) -> None:
    # Through the demo's own service manager, as the steps do: the service is then
    # not a child of this (long-lived) process, and is reaped when it exits.
    subprocess.run(
        [sys.executable, "-m", "wizard.demo.svc", "--dir", str(folder), action, service],
        check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, timeout=120,
    )  # fmt: skip


def start_services(folder: Path) -> None:
    for where in service_folders(folder):
        for service in SERVICES:
            _service(where, "start", service)


def stop_services(folder: Path) -> None:
    for where in service_folders(folder):
        for service in SERVICES:
            _service(where, "stop", service)


def resume_services(folder: Path) -> list[str]:
    """Start again the services the last demo on this sandbox stopped when it ended; returns them."""
    started = []
    for where in service_folders(folder):
        for service in unpark(where):
            _service(where, "start", service)
            started.append(service if where == folder else f"{where.name}'s {service}")
    return started
