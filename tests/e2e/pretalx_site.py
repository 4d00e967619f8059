"""A real pretalx for the end-to-end tests: 2024.3.1 on SQLite, served by gunicorn, with its Celery worker.

Built once per test module (about two minutes on 2 cores), then put back
between tests from a copy of its venv, data and static folders (seconds):

- a system user `uw-pretalx` (created when missing, then kept) runs everything
  of the app: its venv (on Debian's /usr/bin/python3, which that user can run),
  migrate, rebuild, the web server and the worker;
- the site lives under /var/tmp (the pytest tmp folder is 0700 to root, the
  app's user could not reach it); installs come only from the wheelhouse;
- supervisord (ours, as root) runs gunicorn, the Celery worker and a private
  Redis, each as the app's user: Redis is pretalx's cache (without one
  /healthcheck/ answers 503) and the worker's broker;
- the wizard sees the install through an instances.toml of its own, and runs
  as the real CLI (`python -m wizard ... run --yes`), as an operator would.

Its steps' PATH is a folder of ours (`tools/`) holding a symlink to every entry
of /usr/local/bin, /usr/bin and /usr/sbin and nothing else: deleting its `npm`
really takes npm away from the steps, and nothing else on the machine changes.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path

from ..helpers.supervisor import supervisord_header
from .sites import PRETALX_OLD, WHEELHOUSES
from .wheelhouse import APP_PYTHON, pip_env, wheelhouse

APP_USER = "uw-pretalx"
APP_HOME = Path("/var/lib") / APP_USER  # the user's own home: npm keeps its cache there between runs
BIN = Path(sys.executable).parent  # the wizard's venv: supervisord, supervisorctl
WIZARD = [sys.executable, "-m", "wizard"]
INSTANCE = "pretalx"
WEB, WORKER, REDIS = "pretalx-web", "pretalx-worker", "pretalx-redis"
EVENT = "democon"
ADMIN_EMAIL, ADMIN_PASSWORD = "admin@example.org", "Adm1n-Passw0rd!"
# The main tables whose rows an upgrade must keep.
TABLES = ("person_user", "event_event", "submission_submission", "schedule_talkslot", "submission_review")
SYSTEM_PATH = ("/usr/local/bin", "/usr/bin", "/usr/sbin")
SNAPSHOT_PARTS = ("venv", "data", "static")


def missing_prerequisites() -> str | None:
    """Why this machine cannot run the pretalx end-to-end tests (None: it can)."""
    if os.geteuid() != 0:
        return "needs root: a Unix user for the app, steps run through runuser"
    for tool, package in (("npm", "npm"), ("msgfmt", "gettext"), ("redis-server", "redis-server"),
                          ("runuser", "util-linux"), ("useradd", "passwd")):  # fmt: skip
        if shutil.which(tool) is None:
            return f"{tool} is not installed (apt install {package}): pretalx's rebuild and services need it"
    if not Path(APP_PYTHON).exists():
        return f"{APP_PYTHON} is missing: the app's venv is built on it"
    if not (BIN / "supervisord").exists():
        return f"no supervisord beside {sys.executable} (pip install -e '.[test]')"
    return None


def say(text: str) -> None:
    print(text, flush=True)


@contextmanager
def phase(name: str):
    """Print how long a phase took (also when it fails)."""
    started = time.monotonic()
    outcome = "FAILED "
    try:
        yield
        outcome = ""
    finally:
        say(f"[pretalx e2e] {outcome}{name}: {time.monotonic() - started:.1f} s")


def wait_until(predicate, timeout: float, what: str, interval: float = 0.25):
    """Poll ``predicate`` until it returns something true; fail loudly naming what was awaited."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = predicate()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last seen: {last!r})")
        time.sleep(interval)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.splitlines()[-lines:])


def ensure_app_user() -> pwd.struct_passwd:
    """The app's system user, created once and kept (with its home, where npm keeps its cache)."""
    try:
        entry = pwd.getpwnam(APP_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--user-group", "--create-home", "--home-dir", str(APP_HOME),
                        "--shell", "/usr/sbin/nologin", APP_USER], check=True, capture_output=True)  # fmt: skip
        entry = pwd.getpwnam(APP_USER)
    home = Path(entry.pw_dir)
    home.mkdir(parents=True, exist_ok=True)
    os.chown(home, entry.pw_uid, entry.pw_gid)
    home.chmod(0o755)
    return entry


