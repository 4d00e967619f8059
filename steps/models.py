"""Pydantic models of a recipe: the steps an upgrade of one product runs.

A recipe is data.  Argv templates are lists whose elements may hold
``{placeholders}``; they are filled element by element, so a value with
spaces, quotes or ``$(...)`` stays one literal argument and no shell ever
sees it.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable
from collections.abc import Set as AbstractSet
from typing import Annotated, Literal

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

#: Placeholders every instance provides (see wizard.planning.plan.placeholder_values).
BUILTIN_PLACEHOLDERS = frozenset(
    {"instance", "venv", "python", "config", "user", "target_version", "installed_version"}
)
#: Placeholders that expand into several argv elements (only as a whole element).
LIST_PLACEHOLDERS = frozenset({"plugin_requirements", "note_requirements"})

SERVICE_ACTIONS = ("start", "stop", "restart", "reload")

#: The health check's question whether the venv's packages agree with each other, unless a recipe says otherwise.
PIP_CHECK = ["{python}", "-m", "pip", "check"]

#: How a rollback puts the recorded packages back, and removes what the upgrade added: pip in the venv,
#: ``--no-deps`` so that exactly the recorded set is installed, nothing pip would choose besides.
PIP_REINSTALL = ["{python}", "-m", "pip", "install", "--no-deps", "{requirements}"]
PIP_REMOVE = ["{python}", "-m", "pip", "uninstall", "--yes", "{packages}"]

#: Which of the pending migrations a step applies: core = the core's alembic revisions, plugins = the
#: plugins' alembic revisions, all = every pending migration (Django migrates every app at once).
Migrates = Literal["core", "plugins", "all"]


def placeholders_in(template: str) -> set[str]:
    """The placeholder names used in one template string."""
    names = set()
    for _literal, field, _spec, _conv in string.Formatter().parse(template):
        if field is not None:
            if not field.isidentifier():
                raise ValueError(f"placeholder {{{field}}} is not a plain name")
            names.add(field)
    return names


def _parsed_by(parse: Callable[[str], object], what: str) -> AfterValidator:
    """Keep the text as written, once ``parse`` accepts it."""

    def check(value: str) -> str:
        try:
            parse(value)
        except (InvalidSpecifier, InvalidVersion) as exc:
            raise ValueError(f"not a {what}: {value!r}") from exc
        return value

    return AfterValidator(check)


#: A version specifier ("<3.12.2", ">=2025.1,<2026") or a version ("3.3"), checked when the recipe loads.
Specifier = Annotated[str, _parsed_by(SpecifierSet, "version specifier")]
VersionText = Annotated[str, _parsed_by(Version, "version")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServiceAction(_Strict):
    """A step that asks the instance's service manager to act on one service."""

    action: Literal["start", "stop", "restart", "reload"]
    role: str = Field(pattern=r"^[a-z][a-z0-9_]*$", description="key in the instance's services table")


class Condition(_Strict):
    """When a step belongs in the plan; every field given must hold."""

    plugins_installed: bool | None = None
    os_family: list[str] | None = None
    installed: Specifier | None = Field(None, description="version specifier the installed version must match")
    python: Specifier | None = Field(None, description="version specifier the venv's Python must match")
    target: Specifier | None = Field(None, description="version specifier the target version must match")
    service: str | None = Field(None, description="the instance has this service role")
    postgres: Specifier | None = Field(None, description="version specifier the PostgreSQL server must match")
    mysql: Specifier | None = Field(
        None, description="the database server is MySQL (not MariaDB), its version matching"
    )
    mariadb: Specifier | None = Field(None, description="the database server is MariaDB, its version matching")
    database: list[str] | None = Field(
        None, description="the app's database is one of these (postgresql, sqlite, mysql)"
    )
    config_set: list[str] | None = Field(None, description="one of these keys is set in the app's config")
    config_unset: list[str] | None = Field(None, description="none of these keys is set in the app's config")
    config_matches: dict[str, str] | None = Field(
        None, description="config key -> a regex its value must match (searched; a key not set does not match)"
    )
    web_server: list[str] | None = Field(None, description="one of these web servers is on the host (nginx, apache)")
    dists: dict[str, Specifier] | None = Field(
        None, description="distributions in the venv and the specifier each must match"
    )

    @model_validator(mode="after")
    def _regexes(self) -> Condition:
        for key, pattern in (self.config_matches or {}).items():
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"config_matches.{key}: not a regex: {exc}") from None
        return self


