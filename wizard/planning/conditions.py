"""Whether a step or a release note belongs to this upgrade: its ``when``, checked against what was found.

A condition that cannot be checked here (the database server did not answer,
no config was readable) is neither true nor false: the caller is told which
ones, so a note can still be shown, with that said.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from packaging.utils import canonicalize_name

from steps import Recipe
from steps.models import Condition
from wizard.config.instance import Instance
from wizard.host.detect import Detection
from wizard.planning.versions import matches

# Per server flavour: the database kind it serves, and its name for the operator.
SERVERS = {
    "postgresql": ("postgresql", "PostgreSQL"),
    "mysql": ("mysql", "MySQL/MariaDB"),
    "mariadb": ("mysql", "MySQL/MariaDB"),
}


@dataclass
class Outcome:
    holds: bool
    unchecked: list[str] = field(default_factory=list)  # the parts that could not be checked (taken as true)


def check(when: Condition, recipe: Recipe, instance: Instance, found: Detection) -> Outcome:
    if when.plugins_installed is not None and bool(found.plugins) != when.plugins_installed:
        return Outcome(False)
    if when.os_family is not None and found.os_family not in when.os_family:
        return Outcome(False)
    if when.service is not None and not instance.service_unit(recipe, when.service):
        return Outcome(False)
    for spec, version in ((when.installed, found.installed_version), (when.target, found.target_version),
                          (when.python, found.python_version)):  # fmt: skip
        if spec is not None and not matches(spec, version):
            return Outcome(False)
    for name, spec in (when.dists or {}).items():
        if not matches(spec, found.dists.get(canonicalize_name(name))):
            return Outcome(False)
    unchecked: list[str] = []
    host = found.host
    if when.database is not None:
        if host.database is None:
            unchecked.append("the database in use is not known")
        elif host.database not in when.database:
            return Outcome(False)
    for flavour, spec in (("postgresql", when.postgres), ("mysql", when.mysql), ("mariadb", when.mariadb)):
        if spec is None:
            continue
        kind, name = SERVERS[flavour]
        if host.database not in (None, kind):
            return Outcome(False)
        server = host.server()
        if server is None:
            unchecked.append(f"the {name} server's version is not known")
        elif server[0] != flavour or not matches(spec, server[1]):
            return Outcome(False)
    if when.config_set is not None or when.config_unset is not None:
        if not host.config_keys:
            unchecked.append("the app's config could not be read")
        elif when.config_set is not None and not host.config_keys & set(when.config_set):
            return Outcome(False)
        elif when.config_unset is not None and host.config_keys & set(when.config_unset):
            return Outcome(False)
    if when.config_matches is not None:
        if not host.config_keys:
            unchecked.append("the app's config could not be read")
        else:
            for key, pattern in when.config_matches.items():
                value = host.config_values.get(key)
                if value is None or not re.search(pattern, value):
                    return Outcome(False)
    if when.web_server is not None:
        if not host.web_servers:
            unchecked.append("no web server was found on this host")
        elif not set(host.web_servers) & set(when.web_server):
            return Outcome(False)
    return Outcome(True, unchecked)
