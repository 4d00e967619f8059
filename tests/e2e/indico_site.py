"""A real Indico installation for the end-to-end tests, set up once per test module and reset between tests.

What it builds (as root, on loopback ports only):

- a Unix user ``uw-indico`` (kept between runs) whose home is a fresh folder under
  /var/tmp (world-traversable, unlike pytest's 0700 tmp folders), holding the venv
  (Debian's /usr/bin/python3, indico 3.2.6, indico-plugins 3.2.2 and uWSGI, all
  from the wheelhouse), etc/indico.conf, web/indico.wsgi and the data folders;
- a private PostgreSQL 15 (tests/helpers/pg.py) with the role ``indico`` (a password full of
  awkward characters, which the tests look for everywhere afterwards), the database
  ``indico`` and its extensions; `indico db prepare`, then the core taken back one
  migration (9b3fc740b722, so `indico db upgrade` really runs ALTER TABLE events.labels)
  and citadel's migration undone (a plugin migration pending too); this state is kept as
  the template database ``indico_tpl``;
- Redis (run as ``redis``, private config, pidfile and folder);
- supervisord running, as the app user, the real uWSGI (master, 2 workers, http-socket,
  touch-reload on the wsgi file) and the real `indico celery worker`;
- an instances.toml for the wizard, which installs only from the wheelhouse.

The wsgi file wraps Indico and adds one test-only path, HOLD_PATH, which opens its
own database session, reads from events.labels and sleeps with the transaction open:
a genuinely stuck request inside a uWSGI worker.

Every wait here waits for a condition, with a generous deadline, and says what it
waited for when it gives up.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import quote

import psutil

from ..helpers.pg import Postgres, find_bindir, free_port, start_postgres, stop_postgres
from ..helpers.supervisor import supervisord_header
from .sites import INDICO_NEW, INDICO_OLD, INDICO_PLUGINS, UWSGI, WHEELHOUSES
from .wheelhouse import APP_PYTHON, pip_env, wheelhouse

APP_USER = "uw-indico"
# What careless quoting breaks on: a space, both quotes, $, a colon, shell characters and a backslash.
# (No '%', '@', '/', '#' or '?': in a URL they must be %-encoded, and Indico hands its URL to alembic's
# configparser, which takes '%' for interpolation: `indico db prepare` then fails with "invalid interpolation syntax".)
DB_PASSWORD = "e2e Pa$$'w\"0rd:;&=(x)!*,\\z"
CORE_BEHIND = "9b3fc740b722"  # one core migration behind 3.2.6's head: ALTER TABLE events.labels is pending
CORE_HEAD = "aba7935f9226"
PENDING_PLUGIN = "citadel"  # its one migration is undone, so `indico db --all-plugins upgrade` has work
PLUGINS = ("livesync", "citadel")
HOLD_PATH = "/__e2e_hold__"
HOLD_APP = "e2e-hold"  # application_name of the stuck request's own database session
BIN = Path(sys.executable).parent  # the project's venv: supervisord, supervisorctl and the wizard
WIZARD = [sys.executable, "-m", "wizard"]

INSTALL_TIMEOUT = 900.0  # pip on a loaded 2-core machine
START_TIMEOUT = 240.0  # uWSGI and Celery loading Indico


def log(message: str) -> None:
    print(f"[indico-e2e {time.strftime('%H:%M:%S')}] {message}", flush=True)


def missing_requirements() -> str | None:
    """Why this machine cannot run the real-Indico tests (None when it can)."""
    if os.geteuid() != 0:
        return "the real-Indico tests run as root (a Unix user for the app, PostgreSQL and Redis as their own users)"
    if find_bindir() is None or shutil.which("psql") is None:
        return "PostgreSQL is not installed (Debian: apt-get install postgresql)"
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        return "redis-server is not installed (Debian: apt-get install --no-install-recommends redis-server)"
    if not Path(APP_PYTHON).exists():
        return f"{APP_PYTHON} is missing (the app's interpreter)"
    if shutil.which("runuser") is None or shutil.which("useradd") is None:
        return "runuser/useradd are missing"
    try:
        pwd.getpwnam("postgres")
        pwd.getpwnam("redis")
    except KeyError as exc:
        return f"the system user {exc} is missing"
    return None


def wait_for(predicate, timeout: float, what: str, interval: float = 0.25):
    """Poll until ``predicate()`` is truthy; fail saying what was awaited and what was last seen."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            value = predicate()
        except AssertionError:  # the predicate knows it can never come true
            raise
        except Exception as exc:  # a probe that fails is a "not yet"
            value, last = None, f"{type(exc).__name__}: {exc}"
        else:
            last = value
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last seen: {last!r})")
        time.sleep(interval)


