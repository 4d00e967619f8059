"""The report archive: the session, the plan, what was found, the logs, the health check and the host, masked.

One ``.tar.gz`` holding a folder of text files (``summary.txt`` first).  Every file goes
through the instance's Redactor on its way in, so a password, secret key or token
never leaves the host in any form the wizard knows it can be printed in (as written
in the app's config, repr'd, JSON-escaped...).  The archive is written beside the
instance's state (``reports/``, 0700) unless the operator names a file, as a temp
file renamed into place: a full disk leaves no half archive.
"""

from __future__ import annotations

import io
import os
import platform
import shlex
import sys
import tarfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from wizard import __version__
from wizard.config.redact import Redactor
from wizard.config.secrets import public_env
from wizard.errors import WizardError
from wizard.host import pipquery
from wizard.host.detect import os_family, probe_venv, schema_of
from wizard.host.hostfacts import host_facts
from wizard.session.state import Session
from wizard.views.health import health_lines
from wizard.views.rows import note_lines, step_rows, where_lines, where_rows
from wizard.views.sizes import human_bytes

if TYPE_CHECKING:
    from wizard.config.context import InstanceContext

FILE_MODE = 0o600
SECRET_FILES = (".env",)  # a step's secrets file (normally gone within a second of the launch): never taken


@dataclass(frozen=True)
class Written:
    path: Path
    size: int
    files: list[str]


def default_path(reports: Path, instance: str, at: datetime) -> Path:
    return reports / f"upgrade-wizard-report-{instance}-{at.strftime('%Y%m%d-%H%M%S')}.tar.gz"


