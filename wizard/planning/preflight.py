"""Checks before anything changes, each a note with its remedy: tools, rights, config, disk."""

from __future__ import annotations

import os
import shlex
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import sh

from wizard.backup.dumps import ENGINES
from wizard.backup.take import estimate
from wizard.config.appfiles import app_files
from wizard.config.instance import Instance
from wizard.errors import BackupError
from wizard.host.privilege import current_user
from wizard.host.services import status_argv
from wizard.host.uwsgiconf import touch_reload_check
from wizard.planning.shared import venv_steps
from wizard.session.state import Note, Severity, StepStatus
from wizard.views.sizes import free_space, human_bytes, tree_size

if TYPE_CHECKING:
    from wizard.config.context import InstanceContext
    from wizard.planning.plan import Plan
    from wizard.planning.shared import Together

MIB = 1024**2
VENV_SPARE = 256 * MIB  # beyond the venv's own size: pip downloads and unpacks beside it

# Where each tool comes from, per OS family (what to install when it is missing).
PACKAGES = {
    "npm": {"debian": "nodejs npm", "rhel": "nodejs npm", "default": "Node.js with npm"},
    "podman": {"debian": "podman", "rhel": "podman", "default": "Podman"},
    "msgfmt": {"debian": "gettext", "rhel": "gettext", "default": "GNU gettext"},
    "pg_dump": {"debian": "postgresql-client", "rhel": "postgresql", "default": "the PostgreSQL client tools"},
    "pg_restore": {"debian": "postgresql-client", "rhel": "postgresql", "default": "the PostgreSQL client tools"},
    "mysql": {"debian": "mariadb-client", "rhel": "mariadb", "default": "the MariaDB or MySQL client tools"},
    "mysqldump": {"debian": "mariadb-client", "rhel": "mariadb", "default": "the MariaDB or MySQL client tools"},
}


def check(check_id: str, severity: Severity, title: str, text: str, way_out: str = "") -> Note:
    return Note(id=f"check-{check_id}", version="", severity=severity, title=title, text=text, way_out=way_out)


def install_hint(tool: str, os_family: str) -> str:
    packages = PACKAGES.get(tool, {})
    name = packages.get(os_family) or packages.get("default") or tool
    command = {"debian": "apt install", "rhel": "dnf install", "suse": "zypper install"}.get(os_family)
    return f"as root: `{command} {name}`" if command and os_family in packages else f"install {name}"


def tool_paths(instance: Instance, tools: set[str]) -> dict[str, str | None]:
    """Where each tool is, on the PATH the steps get (the venv's bin first); None: not found."""
    path = os.pathsep.join([str(instance.venv / "bin"), instance.env.get("PATH", os.environ.get("PATH", ""))])
    return {tool: shutil.which(tool, path=path) for tool in sorted(tools)}


def missing_tools(instance: Instance, tools: set[str], os_family: str) -> list[Note]:
    """A blocker for each tool the steps to come run that is not on their PATH."""
    return [check(f"tool-{tool}", "blocker", f"{tool} is not installed, and the plan needs it",
                  f"A step of this upgrade runs {tool}; without it that step fails half-way.",
                  install_hint(tool, os_family))
            for tool, where in tool_paths(instance, tools).items() if where is None]  # fmt: skip


def tool_checks(instance: Instance, plan: Plan) -> list[Note]:
    notes = missing_tools(instance, plan.needs, plan.found.os_family)
    db = plan.found.host.db
    engine = ENGINES.get(db.kind) if db is not None else None
    missing = engine.missing_tool() if engine else None
    if missing:
        notes.append(check(f"tool-{missing}", "warning", f"{missing} is not installed: the wizard cannot take the backup",
                           "The backup gate will then only accept a backup you declare.",
                           install_hint(missing, plan.found.os_family)))  # fmt: skip
    return notes


def sudo_works(argv: list[str]) -> bool:
    try:
        sh.Command("sudo")("-n", *argv, "true", _timeout=10, _tty_out=False)
        return True
    except (sh.ErrorReturnCode, sh.CommandNotFound, sh.TimeoutException, OSError):
        return False


