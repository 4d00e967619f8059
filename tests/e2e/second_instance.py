"""A second Indico instance on the e2e site's venv: how the forum's "several instances on one host" looks.

Its own config (INDICO_CONFIG), database (from the site's template, then one more core migration back),
Redis databases, data folders, and its own uWSGI and Celery under the site's supervisord, named
``uwsgi-second`` and ``celery-second`` (the instances file spells them ``uwsgi-{instance}``).  The venv is
the site's: new code there reaches both instances.  Taken down again, whatever the test did.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from .indico_site import (
    APP_USER,
    CORE_BEHIND,
    START_TIMEOUT,
    IndicoHome,
    IndicoSite,
    chown_app,
    indico_conf,
    instances_toml,
    log,
    program,
    run,
    uwsgi_ini,
    wait_for,
)
from .sites import INDICO_NEW

NAME = "second"
DATABASE = "indico_second"


@dataclass
class SecondInstance(IndicoHome):
    site: IndicoSite
    home: Path
    http_port: int

    @property
    def instances(self) -> Path:
        """Both instances: the site's and this one, on the one venv."""
        return self.site.root / "two-instances.toml"

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "PG"))}
        env.update(INDICO_CONFIG=str(self.conf), HOME=str(self.site.home), **extra)
        return env

    def indico(self, *args: str, **extra: str) -> str:
        return run([self.site.venv / "bin" / "indico", *args], user=APP_USER, env=self.env(**extra), timeout=300).stdout

    def core_revision(self) -> str:
        return self.site.sql("SELECT string_agg(version_num, ',') FROM public.alembic_version", db=DATABASE)

    def serving(self) -> bool:
        import urllib.request

        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/login/", timeout=10) as answer:
                return answer.status == 200
        except OSError:
            return False

    def version_served(self) -> str | None:
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/login/", timeout=20) as answer:
            found = re.search(r'<span class="version">v([0-9][^<]*)</span>', answer.read().decode(errors="replace"))
        return found.group(1) if found else None


def programs(second: SecondInstance) -> str:
    site, folder = second.site, second.site.services
    env = f'HOME="{site.home}",INDICO_CONFIG="{second.conf}",USER="{APP_USER}"'
    return (
        program(f"uwsgi-{NAME}", f"{site.venv}/bin/uwsgi --ini {second.home}/etc/uwsgi.ini", second.home, env, folder,
                stopsignal="INT", startsecs=2)
        + program(f"celery-{NAME}", f"{site.venv}/bin/indico celery worker -c 1 -n {NAME}@%%h", second.home, env,
                  folder, stopsignal="TERM", startsecs=5)
    )  # fmt: skip


def both_instances_toml(second: SecondInstance) -> str:
    """The site's instance as the other tests have it, and the second on the same venv."""
    first = instances_toml(second.site)
    own = instances_toml(replace(second.site, name=NAME))  # the same venv, user, pins and wheelhouse
    own = own.replace(json.dumps(str(second.site.conf)), json.dumps(str(second.conf)))
    own = own.replace(json.dumps(str(second.site.wsgi)), json.dumps(str(second.wsgi)))
    own = own.replace(json.dumps(str(second.site.wsgi.parent)), json.dumps(str(second.wsgi.parent)))
    own = own.replace('uwsgi = "uwsgi"', 'uwsgi = "uwsgi-{instance}"').replace(
        'celery = "celery"', 'celery = "celery-{instance}"'
    )
    assert f"target = {json.dumps(INDICO_NEW)}" in own and "uwsgi-{instance}" in own, own
    return first + "\n" + own


@contextlib.contextmanager
def second_instance(site: IndicoSite) -> Iterator[SecondInstance]:
    """Set the second instance up beside the site (about a minute), yield it, and take it all down again."""
    from ..helpers.pg import free_port

    started = time.monotonic()
    home = site.root / NAME
    second = SecondInstance(site, home, free_port())
    conf_before = site.supervisor_conf.read_text()
    try:
        for folder in (home, home / "etc", home / "web", home / "data",
                       *(home / "data" / sub for sub in ("archive", "cache", "tmp", "log"))):  # fmt: skip
            folder.mkdir()
            chown_app(folder)
        conf = indico_conf(replace(site, http_port=second.http_port))
        conf = conf.replace(f"/{site.pg.dbname}'", f"/{DATABASE}'").replace(str(site.home / "data"), str(home / "data"))
        conf = conf.replace(f"{site.redis_port}/0'", f"{site.redis_port}/2'").replace(
            f"{site.redis_port}/1'", f"{site.redis_port}/3'"
        )
        assert f"/{DATABASE}'" in conf and f"{site.redis_port}/3'" in conf, conf
        second.conf.write_text(conf)
        second.conf.chmod(0o640)
        ini = (
            uwsgi_ini(site)
            .replace(f":{site.http_port}", f":{second.http_port}")
            .replace(str(site.wsgi), str(second.wsgi))
        )
        (home / "etc" / "uwsgi.ini").write_text(ini)
        second.wsgi.write_text(site.wsgi.read_text())
        chown_app(second.conf, home / "etc" / "uwsgi.ini", second.wsgi)

        site.sql(f"CREATE DATABASE {DATABASE} TEMPLATE indico_tpl OWNER indico", db="postgres")
        second.indico(
            "db", "downgrade", "--", "-1", INDICO_CONF_OVERRIDE="{'DEBUG': True}", INDICO_ALWAYS_DOWNGRADE="1"
        )
        assert second.core_revision() not in (CORE_BEHIND, ""), "the second database was not taken one migration back"

        site.supervisor_conf.write_text(conf_before + programs(second))
        site.supervisorctl("reread")
        site.supervisorctl("update", timeout=180)
        wait_for(
            second.serving, START_TIMEOUT, f"the second uWSGI to serve /login/ on port {second.http_port}", interval=1
        )
        wait_for(lambda: site.program_states().get(f"celery-{NAME}") == "RUNNING", START_TIMEOUT,
                 "supervisord's celery-second to be RUNNING")  # fmt: skip
        second.instances.write_text(both_instances_toml(second))
        log(f"second instance (database {second.core_revision()}, port {second.http_port}) in "
            f"{time.monotonic() - started:.0f} s")  # fmt: skip
        yield second
    finally:
        stopping = time.monotonic()
        site.supervisor_conf.write_text(conf_before)
        site.supervisorctl("reread", check=False)
        site.supervisorctl("update", check=False, timeout=180)  # stops and removes the second's programs
        site.sql(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)", db="postgres")
        log(f"second instance taken down in {time.monotonic() - stopping:.0f} s")