def clean_environ() -> dict[str, str]:
    """Our environment without what would leak the test runner's Python or venv into the app."""
    drop = {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PIP_CONSTRAINT", "PIP_REQUIRE_VIRTUALENV"}
    return {k: v for k, v in os.environ.items() if k not in drop and not k.startswith(("PYTEST", "COV_"))}


class PretalxSite:
    """One real pretalx installation and everything running for it."""

    def __init__(self, root: Path, wheels: Path):
        self.root = root
        self.wheels = wheels
        self.user = ensure_app_user()
        self.home = root / "home"  # everything of the app, owned by its user
        self.venv = self.home / "venv"
        self.python = self.venv / "bin" / "python"
        self.data = self.home / "data"
        self.static = self.home / "static"
        self.cfg = self.home / "pretalx.cfg"
        self.services = root / "services"  # supervisord's config, socket and logs (root's)
        self.sup_conf = self.services / "supervisord.conf"
        self.tools = root / "tools"  # the steps' PATH: a symlink per system tool
        self.snapshot = root / "snapshot"
        self.instances = root / "instances.toml"
        self.npm_cache = Path(self.user.pw_dir) / ".npm"
        self.port = free_port()
        self.redis_port = free_port()
        self.site_url = f"http://127.0.0.1:{self.port}"
        self.supervisord_pid: int | None = None
        self.dirty = False

    # -- building it ---------------------------------------------------------------------------

    @classmethod
    def create(cls) -> PretalxSite:
        with phase("wheelhouse (built once, then cached)"):
            wheels = wheelhouse("pretalx", WHEELHOUSES["pretalx"])
        root = Path(tempfile.mkdtemp(prefix="uw-pretalx-", dir="/var/tmp"))
        root.chmod(0o755)
        site = cls(root, wheels)
        try:
            site.build()
        except BaseException:
            site.close()
            raise
        return site

    def build(self) -> None:
        uid, gid = self.user.pw_uid, self.user.pw_gid
        self.home.mkdir(mode=0o755)
        os.chown(self.home, uid, gid)
        self.services.mkdir()
        self.npm_cache.mkdir(exist_ok=True)
        os.chown(self.npm_cache, uid, gid)
        self.make_tools()
        self.write_config()
        with phase("supervisord with Redis (rebuild renders templates through the cache)"):
            self.start_supervisor()
        with phase(f"venv + pip install pretalx=={PRETALX_OLD} (wheelhouse)"):
            self.as_app([APP_PYTHON, "-m", "venv", str(self.venv)], timeout=120)
            self.as_app([str(self.python), "-m", "pip", "install", "-q", f"pretalx[redis]=={PRETALX_OLD}",
                         "kombu<5.6", "gunicorn", "packaging", "Faker", "freezegun"], timeout=600)  # fmt: skip
            # The venv's own setuptools (what this Python's ensurepip bundles) is in no wheelhouse: the one from
            # the wheelhouse takes its place, so a rollback finds every release it recorded (it checks first).
            self.as_app([str(self.python), "-m", "pip", "install", "-q", "-U", "setuptools<82"], timeout=300)
        with phase("migrate (fresh database)"):
            self.pretalx("migrate", timeout=600)
        with phase("rebuild (npm ci + vite)"):
            self.pretalx("rebuild", "--silent", timeout=900)
        with phase("init + create_test_event"):
            self.pretalx("init", "--no-input", timeout=300, env={
                "DJANGO_SUPERUSER_EMAIL": ADMIN_EMAIL, "DJANGO_SUPERUSER_PASSWORD": ADMIN_PASSWORD,
                "PRETALX_INIT_ORGANISER_NAME": "Wizard Lab", "PRETALX_INIT_ORGANISER_SLUG": "wizlab"})  # fmt: skip
            self.pretalx("create_test_event", "--seed", "42", "--slug", EVENT, timeout=300)
        counts = self.row_counts()
        assert counts["event_event"] >= 1 and counts["submission_submission"] > 10, counts
        with phase("snapshot of the old install"):
            self.snapshot.mkdir()
            for part in SNAPSHOT_PARTS:
                subprocess.run(["cp", "-a", str(self.home / part), str(self.snapshot / part)], check=True)
        with phase("gunicorn and the celery worker added to supervisord"):
            self.write_supervisor_conf(with_app=True)
            out = self.ctl("update")
            assert out.returncode == 0, out.stdout + out.stderr
            self.wait_serving()
        self.write_instances()

    def make_tools(self) -> None:
        """The steps' PATH: a symlink to every entry of the system's bin folders (the first one found wins)."""
        self.tools.mkdir(mode=0o755)
        for folder in SYSTEM_PATH:
            for entry in sorted(os.listdir(folder)):
                link = self.tools / entry
                if not link.exists() and not link.is_symlink():
                    link.symlink_to(Path(folder) / entry)

    def remove_tool(self, *names: str) -> None:
        for name in names:
            (self.tools / name).unlink()

    def restore_tool(self, *names: str) -> None:
        for name in names:
            link = self.tools / name
            if not link.is_symlink():
                source = next(Path(folder) / name for folder in SYSTEM_PATH if (Path(folder) / name).exists())
                link.symlink_to(source)

    def write_config(self) -> None:
        self.cfg.write_text(
            textwrap.dedent(f"""\
            [filesystem]
            data = {self.data}
            static = {self.static}

            [site]
            debug = False
            url = {self.site_url}

            [database]
            backend = sqlite3
            name = {self.data}/db.sqlite3

            [mail]
            from = admin@localhost

            [redis]
            location = redis://127.0.0.1:{self.redis_port}/0

            [celery]
            broker = redis://127.0.0.1:{self.redis_port}/1
            backend = redis://127.0.0.1:{self.redis_port}/2
        """)
        )
        os.chown(self.cfg, self.user.pw_uid, self.user.pw_gid)
        self.cfg.chmod(0o600)

    @property
    def app_env(self) -> dict[str, str]:
        """What the app's commands get, ours and the wizard's steps alike (but PATH)."""
        return {
            **pip_env(self.wheels),
            "PRETALX_CONFIG_FILE": str(self.cfg),
            "npm_config_cache": str(self.npm_cache),
            "npm_config_audit": "false",
            "npm_config_fund": "false",
            "npm_config_update_notifier": "false",
        }

    def as_app(self, argv: list[str], *, timeout: float, env: dict[str, str] | None = None,
               check: bool = True) -> subprocess.CompletedProcess:  # fmt: skip
        """Run a command as the app's user, from its home, with the app's environment."""
        full_env = {**clean_environ(), "PATH": ":".join(SYSTEM_PATH), **self.app_env, **(env or {})}
        done = subprocess.run(["runuser", "-u", APP_USER, "--", *argv], env=full_env, cwd=self.home,
                              capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)  # fmt: skip
        if check and done.returncode != 0:
            raise AssertionError(
                f"{' '.join(argv)} exited with {done.returncode}:\n{tail(done.stdout)}\n{tail(done.stderr)}"
            )
        return done

    def pretalx(self, *args: str, timeout: float, env: dict[str, str] | None = None, check: bool = True):
        return self.as_app([str(self.python), "-m", "pretalx", *args, "--no-pretalx-information"],
                           timeout=timeout, env=env, check=check)  # fmt: skip

    # -- the services ----------------------------------------------------------------------------

    def start_supervisor(self) -> None:
        """supervisord (ours, as root) with Redis only: the app's programs come once the app is there."""
        self.write_supervisor_conf(with_app=False)
        subprocess.run([str(BIN / "supervisord"), "-c", str(self.sup_conf)], check=True, timeout=60)
        pidfile = self.services / "supervisord.pid"
        wait_until(lambda: pidfile.exists() and pidfile.read_text().strip(), 30, "supervisord's pid file")
        self.supervisord_pid = int(pidfile.read_text().strip())
        wait_until(lambda: self.states().get(REDIS) == "RUNNING", 60, f"{REDIS} RUNNING (now {self.states()})")

    def write_supervisor_conf(self, with_app: bool) -> None:
        home = self.user.pw_dir
        env = (f'HOME="{home}",PRETALX_CONFIG_FILE="{self.cfg}",PATH="{self.venv}/bin:/usr/local/bin:/usr/bin",'
               f'PYTHONUNBUFFERED="1"')  # fmt: skip
        redis_dir = self.home / "redis"
        redis_dir.mkdir(exist_ok=True)
        os.chown(redis_dir, self.user.pw_uid, self.user.pw_gid)
        s = self.services
        text = supervisord_header(s) + textwrap.dedent(f"""\

            [program:{REDIS}]
            command=/usr/bin/redis-server --port {self.redis_port} --bind 127.0.0.1 --save "" --appendonly no --dir {redis_dir} --daemonize no
            user={APP_USER}
            priority=10
            startsecs=1
            stopsignal=TERM
            redirect_stderr=true
            stdout_logfile={s}/redis.log

        """)
        app = textwrap.dedent(f"""\
            [program:{WEB}]
            command={self.venv}/bin/gunicorn pretalx.wsgi --name pretalx --workers 2 --bind 127.0.0.1:{self.port} --timeout 60
            directory={self.home}
            user={APP_USER}
            environment={env}
            priority=20
            startsecs=2
            stopasgroup=true
            killasgroup=true
            stopwaitsecs=20
            redirect_stderr=true
            stdout_logfile={s}/web.log

            [program:{WORKER}]
            command={self.venv}/bin/celery -A pretalx.celery_app worker -l info -c 1
            directory={self.home}
            user={APP_USER}
            environment={env}
            priority=30
            startsecs=2
            stopasgroup=true
            killasgroup=true
            stopwaitsecs=20
            redirect_stderr=true
            stdout_logfile={s}/worker.log
        """)
        self.sup_conf.write_text(text + ("\n" + app if with_app else ""))

    def ctl(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run([str(BIN / "supervisorctl"), "-c", str(self.sup_conf), *args],
                              capture_output=True, text=True, timeout=timeout)  # fmt: skip

    def states(self) -> dict[str, str]:
        out = self.ctl("status").stdout
        return {line.split()[0]: line.split()[1] for line in out.splitlines() if len(line.split()) > 1}

    def pid(self, program: str) -> int | None:
        out = self.ctl("pid", program).stdout.strip()
        return int(out) if out.isdigit() and int(out) > 0 else None

    def worker_ready_count(self) -> int:
        log = self.services / "worker.log"
        return log.read_text(errors="replace").count(" ready.") if log.exists() else 0

    def wait_serving(self, timeout: float = 180, ready_before: int = 0) -> None:
        """Every program RUNNING, the login page answering 200 and the worker ready (once more than ``ready_before``)."""
        wanted = {REDIS, WEB, WORKER}
        wait_until(lambda: all(self.states().get(p) == "RUNNING" for p in wanted) or None, timeout,
                   f"supervisord to report {sorted(wanted)} RUNNING (now {self.states()})")  # fmt: skip
        wait_until(lambda: self.get("/orga/login/")[0] == 200, timeout,
                   f"GET {self.site_url}/orga/login/ to answer 200 (web log: {self.services / 'web.log'})")  # fmt: skip
        wait_until(lambda: self.worker_ready_count() > ready_before, timeout,
                   f"the Celery worker's 'ready.' in {self.services / 'worker.log'}")  # fmt: skip

    def get(self, path: str, host: str | None = None) -> tuple[int, str]:
        """GET a page from gunicorn, with the Host header of the configured site URL."""
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}",
                                         headers={"Host": host or f"127.0.0.1:{self.port}"})  # fmt: skip
        try:
            with opener.open(request, timeout=60) as response:
                return response.status, response.read().decode(errors="replace")
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode(errors="replace")
        except (urllib.error.URLError, OSError) as exc:
            return 0, str(exc)

    # -- what the tests look at ------------------------------------------------------------------

    @property
    def database(self) -> Path:
        return self.data / "db.sqlite3"

    def row_counts(self) -> dict[str, int]:
        with sqlite3.connect(f"file:{self.database}?mode=ro", uri=True, timeout=30) as conn:
            return {table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] for table in TABLES}

    def installed_version(self) -> str:
        out = self.as_app([str(self.python), "-c", "import importlib.metadata as m; print(m.version('pretalx'))"],
                          timeout=60)  # fmt: skip
        return out.stdout.strip()

    def pending_migrations(self) -> list[str]:
        out = self.pretalx("showmigrations", timeout=180)
        return [line.strip() for line in out.stdout.splitlines() if line.strip().startswith("[ ]")]

    # -- the wizard ------------------------------------------------------------------------------

    def write_instances(self) -> None:
        ctl = [str(BIN / "supervisorctl"), "-c", str(self.sup_conf)]
        env = {**self.app_env, "PATH": str(self.tools)}
        env.pop("PRETALX_CONFIG_FILE")  # `config` names it; the recipe's steps set the variable themselves
        instance = {
            "recipe": "pretalx",
            "venv": str(self.venv),
            "user": APP_USER,
            "config": str(self.cfg),
            "target": "2025.2.2",
            "service_manager": [*ctl, "{action}", "{service}"],
            "service_pid": [*ctl, "pid", "{service}"],
        }
        lines = [f"[instances.{INSTANCE}]"]
        lines += [f"{key} = {json.dumps(value)}" for key, value in instance.items()]
        lines += [f"[instances.{INSTANCE}.services]", f"web = {json.dumps(WEB)}", f"worker = {json.dumps(WORKER)}"]
        lines += [f"[instances.{INSTANCE}.env]"] + [f"{key} = {json.dumps(value)}" for key, value in env.items()]
        self.instances.write_text("\n".join(lines) + "\n")

    def wizard_env(self) -> dict[str, str]:
        return {
            **clean_environ(),
            "NO_COLOR": "1",
            "COLUMNS": "250",
            "TERM": "dumb",
            "XDG_STATE_HOME": os.devnull + "-not-a-dir",
        }

    def wizard_argv(self, state: Path, *args: str) -> list[str]:
        return [*WIZARD, "--config", str(self.instances), "--state-dir", str(state), *args]

    def cli(self, state: Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
        """The real CLI, to its end; its output is printed too (the run's record in the test's output)."""
        started = time.monotonic()
        done = subprocess.run(self.wizard_argv(state, *args), capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL, env=self.wizard_env(), cwd=self.root)  # fmt: skip
        say(f"$ wizard {' '.join(args)}  -> exit {done.returncode} in {time.monotonic() - started:.1f} s")
        say(textwrap.indent(done.stdout + done.stderr, "  | "))
        return done

    def spawn(self, state: Path, *args: str, output: Path) -> subprocess.Popen:
        """The real CLI in the background, its output (stdout and stderr) going to ``output``."""
        with open(output, "w") as sink:
            return subprocess.Popen(self.wizard_argv(state, *args), stdin=subprocess.DEVNULL, stdout=sink,
                                    stderr=subprocess.STDOUT, text=True, env=self.wizard_env(), cwd=self.root,
                                    start_new_session=True)  # fmt: skip

    @staticmethod
    def session(state: Path) -> dict:
        """The saved session, read as the file is (root may read its 0600)."""
        path = state / INSTANCE / "session.json"
        return json.loads(path.read_text()) if path.exists() else {}

    @staticmethod
    def steps(state: Path) -> dict[str, dict]:
        return {step["id"]: step for step in PretalxSite.session(state).get("steps", [])}

    # -- between tests and at the end ------------------------------------------------------------

    def reset(self) -> None:
        """Put the old install back (venv, data, static) and restart its services, when a test changed it."""
        if not self.dirty:
            self.dirty = True
            return
        with phase("reset to the old install"):
            self.restore_tool("npm", "npx")
            self.ctl("stop", WEB, WORKER)
            for part in SNAPSHOT_PARTS:
                shutil.rmtree(self.home / part)
                subprocess.run(["cp", "-a", str(self.snapshot / part), str(self.home / part)], check=True)
            self.ctl("restart", REDIS)  # an empty cache: nothing of the new release's pages is kept
            ready = self.worker_ready_count()
            self.ctl("start", WEB, WORKER)
            self.wait_serving(ready_before=ready)

    def close(self) -> None:
        """Stop everything this site started (supervisord and its programs), then remove its folder."""
        with phase("supervisord shut down"):
            if self.sup_conf.exists():
                self.ctl("shutdown", timeout=60)
            if self.supervisord_pid is not None:
                try:
                    wait_until(lambda: not Path(f"/proc/{self.supervisord_pid}").exists(), 60, "supervisord to exit")
                except AssertionError:
                    os.kill(self.supervisord_pid, 9)
            self._kill_leftovers()
        if os.environ.get("UW_KEEP_PRETALX_SITE"):
            say(f"[pretalx e2e] kept {self.root} (UW_KEEP_PRETALX_SITE)")
            return
        with phase(f"{self.root} removed"):
            subprocess.run(["rm", "-rf", "--one-file-system", str(self.root)], check=False)

    def _kill_leftovers(self) -> None:
        """Any process still running from this site's folder (a step wrapper, a worker child), by its pid."""
        marker = str(self.root)
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit() or int(proc.name) == os.getpid():
                continue
            try:
                cmdline = (proc / "cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if marker in cmdline:
                try:
                    os.kill(int(proc.name), 9)
                except OSError:
                    pass
