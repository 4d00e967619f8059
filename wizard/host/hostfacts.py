"""What release notes may depend on, beyond versions: config keys, database, web server."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from wizard.config.dbconf import Database
from wizard.config.instance import Instance
from wizard.config.secrets import ini_pairs, ini_values, python_assignments
from wizard.host.mysqlclient import MySQLError, run_query
from wizard.host.pgquery import QueryError, run_sql
from wizard.host.services import installed_systemd_units

if TYPE_CHECKING:
    from wizard.config.context import InstanceContext

WEB_SERVER_UNITS = {"nginx.service": "nginx", "apache2.service": "apache", "httpd.service": "apache"}
WEB_SERVER_PATHS = {
    "/etc/nginx/nginx.conf": "nginx",
    "/etc/apache2/apache2.conf": "apache",
    "/etc/httpd/conf/httpd.conf": "apache",
}


@dataclass(frozen=True)
class HostFacts:
    config_keys: frozenset[str] = frozenset()  # keys set to something in the app's config (values not kept)
    config_values: dict[str, str] = field(default_factory=dict)  # only the keys a condition matches (config_matches)
    database: str | None = None  # "postgresql", "sqlite", "mysql", ...
    db: Database | None = None  # where it is, for the later questions (its repr never shows the password)
    postgres_version: str | None = None  # the server's, e.g. "15.18"
    mysql_flavour: str | None = None  # "mysql" or "mariadb", when the database is one of them
    mysql_version: str | None = None  # the server's, e.g. "10.11.19"
    web_servers: tuple[str, ...] = ()  # "nginx", "apache"
    unknowns: tuple[str, ...] = field(default=())

    def server(self) -> tuple[str, str] | None:
        """The database server as (flavour, version): ("postgresql", "15.18"), ("mariadb", "10.11.19"); None: not asked."""
        if self.postgres_version:
            return "postgresql", self.postgres_version
        if self.mysql_flavour and self.mysql_version:
            return self.mysql_flavour, self.mysql_version
        return None

    def database_text(self) -> str:
        """The database kind and its server's version, as the operator reads it: "mysql (MariaDB 10.11.19)"."""
        server = self.server()
        if server is None:
            return self.database or "unknown"
        flavour, version = server
        if flavour == "postgresql":
            return f"{self.database} {version}"
        return f"{self.database} ({'MariaDB' if flavour == 'mariadb' else 'MySQL'} {version})"


def config_keys(texts: list[str], config_format: str) -> frozenset[str]:
    keys: set[str] = set()
    for text in texts:
        pairs = python_assignments(text) if config_format == "python" else ini_pairs(text)
        keys.update(key for key, value in pairs if value not in (None, "", [], {}, ()))
    return frozenset(keys)


def matched_values(texts: list[str], config_format: str, keys: frozenset[str],
                   overrides: dict[str, str]) -> dict[str, str]:  # fmt: skip
    """The string values of ``keys`` (a recipe's config_matches keys: never a secret), as the app reads them."""
    if not keys:
        return {}
    if config_format == "ini":
        values = ini_values(texts, overrides)
        return {key: values[key] for key in keys if key in values}
    found: dict[str, str] = {}
    for text in texts:
        found.update((key, value) for key, value in python_assignments(text) if key in keys and isinstance(value, str))
    return found


def version_from_num(number: int) -> str:
    """PostgreSQL's server_version_num as the version people say: 150018 -> 15.18, 90624 -> 9.6.24."""
    if number >= 100000:
        return f"{number // 10000}.{number % 10000}"
    return f"{number // 10000}.{number // 100 % 100}.{number % 100}"


def mysql_server(version_text: str) -> tuple[str, str]:
    """SELECT VERSION() as flavour and version: "10.11.19-MariaDB-0+deb12u1" -> ("mariadb", "10.11.19")."""
    match = re.match(r"(?:5\.5\.5-)?(\d+(?:\.\d+)*)", version_text.strip())
    if match is None:
        raise ValueError(f"not a server version: {version_text[:40]!r}")
    return ("mariadb" if "mariadb" in version_text.lower() else "mysql"), match.group(1)


def server_facts(db: Database | None) -> tuple[dict[str, str], list[str]]:
    """The database server's version, asked of it; what could not be asked goes into the unknowns."""
    if db is None:
        return {}, []
    try:
        if db.kind == "postgresql":
            return {
                "postgres_version": version_from_num(int(run_sql(db, "SELECT current_setting('server_version_num')")))
            }, []
        if db.kind == "mysql":
            flavour, version = mysql_server(run_query(db, "SELECT VERSION()"))
            return {"mysql_flavour": flavour, "mysql_version": version}, []
    except (QueryError, MySQLError, ValueError) as exc:
        name = {"postgresql": "PostgreSQL", "mysql": "MySQL/MariaDB"}[db.kind]
        return {}, [f"the {name} server's version could not be read: {exc}"]
    return {}, []


def web_servers(instance: Instance) -> tuple[str, ...]:
    found = {kind for path, kind in WEB_SERVER_PATHS.items() if Path(path).exists()}
    if instance.service_manager[0].endswith("systemctl"):
        found |= {WEB_SERVER_UNITS[unit] for unit in installed_systemd_units(instance, list(WEB_SERVER_UNITS))}
    return tuple(sorted(found))


def host_facts(context: InstanceContext) -> HostFacts:
    recipe, instance, db = context.recipe, context.instance, context.database
    server, unknowns = server_facts(db)
    matched = matched_values(context.config_texts, recipe.config_format, recipe.matched_config_keys, context.overrides)
    return HostFacts(
        config_keys=config_keys(context.config_texts, recipe.config_format) | frozenset(context.overrides),
        config_values=matched,
        database=db.kind if db else None,
        db=db,
        **server,
        web_servers=web_servers(instance),
        unknowns=tuple(unknowns),
    )
