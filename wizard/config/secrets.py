"""Finding the secrets in an app's own config file, so they can be masked everywhere.

Indico's ``indico.conf`` is Python assignments; pretalx's ``pretalx.cfg`` is
INI (the recipe says which).  Neither is executed: values are read with
``ast.literal_eval`` and configparser.  What counts as secret: the password inside any URL, and any
value whose key names a password, secret or token.

A secret is masked in every form it may be printed in, not only its value: as written
in the config (a traceback quotes the source line: ``'ab\\'c'`` for ``ab'c``), its
``repr()``, JSON and so on (see ``redact.printed_forms``).
"""

from __future__ import annotations

import ast
import configparser
import pwd
import re
import warnings
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import unquote, urlsplit

from steps import Recipe
from wizard.config.instance import Instance
from wizard.config.literals import written_forms
from wizard.config.redact import MIN_SECRET_LENGTH, printed_forms
from wizard.errors import ConfigError

SECRET_KEY_NAME = re.compile(r"pass(word)?|secret|token|api_?key", re.IGNORECASE)


def url_passwords(value: str) -> set[str]:
    """The password in a URL, as written and decoded (a traceback may show either)."""
    try:
        password = urlsplit(value).password
    except ValueError:
        return set()
    return {password, unquote(password)} if password else set()


def _from_pairs(pairs: Iterable[tuple[str, object]]) -> list[str]:
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
    pairs = []
    for name, node, _source in _assignments(text):
        try:
            pairs.append((name, ast.literal_eval(node)))
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            continue
    return pairs


def _assignments(text: str, line_by_line: bool = False) -> list[tuple[str, ast.expr, str]]:
    """``NAME = expression`` statements: the name, the expression and the source text its positions refer to.

    A file that does not parse gives nothing, or with ``line_by_line`` the
    assignments on the lines that parse on their own (to mask what can be found).
    """
    try:
        chunks = [(text, _parse(text))]
    except (SyntaxError, ValueError):
        if not line_by_line:
            return []
        chunks = []
        for line in text.splitlines():
            try:
                chunks.append((line, _parse(line)))
            except (SyntaxError, ValueError):
                continue
    found = []
    for source, tree in chunks:
        for node in tree.body:
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                found.append((node.targets[0].id, node.value, source))
    return found


def _parse(text: str) -> ast.Module:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # an invalid escape (``'\d'``) warns, on the wizard's screen
        return ast.parse(text)


def _python_secrets(text: str) -> list[str]:
    """The secrets of a Python config, each in its printed forms and as written in the file."""
    found: list[str] = []
    for name, node, source in _assignments(text, line_by_line=True):
        try:
            value = ast.literal_eval(node)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            continue
        secrets = _from_pairs([(name, value)])
        if not secrets:
            continue
        for secret in secrets:
            found.extend(printed_forms(secret))
        found.extend(written_forms(ast.get_source_segment(source, node), value, secrets))
    return found


def ini_pairs(text: str) -> list[tuple[str, str]]:
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(text)
    except configparser.Error:
        return []
    return [(f"{section}.{key}", value) for section in parser.sections() for key, value in parser[section].items()]


def _ini_secrets(text: str) -> list[str]:
    """The secrets of an INI config in their printed forms.

    configparser keeps a value as written (no unquoting, no escapes; ``%`` stays
    as it is without interpolation), so the text as written is the value, line by
    line for a value continued on indented lines.  Read leniently, so a repeated key
    or a stray line does not hide the rest.
    """
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read_string(text)
    except configparser.MissingSectionHeaderError:
        return []
    except configparser.ParsingError:
        pass  # raised once the whole file is read: what could be read is kept
    except configparser.Error:
        return []
    pairs = [(f"{section}.{key}", value) for section in parser.sections() for key, value in parser[section].items()]
    found: list[str] = []
    for secret in _from_pairs(pairs):
        found.extend(_with_forms(secret))
        if "%%" in secret:  # the value an app interpolating ``%`` would use
            found.extend(_with_forms(secret.replace("%%", "%")))
    return found


def _with_forms(secret: str) -> set[str]:
    forms = printed_forms(secret)
    if "\n" in secret and len(secret) >= MIN_SECRET_LENGTH:
        forms.update(line.strip() for line in secret.splitlines() if len(line.strip()) >= MIN_SECRET_LENGTH)
    return forms


def ini_values(texts: list[str], overrides: dict[str, str] | None = None) -> dict[str, str]:
    """An INI-configured app's settings as it sees them: its files in order (later ones win), then its environment."""
    values: dict[str, str] = {}
    for text in texts:
        values.update(ini_pairs(text))
    values.update(overrides or {})
    return values


def config_overrides(recipe: Recipe, instance: Instance) -> dict[str, str]:
    """The config keys the instance's environment sets (the recipe's config_env), as ``section.key: value``."""
    return {
        recipe.config_env[name]: value for name, value in instance.env.items() if name in recipe.config_env and value
    }


def secret_env(env: dict[str, str]) -> dict[str, str]:
    """The instance's environment entries that hold a secret (PRETALX_DB_PASS, an index URL with a password)."""
    return {key: value for key, value in env.items() if _from_pairs([(key, value)])}


def public_env(env: dict[str, str]) -> dict[str, str]:
    """The rest: what may be saved in the session, or put on a command line (``sudo -n -u … env NAME=value``)."""
    secret = secret_env(env)
    return {key: value for key, value in env.items() if key not in secret}


def secrets_in_text(text: str, config_format: str) -> list[str]:
    """Every form of every secret in a config file's text, to give to a ``Redactor``."""
    return _python_secrets(text) if config_format == "python" else _ini_secrets(text)


def config_files(recipe: Recipe, instance: Instance) -> list[Path]:
    """The app config files the instance uses: the one it names, else the app's own lookup."""
    if instance.config is not None:
        return [instance.config]
    home = _home(instance.user)
    candidates = [Path(template.replace("{home}", home)) for template in recipe.config_paths]
    return [path for path in candidates if path.exists()]


def config_texts(recipe: Recipe, instance: Instance) -> list[str]:
    """The text of each config file the instance uses that can be read (the others are skipped)."""
    texts = []
    for path in config_files(recipe, instance):
        try:
            texts.append(path.read_text(encoding="utf-8", errors="replace"))
        except OSError:
            continue
    return texts


def secrets_for(recipe: Recipe, instance: Instance) -> list[str]:
    """Every secret in the instance's config files and its environment; an unreadable file stops us (we would mask nothing)."""
    found: list[str] = []
    for path in config_files(recipe, instance):
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            continue  # check_paths reports a missing configured file where it matters
        except OSError as exc:
            raise ConfigError(
                f"instance {instance.name!r}: cannot read {path} ({exc.strerror}), so its passwords could not be masked",
                "run the wizard as a user that can read the app's config (usually root)",
            ) from None
        found.extend(secrets_in_text(text, recipe.config_format))
    return found + env_secrets(instance.env)


def env_secrets(env: dict[str, str]) -> list[str]:
    """Every form of the secrets in an instance's environment (passwords, tokens, index URLs with a password)."""
    found: list[str] = []
    for secret in _from_pairs(env.items()):
        found.extend(_with_forms(secret))
    return found


def _home(user: str | None) -> str:
    try:
        return pwd.getpwnam(user).pw_dir if user else str(Path.home())
    except KeyError:
        return str(Path.home())
