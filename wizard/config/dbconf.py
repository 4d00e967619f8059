"""The instance's database, as its own config file describes it (never executed, only read)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from steps import Recipe
from wizard.config.instance import Instance
from wizard.config.secrets import config_overrides, config_texts, ini_values, python_assignments


@dataclass(frozen=True)
class Database:
    kind: str  # "postgresql", "sqlite", "mysql", ...
    name: str
    host: str | None = None
    port: int | None = None
    user: str | None = None
    password: str | None = field(default=None, repr=False)  # never in a traceback or a log
    os_user: str | None = None  # the Unix user psql runs as (peer authentication on the local socket)

    def describe(self) -> str:
        """For the operator's eyes: never with the password."""
        if self.kind == "sqlite":
            return f"SQLite {self.name}"
        where = f"{self.host or 'local socket'}{':' + str(self.port) if self.port else ''}"
        return f"{self.kind} database {self.name!r} on {where} as {self.user or 'the current user'}"


def from_url(url: str) -> Database | None:
    try:
        return _from_url(url)
    except ValueError:
        return None  # a URL this parser cannot read: no diagnosis, and nothing of it shown


def _from_url(url: str) -> Database | None:
    parts = urlsplit(url)
    scheme = parts.scheme.split("+", 1)[0]
    if scheme in ("postgresql", "postgres"):
        query = parse_qs(parts.query)
        host = unquote(parts.hostname) if parts.hostname else next(iter(query.get("host", [])), None)
        return Database("postgresql", unquote(parts.path.lstrip("/")), host, parts.port,
                        unquote(parts.username) if parts.username else None,
                        unquote(parts.password) if parts.password else None)  # fmt: skip
    if scheme == "sqlite":
        # sqlite:///relative/path and sqlite:////absolute/path, as SQLAlchemy reads them
        return Database("sqlite", parts.path[1:] if not parts.netloc else f"/{parts.netloc}{parts.path}")
    return None


def database_of(recipe: Recipe, instance: Instance, texts: list[str] | None = None) -> Database | None:
    """Indico: SQLALCHEMY_DATABASE_URI; pretalx: the [database] section and its environment.  None when not found.

    ``texts``: the config files' texts when the caller has read them already.  The database's clients run as
    the app's Unix user when no password is set (peer login), so that user comes with it.
    """
    texts = config_texts(recipe, instance) if texts is None else texts
    found = database_in(texts, recipe.config_format, config_overrides(recipe, instance))
    return replace(found, os_user=instance.user) if found else None


def database_in(texts: list[str], config_format: str, overrides: dict[str, str] | None = None) -> Database | None:
    """The database these config texts name (Python: the first that names one; INI: all merged, then ``overrides``)."""
    if config_format == "ini":
        return _pretalx_database(ini_values(texts, overrides))
    for text in texts:
        url = dict(python_assignments(text)).get("SQLALCHEMY_DATABASE_URI")
        if isinstance(url, str):
            return from_url(url)
    return None


def _pretalx_database(values: dict[str, str]) -> Database | None:
    """pretalx's [database]; without a name (or without the section) SQLite at DATA_DIR/db.sqlite3."""
    section = {key.split(".", 1)[1]: value for key, value in values.items() if key.startswith("database.")}
    data = values.get("filesystem.data")
    if not section and not data:
        return None
    backend = section.get("backend", "sqlite3")
    kind = {"postgresql_psycopg2": "postgresql", "sqlite3": "sqlite"}.get(backend, backend)
    name = section.get("name") or (str(Path(data) / "db.sqlite3") if kind == "sqlite" and data else "")
    port = section.get("port")
    return Database(kind, name, section.get("host") or None, int(port) if port and port.isdigit() else None,
                    section.get("user") or None, section.get("password") or None)  # fmt: skip
