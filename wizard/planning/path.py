"""The path from the installed release to the target: one hop, or one per feature release."""

from __future__ import annotations

from packaging.version import InvalidVersion, Version


def feature_line(version: Version) -> tuple[int, int]:
    """2025.1.0 and 2025.1.3 share the feature release (2025, 1)."""
    parts = (*version.release, 0)
    return parts[0], parts[1]


def hops(installed: str, target: str, policy: str, releases: list[str]) -> list[str]:
    """The versions to install one after the other; the last is always the target.

    ``feature``: every feature release between the two is a hop of its own, at
    the newest patch release of it that ``releases`` offers (and not past the target).
    """
    try:
        start, end = Version(installed), Version(target)
    except InvalidVersion:
        return [target]
    if end <= start:
        return []
    if policy != "feature":
        return [target]
    newest_per_line: dict[tuple[int, int], Version] = {}
    for text in releases:
        try:
            version = Version(text)
        except InvalidVersion:
            continue
        if version.is_prerelease or not (start < version < end):
            continue
        line = feature_line(version)
        if feature_line(start) < line < feature_line(end) and version > newest_per_line.get(line, Version("0")):
            newest_per_line[line] = version
    return [str(newest_per_line[line]) for line in sorted(newest_per_line)] + [target]
