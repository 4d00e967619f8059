"""The health check as the operator reads it: the verdict, then each finding with its evidence and way out."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text

from wizard.health.result import Finding, Health, Outcome
from wizard.views.rows import Look

OUTCOME: dict[Outcome, Look] = {
    "ok": Look("ok", "green"),
    "failed": Look("FAILED", "bold red"),
    "unknown": Look("?", "yellow"),
}
MARK_WIDTH = 7  # "FAILED " — the titles line up after the marks


def verdict_text(health: Health) -> Text:
    style = OUTCOME["failed"].style if health.failed else OUTCOME["unknown" if health.unknown else "ok"].style
    when = health.at.astimezone().strftime("%Y-%m-%d %H:%M:%S")
    return Text.assemble(("health check: ", "bold"), (health.verdict(), style), (f" ({when})", "dim"))


def finding_lines(finding: Finding, evidence_of_ok: bool = False) -> list[Text]:
    """The mark and title; under it the evidence (of an ok finding only when asked) and the way out."""
    look = OUTCOME[finding.outcome]
    lines = [Text.assemble((look.word.ljust(MARK_WIDTH), look.style), finding.title)]
    indent = " " * MARK_WIDTH
    if finding.evidence and (finding.outcome != "ok" or evidence_of_ok):
        lines.append(Text.assemble(indent, (finding.evidence, "dim")))
    if finding.way_out and finding.outcome != "ok":
        lines.append(Text.assemble(indent, ("what to do: ", "bold"), finding.way_out))
    return lines


def health_lines(health: Health, evidence_of_ok: bool = False) -> list[Text]:
    """The verdict, then every finding: what ``check``, ``run --yes`` and the done screen show."""
    lines = [verdict_text(health)]
    for finding in health.findings:
        lines.extend(finding_lines(finding, evidence_of_ok))
    return lines


def health_grid(health: Health, evidence_of_ok: bool = False) -> Table:
    """The findings as a grid, failures first: the mark in its column, title, evidence and way out wrapping beside it."""
    grid = Table.grid(padding=(0, 1))
    grid.add_column(width=MARK_WIDTH - 1, no_wrap=True)
    grid.add_column(overflow="fold")
    first = {"failed": 0, "unknown": 1, "ok": 2}
    for finding in sorted(health.findings, key=lambda f: first[f.outcome]):  # what needs the operator on top
        look = OUTCOME[finding.outcome]
        body = Text(finding.title)
        if finding.evidence and (finding.outcome != "ok" or evidence_of_ok):
            body.append("\n" + finding.evidence, style="dim")
        if finding.way_out and finding.outcome != "ok":
            body.append("\nwhat to do: ", style="bold")
            body.append(finding.way_out)
        grid.add_row(Text(look.word, style=look.style), body)
    return grid
