"""Probes: what is installed in the instance's venv, and what pip would install there."""

from __future__ import annotations

import json
import platform
from dataclasses import dataclass, field

import sh
from packaging.utils import canonicalize_name

from steps import Recipe

from .errors import ConfigError
from .instance import Instance

# Runs inside the instance's own venv Python: its answers are the venv's, not ours.
VENV_PROBE = """
import json, sys, importlib.metadata as md
dists = {}
for d in md.distributions():
    name = d.metadata["Name"]
    if name:
        dists[name] = d.version
print(json.dumps({"python": ".".join(map(str, sys.version_info[:3])), "dists": dists}))
"""


@dataclass
class Detection:
    installed_version: str | None
    target_version: str | None
    python_version: str
    plugins: dict[str, str] = field(default_factory=dict)
    os_family: str = "unknown"
    target_source: str = "pinned"

    @property
    def up_to_date(self) -> bool:
        return self.installed_version is not None and self.installed_version == self.target_version


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
    return json.loads(str(out))


def pip_would_install(instance: Instance, package: str) -> str | None:
    """The version of ``package`` that ``pip install -U`` would pick for this venv (None: no change)."""
    try:
        out = sh.Command(str(instance.python))(
            "-m", "pip", "install", "--dry-run", "--quiet", "--no-input", "--report", "-", "-U", package,
            _tty_out=False, _timeout=300,
        )  # fmt: skip
    except sh.ErrorReturnCode as exc:
        tail = exc.stderr.decode(errors="replace").strip().splitlines()[-3:]
        raise ConfigError(
            f"instance {instance.name!r}: pip cannot resolve {package} for this venv: {' / '.join(tail)}",
            "set 'target' in the instance to pin the version, or fix the venv's pip configuration",
        ) from None
    except sh.TimeoutException:
        raise ConfigError(
            f"instance {instance.name!r}: pip did not resolve {package} within 5 minutes (an index out of reach?)",
            "set 'target' in the instance to pin the version, or fix the venv's pip configuration",
        ) from None
    report = json.loads(str(out))
    for item in report.get("install", []):
        if canonicalize_name(item["metadata"]["name"]) == canonicalize_name(package):
            return item["metadata"]["version"]
    return None


def detect(instance: Instance, recipe: Recipe) -> Detection:
    probe = probe_venv(instance)
    dists = {canonicalize_name(name): version for name, version in probe["dists"].items()}
    installed = dists.get(canonicalize_name(recipe.package))
    plugins = {}
    if recipe.plugin_prefix:
        prefix = canonicalize_name(recipe.plugin_prefix)
        plugins = {name: v for name, v in sorted(dists.items()) if name.startswith(prefix)}
    if instance.target:
        target, source = instance.target, "pinned in the instance"
    else:
        target = pip_would_install(instance, recipe.package) or installed
        source = "what pip would install into this venv"
    return Detection(
        installed_version=installed,
        target_version=target,
        python_version=probe["python"],
        plugins=plugins,
        os_family=os_family(),
        target_source=source,
    )
