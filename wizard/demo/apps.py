"""The demo's long-running services: a "uWSGI" that reads the database, and a "Celery" worker.

The uWSGI stand-in serves one long request after another, each inside a read
transaction on ``events_labels``: while one is open, the schema upgrade's
COMMIT waits, just as an ALTER TABLE waits behind an idle-in-transaction
uWSGI worker.  A long request ends by itself after ``hold`` seconds; stopping
the process (a restart) ends it at once.

It also answers HTTP on a loopback port (the sandbox's BASE_URL), with a page
whose footer says the version it loaded, as Indico's does: read from the venv
when it starts and again when a touch of the WSGI file reloads it, so the health
check sees whether the running code is the installed one.
"""

from __future__ import annotations

import argparse
import os
import signal
import sqlite3
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import NoReturn

from wizard.demo.catalog import CORE, installed_packages

LIFETIME = 2 * 3600  # a forgotten demo does not run forever


class Stop(Exception):
    pass


def _stop(*_: object) -> NoReturn:
    raise Stop


def log(text: str) -> None:
    print(f"{time.strftime('%a %b %d %H:%M:%S %Y')} - {text}", flush=True)


class Site:
    """The demo's web pages, served from a thread: the version is the one loaded at the last (re)load."""

    def __init__(self, venv: Path | None, port: int | None):
        self.venv = venv
        self.version = self.load()
        if port is None:
            return
        try:
            server = ThreadingHTTPServer(("127.0.0.1", port), self.handler())
        except OSError as exc:  # the port chosen when the sandbox was built is taken now
            log(f"!!! cannot bind 127.0.0.1:{port}: {exc.strerror} (no pages served) !!!")
            return
        threading.Thread(target=server.serve_forever, daemon=True).start()
        log(f"uWSGI http bound on 127.0.0.1:{port}")

    def load(self) -> str:
        self.version = installed_packages(self.venv).get(CORE, "?") if self.venv else "?"
        return self.version

    def handler(self) -> type[BaseHTTPRequestHandler]:
        site = self

        class Page(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path != "/":
                    self.send_error(404)
                    return
                body = PAGE.format(version=site.version).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                log(f"{self.command} {self.path} => {args[1] if len(args) > 1 else ''}")

        return Page


PAGE = """<!DOCTYPE html>
<html><head><title>Indico (demo)</title></head>
<body><h1>Indico (demo sandbox)</h1>
<footer>Powered by <a href="https://getindico.io">Indico</a> <span class="version">v{version}</span></footer>
</body></html>
"""


def uwsgi(database: Path, wsgi_file: Path, hold: float, site: Site) -> None:
    log(f"*** Starting uWSGI 2.0.28 (demo) on {database.name} ***")
    log(f"spawned uWSGI worker 1 (pid: {os.getpid()}, cores: 1), running indico-demo {site.version}")
    seen_mtime = wsgi_file.stat().st_mtime if wsgi_file.exists() else None
    deadline = time.monotonic() + LIFETIME
    request = 0
    while time.monotonic() < deadline:
        request += 1
        # A short busy timeout: a request that cannot read gives up, as a web request would.
        conn = sqlite3.connect(database, timeout=5, isolation_level=None)
        try:
            conn.execute("BEGIN")
            labels = conn.execute("SELECT count(*) FROM events_labels").fetchone()[0]
            log(f"GET /category/0/overview (request {request}, reads events_labels: {labels} labels), long request...")
            time.sleep(hold)  # the read transaction stays open the whole time
            conn.execute("COMMIT")
            log(f"request {request} done in {hold:.1f}s")
        except sqlite3.OperationalError as exc:
            log(f"request {request} failed: {exc}")
            time.sleep(0.5)
        finally:
            conn.close()
        mtime = wsgi_file.stat().st_mtime if wsgi_file.exists() else None
        if mtime != seen_mtime:
            seen_mtime = mtime
            log(f"*** {wsgi_file} has been touched... grace them all !!! ***")
            log(f"...gracefully killing workers... respawned uWSGI worker 1, running indico-demo {site.load()}")
        time.sleep(0.2)


def celery(tick: float) -> None:
    log("celery@demo ready.")
    deadline = time.monotonic() + LIFETIME
    task = 0
    while time.monotonic() < deadline:
        time.sleep(tick)
        task += 1
        log(f"Task indico.core.tasks.periodic_cleanup[{task:04d}] succeeded in 0.01s: None")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m wizard.demo.apps")
    parser.add_argument("service", choices=["uwsgi", "celery"])
    parser.add_argument("--sandbox", type=Path, help="the sandbox this service belongs to")
    parser.add_argument("--database", type=Path)
    parser.add_argument("--wsgi-file", type=Path)
    parser.add_argument("--pace", type=float, default=1.0)
    parser.add_argument("--venv", type=Path, help="uwsgi: the venv whose version its pages show")
    parser.add_argument("--http-port", type=int, help="uwsgi: answer HTTP on this loopback port")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        if args.service == "uwsgi":
            site = Site(args.venv, args.http_port)
            uwsgi(args.database, args.wsgi_file, hold=max(20.0 * args.pace, 1.0), site=site)
        else:
            celery(tick=max(15.0 * args.pace, 1.0))
    except Stop:
        log("SIGTERM received: goodbye to uWSGI." if args.service == "uwsgi" else "worker: Warm shutdown")
    return 0


if __name__ == "__main__":
    sys.exit(main())
