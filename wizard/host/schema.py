"""The database's schema: which migrations it has, against what the installed code brings.

Indico (alembic): the revisions stored in the database (core and each plugin)
against the heads of the migration scripts in the venv's site-packages, read
as files: nothing of the app is imported.  pretalx (Django): its own
``showmigrations --plan``, where ``[ ]`` marks a migration still to apply.
"""

from __future__ import annotations

import os
import re
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from steps.models import Migrates, SchemaCheck
from wizard.config.dbconf import Database
from wizard.host.clientcall import client_output
from wizard.host.pgquery import QueryError, run_sql
from wizard.host.privilege import as_runner

ALEMBIC_TABLE = re.compile(r"^alembic_version(?:_plugin_([a-z0-9_]+))?$")
REVISION = re.compile(r"^revision\s*=\s*['\"]([0-9a-z_]+)['\"]", re.M)
DOWN_REVISION = re.compile(r"^down_revision\s*=\s*(.+)$", re.M)
QUOTED = re.compile(r"['\"]([0-9a-z_]+)['\"]")

Level = Literal["ok", "warning", "blocker"]


@dataclass(frozen=True)
class SchemaState:
    text: str  # for the operator, one line
    state: Level = "ok"  # ok, warning (pending or unknown), blocker (a revision the code does not know)
    pending: bool | None = None
    unknown: tuple[str, ...] = ()  # "core at 1234abcd", "plugin livesync at ..." the code does not know
    #: migrations still to apply, by what a step applies (Migrates); a part that could not be counted is absent
    counts: dict[Migrates, int] = field(default_factory=dict, compare=False)
    core: str | None = None  # alembic: the core's revision in the database

    def short(self) -> str:
        """A few words for a table of several instances: the core's revision and how far behind it is."""
        where = f"{self.core[:7]}, " if self.core else ""
        if self.unknown:
            return f"{where}off the code's history"
        pending = self.counts.get("all")
        if pending == 0 and not self.pending:
            return f"{where}at head"
        if pending:
            return f"{where}{pending} to apply"
        return self.text if len(self.text) <= 24 else self.text[:23] + "…"

    def pending_count(self, which: Migrates) -> int | None:
        """How many migrations a step that applies ``which`` has ahead of it (None: not known)."""
        return self.counts.get(which)


def migration_graph(folder: Path) -> dict[str, set[str]]:
    """revision -> the revisions it follows, from alembic's migration scripts."""
    graph: dict[str, set[str]] = {}
    for script in folder.glob("*.py"):
        text = script.read_text(encoding="utf-8", errors="replace")
        revision = REVISION.search(text)
        if revision is None:
            continue
        down = DOWN_REVISION.search(text)
        graph[revision.group(1)] = set(QUOTED.findall(down.group(1))) if down else set()
    return graph


def ancestry(graph: dict[str, set[str]], revision: str) -> set[str]:
    seen, todo = set(), [revision]
    while todo:
        current = todo.pop()
        if current not in seen:
            seen.add(current)
            todo.extend(graph.get(current, ()))
    return seen


def heads(graph: dict[str, set[str]]) -> set[str]:
    followed = {down for downs in graph.values() for down in downs}
    return set(graph) - followed


def stored_revisions(db: Database) -> dict[str | None, str]:
    """{None: core revision, plugin name: its revision} as the database holds them."""
    if db.kind == "sqlite":
        with sqlite3.connect(f"file:{db.name}?mode=ro", uri=True, timeout=3) as conn:
            tables = [row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
            rows = [
                (t, r[0])
                for t in tables
                if ALEMBIC_TABLE.match(t)
                for r in conn.execute(f"SELECT version_num FROM {t}")
            ]
    else:
        listing = run_sql(db, "SELECT string_agg(tablename, ' ') FROM pg_tables "
                              "WHERE schemaname = 'public' AND tablename LIKE 'alembic_version%'")  # fmt: skip
        tables = [t for t in listing.split() if ALEMBIC_TABLE.match(t)]  # checked names only reach the SQL below
        if not tables:
            return {}
        union = " UNION ALL ".join(f"SELECT '{t}', version_num FROM public.{t}" for t in tables)
        lines = run_sql(db, union).splitlines()
        rows = [(table, revision) for table, bar, revision in (line.partition("|") for line in lines) if bar]
    return {found.group(1): revision for table, revision in rows if (found := ALEMBIC_TABLE.match(table))}


def alembic_state(check: SchemaCheck, db: Database, site_packages: Path) -> SchemaState:
    try:
        stored = stored_revisions(db)
    except (QueryError, sqlite3.Error) as exc:
        return SchemaState(f"not read: {exc}", "warning")
    if None not in stored:
        return SchemaState("no migration history in the database (a new or foreign database?)", "warning")
    parts, unknown = [], []
    behind: dict[str | None, int | None] = {}  # core (None) and each plugin: revisions to apply, None: not counted
    for plugin, revision in sorted(stored.items(), key=lambda item: item[0] or ""):
        folder = check.versions if plugin is None else (check.plugin_versions or "").replace("{name}", plugin)
        graph = migration_graph(site_packages / folder) if folder else {}
        who = "core" if plugin is None else f"plugin {plugin}"
        release = check.releases.get(revision) if plugin is None else None
        where = f"{revision}" + (f" (the schema of {release})" if release else "")
        behind[plugin] = None
        if not graph:
            parts.append(f"{who} at {where}")
        elif revision not in graph:
            unknown.append(f"{who} at {revision}")
            parts.append(f"{who} at {revision}, unknown to the installed code")
        else:
            count = len(set().union(*(ancestry(graph, head) for head in heads(graph))) - ancestry(graph, revision))
            behind[plugin] = count
            parts.append(f"{who} at {where}" + (f", {count} migration(s) to apply" if count else " (head)"))
    pending = sum(count or 0 for count in behind.values())
    state: Level = "blocker" if unknown else "warning" if pending else "ok"
    return SchemaState("; ".join(parts), state, pending=pending > 0, unknown=tuple(unknown), counts=_counts(behind),
                       core=stored.get(None))  # fmt: skip


def _counts(behind: dict[str | None, int | None]) -> dict[Migrates, int]:
    """Per Migrates: core, the plugins together, and all; a sum with a part not counted is not known."""
    core = behind.get(None)
    plugins = [count for plugin, count in behind.items() if plugin is not None]
    counts: dict[Migrates, int] = {} if core is None else {"core": core}
    if None not in plugins:
        counts["plugins"] = sum(c for c in plugins if c is not None)
        if core is not None:
            counts["all"] = core + counts["plugins"]
    return counts


class NotRead(Exception):
    pass


def django_state(argv: list[str], public: dict[str, str], secret: dict[str, str], user: str | None) -> SchemaState:
    """``showmigrations`` as the app's user; through sudo only the ``public`` variables go on its command line."""
    command = as_runner(argv, "app", user, public)
    try:
        out = client_output(command, {**os.environ, **public, **secret}, 120, NotRead, what="showmigrations")
    except NotRead as exc:
        return SchemaState(f"not read: {exc}", "warning")
    lines = out.splitlines()
    todo = sum(line.startswith("[ ]") for line in lines)
    done = sum(line.startswith("[X]") for line in lines)
    # Django migrates every app at once, plugins with the core; no list at all is no count
    counts: dict[Migrates, int] = {"all": todo} if todo or done else {}
    if todo:
        return SchemaState(f"{todo} migration(s) to apply, {done} applied", "warning", pending=True, counts=counts)
    return SchemaState(f"up to date ({done} migrations applied)", pending=False, counts=counts)