def rights_checks(instance: Instance, plan: Plan) -> list[Note]:
    if os.geteuid() == 0:
        return []
    me, notes = current_user(), []
    as_root = [step.id for step in plan.steps if step.run_as == "root"]
    if as_root and not sudo_works([]):
        notes.append(check("root", "blocker", "Some steps need root, and sudo asks for a password here",
                           f"The wizard runs as {me}; the steps {', '.join(as_root)} run as root through `sudo -n`, "
                           "which cannot ask for a password.",
                           "Run the wizard as root (sudo upgrade-wizard …), or allow this user password-less sudo."))  # fmt: skip
    as_app = any(step.run_as == "app" for step in plan.steps)
    if as_app and instance.user and instance.user != me and not sudo_works(["-u", instance.user]):
        notes.append(check("app-user", "blocker", f"The wizard cannot act as {instance.user}",
                           f"The steps run as {instance.user}; from {me} that takes `sudo -n -u {instance.user}`, "
                           "which is not allowed here.",
                           f"Run the wizard as root or as {instance.user}."))  # fmt: skip
    return notes


def config_checks(context: InstanceContext, plan: Plan) -> list[Note]:
    files = context.config_files
    if not files and not plan.recipe.config_paths:
        return []  # the recipe knows of no config, and the instance names none: nothing to look for
    if not files:
        return [check("config", "warning", f"No {plan.recipe.title} config file was found",
                      "Without it the wizard cannot find the database: no backup of its own, no lock diagnosis, "
                      "and notes that depend on the config are shown unchecked.",
                      "Set 'config' in the instance to the app's config file.")]  # fmt: skip
    unreadable = [path for path in files if not os.access(path, os.R_OK)]
    if unreadable:
        return [check("config", "blocker", f"{unreadable[0]} cannot be read",
                      "The wizard must read the app's config to find its database and to mask its passwords.",
                      "Run the wizard as root or as the app's user.")]  # fmt: skip
    return []


def disk_checks(context: InstanceContext, plan: Plan, backup_root: Path | None) -> list[Note]:
    instance = context.instance
    notes = []
    venv_size, free = tree_size(instance.venv), free_space(instance.venv)
    if free < venv_size + VENV_SPARE:
        notes.append(check("disk-venv", "blocker" if free < VENV_SPARE else "warning", "Little free space for pip",
                           f"{human_bytes(free)} free where the venv is; the venv takes {human_bytes(venv_size)}, "
                           "and pip needs room to download and unpack the new release beside it.",
                           f"Free at least {human_bytes(venv_size + VENV_SPARE - free)} on that filesystem."))  # fmt: skip
    root = backup_root or instance.backup_dir
    db = plan.found.host.db
    if root is None or db is None or db.kind not in ENGINES:
        return notes
    try:
        files = [f for f in app_files(context) if f.included]  # an archive left out is not walked
        needs = estimate(db, context.config_files, root, files)
    except (BackupError, OSError):
        return notes  # the backup screen measures again, and says so if it cannot
    if not needs.fits:
        notes.append(check("disk-backup", "warning", "Not enough space for the wizard's backup",
                           f"It needs about {human_bytes(needs.needed)} (database, config and the app's files); "
                           f"{human_bytes(needs.free)} are free in {root}.",
                           "Set backup_dir in the instance to a bigger filesystem, or declare a backup of your own."))  # fmt: skip
    return notes


def schema_checks(plan: Plan) -> list[Note]:
    schema = plan.found.schema
    if schema is None or not schema.unknown:
        return []
    return [check("schema", "blocker", "The database is ahead of the installed code, or off its history",
                  f"The database has {', '.join(schema.unknown)}: a revision the scripts in this venv do not know "
                  "(restored from a newer installation, or a plugin went back to an older release). "
                  "`indico db upgrade` would then stop with exit code 1 and no message.",
                  "Install the release the database belongs to (the one that last upgraded it), "
                  "or restore the dump that matches this code; then run the wizard again.")]  # fmt: skip


def lookup_checks(plan: Plan) -> list[Note]:
    unknowns = [*plan.found.unknowns, *plan.found.host.unknowns]
    return [check(f"unknown-{number}", "warning", "Something could not be checked", text, "Check it by hand.")
            for number, text in enumerate(unknowns, 1)]  # fmt: skip


def settle_reload_steps(context: InstanceContext, plan: Plan) -> list[Note]:
    """A step that reloads a service by touching a file: checked against the running service's settings.

    Proven not to reload it (no touch-reload on that file), the step restarts
    the service instead; when that cannot be told, a warning says so.
    """
    notes: dict[str, Note] = {}
    units = {unit.role: unit.name for unit in plan.units}
    for spec in plan.recipe.steps:
        unit = units.get(spec.reloads) if spec.reloads else None
        records = [r for r in plan.steps if r.id == spec.id or r.id.startswith(f"{spec.id}-")]
        if not spec.reloads or unit is None or not records:
            continue
        watched, note = touch_reload_check(context.services, spec.reloads, unit, records[0].argv[-1])
        notes[note.id] = note
        if watched is False:
            for record in records:
                record.argv, record.run_as = context.services.argv("restart", unit), "root"
                record.title = f"Restart {unit} on the new code"
    return list(notes.values())


