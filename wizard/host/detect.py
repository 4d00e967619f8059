"""Probes: what is installed in the instance's venv, and what pip would install there."""

from __future__ import annotations

import json
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import sh
from packaging.utils import canonicalize_name

from steps import Recipe
from wizard.config.dbconf import Database
from wizard.config.instance import Instance
from wizard.config.secrets import public_env, secret_env
from wizard.errors import ConfigError
from wizard.host import pipquery
from wizard.host.hostfacts import HostFacts, host_facts
from wizard.host.schema import SchemaState, alembic_state, django_state
from wizard.planning.versions import newer

if TYPE_CHECKING:
    from wizard.config.context import InstanceContext

# Runs inside the instance's own venv Python: its answers are the venv's, not ours.  It also
# runs on an old Python (2.7, 3.7) far enough to say which Python and which releases are there.
VENV_PROBE = """
import json, sys
try:
    import importlib.metadata as md
    dists = dict((d.metadata["Name"], d.version) for d in md.distributions() if d.metadata["Name"])
except ImportError:
    import pkg_resources
    dists = dict((d.project_name, d.version) for d in pkg_resources.working_set)
import sysconfig
print(json.dumps({"python": ".".join(map(str, sys.version_info[:3])), "dists": dists,
                  "site_packages": sysconfig.get_paths()["purelib"]}))
"""


@dataclass
class Detection:
    installed_version: str | None
    target_version: str | None
    python_version: str
    plugins: dict[str, str] = field(default_factory=dict)
    os_family: str = "unknown"
    pinned: bool = True  # the target is the instance's pin, not pip's answer
    newest_version: str | None = None  # the newest final release pip sees, whatever Python it needs
    newest_requires_python: str | None = None  # asked only when the newest is out of this venv's reach
    releases: list[str] = field(default_factory=list)  # releases this venv's Python may install, oldest first
    dists: dict[str, str] = field(default_factory=dict)  # every distribution in the venv (canonical names)
    host: HostFacts = field(default_factory=HostFacts)
    schema: SchemaState | None = None  # the database's migrations against the installed code
    unknowns: list[str] = field(default_factory=list)  # questions that got no answer, said as warnings

    @property
    def up_to_date(self) -> bool:
        return self.installed_version is not None and self.installed_version == self.target_version

    @property
    def target_source(self) -> str:
        return "pinned in the instance" if self.pinned else "what pip would install into this venv"

    @property
    def out_of_reach(self) -> bool:
        """A newer release exists than pip will install here (usually: it needs another Python)."""
        return newer(self.newest_version, self.target_version)


def os_family() -> str:
    """debian, rhel, suse, arch, alpine, or the distribution's own ID."""
    try:
        info = platform.freedesktop_os_release()
    except OSError:
        return "unknown"
    ids = [info.get("ID", ""), *info.get("ID_LIKE", "").split()]
    for family in ("debian", "rhel", "fedora", "suse", "arch", "alpine"):
        if family in ids:
            return "rhel" if family == "fedora" else family
    return ids[0] or "unknown"


def probe_venv(instance: Instance) -> dict:
    try:
        out = sh.Command(str(instance.python))("-I", "-c", VENV_PROBE, _tty_out=False, _timeout=60)
    except sh.ErrorReturnCode as exc:
        raise ConfigError(
            f"instance {instance.name!r}: the venv's Python failed: {exc.stderr.decode(errors='replace')[-300:]}"
        ) from None
    except sh.TimeoutException:
        raise ConfigError(f"instance {instance.name!r}: the venv's Python did not answer within 60 s") from None
    except (sh.CommandNotFound, PermissionError, OSError) as exc:
        raise ConfigError(f"instance {instance.name!r}: cannot run {instance.python}: {exc}") from None
    probe = json.loads(str(out))
    if not isinstance(probe, dict):
        raise ConfigError(f"instance {instance.name!r}: the venv's Python answered {str(out)[:300]!r}")
    return probe


def schema_of(instance: Instance, recipe: Recipe, site_packages: Path, db: Database | None) -> SchemaState | None:
    check = recipe.schema_check
    if check is None:
        return None
    if check.kind == "django":
        values = {"python": str(instance.python), "venv": str(instance.venv), "config": str(instance.config or "")}
        rendered = {key: value.format_map(values) for key, value in check.env.items()}
        public = {**public_env(instance.env), **{key: value for key, value in rendered.items() if value}}
        argv = [part.format_map(values) for part in check.argv or []]
        return django_state(argv, public, secret_env(instance.env), instance.user)
    if db is None or db.kind not in ("postgresql", "sqlite"):
        return SchemaState("not read: the database is not known from the app's config", "warning")
    return alembic_state(check, db, site_packages)


def detect(context: InstanceContext) -> Detection:
    instance, recipe = context.instance, context.recipe
    probe = probe_venv(instance)
    dists: dict[str, str] = {canonicalize_name(name): version for name, version in probe["dists"].items()}
    installed = dists.get(canonicalize_name(recipe.package))
    plugins: dict[str, str] = {}
    if recipe.plugin_prefix:
        prefix = canonicalize_name(recipe.plugin_prefix)
        plugins = {name: v for name, v in sorted(dists.items()) if name.startswith(prefix)}
    found = Detection(
        installed_version=installed,
        target_version=instance.target,
        python_version=probe["python"],
        plugins=plugins,
        os_family=os_family(),
        dists=dists,
        host=host_facts(context),
    )
    if installed is None:
        return found
    found.schema = schema_of(instance, recipe, Path(probe["site_packages"]), found.host.db)
    if not instance.target:
        found.target_version = pipquery.would_install(instance, recipe.package, list(plugins)) or installed
        found.pinned = False
    if instance.target and recipe.hops != "feature":
        return found  # the operator chose the version: the index is not asked
    try:
        found.releases = pipquery.releases(instance, recipe.package)
        everything = pipquery.releases(instance, recipe.package, any_python=True)
        found.newest_version = everything[-1] if everything else None
        if found.out_of_reach and found.newest_version is not None:
            found.newest_requires_python = pipquery.requires_python(instance, recipe.package, found.newest_version)
    except pipquery.PipQueryError as exc:
        if "No matching distribution" in str(exc):
            # Not even the installed release is there: pip's "nothing to do" meant "nothing seen".
            raise ConfigError(
                f"instance {instance.name!r}: pip cannot resolve {recipe.package} for this venv: "
                f"its indexes offer no release of it at all ({exc})",
                pipquery.PIP_HINT,
            ) from None
        found.unknowns.append(f"the releases of {recipe.package} could not be listed: {exc}")
    return found
