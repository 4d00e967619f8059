"""Masking secrets (database passwords, secret keys) out of text before anyone sees it."""

from __future__ import annotations

import json

MASK = "********"
MIN_SECRET_LENGTH = 4  # shorter strings would mask ordinary words


def printed_forms(secret: str) -> set[str]:
    """The ways a program may print a secret: as it is, as ``repr()`` and ``ascii()`` in
    either quote style, as the ``repr()`` of its UTF-8 bytes, and JSON-escaped; each both
    with its quotes and without (a secret inside a longer string shows only the inner part).

    A secret too short to mask has no other forms either: its quoted forms would be long
    enough to mask, and would hide ordinary words in quotes.
    """
    forms = {secret}
    if len(secret) < MIN_SECRET_LENGTH:
        return forms
    # Python quotes with ' unless the text has a ' and no ": a " added forces the ' style.
    for quoted in (repr(secret + '"'), ascii(secret + '"'), repr(secret.encode() + b'"')[1:]):
        single = quoted[1:-2]
        double = single.replace("\\'", "'").replace('"', '\\"')
        forms.update({single, f"'{single}'", double, f'"{double}"'})
    for ensure_ascii in (True, False):
        dumped = json.dumps(secret, ensure_ascii=ensure_ascii)
        forms.update({dumped, dumped[1:-1]})
    return forms


class Redactor:
    def __init__(self, secrets: list[str] | tuple[str, ...] = ()):
        unique = {s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH}
        # Longest first, so a secret that contains another is masked whole.
        self.secrets = sorted(unique, key=len, reverse=True)
        self._encoded = [s.encode() for s in self.secrets]

    def __bool__(self) -> bool:
        return bool(self.secrets)

    def mask(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, MASK)
        return text

    def mask_bytes(self, data: bytes) -> bytes:
        for secret in self._encoded:
            data = data.replace(secret, MASK.encode())
        return data

    def split_safe(self, data: bytes) -> tuple[bytes, bytes]:
        """Split unfinished output into a masked part to show now and a raw tail to hold back.

        The tail is whatever could still grow into a secret: an ending that is the
        start of one.  The cut never falls inside a secret that spans it.
        """
        cut = len(data) - self._secret_start_at_end(data)
        moved = True
        while moved:
            moved = False
            for secret in self._encoded:
                start = data.find(secret)
                while start != -1 and start < cut:
                    if cut < start + len(secret):
                        cut, moved = start, True
                    start = data.find(secret, start + 1)
        return self.mask_bytes(data[:cut]), data[cut:]

    def _secret_start_at_end(self, data: bytes) -> int:
        best = 0
        for secret in self._encoded:
            for length in range(min(len(secret) - 1, len(data)), best, -1):
                if data.endswith(secret[:length]):
                    best = length
                    break
        return best