def run(argv, *, timeout: float = 120, check: bool = True, env: dict | None = None, input: str | None = None,
        user: str | None = None) -> subprocess.CompletedProcess:  # fmt: skip
    argv = [str(part) for part in argv]
    if user:
        argv = ["runuser", "-u", user, "--", *argv]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env, input=input,
                          stdin=None if input is not None else subprocess.DEVNULL)  # fmt: skip
    if check and done.returncode:
        raise AssertionError(f"{' '.join(argv)} exited {done.returncode}\n--- stdout:\n{done.stdout[-4000:]}\n"
                             f"--- stderr:\n{done.stderr[-4000:]}")  # fmt: skip
    return done


def ensure_app_user(home: Path) -> None:
    """The app's system user (created once and kept), with this site's folder as its home."""
    try:
        pwd.getpwnam(APP_USER)
    except KeyError:
        run(
            [
                "useradd",
                "--system",
                "--user-group",
                "--shell",
                "/bin/sh",
                "--home-dir",
                home,
                "--no-create-home",
                APP_USER,
            ]
        )
    else:
        run(["usermod", "--home", home, APP_USER])


def chown_app(*paths: Path) -> None:
    for path in paths:
        shutil.chown(path, APP_USER, APP_USER)


# ---------------------------------------------------------------------------------------------------------
# Blockers: a stuck uWSGI request, and psql sessions idle in transaction


class HeldRequest:
    """A request to HOLD_PATH, sent from a thread: it keeps a uWSGI worker idle in transaction."""

    def __init__(self, url: str):
        self.url = url
        self.outcome: str | None = None
        self.thread = threading.Thread(target=self._send, daemon=True, name="held-request")
        self.thread.start()

    def _send(self) -> None:
        try:
            with urllib.request.urlopen(self.url, timeout=900) as answer:
                self.outcome = f"answered {answer.status}"
        except Exception as exc:  # the worker killed by a restart: the connection drops
            self.outcome = f"{type(exc).__name__}: {exc}"


class PsqlBlocker:
    """A psql session that read from events.labels and stays idle in transaction (its stdin kept open)."""

    def __init__(self, argv: list[str], env: dict[str, str], application: str):
        self.application = application
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, env={**env, "PGAPPNAME": application})  # fmt: skip
        self.proc.stdin.write("BEGIN;\nSELECT id FROM events.labels LIMIT 1;\nSELECT 'BACKEND=' || pg_backend_pid();\n")
        self.proc.stdin.flush()
        self.backend_pid = self._read_backend()

    def _read_backend(self) -> int:
        seen = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            seen.append(line)
            if line.strip().startswith("BACKEND="):
                return int(line.strip().split("=", 1)[1])
        self.end()
        raise AssertionError(f"the psql blocker {self.application} did not start: {''.join(seen)}")

    def end(self) -> None:
        """Close its stdin (psql quits; the server rolls back), then make sure it is gone."""
        if self.proc.poll() is None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


# ---------------------------------------------------------------------------------------------------------
# The site


@dataclass
class WizardRun:
    """The wizard started as a process; its output goes to a file (read it while it runs)."""

    proc: subprocess.Popen
    output: Path
    started: float = field(default_factory=time.monotonic)

    def text(self) -> str:
        return self.output.read_text(errors="replace") if self.output.exists() else ""

    def wait(self, timeout: float = 900) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=30)
            raise AssertionError(
                f"the wizard did not finish within {timeout:.0f} s; its output:\n{self.text()[-6000:]}"
            ) from None

    def wait_for_output(self, text: str, timeout: float, after: int = 0) -> str:
        """Wait until ``text`` shows in its output (after the first ``after`` characters); fails if it exits first."""

        def seen():
            out = self.text()
            if text in out[after:]:
                return out
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"the wizard exited ({self.proc.returncode}) before printing {text!r}:\n{out[-6000:]}"
                )
            return None

        deadline = time.monotonic() + timeout
        while True:
            value = seen()
            if value:
                return value
            if time.monotonic() >= deadline:
                raise AssertionError(f"timed out after {timeout:.0f} s waiting for {text!r} in the wizard's output:\n"
                                     f"{self.text()[-6000:]}")  # fmt: skip
            time.sleep(0.2)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)


class IndicoHome:
    """Where an Indico instance keeps its config and WSGI file, under its home folder."""

    home: Path

    @property
    def conf(self) -> Path:
        return self.home / "etc" / "indico.conf"

    @property
    def wsgi(self) -> Path:
        return self.home / "web" / "indico.wsgi"


