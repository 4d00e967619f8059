"""Masking secrets (database passwords, secret keys) out of text before anyone sees it."""

from __future__ import annotations

MASK = "********"
MIN_SECRET_LENGTH = 4  # shorter strings would mask ordinary words


class Redactor:
    def __init__(self, secrets: list[str] | tuple[str, ...] = ()):
        unique = {s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH}
        # Longest first, so a secret that contains another is masked whole.
        self.secrets = sorted(unique, key=len, reverse=True)
        self._encoded = [s.encode() for s in self.secrets]
        self.longest = max((len(b) for b in self._encoded), default=0)

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
        """Split unfinished output into a part safe to show now and a tail to hold back.

        The tail is one byte shorter than the longest secret, so a secret whose
        first half is shown now cannot be completed unseen by the next chunk.
        """
        keep = max(self.longest - 1, 0)
        if keep == 0:
            return data, b""
        if len(data) <= keep:
            return b"", data
        return data[:-keep], data[-keep:]
