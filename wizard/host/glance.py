"""A quick look at an instance for the host table: the release installed and where its database stands.

No pip, no service manager: the venv's Python lists its distributions, and the schema is read as detection
reads it. Anything that cannot be told is said in a few words, never raised.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from packaging.utils import canonicalize_name

from wizard.config.context import InstanceContext
from wizard.config.instance import Instance
from wizard.errors import WizardError
from wizard.host.detect import probe_venv, schema_of
from wizard.host.schema import Level


@dataclass(frozen=True)
class Glance:
    version: str
    database: str
    state: Level = "ok"  # as the schema's state: ok, warning (behind, or not read), blocker (off its history)


def glance(instance: Instance) -> Glance:
    try:
        context = InstanceContext.open(instance)
        probe = probe_venv(instance)
    except WizardError:  # the instance's own screens say why, in full, once it is picked
        return Glance("?", "not read", "warning")
    dists = {canonicalize_name(name): version for name, version in probe["dists"].items()}
    version = dists.get(canonicalize_name(context.recipe.package), "not installed")
    schema = schema_of(instance, context.recipe, Path(probe["site_packages"]), context.database)
    if schema is None:
        return Glance(version, "")
    return Glance(version, schema.short(), schema.state)