def shared_venv_checks(instance: Instance, plan: Plan, together: Together | None) -> list[Note]:
    """On a venv other instances run from: a blocker when the plan changes the code under one it leaves out;
    else, upgraded together, a word on who installs the code."""
    others = instance.shares_venv_with
    if not (others and plan.steps):
        return []
    left_out = together.leaves_out(others) if together else others
    if left_out or together is None:
        if not venv_steps(plan.steps):
            return []  # the code stays as it is: nothing reaches the others
        names = ", ".join(left_out)
        everyone = " ".join([instance.name, *others])
        return [check("shared-venv", "blocker", f"the venv is shared with {names}: {instance.name} cannot be upgraded alone",
                      f"The new release would go into {instance.venv}, which {names} also run from: from the install "
                      f"step on, {names} would run the new code over a database this upgrade does not migrate.",
                      f"upgrade every instance on it together: `upgrade-wizard run --yes {everyone}` (or `--all`), or "
                      "pick \"all on venv\" in the TUI; or give each instance a venv of its own")]  # fmt: skip
    if instance.name == together.code_by:
        rest = ", ".join(name for name in together.order if name != instance.name)
        return [check("shared-venv", "info", f"the new code is installed once, here, for {instance.name} and {rest}",
                      f"{instance.venv} is shared: this session installs the new release for all of them, after "
                      f"each one's backup is taken; then each instance's own steps migrate its database in turn.")]  # fmt: skip
    return [check("shared-venv", "info", f"the new code comes from {together.code_by}'s session",
                  f"{instance.venv} is shared with {', '.join(others)}: {together.code_by}'s session installs the new "
                  f"release once for all of them; this session stops {instance.name}'s workers, migrates its "
                  "database with its own config and brings its services back.")]  # fmt: skip


def service_checks(instance: Instance, plan: Plan) -> list[Note]:
    """A warning for each service the service manager says is stopped or failed, with its way out.

    A state that could not be read is no warning: detection shows it as unknown, with why.
    Run after settle_reload_steps: a reload turned into a restart counts as the upgrade restarting it.
    """
    notes = []
    for unit in plan.units:
        if unit.name is None or unit.how == "assumed" or not unit.down:
            continue
        app_server = unit.role == plan.recipe.app_server_role
        what = "the app server" if app_server else f"the {unit.role} service"
        effect = "The site is not being served now." if app_server else "Its background tasks are not being run now."
        said = f"{Path(instance.service_manager[0]).name} reports {unit.said}."
        start = shlex.join(instance.service_argv("start", unit.name))
        status = shlex.join(status_argv(instance, unit.name))
        restarts = [step.title for step in plan.steps if step.status == StepStatus.PENDING
                    and step.argv in (instance.service_argv("start", unit.name), instance.service_argv("restart", unit.name))]  # fmt: skip
        by_step = (
            f' The upgrade\'s step "{restarts[0]}" starts it.' if restarts else " Nothing in this upgrade starts it."
        )
        if unit.state == "failed":
            way_out = (f"The upgrade restarts it; check why it failed first: `{status}`" if restarts
                       else f"Check why it failed: `{status}`; then start it: `{start}`")  # fmt: skip
            notes.append(check(f"service-{unit.role}", "warning", f"{unit.name} ({what}) has failed",
                               f"{said} {effect}{by_step}", way_out))  # fmt: skip
        else:
            way_out = (f"Start it: `{start}` (or leave it stopped, if that is on purpose: the upgrade starts it)"
                       if restarts else f"Start it: `{start}`")  # fmt: skip
            notes.append(check(f"service-{unit.role}", "warning", f"{unit.name} ({what}) is not running",
                               f"{said} {effect}{by_step}", way_out))  # fmt: skip
    return notes


def preflight(
    context: InstanceContext, plan: Plan, backup_root: Path | None = None, together: Together | None = None
) -> list[Note]:
    instance = context.instance
    return [
        *settle_reload_steps(context, plan),
        *shared_venv_checks(instance, plan, together),
        *service_checks(instance, plan),
        *tool_checks(instance, plan),
        *rights_checks(instance, plan),
        *config_checks(context, plan),
        *disk_checks(context, plan, backup_root),
        *schema_checks(plan),
        *lookup_checks(plan),
    ]
