"""What release notes may depend on, beyond versions: config keys, database, web server."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from steps import Recipe

from .dbconf import Database, database_in
from .instance import Instance
from .pgquery import QueryError, run_sql
from .secrets import config_texts, ini_pairs, python_assignments
from .services import installed_systemd_units

WEB_SERVER_UNITS = {"nginx.service": "nginx", "apache2.service": "apache", "httpd.service": "apache"}
WEB_SERVER_PATHS = {"/etc/nginx/nginx.conf": "nginx", "/etc/apache2/apache2.conf": "apache", "/etc/httpd/conf/httpd.conf": "apache"}


@dataclass(frozen=True)
class HostFacts:
    config_keys: frozenset[str] = frozenset()  # keys set to something in the app's config (values not kept)
    database: str | None = None  # "postgresql", "sqlite", "mysql", ...
    db: Database | None = None  # where it is, for the later questions (its repr never shows the password)
    postgres_version: str | None = None  # the server's, e.g. "15.18"
    web_servers: tuple[str, ...] = ()  # "nginx", "apache"
    unknowns: tuple[str, ...] = field(default=())


def config_keys(texts: list[str], config_format: str) -> frozenset[str]:
    keys = set()
    for text in texts:
        pairs = python_assignments(text) if config_format == "python" else ini_pairs(text)
        keys.update(key for key, value in pairs if value not in (None, "", [], {}, ()))
    return frozenset(keys)


def version_from_num(number: int) -> str:
    """PostgreSQL's server_version_num as the version people say: 150018 -> 15.18, 90624 -> 9.6.24."""
    if number >= 100000:
        return f"{number // 10000}.{number % 10000}"
    return f"{number // 10000}.{number // 100 % 100}.{number % 100}"


def web_servers(instance: Instance) -> tuple[str, ...]:
    found = {kind for path, kind in WEB_SERVER_PATHS.items() if Path(path).exists()}
    if instance.service_manager[0].endswith("systemctl"):
        found |= {WEB_SERVER_UNITS[unit] for unit in installed_systemd_units(instance, list(WEB_SERVER_UNITS))}
    return tuple(sorted(found))


def host_facts(instance: Instance, recipe: Recipe) -> HostFacts:
    texts = config_texts(recipe, instance)  # read once: the keys and the database both come from them
    db = database_in(texts, recipe.config_format)
    unknowns = []
    postgres = None
    if db is not None and db.kind == "postgresql":
        try:
            postgres = version_from_num(int(run_sql(db, "SELECT current_setting('server_version_num')")))
        except (QueryError, ValueError) as exc:
            unknowns.append(f"the PostgreSQL server's version could not be read: {exc}")
    return HostFacts(
        config_keys=config_keys(texts, recipe.config_format),
        database=db.kind if db else None,
        db=db,
        postgres_version=postgres,
        web_servers=web_servers(instance),
        unknowns=tuple(unknowns),
    )
