"""The health check: does the site work, on the new code, over the new schema?

Asked in this order, each question answered from the host itself, never assumed:

1. the code: the product's installed version against the upgrade's target, read from the venv;
2. the requirements: the venv's packages agree with each other (``pip check``: a plugin that wants
   another core release shows here);
3. the schema: the database's migrations against the installed code (alembic heads, Django's plan);
4. the services: each one running as its service manager says, and one the upgrade restarted has a
   main process younger than that restart;
5. the site: its page answers over HTTP at the address its config names (redirects on the site
   followed, its own name in the Host header); the app's health endpoint where the release has one;
   the version the running code says it is, where the app says it.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import psutil
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from steps.models import PIP_CHECK, HealthSpec
from wizard.config.secrets import ini_values, public_env, python_assignments, secret_env
from wizard.errors import ConfigError
from wizard.health.http import Answer, fetch_until_up
from wizard.health.result import Finding, Health
from wizard.host.detect import probe_venv, schema_of
from wizard.host.privilege import as_runner
from wizard.host.services import State, Unit
from wizard.planning.versions import newer
from wizard.session.packages import pinned_versions
from wizard.session.state import PackageSet, Session, StepStatus
from wizard.views.services import service_uses

if TYPE_CHECKING:
    from wizard.config.context import InstanceContext

WAIT_SECONDS = 60.0  # how long a site or a service may take to come up after a restart
RECORDED = "the packages from before the upgrade are in the session (status --json: packages_before)"
CLOCK_SLACK = 2.0  # seconds: a process started this close before a restart step counts as started by it


def check_health(
    context: InstanceContext,
    session: Session | None,
    *,
    wait: float = WAIT_SECONDS,
    progress: Callable[[str], None] = lambda _: None,
) -> Health:
    """Ask every question; ``progress`` hears which one is being asked (the site may take ``wait`` seconds)."""
    if session is not None and session.abandoned:
        session = None
    progress("the venv")
    try:
        probe = probe_venv(context.instance)
    except ConfigError as exc:
        return Health(findings=[Finding(kind="code", title="the venv's Python does not run", outcome="failed",
                                        evidence=exc.message, way_out="see why the venv's Python fails; " + RECORDED)])  # fmt: skip
    findings = [code_finding(context, probe, session)]
    if session is not None and session.restores is not None:
        findings.append(restored_finding(probe, session.restores))
    progress("the venv's requirements")
    findings.append(requirements_finding(context))
    progress("the database's schema")
    findings.append(schema_finding(context, probe))
    progress("the services")
    deadline = time.monotonic() + wait
    findings.extend(service_findings(context, session, deadline, lambda why: progress(f"the services: {why}")))
    progress("the site")
    findings.extend(site_findings(context, installed_of(context, probe), deadline,
                                  lambda why: progress(f"the site: {why}")))  # fmt: skip
    return Health(findings=findings)


def installed_of(context: InstanceContext, probe: dict) -> str | None:
    dists = {canonicalize_name(name): version for name, version in probe["dists"].items()}
    return dists.get(canonicalize_name(context.recipe.package))


# -- 1. the code ---------------------------------------------------------------------------------------------


def code_finding(context: InstanceContext, probe: dict, session: Session | None) -> Finding:
    package = context.recipe.package
    installed = installed_of(context, probe)
    target = session.target_version if session is not None else context.instance.target
    whose = f"the {session.kind}'s target" if session is not None else "the version pinned in the instance"
    plugins = plugin_versions(context, probe)
    evidence = f"{context.instance.venv} (Python {probe['python']})" + (f"; plugins: {plugins}" if plugins else "")
    if installed is None:
        return Finding(kind="code", title=f"{package} is not installed in the venv", outcome="failed",
                       evidence=evidence, way_out=f"reinstall it; {RECORDED}")  # fmt: skip
    if target is None:
        return Finding(kind="code", title=f"{package} {installed} installed (no upgrade recorded, no version pinned)",
                       outcome="ok", evidence=evidence)  # fmt: skip
    if installed != target:
        return Finding(kind="code", title=f"{package} {installed} installed, but {whose} is {target}",
                       outcome="failed", evidence=evidence,
                       way_out="the install step did not install the target: read its log, then retry it")  # fmt: skip
    return Finding(kind="code", title=f"{package} {installed} installed ({whose})", outcome="ok", evidence=evidence)


def restored_finding(probe: dict, restores: PackageSet) -> Finding:
    """A rollback: does the venv hold exactly the set recorded before the upgrade (name and version, no more)?"""
    now: dict[str, str] = {canonicalize_name(name): version for name, version in probe["dists"].items()}
    wanted = pinned_versions(restores.requirements)  # a line without a version (a URL, -e) counts by its name
    differ = [f"{name} {now.get(name, 'missing')} (recorded {version})" for name, version in wanted.items()
              if name not in now or (version is not None and now[name] != version)]  # fmt: skip
    extra = sorted(set(now) - set(wanted))
    if differ or extra:
        evidence = "; ".join(
            filter(None, [", ".join(differ[:8]), "not recorded: " + ", ".join(extra[:8]) if extra else ""])
        )
        return Finding(kind="code", title=f"the venv differs from the {len(wanted)} packages recorded before the upgrade",
                       outcome="failed", evidence=evidence,
                       way_out="read the rollback's package step log, then roll back again")  # fmt: skip
    return Finding(kind="code", title=f"the venv holds exactly the {len(wanted)} packages recorded before the upgrade",
                   outcome="ok", evidence=f"recorded {restores.at.astimezone():%Y-%m-%d %H:%M}")  # fmt: skip


def plugin_versions(context: InstanceContext, probe: dict) -> str:
    prefix = context.recipe.plugin_prefix
    if not prefix:
        return ""
    wanted = canonicalize_name(prefix)
    found = sorted((canonicalize_name(name), v) for name, v in probe["dists"].items())
    return ", ".join(f"{name} {v}" for name, v in found if name.startswith(wanted))


# -- 2. the requirements ---------------------------------------------------------------------------------------


def requirements_argv(context: InstanceContext, spec: HealthSpec | None) -> list[str]:
    templates = spec.requirements if spec is not None else PIP_CHECK
    return [template.format_map(context.venv_values) for template in templates]


def requirements_finding(context: InstanceContext) -> Finding:
    instance = context.instance
    argv = requirements_argv(context, context.recipe.health)
    public = {**public_env(instance.env), "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"}
    command = as_runner(argv, "app", instance.user, public)
    shown = shlex.join(argv)
    try:
        done = subprocess.run(command, env={**os.environ, **public, **secret_env(instance.env)}, capture_output=True,
                              text=True, errors="replace", timeout=120, stdin=subprocess.DEVNULL)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Finding(kind="requirements", title="the requirements were not checked", outcome="unknown",
                       evidence=f"{shown}: {exc}")  # fmt: skip
    said = _first_lines(done.stdout + "\n" + done.stderr)  # pip check lists what is broken on stdout
    if done.returncode == 0:
        return Finding(kind="requirements", title="the venv's packages agree with each other", outcome="ok",
                       evidence=f"{shown}: {said or 'exit 0'}")  # fmt: skip
    if "No module named pip" in said:
        return Finding(kind="requirements", title="the requirements were not checked: the venv has no pip",
                       outcome="unknown", evidence=said)  # fmt: skip
    return Finding(kind="requirements", title="the venv's packages do not agree with each other", outcome="failed",
                   evidence=f"{shown} (exit {done.returncode}): {said}",
                   way_out=f"install what those lines ask for; {RECORDED}")  # fmt: skip


def _first_lines(text: str, count: int = 6) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    more = f" (and {len(lines) - count} more)" if len(lines) > count else ""
    return "; ".join(lines[:count]) + more


# -- 3. the schema -----------------------------------------------------------------------------------------


def schema_finding(context: InstanceContext, probe: dict) -> Finding:
    state = schema_of(context.instance, context.recipe, Path(probe["site_packages"]), context.database)
    if state is None:
        return Finding(kind="schema", title="the schema was not checked (the recipe does not say how)",
                       outcome="unknown")  # fmt: skip
    if state.state == "ok":
        return Finding(kind="schema", title="the database schema is at the installed code's head", outcome="ok",
                       evidence=state.text)  # fmt: skip
    if state.unknown:
        return Finding(kind="schema", title="the database holds a revision the installed code does not know",
                       outcome="failed", evidence=state.text,
                       way_out="the code is older than the database: install the code the database is at, or restore the database from the backup (status shows its restore commands)")  # fmt: skip
    if state.pending:
        return Finding(kind="schema", title="the database schema is behind the installed code", outcome="failed",
                       evidence=state.text, way_out="run the schema upgrade (the recipe's migration steps) again")  # fmt: skip
    return Finding(kind="schema", title="the database schema could not be read", outcome="unknown",
                   evidence=state.text, way_out="check the database is up and the app's config names it")  # fmt: skip


# -- 4. the services ---------------------------------------------------------------------------------------


def service_findings(
    context: InstanceContext, session: Session | None, deadline: float, waiting: Callable[[str], None] = lambda _: None
) -> list[Finding]:
    """``waiting`` hears of each service still starting, each time it is asked again (it may stop the check)."""
    units = [unit for unit in context.services.units(context.recipe, states=False) if unit.name]
    restarts = restart_times(context, session)
    return [service_finding(context, unit, restarts.get(unit.role), deadline, waiting) for unit in units]


@dataclass(frozen=True)
class Restart:
    """The last (re)start of a service in a finished upgrade: a step's, or the lock watch's beside one."""

    by: str  # "started by step 7", "restarted beside step 4 (the lock wait)"
    began: datetime


def restart_times(context: InstanceContext, session: Session | None) -> dict[str, Restart]:
    """role -> its last (re)start in a finished upgrade, by a step or a side job: its main process must be younger."""
    if session is None or not session.done:
        return {}
    found: dict[str, Restart] = {}
    for use in service_uses(session, context.recipe):
        for number, action in use.acts:
            step = session.steps[number - 1]
            if action in ("start", "restart") and step.status == StepStatus.SUCCEEDED and step.started:
                found[use.role] = Restart(f"{action}ed by step {number}", step.started)  # started, restarted
    numbers = {step.id: number for number, step in enumerate(session.steps, 1)}
    for job in session.side_jobs:
        began, role = job.run.started, job.role
        if job.kind != "restart" or job.run.exit_code != 0 or began is None:
            continue
        if role not in found or found[role].began < began:
            beside = f"beside step {numbers[job.for_step]}" if job.for_step in numbers else "during the upgrade"
            found[role] = Restart(f"restarted {beside} (the lock wait)", began)
    return found


def service_finding(context: InstanceContext, unit: Unit, restart: Restart | None, deadline: float,
                    waiting: Callable[[str], None] = lambda _: None) -> Finding:  # fmt: skip
    assert unit.name is not None
    services = context.services
    state, said = services.state(unit.name)
    while state == "starting" and time.monotonic() < deadline:
        waiting(f"{unit.name} is starting")  # the TUI's raises when its screen is gone: no question more
        time.sleep(1.0)
        state, said = services.state(unit.name)
    if state == "unknown" and said.startswith("not asked"):
        state, said = state_from_pid(context, unit.name, said)
    name = unit.role if unit.name == unit.role else f"{unit.role} ({unit.name})"
    status = shlex.join(services.argv("status", unit.name))
    if state in ("stopped", "failed"):
        return Finding(kind="service", title=f"{name} is not running", outcome="failed",
                       evidence=f"the service manager says {said or state}",
                       way_out=f"start it: {shlex.join(services.argv('start', unit.name))}; see why: {status}")  # fmt: skip
    if state != "running":
        return Finding(kind="service", title=f"{name}: its state could not be told", outcome="unknown",
                       evidence=said or state, way_out=f"ask the service manager: {status}")  # fmt: skip
    if restart is None:
        return Finding(kind="service", title=f"{name} is running", outcome="ok", evidence=said or "running")
    pid = services.main_pid(unit.name)
    if pid is None:
        return Finding(kind="service", title=f"{name} is running (whether it was {restart.by}: not told)",
                       outcome="unknown", evidence="its main process could not be asked of the service manager")  # fmt: skip
    try:
        started = datetime.fromtimestamp(psutil.Process(pid).create_time(), UTC)
    except psutil.Error:
        return Finding(kind="service", title=f"{name} is running (its main process {pid} just went away)",
                       outcome="unknown", way_out=f"check again, or ask the service manager: {status}")  # fmt: skip
    when = started.astimezone().strftime("%H:%M:%S")
    if (restart.began - started).total_seconds() > CLOCK_SLACK:
        return Finding(kind="service", title=f"{name} runs, but not the process it was {restart.by}",
                       outcome="failed",
                       evidence=f"its main process {pid} started at {when}, before it was {restart.by} "
                                f"at {restart.began.astimezone():%H:%M:%S}: it may still run the old code",
                       way_out=f"restart it: {shlex.join(services.argv('restart', unit.name))}")  # fmt: skip
    return Finding(kind="service", title=f"{name} is running, {restart.by}", outcome="ok",
                   evidence=f"main process {pid} started at {when}")  # fmt: skip


def state_from_pid(context: InstanceContext, unit: str, said: str) -> tuple[State, str]:
    """A manager whose states the wizard cannot read: its pid command naming a live process says running."""
    pid = context.services.main_pid(unit)
    if pid is not None and psutil.pid_exists(pid):
        return "running", f"the service's pid command names the live process {pid}"
    return "unknown", said


# -- 5. the site ---------------------------------------------------------------------------------------------


def site_url(context: InstanceContext) -> tuple[str | None, str]:
    """The site's address and where it came from (the instance, or the app's config key)."""
    instance, recipe = context.instance, context.recipe
    if instance.url:
        return instance.url, f"url in [instances.{instance.name}]"
    spec = recipe.health
    if spec is None:
        return None, ""
    if recipe.config_format == "ini":
        value: object = ini_values(context.config_texts, context.overrides).get(spec.url_key)
    else:
        value = next((v for text in context.config_texts for k, v in python_assignments(text) if k == spec.url_key),
                     None)  # fmt: skip
    if isinstance(value, str) and re.match(r"^https?://", value.strip()):
        return value.strip(), f"{spec.url_key} in the app's config"
    return None, f"{spec.url_key} in the app's config"


def join(base: str, path: str) -> str:
    return base.rstrip("/") + path


def site_findings(
    context: InstanceContext, installed: str | None, deadline: float, waiting: Callable[[str], None] = lambda _: None
) -> list[Finding]:
    spec = context.recipe.health
    instance = context.instance
    if spec is None and not instance.url:
        return [Finding(kind="site", title="the site was not asked (the recipe does not say how)", outcome="unknown",
                        way_out=f"set url in [instances.{instance.name}] to have it asked")]  # fmt: skip
    url, source = site_url(context)
    if url is None:
        return [Finding(kind="site", title="the site was not asked: its address is not known", outcome="unknown",
                        evidence=f"no http(s) address in {source}",
                        way_out=f"set url in [instances.{instance.name}] (the site's address)")]  # fmt: skip
    page = spec.page if spec is not None else "/"
    answer = fetch_until_up(join(url, page), connect_to=instance.connect_to, wait=max(deadline - time.monotonic(), 5.0),
                            waiting=waiting)  # fmt: skip
    findings = [page_finding(answer, source, instance.name, instance.connect_to)]
    if spec is None or not answer.answered_ok:
        return findings
    if spec.endpoint and not newer(spec.endpoint_since, installed):
        findings.append(endpoint_finding(fetch_until_up(join(url, spec.endpoint), connect_to=instance.connect_to,
                                                        wait=5.0)))  # fmt: skip
    if spec.version_pages and spec.version_pattern and not newer(spec.version_since, installed):
        first = {page: answer}  # the page already asked is not asked again in the first round
        while True:  # a graceful reload lets running requests end first: the old code may answer for a while
            running = running_version(url, spec.version_pages, spec.version_pattern, installed,
                                      instance.connect_to, first)  # fmt: skip
            if running.outcome != "failed" or time.monotonic() >= deadline:
                break
            time.sleep(1.0)
            first = {}
        findings.append(running)
    return findings


def page_finding(answer: Answer, source: str, instance: str, connect_to: str | None) -> Finding:
    evidence = f"{answer.evidence()} (address from {source}" + (f", connected to {connect_to})" if connect_to else ")")
    if answer.elsewhere is not None:
        return Finding(kind="site", title="the site sends visitors to another address", outcome="unknown",
                       evidence=evidence,
                       way_out=f"if that is the site's own address, set url in [instances.{instance}] to it")  # fmt: skip
    if answer.answered_ok:
        return Finding(kind="site", title=f"the site answers ({answer.status})", outcome="ok", evidence=evidence)
    if answer.status is None:
        way_out = "is the app server running and listening at that address? (a proxy in front: set connect_to)"
    elif answer.status == 404:
        way_out = "the site does not know this address: is it the one the app is configured for (url)?"
    elif answer.status >= 500:
        way_out = "read the app server's log and the app's error log (the report gathers the wizard's side)"
    else:
        way_out = "the page needs a login or is forbidden: set url to a public page of the site"
    return Finding(kind="site", title="the site does not answer as it should", outcome="failed", evidence=evidence,
                   way_out=way_out)  # fmt: skip


def endpoint_finding(answer: Answer) -> Finding:
    said = _first_lines(answer.body, 2)[:200]
    evidence = answer.evidence() + (f": {said}" if said else "")
    if answer.status == 200:
        return Finding(kind="endpoint", title="the app's health endpoint says it is well", outcome="ok",
                       evidence=evidence)  # fmt: skip
    return Finding(kind="endpoint", title="the app's health endpoint reports a problem", outcome="failed",
                   evidence=evidence, way_out="it names what it misses (database, cache): start or fix that")  # fmt: skip


def running_version(base: str, pages: list[str], pattern: str, installed: str | None, connect_to: str | None,
                    asked: dict[str, Answer]) -> Finding:  # fmt: skip
    """The first of ``pages`` that shows the version decides; when none does, that is said (not a failure)."""
    finding = None
    for page in pages:
        answer = asked.get(page) or fetch_until_up(join(base, page), connect_to=connect_to, wait=5.0)
        finding = running_finding(answer, pattern, installed)
        if finding.outcome != "unknown":
            return finding
    assert finding is not None  # a recipe's version_pages is never empty here
    return finding


def running_finding(answer: Answer, pattern: str, installed: str | None) -> Finding:
    found = re.search(pattern, answer.body) if answer.answered_ok else None
    if found is None:
        return Finding(kind="running", title="the version the site runs could not be read", outcome="unknown",
                       evidence=f"{answer.evidence()}: no version on that page")  # fmt: skip
    shown = found.group(1).strip()
    if installed is None or _same_version(shown, installed):
        return Finding(kind="running", title=f"the site runs {shown}", outcome="ok",
                       evidence=f"{answer.final_url} says {found.group(0)[:80]!r}")  # fmt: skip
    return Finding(kind="running", title=f"the site still runs {shown}, not the installed {installed}",
                   outcome="failed", evidence=f"{answer.final_url} says {found.group(0)[:80]!r}",
                   way_out="the app server was not restarted onto the new code: restart it")  # fmt: skip


def _same_version(shown: str, installed: str) -> bool:
    try:
        return Version(shown).base_version == Version(installed).base_version
    except InvalidVersion:
        return shown == installed
