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


def build(folder: Path, pace: float = 1.0) -> Path:
    """Create the sandbox in ``folder`` (empty or new); returns its instances file."""
    folder.mkdir(parents=True, exist_ok=True)
    venv = folder / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    for name, version in ((CORE, START_VERSION), (PLUGIN, "3.2.1")):
        install_metadata(venv, name, version)
        install_scripts(venv, name, version)
    (site_packages(venv) / "indico_demo.py").write_text('"""The demo sandbox\'s stand-in for the indico package."""\n')

    database = folder / "indico.sqlite3"
    with sqlite3.connect(database) as conn:
        conn.executescript(SCHEMA)
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
    instances = folder / "instances.toml"
    instances.write_text(
        "# The demo sandbox's instance, written by `upgrade-wizard demo`.\n"
        f"[instances.{INSTANCE}]\n"
        'recipe = "demo"\n'
        f"venv = {toml_string(venv)}\n"
        f"config = {toml_string(config)}\n"
        f"target = {toml_string(TARGET_VERSION)}\n"
        f"service_manager = [{', '.join(toml_string(part) for part in manager)}]\n"
        f"service_pid = [{', '.join(toml_string(part) for part in [*manager[:-2], 'pid', '{service}'])}]\n"
        f"\n[instances.{INSTANCE}.vars]\n"
        f"demo_python = {toml_string(sys.executable)}\n"
        f"database = {toml_string(database)}\n"
        f"wsgi_file = {toml_string(wsgi_file)}\n"
        f"pace = {toml_string(str(pace))}\n"
    )
    return instances


def _service(folder: Path, action: str, service: str) -> None:
    # Through the demo's own service manager, as the steps do: the service is then
    # not a child of this (long-lived) process, and is reaped when it exits.
    subprocess.run(
        [sys.executable, "-m", "wizard.demo.svc", "--dir", str(folder), action, service],
        check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, timeout=120,
    )  # fmt: skip


def start_services(folder: Path) -> None:
    for service in SERVICES:
        _service(folder, "start", service)


def stop_services(folder: Path) -> None:
    for service in SERVICES:
        _service(folder, "stop", service)


def resume_services(folder: Path) -> list[str]:
    """Start again the services the last demo on this sandbox stopped when it ended; returns them."""
    services = unpark(folder)
    for service in services:
        _service(folder, "start", service)
    return services
