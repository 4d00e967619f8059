"""Asking the instance's own pip: what it would install, and which releases it can see.

Every question goes to ``<venv>/bin/python -m pip``, so the venv's Python
version, and the indexes and mirrors pip is configured with, decide the
answers, exactly as they will decide the real install.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import sh
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name

from wizard.config.instance import Instance
from wizard.errors import ConfigError
from wizard.planning.versions import sort_key

PIP_HINT = "set 'target' in the instance to pin the version, or fix the venv's pip configuration"


class PipQueryError(Exception):
    """pip could not answer (too old for the question, index out of reach): say so and go on without it."""


@dataclass(frozen=True)
class Resolution:
    """What ``pip install --dry-run`` would do: the version it picks per distribution."""

    install: dict[str, str]
    requires_python: dict[str, str | None]

    def version_of(self, package: str) -> str | None:
        return self.install.get(canonicalize_name(package))


def _pip(instance: Instance, *args: str, timeout: float) -> str:
    env = {**os.environ, **instance.env, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"}
    try:
        out = sh.Command(str(instance.python))("-m", "pip", *args, _env=env, _tty_out=False, _timeout=timeout)
    except sh.ErrorReturnCode as exc:
        tail = [line for line in exc.stderr.decode(errors="replace").splitlines() if not line.startswith("WARNING")]
        raise PipQueryError(" / ".join(tail[-3:]) or f"pip exited with {exc.exit_code}") from None
    except sh.TimeoutException:
        raise PipQueryError(f"pip gave no answer within {timeout:.0f} s (an index out of reach?)") from None
    except (sh.CommandNotFound, sh.ForkException, OSError) as exc:
        raise PipQueryError(f"cannot run {instance.python}: {exc}") from None
    return str(out)


def dry_run(instance: Instance, requirements: list[str], *, metadata_only: bool = False) -> Resolution:
    """``pip install --dry-run --report`` for these requirements.

    ``metadata_only``: just these distributions, whatever the venv's Python, even if
    already installed (to read a release's metadata; nothing is resolved).
    """
    args = ["install", "--dry-run", "--quiet", "--report", "-", "-U"]
    if metadata_only:
        args += ["--no-deps", "--ignore-requires-python", "--force-reinstall"]
    out = _pip(instance, *args, *requirements, timeout=600)
    try:
        report = json.loads(out)
        items = [item["metadata"] for item in report.get("install", [])]
        return Resolution(
            install={canonicalize_name(m["name"]): m["version"] for m in items},
            requires_python={canonicalize_name(m["name"]): m.get("requires_python") for m in items},
        )
    except (ValueError, KeyError, TypeError):
        raise PipQueryError("pip's report could not be read (pip older than 22.2?)") from None


def check_installable(instance: Instance, requirements: list[str]) -> None:
    """PipQueryError (pip's own words) unless pip finds every one of these exact releases where it looks now."""
    _pip(instance, "install", "--dry-run", "--quiet", "--no-deps", *requirements, timeout=600)


def would_install(instance: Instance, package: str, plugins: list[str]) -> str | None:
    """The version of ``package`` pip would move this venv to (None: it would leave it as it is)."""
    try:
        return dry_run(instance, [package, *plugins]).version_of(package)
    except PipQueryError as exc:
        raise ConfigError(
            f"instance {instance.name!r}: pip cannot resolve {package} for this venv: {exc}", PIP_HINT
        ) from None


def releases(instance: Instance, package: str, *, any_python: bool = False) -> list[str]:
    """Final releases of ``package`` the venv's pip sees, oldest first (only those its Python may install, unless ``any_python``)."""
    args = ["index", "versions", package] + (["--ignore-requires-python"] if any_python else [])
    out = _pip(instance, *args, timeout=120)
    for line in out.splitlines():
        if line.startswith("Available versions:"):
            found = [v.strip() for v in line.split(":", 1)[1].split(",") if v.strip()]
            return sorted(found, key=sort_key)
    raise PipQueryError(f"pip lists no releases of {package}")


def requires_python(instance: Instance, package: str, version: str) -> str | None:
    """The Requires-Python of one release (asked without installing anything, whatever the venv's Python)."""
    resolution = dry_run(instance, [f"{package}=={version}"], metadata_only=True)
    spec = resolution.requires_python.get(canonicalize_name(package))
    return readable_specifier(spec) if spec else None


def readable_specifier(spec: str) -> str:
    """'<3.13,>=3.12.2' as people write it: lower bounds first."""
    try:
        parts = list(SpecifierSet(spec))
    except InvalidSpecifier:
        return spec
    parts.sort(key=lambda s: (not s.operator.startswith(">"), s.operator, s.version))
    return ",".join(str(part) for part in parts)


def freeze(instance: Instance) -> tuple[str, list[str]]:
    """pip's own version and ``pip freeze --all``: the venv's exact package set, as pip can install it again."""
    version = _pip(instance, "--version", timeout=60).split()
    lines = _pip(instance, "freeze", "--all", timeout=120).splitlines()
    return (version[1] if len(version) > 1 else "?"), [line for line in lines if line.strip()]
