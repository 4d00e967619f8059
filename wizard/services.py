"""Which unit each service role really is on this host: configured, found, or (said so) assumed."""

from __future__ import annotations

from dataclasses import dataclass

import sh

from steps import Recipe

from .instance import Instance


@dataclass(frozen=True)
class Unit:
    role: str
    name: str | None
    how: str  # "configured", "none here" (configured empty), "found" (looked up), "default" (the recipe's), "assumed" (not found)


def installed_systemd_units(instance: Instance, candidates: list[str]) -> set[str]:
    """Which of these unit files exist, asking systemctl the way the instance calls it (works offline)."""
    manager = instance.service_manager
    prefix = [part for part in manager if "{action}" not in part and "{service}" not in part]
    try:
        out = sh.Command(prefix[0])(*prefix[1:], "list-unit-files", "--no-legend", "--plain", *candidates,
                                    _tty_out=False, _timeout=15, _ok_code=[0, 1])  # fmt: skip
    except (sh.ErrorReturnCode, sh.CommandNotFound, sh.TimeoutException, OSError):
        return set()
    return {line.split()[0] for line in str(out).splitlines() if line.strip()}


def resolve_units(instance: Instance, recipe: Recipe) -> list[Unit]:
    units = []
    is_systemd = instance.service_manager[0].endswith("systemctl")
    for role in sorted(set(recipe.services) | set(instance.services) | set(recipe.service_candidates)):
        if role in instance.services:
            units.append(Unit(role, instance.services[role] or None, "configured" if instance.services[role] else "none here"))
            continue
        candidates = recipe.service_candidates.get(role, [])
        default = recipe.services.get(role)
        if candidates and is_systemd:
            found = installed_systemd_units(instance, candidates)
            match = next((unit for unit in candidates if unit in found), None)
            units.append(Unit(role, match, "found") if match else Unit(role, default, "assumed"))
        else:
            units.append(Unit(role, default, "default" if default else "unknown"))
    return units