class StepSpec(_Strict):
    """One step of a recipe, before the instance's values are filled in."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    title: str = Field(min_length=1)
    argv: list[str] | None = Field(None, min_length=1)
    service: ServiceAction | None = None
    run_as: Literal["root", "app"] = "app"
    env: dict[str, str] = {}
    safe_to_rerun: bool = False
    when: Condition = Condition()
    unless_restarted: str | None = Field(
        None, description="skip this step when this service role was restarted during the upgrade"
    )
    can_hang_on_lock: bool = False
    advice: str = ""
    needs: list[str] = Field(
        [], description="programs that must be on the PATH for this step (checked before the start)"
    )
    reloads: str | None = Field(
        None,
        description="this step reloads the service of this role by touching the file its"
        " argv names last (uWSGI's touch-reload); the plan checks that the service watches it",
    )
    migrates: Migrates | None = Field(
        None,
        description="the step applies these pending migrations (core: the core's alembic revisions, plugins: the"
        " plugins' alembic revisions, all: every pending migration, as Django's migrate does); the run screen"
        " counts its progress against how many there are",
    )

    scope: Literal["instance", "venv"] = Field(
        "instance",
        description="venv: the step changes the virtualenv itself (pip), so on a host where several instances share"
        " the venv it runs once for all of them; instance: it runs for each instance (its database, its services)",
    )

    @model_validator(mode="after")
    def _one_command(self) -> StepSpec:
        if (self.argv is None) == (self.service is None):
            raise ValueError("a step needs exactly one of 'argv' or 'service'")
        return self

    def templates(self) -> list[str]:
        return [*(self.argv or []), *self.env.values()]


class NoteStep(StepSpec):
    """A step a release note adds to the plan, placed before or after one of the recipe's steps."""

    before: str | None = None
    after: str | None = None

    @model_validator(mode="after")
    def _one_place(self) -> NoteStep:
        if (self.before is None) == (self.after is None):
            raise ValueError("a note's step needs exactly one of 'before' or 'after' (a step id of the recipe)")
        return self


class ReleaseNote(_Strict):
    """Something an operator must know about a release, and what it changes in the plan.

    With a ``version``, the note belongs to every upgrade that crosses it
    (installed < version <= target); without one, to every hop for which
    ``when`` holds (e.g. "while the target is below 2025.2").
    """

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9.-]*$")
    version: VersionText | None = Field(None, description="the release that brings it")
    severity: Literal["blocker", "warning", "info"]
    title: str
    text: str
    way_out: str = Field("", description="what to do about it (for a blocker: how to get past it)")
    when: Condition = Condition()
    pip_requirements: list[str] = Field([], description="added to the pip steps of each hop it applies to")
    steps: list[NoteStep] = Field([], description="steps it adds to each hop it applies to")


class SchemaCheck(_Strict):
    """How detection reads the database's schema state against the installed code."""

    kind: Literal["alembic", "django"]
    versions: str | None = Field(None, description="alembic: the core's migration scripts, under site-packages")
    plugin_versions: str | None = Field(
        None, description="alembic: a plugin's scripts ({name}: from its version table)"
    )
    releases: dict[str, str] = Field({}, description="alembic: core head revision -> the releases that have it")
    argv: list[str] | None = Field(None, description="django: lists migrations, '[ ]' marking those to apply")
    env: dict[str, str] = {}

    @model_validator(mode="after")
    def _complete(self) -> SchemaCheck:
        if self.kind == "alembic" and not self.versions:
            raise ValueError("an alembic schema check needs 'versions'")
        if self.kind == "django" and not self.argv:
            raise ValueError("a django schema check needs 'argv'")
        return self


class HealthSpec(_Strict):
    """How the health check asks the site itself: its address, the pages to fetch, where it says its version."""

    url_key: str = Field(description="the config key holding the site's address (BASE_URL; site.url for ini configs)")
    page: str = Field("/", pattern=r"^/", description="the page that must answer (redirects followed on the site)")
    endpoint: str | None = Field(None, pattern=r"^/", description="the app's own health endpoint, if it has one")
    endpoint_since: VersionText | None = Field(None, description="the first release that has the endpoint")
    version_pages: list[Annotated[str, Field(pattern=r"^/")]] = Field(
        [], description="pages that show the version the app runs, tried in order until one does"
    )
    version_pattern: str | None = Field(None, description="a regex whose first group is that version")
    version_since: VersionText | None = Field(None, description="the first release whose page shows it")
    requirements: list[str] = Field(
        PIP_CHECK,
        min_length=1,
        description="a command that exits 0 when the venv's packages agree with each other ({python}, {venv}, vars)",
    )

    @model_validator(mode="after")
    def _version_pair(self) -> HealthSpec:
        if bool(self.version_pages) != (self.version_pattern is not None):
            raise ValueError("version_pages and version_pattern go together")
        if self.version_pattern is not None:
            try:
                compiled = re.compile(self.version_pattern)
            except re.error as exc:
                raise ValueError(f"version_pattern is not a regex: {exc}") from None
            if compiled.groups < 1:
                raise ValueError("version_pattern needs a group around the version")
        return self


class RollbackSpec(_Strict):
    """The commands a rollback runs in the venv: {requirements} is the recorded set, one argument a line of
    `pip freeze`; {packages} the names the upgrade added ({python}, {venv} and the vars as in steps)."""

    install: list[str] = Field(PIP_REINSTALL, min_length=1)
    remove: list[str] = Field(PIP_REMOVE, min_length=1)
    again: list[str] = Field(
        [],
        description="recipe steps run again after the packages and the database (before the services start) when "
        "the upgrade ran one of them, in the form whose `when` fits the old release: pretalx's rebuild",
    )

    @model_validator(mode="after")
    def _lists_named(self) -> RollbackSpec:
        if "{requirements}" not in self.install:
            raise ValueError("install must have {requirements} as an argument of its own")
        if "{packages}" not in self.remove:
            raise ValueError("remove must have {packages} as an argument of its own")
        return self


