"""Version questions that tolerate text which is not a version (a local build, a typo): the answer is then no."""

from __future__ import annotations

from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version


def parsed(text: str | None) -> Version | None:
    try:
        return Version(text) if text is not None else None
    except InvalidVersion:
        return None


def matches(spec: str, version: str | None) -> bool:
    """Does ``version`` satisfy ``spec`` (pre-releases included)?"""
    found = parsed(version)
    return found is not None and found in SpecifierSet(spec, prereleases=True)


def newer(version: str | None, than: str | None) -> bool:
    first, second = parsed(version), parsed(than)
    return first is not None and second is not None and first > second


def crosses(version: str, installed: str | None, target: str | None) -> bool:
    """Does going from ``installed`` to ``target`` pass the release ``version``?"""
    start, passed, end = parsed(installed), parsed(version), parsed(target)
    return start is not None and passed is not None and end is not None and start < passed <= end


def sort_key(version: str) -> tuple[int, Version | str]:
    """Oldest first; text that is not a version sorts before every release."""
    found = parsed(version)
    return (1, found) if found is not None else (0, version)
