"""What a health check found: one finding per question, each with its evidence and the way out.

Kept in the session (``Session.health``), so the done screen, ``status`` and a
later report show the last check without asking the site again.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, Field

Outcome = Literal["ok", "failed", "unknown"]


class Finding(BaseModel):
    """One question the check asked, and the answer."""

    kind: Literal["code", "requirements", "schema", "service", "site", "endpoint", "running"]
    title: str = Field(description="the answer in one line: 'indico 3.2.9 installed (the target)'")
    outcome: Outcome
    evidence: str = Field("", description="what was seen: a command's output, an HTTP status, a process's start")
    way_out: str = Field("", description="what to do when it failed or could not be told")


class Health(BaseModel):
    """The findings of one health check, in the order they were asked."""

    at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    findings: list[Finding]

    @property
    def failed(self) -> list[Finding]:
        return [f for f in self.findings if f.outcome == "failed"]

    @property
    def unknown(self) -> list[Finding]:
        return [f for f in self.findings if f.outcome == "unknown"]

    @property
    def healthy(self) -> bool:
        """Nothing failed (questions that got no answer are said, and do not fail the check)."""
        return not self.failed

    def verdict(self) -> str:
        """One line: healthy, healthy as far as could be told, or what failed."""
        if self.failed:
            return f"NOT healthy: {len(self.failed)} of {len(self.findings)} checks failed"
        if self.unknown:
            return f"healthy as far as could be told: {len(self.unknown)} of {len(self.findings)} checks had no answer"
        return f"healthy: all {len(self.findings)} checks passed"