def write_report(
    context: InstanceContext,
    session: Session | None,
    session_path: Path,
    target: Path,
    progress: Callable[[str], None] = lambda _: None,
) -> Written:
    """Gather, mask and write the archive to ``target`` (its folder must exist)."""
    redactor = Redactor(context.secrets)
    folder = target.name.removesuffix(".tar.gz")
    members = list(_members(context, session, session_path, progress))
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, FILE_MODE)
        with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
            for name, data in members:
                masked = redactor.mask_bytes(data)
                info = tarfile.TarInfo(f"{folder}/{name}")
                info.size, info.mode, info.mtime = len(masked), FILE_MODE, int(time.time())
                tar.addfile(info, io.BytesIO(masked))
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(tmp, target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise WizardError(f"the report could not be written to {target}: {exc.strerror or exc}",
                          "name another place with --output (a folder with room, writable by this user)") from None  # fmt: skip
    return Written(target, target.stat().st_size, [name for name, _ in members])


def _text(lines: list[str]) -> bytes:
    return ("\n".join(lines) + "\n").encode()


def _members(
    context: InstanceContext, session: Session | None, session_path: Path, progress: Callable[[str], None]
) -> Iterator[tuple[str, bytes]]:
    progress("the summary")
    yield "summary.txt", _text(summary_lines(context, session))
    if session is not None:
        yield "session.json", session.model_dump_json(indent=2).encode()
        yield "plan.txt", _text(plan_lines(session))
        if session.packages_before is not None:
            yield "packages-before.txt", _text(session.packages_before.requirements)
        if session.health is not None:
            yield "health.txt", _text([line.plain for line in health_lines(session.health, evidence_of_ok=True)])
    progress("the host and the venv as they are now")
    yield "host.txt", _text(host_lines(context))
    yield "found-now.txt", _text(found_lines(context))
    try:
        pip, frozen = pipquery.freeze(context.instance)
        yield "packages-now.txt", _text([f"# pip {pip}", *frozen])
    except pipquery.PipQueryError as exc:
        yield "packages-now.txt", _text([f"# pip freeze could not run: {exc}"])
    for path, text in zip(context.read_from, context.config_texts, strict=False):
        yield f"config/{path.name}", text.encode()  # masked as every file: the secrets as written in it
    if session is not None:
        progress("the logs")
        runs = session_path.parent / "runs" / session.id
        for log in sorted(runs.glob("*")) if runs.is_dir() else []:
            if log.is_file() and not log.is_symlink() and not log.name.endswith(SECRET_FILES):
                yield f"logs/{log.name}", log.read_bytes()


def summary_lines(context: InstanceContext, session: Session | None) -> list[str]:
    now = datetime.now(UTC).astimezone()
    lines = [
        f"upgrade-wizard {__version__} report, written {now:%Y-%m-%d %H:%M:%S %Z}",
        f"instance {context.name!r}, recipe {context.recipe.name!r}, venv {context.instance.venv}",
        "passwords, secret keys and tokens are masked as ******** in every file of this archive",
        "",
    ]
    if session is None:
        return [*lines, "no upgrade is recorded for this instance"]
    state = "finished" if session.done else "abandoned" if session.abandoned else "under way"
    hops = f" (through {', '.join(session.path[:-1])})" if len(session.path) > 1 else ""
    undoes = f" (of the upgrade {session.undoes})" if session.undoes else ""
    lines += [f"{session.kind} {session.id}{undoes}: {session.installed_version} -> {session.target_version}{hops}, {state}",
              f"Python {session.python_version}; planned {session.created:%Y-%m-%d %H:%M} UTC", "", "steps:"]  # fmt: skip
    for row in step_rows(session.steps):
        lines.append(f"  {row.number}. {row.id}: {row.result}" + (f", {row.seconds}" if row.seconds else "")
                     + (f" (exit {row.exit})" if row.exit else ""))  # fmt: skip
    for job in session.side_jobs:
        lines.append(f"  beside {job.for_step or 'the upgrade'}: {job.kind} {job.role} ({job.reason}): "
                     f"{job.run.status}, exit {job.run.exit_code}")  # fmt: skip
    lines += ["", *(line.plain for line in where_lines(where_rows(session)))]
    if session.health is not None:
        lines += ["", *(line.plain for line in health_lines(session.health))]
    if session.events:
        lines += ["", "what happened (UTC):", *(f"  {e.at:%Y-%m-%d %H:%M:%S} {e.message}" for e in session.events)]
    return lines


def plan_lines(session: Session) -> list[str]:
    lines = ["The plan as recorded: each step's command, who runs it and its environment.", ""]
    for row, step in zip(step_rows(session.steps), session.steps, strict=True):
        lines.append(f"{row.number}. {step.id} - {step.title} (as {step.run_as})")
        lines.append(f"   {shlex.join(step.argv)}")
        if step.env:
            lines.append("   env: " + " ".join(f"{k}={v}" for k, v in public_env(step.env).items()))
    if session.notes:
        lines += ["", "Release notes and pre-flight checks:"]
        for note in session.notes:
            lines += [f"  {line.plain}" for line in note_lines(note)]
    return lines


def host_lines(context: InstanceContext) -> list[str]:
    try:
        release = platform.freedesktop_os_release().get("PRETTY_NAME", "?")
    except OSError:
        release = "unknown"
    facts = host_facts(context)
    return [
        f"os: {release} ({os_family()} family), kernel {platform.release()}, {platform.machine()}",
        f"the wizard's Python: {sys.version.split()[0]} ({sys.executable})",
        f"database: {facts.database_text()}",
        f"web servers seen: {', '.join(facts.web_servers) or 'none'}",
        *(f"not known: {unknown}" for unknown in facts.unknowns),
    ]


def found_lines(context: InstanceContext) -> list[str]:
    try:
        probe = probe_venv(context.instance)
    except WizardError as exc:
        return [f"the venv's Python did not answer: {exc.message}"]
    state = schema_of(context.instance, context.recipe, Path(probe["site_packages"]), context.database)
    lines = [f"venv Python {probe['python']}, site-packages {probe['site_packages']}",
             f"schema: {state.text if state else 'not read (the recipe does not say how)'}", "",
             "services:"]  # fmt: skip
    for unit in context.services.units(context.recipe):
        lines.append(f"  {unit.role}: {unit.name or '(none)'} ({unit.how}), {unit.state}" +
                     (f": {unit.said}" if unit.said else ""))  # fmt: skip
    lines += ["", "distributions:", *(f"  {name}=={v}" for name, v in sorted(probe["dists"].items()))]
    return lines


def size_text(written: Written) -> str:
    return f"{written.path} ({human_bytes(written.size)}, {len(written.files)} files)"
