"""Finding the secrets in an app's own config file, so they can be masked everywhere.

Indico's ``indico.conf`` is Python assignments; pretalx's ``pretalx.cfg`` is
INI.  Neither is executed: values are read with ``ast.literal_eval`` and
configparser.  What counts as secret: the password inside any URL, and any
value whose key names a password, secret or token.
"""

from __future__ import annotations

import ast
import configparser
import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

SECRET_KEY_NAME = re.compile(r"pass(word)?|secret|token|api_?key", re.IGNORECASE)


def url_passwords(value: str) -> set[str]:
    """The password in a URL, as written and decoded (a traceback may show either)."""
    try:
        password = urlsplit(value).password
    except ValueError:
        return set()
    return {password, unquote(password)} if password else set()


def _from_pairs(pairs) -> list[str]:
    found = []
    for key, value in pairs:
        if not isinstance(value, str) or not value:
            continue
        if SECRET_KEY_NAME.search(key):
            found.append(value)
        found.extend(url_passwords(value))
    return found


def python_assignments(text: str) -> list[tuple[str, object]]:
    """``NAME = literal`` pairs of a Python config file, without running it."""
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return []
    pairs = []
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                pairs.append((node.targets[0].id, ast.literal_eval(node.value)))
            except (ValueError, SyntaxError):
                continue
    return pairs


def ini_pairs(text: str) -> list[tuple[str, str]]:
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(text)
    except configparser.Error:
        return []
    return [(f"{section}.{key}", value) for section in parser.sections() for key, value in parser[section].items()]


def secrets_in_config(path: Path | None) -> list[str]:
    """The secret values in an app config file; an unreadable file yields none (detection reports it)."""
    if path is None:
        return []
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    pairs = ini_pairs(text) if re.search(r"^\s*\[[^\]]+\]\s*$", text, re.MULTILINE) else python_assignments(text)
    return _from_pairs(pairs)