@dataclass
class IndicoSite(IndicoHome):
    root: Path
    pg: Postgres  # connects as the app's role over TCP
    wheels: Path
    redis_port: int
    http_port: int
    state: Path = field(init=False)
    name: str = "indico"
    held: list[HeldRequest] = field(default_factory=list)
    blockers: list[PsqlBlocker] = field(default_factory=list)
    wizards: list[WizardRun] = field(default_factory=list)
    heads: dict[str, str] | None = None
    template_revisions: dict[str, str | None] = field(default_factory=dict)  # what the template database holds
    pristine: dict[str, str] = field(default_factory=dict)  # the venv's distributions after setup

    def __post_init__(self) -> None:
        self.state = self.root / "state" / "initial"

    # -- paths ---------------------------------------------------------------------------------------

    @property
    def home(self) -> Path:
        return self.root / "indico"

    @property
    def venv(self) -> Path:
        return self.home / "venv"

    @property
    def services(self) -> Path:
        return self.root / "services"

    @property
    def supervisor_conf(self) -> Path:
        return self.services / "supervisord.conf"

    @property
    def instances(self) -> Path:
        return self.root / "instances.toml"

    @property
    def socket_dir(self) -> Path:
        return self.pg.root / "sock"

    @property
    def db_url(self) -> str:
        return f"postgresql://indico:{DB_PASSWORD}@127.0.0.1:{self.pg.port}/indico"

    def app_env(self, **extra: str) -> dict[str, str]:
        """The environment of an `indico` command run as the app user."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "PG"))}
        env.update(INDICO_CONFIG=str(self.conf), HOME=str(self.home), **extra)
        return env

    # -- commands ------------------------------------------------------------------------------------

    def indico(
        self, *args: str, timeout: float = 300, check: bool = True, **extra_env: str
    ) -> subprocess.CompletedProcess:
        return run([self.venv / "bin" / "indico", *args], user=APP_USER, env=self.app_env(**extra_env), timeout=timeout,
                   check=check)  # fmt: skip

    def pip(self, *args: str, timeout: float = INSTALL_TIMEOUT) -> subprocess.CompletedProcess:
        env = {**self.app_env(), **pip_env(self.wheels)}
        return run([self.venv / "bin" / "python", "-m", "pip", *args], user=APP_USER, env=env, timeout=timeout)

    def sql(self, statement: str, db: str = "indico") -> str:
        """As the cluster's superuser over the private socket."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.update(PGHOST=str(self.socket_dir), PGPORT=str(self.pg.port), PGUSER="postgres", PGDATABASE=db,
                   PGOPTIONS="-c statement_timeout=20000")  # fmt: skip
        return run(
            ["psql", "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-c", statement], env=env, timeout=60
        ).stdout.strip()

    def table_digests(self, db: str = "indico") -> dict[str, str]:
        """Every table of the database with its row count and a digest of its rows (in a stable order)."""
        tables = self.sql("SELECT quote_ident(schemaname) || '.' || quote_ident(tablename) FROM pg_tables "
                          "WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1", db=db).split()  # fmt: skip
        parts = [f"SELECT '{table}', count(*) || ':' || coalesce(md5(string_agg(t::text, '|' ORDER BY t::text)), '') "
                 f"FROM {table} t" for table in tables]  # fmt: skip
        rows = self.sql(" UNION ALL ".join(parts), db=db).splitlines()
        return dict(row.split("|", 1) for row in rows)

    def restore_copy(self, dump: Path, db: str) -> None:
        """The dump restored into a new database of its own (as the superuser), to compare with."""
        self.sql(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)", db="postgres")
        self.sql(f"CREATE DATABASE {db} OWNER indico", db="postgres")
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        run(["pg_restore", "--no-owner", "--exit-on-error", f"--host={self.socket_dir}", f"--port={self.pg.port}",
             "--username=postgres", f"--dbname={db}", dump], env=env, timeout=300)  # fmt: skip

    def supervisorctl(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        return run([BIN / "supervisorctl", "-c", self.supervisor_conf, *args], check=check, timeout=timeout)

    def program_states(self) -> dict[str, str]:
        out = self.supervisorctl("status", check=False).stdout
        return {line.split()[0]: line.split()[1] for line in out.splitlines() if len(line.split()) > 1}

    def uwsgi_pid(self) -> int:
        out = self.supervisorctl("pid", "uwsgi").stdout.strip()
        assert out.isdigit() and int(out) > 0, f"supervisorctl pid uwsgi said {out!r}"
        return int(out)

    def distributions(self) -> dict[str, str]:
        """Every distribution in the venv and its version, as the venv's Python sees them."""
        code = ("import importlib.metadata as m, json, re; print(json.dumps({re.sub(r'[-_.]+', '-', d.metadata['Name']).lower():"
                " d.version for d in m.distributions()}))")  # fmt: skip
        return json.loads(run([self.venv / "bin" / "python", "-c", code]).stdout)

    def restore_venv(self) -> str:
        """Put back exactly the distributions the venv had after setup, from the wheelhouse (only those that changed)."""
        now = self.distributions()
        if now == self.pristine:
            return ""
        added = sorted(set(now) - set(self.pristine))
        changed = sorted(f"{name}=={version}" for name, version in self.pristine.items() if now.get(name) != version)
        if added:
            self.pip("uninstall", "-q", "-y", *added)
        if changed:
            self.pip("install", "-q", "--no-deps", *changed)
        if self.distributions() != self.pristine:  # something else moved: let pip resolve it all again
            self.pip("install", "-q", f"indico=={INDICO_OLD}", f"indico-plugins=={INDICO_PLUGINS}", f"uwsgi=={UWSGI}")
        now = self.distributions()
        assert now == self.pristine, {
            k: (now.get(k), self.pristine.get(k))
            for k in set(now) | set(self.pristine)
            if now.get(k) != self.pristine.get(k)
        }
        return f"pip: {len(changed)} back, {len(added)} removed; "

    def installed(self, dist: str = "indico") -> str:
        code = f"import importlib.metadata as m; print(m.version({dist!r}))"
        return run([self.venv / "bin" / "python", "-c", code]).stdout.strip()

    def revisions(self) -> dict[str, str | None]:
        """The revisions the database holds: 'core' and one per plugin with migrations (None: none stamped)."""
        found: dict[str, str | None] = {
            "core": self.sql("SELECT string_agg(version_num, ',') FROM public.alembic_version") or None
        }
        for plugin in PLUGINS:
            table = f"public.alembic_version_plugin_{plugin}"
            exists = self.sql(f"SELECT to_regclass('{table}') IS NOT NULL") == "t"
            found[plugin] = (self.sql(f"SELECT string_agg(version_num, ',') FROM {table}") or None) if exists else None
        return found

    def code_heads(self) -> dict[str, str]:
        """What `indico db heads` and `indico db --all-plugins heads` say for the installed code."""
        heads = {"core": _one_head(self.indico("db", "heads").stdout, "core")}
        out = self.indico("db", "--all-plugins", "heads").stdout
        plugin = None
        for raw in out.splitlines():
            line = raw.strip()
            if line.startswith("executing command for plugin"):
                plugin = line.split("'")[1]
            elif plugin and line.endswith("(head)"):
                heads[plugin] = line.split()[0]
        missing = [p for p in PLUGINS if p not in heads]
        assert not missing, f"`indico db --all-plugins heads` named no head for {missing}:\n{out}"
        return heads

    def http_status(self, path: str = "/", timeout: float = 20) -> int:
        request = urllib.request.Request(f"http://127.0.0.1:{self.http_port}{path}")
        opener = urllib.request.build_opener(NoRedirect)
        try:
            with opener.open(request, timeout=timeout) as answer:
                return answer.status
        except urllib.error.HTTPError as exc:
            return exc.code

    def serving(self) -> bool:
        try:
            return self.http_status("/", timeout=10) in (200, 302)
        except OSError:
            return False

    def wait_until_serving(self, timeout: float = START_TIMEOUT) -> None:
        wait_for(lambda: self.program_states().get("uwsgi") == "RUNNING", timeout, "supervisord's uwsgi to be RUNNING")
        wait_for(self.serving, timeout, f"uWSGI to answer GET / on port {self.http_port} with 302 or 200", interval=1)
        wait_for(
            lambda: self.program_states().get("celery") == "RUNNING", timeout, "supervisord's celery to be RUNNING"
        )

    # -- blockers ------------------------------------------------------------------------------------

    def activity(self, where: str) -> list[dict]:
        rows = self.sql("SELECT coalesce(json_agg(row_to_json(a)), '[]') FROM (SELECT pid, usename, application_name, "
                        f"state, wait_event_type, pg_blocking_pids(pid) AS blocked_by FROM pg_stat_activity WHERE {where}) a")  # fmt: skip
        return json.loads(rows or "[]")

    def hold_request(self) -> int:
        """A stuck request in a uWSGI worker, idle in transaction; returns its database backend's pid."""
        before = {row["pid"] for row in self.activity(f"application_name = '{HOLD_APP}'")}
        self.held.append(HeldRequest(f"http://127.0.0.1:{self.http_port}{HOLD_PATH}"))
        rows = wait_for(lambda: [r for r in self.activity(f"application_name = '{HOLD_APP}' AND state = 'idle in transaction'")
                                 if r["pid"] not in before],
                        60, "the held request's session to be idle in transaction in pg_stat_activity")  # fmt: skip
        return rows[0]["pid"]

    def client_process(self, backend: int) -> psutil.Process:
        """The local process at the other end of a backend's TCP connection (the stuck uWSGI worker)."""
        port = int(self.sql(f"SELECT client_port FROM pg_stat_activity WHERE pid = {int(backend)}"))
        pids = [c.pid for c in psutil.net_connections(kind="tcp") if c.laddr and c.laddr.port == port and c.pid]
        assert pids, f"no local process holds the client end (port {port}) of backend {backend}"
        return psutil.Process(pids[0])

    def psql_over_tcp(self) -> PsqlBlocker:
        """(a) a forgotten psql as the app's role over TCP, the password in its environment."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.update(PGPASSWORD=DB_PASSWORD)
        argv = [
            "psql",
            "-X",
            "-q",
            "-A",
            "-t",
            "-h",
            "127.0.0.1",
            "-p",
            str(self.pg.port),
            "-U",
            "indico",
            "-d",
            "indico",
        ]
        blocker = PsqlBlocker(argv, env, "e2e-forgotten-psql")
        self.blockers.append(blocker)
        return blocker

    def psql_as_superuser(self) -> PsqlBlocker:
        """(b) what `sudo -u postgres psql indico` leaves behind: the superuser over the Unix socket."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        argv = ["runuser", "-u", "postgres", "--", "psql", "-X", "-q", "-A", "-t", "-h", str(self.socket_dir),
                "-p", str(self.pg.port), "-d", "indico"]  # fmt: skip
        blocker = PsqlBlocker(argv, env, "e2e-superuser-psql")
        self.blockers.append(blocker)
        return blocker

    def end_blockers(self) -> None:
        for blocker in self.blockers:
            blocker.end()
        self.blockers.clear()
        if any(t.thread.is_alive() for t in self.held):
            with contextlib.suppress(Exception):
                self.sql(
                    f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '{HOLD_APP}'"
                )
        self.held = [t for t in self.held if t.thread.is_alive()]

    # -- the wizard ----------------------------------------------------------------------------------

    def wizard_argv(self, *args: str) -> list[str]:
        return [*WIZARD, "--config", str(self.instances), "--state-dir", str(self.state), *args]

    def spawn_wizard(self, *args: str, label: str = "run") -> WizardRun:
        output = self.state.parent / f"{self.state.name}-{label}-{len(self.wizards)}.out"
        output.parent.mkdir(parents=True, exist_ok=True)
        with open(output, "w") as handle:
            proc = subprocess.Popen(self.wizard_argv(*args), stdin=subprocess.DEVNULL, stdout=handle, stderr=subprocess.STDOUT,
                                    text=True, start_new_session=True, cwd=self.root)  # fmt: skip
        wizard = WizardRun(proc, output)
        self.wizards.append(wizard)
        log(f"wizard started (pid {proc.pid}): {' '.join(args)}")
        return wizard

    def wizard(self, *args: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess:
        return run(self.wizard_argv(*args), check=False, timeout=timeout, env={**os.environ, **env} if env else None)

    def session(self) -> dict:
        done = self.wizard("status", self.name, "--json")
        assert done.returncode == 0, done.stdout + done.stderr
        return json.loads(done.stdout)

    def session_file(self) -> dict | None:
        """The saved session as it is on disk right now (cheap enough to poll)."""
        path = self.state / self.name / "session.json"
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            return None

    def step_status(self, step_id: str) -> str | None:
        session = self.session_file()
        for step in (session or {}).get("steps", []):
            if step["id"] == step_id:
                return step["status"]
        return None

    def secret_leaks(self, *texts: str) -> list[str]:
        """Where the database password shows (raw or URL-encoded): wizard output and the wizard's state files.

        The backup folders are left out: the wizard copies indico.conf there on purpose (0600, in a 0700 folder).
        """
        needles = {DB_PASSWORD, quote(DB_PASSWORD, safe="")}
        found = [f"output #{i}" for i, text in enumerate(texts) if any(n in text for n in needles)]
        for path in self.state.rglob("*"):
            if not path.is_file() or "backups" in path.relative_to(self.state).parts:
                continue
            content = path.read_bytes().decode("utf-8", errors="replace")
            if any(n in content for n in needles):
                found.append(str(path))
        return found

    # -- reset between tests -------------------------------------------------------------------------

    def reset(self, label: str) -> None:
        """Back to 3.2.6 with the schema behind, both services running, and a fresh state folder for the wizard."""
        started = time.monotonic()
        for wizard in self.wizards:
            wizard.kill()
        self.wizards.clear()
        self.end_blockers()
        self.state = self.root / "state" / label
        code_changed = self.distributions() != self.pristine
        revisions = self.revisions()
        pristine = (not code_changed and revisions == self.template_revisions and not self.held
                    and self.program_states() == {"celery": "RUNNING", "uwsgi": "RUNNING"})  # fmt: skip
        if pristine and self.serving():
            log(f"reset: nothing to do ({time.monotonic() - started:.1f} s)")
            return
        self.supervisorctl("stop", "all", timeout=180)
        self.sql("DROP DATABASE IF EXISTS indico WITH (FORCE)", db="postgres")
        self.sql("CREATE DATABASE indico TEMPLATE indico_tpl OWNER indico", db="postgres")
        did = self.restore_venv()
        self.supervisorctl("start", "all", timeout=180)
        self.wait_until_serving()
        self.held.clear()
        log(f"reset ({did}database, services) in {time.monotonic() - started:.1f} s")


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def _one_head(out: str, what: str) -> str:
    heads = [line.split()[0] for line in out.splitlines() if line.strip().endswith("(head)")]
    assert len(heads) == 1, f"expected one {what} head, `indico db heads` said:\n{out}"
    return heads[0]


# ---------------------------------------------------------------------------------------------------------
# Building it


def indico_conf(site: IndicoSite) -> str:
    data = site.home / "data"
    return textwrap.dedent(f"""\
        SQLALCHEMY_DATABASE_URI = {site.db_url!r}
        SECRET_KEY = 'e2e-secret-key-{os.urandom(8).hex()}'
        BASE_URL = 'http://127.0.0.1:{site.http_port}'
        REDIS_CACHE_URL = 'redis://127.0.0.1:{site.redis_port}/0'
        CELERY_BROKER = 'redis://127.0.0.1:{site.redis_port}/1'
        DEFAULT_TIMEZONE = 'UTC'
        DEFAULT_LOCALE = 'en_GB'
        NO_REPLY_EMAIL = 'noreply@example.invalid'
        SUPPORT_EMAIL = 'support@example.invalid'
        CACHE_DIR = '{data}/cache'
        TEMP_DIR = '{data}/tmp'
        LOG_DIR = '{data}/log'
        STORAGE_BACKENDS = {{'default': 'fs:{data}/archive'}}
        ATTACHMENT_STORAGE = 'default'
        SMTP_SERVER = ('127.0.0.1', 25)
        ENABLE_ROOMBOOKING = False
        DEBUG = False
        PLUGINS = {set(PLUGINS)!r}
    """)


WSGI_FILE = f"""\
# Indico's own indico.wsgi, plus one test-only path: a request that reads from
# events.labels in its own transaction and then hangs, as a stuck request does.
import time

from indico.web.flask.app import make_app

indico_application = make_app()
HOLD_PATH = {HOLD_PATH!r}


def hold(environ, start_response):
    import psycopg2
    from sqlalchemy.engine import make_url

    from indico.core.config import config

    with indico_application.app_context():
        url = make_url(config.SQLALCHEMY_DATABASE_URI)
    conn = psycopg2.connect(host=url.host, port=url.port, user=url.username, password=url.password,
                            dbname=url.database, application_name={HOLD_APP!r})
    try:
        cursor = conn.cursor()
        cursor.execute("SELECT id FROM events.labels LIMIT 1")  # psycopg2 opened a transaction: it stays open
        cursor.fetchall()
        time.sleep(600)
    finally:
        conn.close()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"released\\n"]


def application(environ, start_response):
    if environ.get("PATH_INFO") == HOLD_PATH:
        return hold(environ, start_response)
    return indico_application(environ, start_response)
"""


def uwsgi_ini(site: IndicoSite) -> str:
    return textwrap.dedent(f"""\
        [uwsgi]
        master = true
        processes = 2
        enable-threads = true
        http-socket = 127.0.0.1:{site.http_port}
        wsgi-file = {site.wsgi}
        touch-reload = {site.wsgi}
        virtualenv = {site.venv}
        die-on-term = true
        vacuum = true
        single-interpreter = true
        auto-procname = true
        procname-prefix-spaced = indico
        buffer-size = 20480
        disable-logging = true
        ignore-sigpipe = true
        ignore-write-errors = true
        disable-write-exception = true
    """)


def program(
    name: str, command: str, home: Path, environment: str, folder: Path, *, stopsignal: str, startsecs: int
) -> str:
    """One program of supervisord's, run as the app user, its output in ``folder``."""
    return textwrap.dedent(f"""\
        [program:{name}]
        command={command}
        user={APP_USER}
        directory={home}
        environment={environment}
        stopsignal={stopsignal}
        stopasgroup=true
        killasgroup=true
        stopwaitsecs=30
        startsecs={startsecs}
        autorestart=true
        redirect_stderr=true
        stdout_logfile={folder}/{name}.log
    """)


def supervisord_conf(site: IndicoSite) -> str:
    folder = site.services
    env = f'HOME="{site.home}",INDICO_CONFIG="{site.conf}",USER="{APP_USER}"'
    return (
        supervisord_header(folder)
        + program("uwsgi", f"{site.venv}/bin/uwsgi --ini {site.home}/etc/uwsgi.ini", site.home, env, folder,
                  stopsignal="INT", startsecs=2)
        + program("celery", f"{site.venv}/bin/indico celery worker -c 1", site.home, env, folder,
                  stopsignal="TERM", startsecs=5)
    )  # fmt: skip


def instances_toml(site: IndicoSite) -> str:
    ctl = [str(BIN / "supervisorctl"), "-c", str(site.supervisor_conf)]
    lines = [
        f"[instances.{site.name}]",
        'recipe = "indico"',
        f"venv = {json.dumps(str(site.venv))}",
        f"user = {json.dumps(APP_USER)}",
        f"config = {json.dumps(str(site.conf))}",
        f"target = {json.dumps(INDICO_NEW)}",
        f"service_manager = {json.dumps([*ctl, '{action}', '{service}'])}",
        f"service_pid = {json.dumps([*ctl, 'pid', '{service}'])}",
        "",
        f"[instances.{site.name}.services]",
        'uwsgi = "uwsgi"',
        'celery = "celery"',
        "",
        f"[instances.{site.name}.vars]",
        f"wsgi_file = {json.dumps(str(site.wsgi))}",
        f"web_dir = {json.dumps(str(site.wsgi.parent))}",
        "",
        f"[instances.{site.name}.env]",
        *(f"{key} = {json.dumps(value)}" for key, value in pip_env(site.wheels).items()),
    ]
    return "\n".join(lines) + "\n"


def start_redis(folder: Path, port: int) -> None:
    folder.mkdir()
    (folder / "redis.conf").write_text(
        textwrap.dedent(f"""\
        bind 127.0.0.1
        port {port}
        protected-mode yes
        daemonize yes
        pidfile {folder}/redis.pid
        logfile {folder}/redis.log
        dir {folder}
        save ""
        appendonly no
    """)
    )
    shutil.chown(folder, "redis", "redis")
    shutil.chown(folder / "redis.conf", "redis", "redis")
    run(["redis-server", folder / "redis.conf"], user="redis", timeout=60)
    wait_for(lambda: run(["redis-cli", "-p", str(port), "ping"], check=False, timeout=10).stdout.strip() == "PONG",
             60, f"redis on port {port} to answer PONG")  # fmt: skip


def stop_redis(folder: Path, port: int) -> None:
    run(["redis-cli", "-p", str(port), "shutdown", "nosave"], check=False, timeout=30)
    pidfile = folder / "redis.pid"
    with contextlib.suppress(OSError, ValueError):
        pid = int(pidfile.read_text().strip())
        if psutil.pid_exists(pid) and "redis" in psutil.Process(pid).name():
            os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def indico_site():
    """Set the whole installation up (about 2-4 minutes), yield it, and stop everything it started."""
    started = time.monotonic()
    wheels = wheelhouse("indico", WHEELHOUSES["indico"])
    log(f"wheelhouse {wheels} ready after {time.monotonic() - started:.0f} s")
    root = Path(tempfile.mkdtemp(prefix="uw-e2e-indico-", dir="/var/tmp"))
    root.chmod(0o755)
    pg = None
    redis_port = free_port()
    supervisor_started = False
    site: IndicoSite | None = None
    try:
        pg = start_postgres()
        assert pg is not None, "PostgreSQL could not be started"
        site = IndicoSite(root=root, pg=replace(pg, user="indico", password=DB_PASSWORD, dbname="indico"), wheels=wheels,
                          redis_port=redis_port, http_port=free_port())  # fmt: skip
        escaped = DB_PASSWORD.replace("'", "''")
        site.sql(f"CREATE ROLE indico LOGIN PASSWORD '{escaped}'", db="postgres")
        site.sql("CREATE DATABASE indico OWNER indico", db="postgres")
        site.sql("CREATE EXTENSION unaccent; CREATE EXTENSION pg_trgm")
        log(f"PostgreSQL on 127.0.0.1:{pg.port} (socket {pg.root / 'sock'}) after {time.monotonic() - started:.0f} s")

        start_redis(root / "redis", redis_port)
        log(f"Redis on 127.0.0.1:{redis_port}")

        ensure_app_user(site.home)
        for folder in (site.home, site.home / "etc", site.home / "web", site.home / "data",
                       *(site.home / "data" / sub for sub in ("archive", "cache", "tmp", "log"))):  # fmt: skip
            folder.mkdir()
            chown_app(folder)
        site.home.chmod(0o755)
        site.conf.write_text(indico_conf(site))
        site.conf.chmod(0o640)
        (site.home / "etc" / "uwsgi.ini").write_text(uwsgi_ini(site))
        site.wsgi.write_text(WSGI_FILE)
        chown_app(site.conf, site.home / "etc" / "uwsgi.ini", site.wsgi)

        step = time.monotonic()
        run([APP_PYTHON, "-m", "venv", site.venv], user=APP_USER, env=site.app_env(), timeout=300)
        site.pip("install", "-q", f"indico=={INDICO_OLD}", f"indico-plugins=={INDICO_PLUGINS}", f"uwsgi=={UWSGI}")
        site.pristine = site.distributions()
        log(
            f"venv with indico {site.installed()} (+ plugins, uWSGI; {len(site.pristine)} distributions) in {time.monotonic() - step:.0f} s"
        )

        step = time.monotonic()
        site.indico("db", "prepare")
        revisions = site.revisions()
        if any(revisions[p] is None for p in PLUGINS):
            site.indico("db", "--all-plugins", "upgrade")
        downgrade = {"INDICO_CONF_OVERRIDE": "{'DEBUG': True}", "INDICO_ALWAYS_DOWNGRADE": "1"}
        site.indico("db", "downgrade", CORE_BEHIND, **downgrade)
        site.indico("db", "--plugin", PENDING_PLUGIN, "downgrade", "base", **downgrade)
        revisions = site.revisions()
        assert revisions["core"] == CORE_BEHIND and revisions[PENDING_PLUGIN] is None, revisions
        assert all(revisions[p] for p in PLUGINS if p != PENDING_PLUGIN), revisions
        site.template_revisions = revisions
        site.sql("CREATE DATABASE indico_tpl TEMPLATE indico OWNER indico", db="postgres")
        log(f"database prepared, taken back to {revisions} and kept as a template in {time.monotonic() - step:.0f} s")

        step = time.monotonic()
        site.services.mkdir()
        site.supervisor_conf.write_text(supervisord_conf(site))
        run([BIN / "supervisord", "-c", site.supervisor_conf], timeout=60)
        supervisor_started = True
        site.wait_until_serving()
        log(f"supervisord: uWSGI on 127.0.0.1:{site.http_port} and Celery running in {time.monotonic() - step:.0f} s")

        site.instances.write_text(instances_toml(site))
        log(f"SETUP done in {time.monotonic() - started:.0f} s (root {root})")
        yield site
    finally:
        stopping = time.monotonic()
        if site is not None:
            for wizard in site.wizards:
                wizard.kill()
            with contextlib.suppress(Exception):
                site.end_blockers()
        if supervisor_started:
            run(
                [BIN / "supervisorctl", "-c", root / "services" / "supervisord.conf", "shutdown"],
                check=False,
                timeout=120,
            )
            pidfile = root / "services" / "supervisord.pid"
            with contextlib.suppress(AssertionError):
                wait_for(lambda: not pidfile.exists(), 60, "supervisord to exit")
        leftovers(root)
        stop_redis(root / "redis", redis_port)
        if pg is not None:
            stop_postgres(pg)
        if os.environ.get("UW_E2E_KEEP"):
            log(f"kept {root} (UW_E2E_KEEP is set)")
        else:
            shutil.rmtree(root, ignore_errors=True)
        log(f"teardown in {time.monotonic() - stopping:.0f} s")


def leftovers(root: Path) -> None:
    """Kill whatever still runs from the site's folder (a uWSGI worker that outlived its master, a step wrapper)."""
    mine = os.getpid()
    for proc in psutil.process_iter(["pid", "cmdline"]):
        if proc.info["pid"] == mine:
            continue
        try:
            if any(str(root) in part for part in proc.info["cmdline"] or []):
                proc.kill()
        except psutil.Error:
            pass
