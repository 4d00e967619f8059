"""Where a string literal's characters are in its Python source, so a secret can be masked as it is written.

A traceback quotes the config's source line: ``SECRET_KEY = 'ab\\'c'`` shows the
secret ``ab'c`` as ``ab\\'c``.  These helpers map each character of the value
back to the source text that writes it (escapes, raw strings, literals split
over several lines).
"""

from __future__ import annotations

import ast
import io
import string
import tokenize
import warnings

from wizard.config.redact import MIN_SECRET_LENGTH


def written_forms(segment: str | None, value: str, secrets: list[str]) -> list[str]:
    """How the secrets in a string literal's value are written in its source ``segment``.

    The whole value's literal, with its quotes (and prefix) and without; for a
    secret inside the value (a URL's password), the source text that writes it.
    """
    secrets = [secret for secret in secrets if len(secret) >= MIN_SECRET_LENGTH]
    if not segment or not secrets:
        return []
    chars = _literal_chars(segment)
    if chars is None or "".join(char for char, _, _ in chars) != value:
        return [segment] if value in secrets else []
    written = set()
    if value in secrets:
        written.add(segment)
    for secret in secrets:
        at = value.find(secret)
        while at != -1:
            written.add(segment[chars[at][1] : chars[at + len(secret) - 1][2]])
            at = value.find(secret, at + 1)
    # A traceback shows one source line at a time: a literal spanning lines is masked line by line too.
    for form in list(written):
        if "\n" in form:
            written.update(line.strip() for line in form.splitlines())
    return sorted(form for form in written if len(form) >= MIN_SECRET_LENGTH)


def _literal_chars(segment: str) -> list[tuple[str, int, int]] | None:
    """Each character of the string that the literal(s) in ``segment`` stand for, with the span of source writing it.

    ``None`` when the segment is not plain string literals (bytes, f-strings).
    An escape may stand for several characters (``\\d`` for itself): each gets the escape's span.
    """
    wrapped = f"({segment})"  # inside brackets, literals on several lines are one expression
    line_starts = [0]
    for line in wrapped.splitlines(keepends=True):
        line_starts.append(line_starts[-1] + len(line))
    chars: list[tuple[str, int, int]] = []
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(wrapped).readline))
    except (tokenize.TokenError, SyntaxError):
        return None
    for token in tokens:
        if token.type in (tokenize.NL, tokenize.NEWLINE, tokenize.COMMENT, tokenize.ENDMARKER):
            continue
        if token.type == tokenize.OP and token.string in ("(", ")"):
            continue
        if token.type != tokenize.STRING:
            return None
        start = line_starts[token.start[0] - 1] + token.start[1] - 1  # -1: the "(" added
        quoted = token.string.lstrip(string.ascii_letters)  # the prefix (r, b, f, u...) is letters before a quote
        prefix = token.string[: len(token.string) - len(quoted)].lower()
        if "b" in prefix or "f" in prefix:
            return None
        quote = token.string[len(prefix) : len(prefix) + 3]
        quote = quote if quote in ('"""', "'''") else quote[0]
        body_start = start + len(prefix) + len(quote)
        body = token.string[len(prefix) + len(quote) : len(token.string) - len(quote)]
        chars.extend(_body_chars(body, body_start, raw="r" in prefix))
    return chars


def _body_chars(body: str, offset: int, raw: bool) -> list[tuple[str, int, int]]:
    if raw:
        return [(char, offset + i, offset + i + 1) for i, char in enumerate(body)]
    chars: list[tuple[str, int, int]] = []
    i = 0
    while i < len(body):
        end = _escape_end(body, i) if body[i] == "\\" else i + 1
        if end == i + 1:
            decoded = body[i]
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # an unknown escape such as \d stays as written
                decoded = ast.literal_eval(f'"{body[i:end]}"')
        chars.extend((char, offset + i, offset + end) for char in decoded)
        i = end
    return chars


def _escape_end(body: str, i: int) -> int:
    """Where the backslash escape starting at ``body[i]`` ends."""
    kind = body[i + 1 : i + 2]
    if kind in ("x", "u", "U"):
        return i + 2 + {"x": 2, "u": 4, "U": 8}[kind]
    if kind == "N":
        close = body.find("}", i)
        return close + 1 if close != -1 else len(body)
    if kind and kind in "01234567":
        end = i + 2
        while end < min(i + 4, len(body)) and body[end] in "01234567":
            end += 1
        return end
    return min(i + 2, len(body))