class Recipe(_Strict):
    """How to upgrade one product: its package, services and steps."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_-]*$")
    title: str
    package: str = Field(description="the distribution name pip knows the product by")
    plugin_prefix: str | None = Field(None, description="distributions starting with this are its plugins")
    services: dict[str, str] = Field({}, description="default unit name per service role")
    service_candidates: dict[str, list[str]] = Field(
        {}, description="unit names a role may have on a host, most likely first (systemd: looked up)"
    )
    config_format: Literal["python", "ini"] = Field(description="how the app's own config file is written")
    config_paths: list[str] = Field(
        [], description="where the app looks for its config when the instance names none ({home}: the app user's home)"
    )
    config_file_env: str | None = Field(
        None, description="the environment variable that points the app at its config file (INDICO_CONFIG)"
    )
    config_env: dict[str, str] = Field(
        {},
        description="environment variables the app reads in place of config keys: NAME = 'section.key' (ini configs)",
    )
    vars: dict[str, str] = Field({}, description="placeholders the recipe adds, with their defaults")
    required_vars: list[str] = Field([], description="placeholders every instance must set itself")
    lock_wait_seconds: float = Field(5.0, gt=0, description="silence (and idle CPU) before a lock wait is suspected")
    app_server_role: str = Field("uwsgi", description="the service whose restart drops the app's database sessions")
    hops: Literal["none", "feature"] = Field(
        "none", description="feature: never skip a feature release (YEAR.N); each is its own hop, at its newest patch"
    )
    schema_check: SchemaCheck | None = None
    health: HealthSpec | None = Field(None, description="how the health check asks the site (none: it is not asked)")
    rollback: RollbackSpec = Field(default_factory=RollbackSpec, description="how a rollback reinstalls the packages")
    steps: list[StepSpec] = Field(min_length=1)
    notes: list[ReleaseNote] = []

    @property
    def matched_config_keys(self) -> frozenset[str]:
        """The config keys whose values a step's or a note's condition reads (config_matches); no others are kept."""
        whens = [step.when for step in self.steps] + [note.when for note in self.notes]
        whens += [step.when for note in self.notes for step in note.steps]
        return frozenset(key for when in whens for key in (when.config_matches or {}))

    @model_validator(mode="after")
    def _check_steps(self) -> Recipe:
        seen: set[str] = set()
        known = BUILTIN_PLACEHOLDERS | LIST_PLACEHOLDERS | set(self.vars) | set(self.required_vars)
        for index, step in enumerate(self.steps):
            if step.id in seen:
                raise StepError(index, "id", f"duplicate step id {step.id!r}")
            seen.add(step.id)
            problem = template_problem(step, known)
            if problem:
                raise StepError(index, *problem)
        if self.health is not None:
            for template in self.health.requirements:
                try:
                    names = placeholders_in(template)
                except ValueError as exc:
                    raise ValueError(f"health.requirements: {exc}") from None
                if names - known:
                    raise ValueError(f"health.requirements: unknown placeholder {{{sorted(names - known)[0]}}}")
        unknown = [step_id for step_id in self.rollback.again if step_id not in seen]
        if unknown:
            raise ValueError(f"rollback.again: no recipe step {unknown[0]!r}")
        for note in self.notes:
            for step in note.steps:
                anchor = step.before or step.after
                if anchor not in seen:
                    raise ValueError(f"note {note.id!r}, step {step.id!r}: no recipe step {anchor!r} to place it by")
                if step.id in seen:
                    raise ValueError(f"note {note.id!r}, step {step.id!r}: a recipe step has that id already")
                problem = template_problem(step, known)
                if problem:
                    raise ValueError(f"note {note.id!r}, step {step.id!r}, field {problem[0]!r}: {problem[1]}")
        return self


def template_problem(step: StepSpec, known: AbstractSet[str]) -> tuple[str, str] | None:
    """(field, message) for the first bad placeholder in a step's argv or env, or None."""
    for field, templates in (("argv", step.argv or []), ("env", list(step.env.values()))):
        for template in templates:
            try:
                names = placeholders_in(template)
            except ValueError as exc:
                return field, str(exc)
            unknown = names - known
            if unknown:
                return field, f"unknown placeholder {{{sorted(unknown)[0]}}} in {template!r}"
            if names & LIST_PLACEHOLDERS and template not in {f"{{{n}}}" for n in LIST_PLACEHOLDERS}:
                return field, f"{template!r}: a list placeholder must stand alone"
    return None


class StepError(ValueError):
    """A recipe-level check that failed on one step's field."""

    def __init__(self, index: int, field: str, message: str):
        super().__init__(message)
        self.index = index
        self.field = field
        self.message = message
