"""What a rollback of the last upgrade would do, worked out before anything is touched.

The upgrade recorded the venv's exact package set before its first step (``Session.packages_before``). Going back
means: stop the services, install again every recorded line that differs now (pip ``--no-deps``: exactly that
set, nothing pip would pick besides), remove what the upgrade added, restore the database when asked (only
then), start the services. The result is a Session of kind "rollback", run by the same Engine and Driver as an
upgrade, so it is recorded step by step and resumes the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from steps import Recipe
from steps.models import PIP_REINSTALL
from wizard.config.context import InstanceContext
from wizard.config.secrets import public_env
from wizard.errors import WizardError
from wizard.host import pipquery
from wizard.host.detect import Detection, os_family
from wizard.planning.plan import build_hop
from wizard.planning.preflight import missing_tools
from wizard.rollback.database import CannotRestore, restore_step
from wizard.session.packages import canonical, record_packages, requirement_name
from wizard.session.state import PackageSet, ServiceAct, Session, StepRecord, StepStatus
from wizard.views.services import spec_of

TOGETHER_HINT = "roll back with `upgrade-wizard rollback --all` (or name every instance on the venv)"
CHOOSE_HINT = ("add --restore-database to put the database back from the backup (whatever was written since is lost), "
               "or --keep-database to put back the packages alone")  # fmt: skip


def install_arguments(lines: list[str]) -> list[str]:
    """pip's arguments for these freeze lines, each line one argument (an editable one: ``-e`` and its place)."""
    arguments: list[str] = []
    for text in lines:
        line = text.strip()
        if line.startswith("-e "):
            arguments += ["-e", line.removeprefix("-e ").strip()]
        elif requirement_name(line) is not None:
            arguments.append(line)
    return arguments


@dataclass(frozen=True)
class PackageChanges:
    back: list[str]  # recorded lines that differ now: installed again
    added: list[str]  # names the venv has now that the record has not: removed

    @property
    def none(self) -> bool:
        return not (self.back or self.added)


def package_changes(recorded: list[str], now: list[str]) -> PackageChanges:
    def by_name(lines: list[str]) -> dict[str, str]:
        return {name: line.strip() for line in lines if (name := requirement_name(line)) is not None}

    before, after = by_name(recorded), by_name(now)
    back = [line for name, line in before.items() if canonical(after.get(name, "")) != canonical(line)]
    return PackageChanges(back=back, added=sorted(name for name in after if name not in before))


@dataclass(frozen=True)
class SharedCode:
    """In the rollback of a shared venv's upgrade: what the session of that run which changed the venv's code
    recorded before it did, and whether this instance's rollback is the one that puts those packages back (the
    others take back their own database and restart their own services under the old code)."""

    instance: str  # whose upgrade session installed the new code
    record: PackageSet | None  # the venv's packages before that
    version: str | None  # the release they make
    puts_back: bool


@dataclass(frozen=True)
class RollbackPlan:
    upgrade: Session  # the session taken back
    steps: list[StepRecord]
    changes: PackageChanges
    from_version: str | None  # the product's version installed now
    to_version: str | None  # the one the upgrade started from
    restores_database: bool
    warnings: list[str] = field(default_factory=list)
    packages_by: str | None = None  # on a shared venv: the instance whose rollback puts the packages back
    restores: PackageSet | None = None  # the set the venv holds afterwards (None: the upgrade's own record)

    def lines(self) -> list[str]:
        """What it will do, for the operator, before anything is done."""
        head = (f"rollback of {self.upgrade.instance!r}: {self.from_version} -> {self.to_version}, "
                f"{len(self.steps)} steps (the upgrade {self.upgrade.id} is kept as it is)")  # fmt: skip
        out = [head]
        out += [f"  {n}. {step.title}" for n, step in enumerate(self.steps, 1)]
        if self.packages_by is not None:
            out.append(f"the venv's packages are put back by {self.packages_by}'s rollback, before this one")
        if self.changes.back:
            out.append(f"packages installed again ({len(self.changes.back)}): " + ", ".join(self.changes.back))
        if self.changes.added:
            out.append(f"packages removed, added by the upgrade ({len(self.changes.added)}): "
                       + ", ".join(self.changes.added))  # fmt: skip
        return out + [f"warning: {text}" for text in self.warnings]


def migrating_step(session: Session) -> StepRecord | None:
    """The first step that changed (or may have changed) the database's schema: it ran, whatever its outcome."""
    return next((s for s in session.steps if s.migrates is not None and s.attempts > 0), None)


def refuse_unless_undoable(session: Session | None, shared: SharedCode | None = None) -> Session:
    """The upgrade session to take back, or WizardError saying why it cannot be (``shared``: it is taken back as
    part of its shared venv's upgrade, whose code session recorded the packages)."""
    if session is None:
        raise WizardError(
            "there is no upgrade of this instance to take back", "`upgrade-wizard status` shows its state"
        )
    if session.is_rollback:
        raise WizardError(f"the last session of {session.instance!r} is a rollback already ({session.id})",
                          "plan a new upgrade with `run --new` or the interactive wizard's n")  # fmt: skip
    if session.shared_run is not None and shared is None:
        raise WizardError(f"this upgrade of {session.instance!r} was part of the upgrade of a shared venv "
                          f"({session.shared_run}): putting the old code back puts it under every instance on "
                          "that venv, so they are taken back together", TOGETHER_HINT)  # fmt: skip
    if session.running is not None:
        raise WizardError(f"step {session.running.id!r} of {session.instance!r} is still running: a rollback now "
                          "would race it", "wait for it to end (`upgrade-wizard status` says when), then roll back")  # fmt: skip
    if shared is not None and not shared.puts_back:
        return session  # its rollback restarts its services under the old code, whether or not a step of it ran
    if not any(step.attempts for step in session.steps):
        raise WizardError("no step of this upgrade has run: there is nothing to take back",
                          "abandon the upgrade from the interactive wizard, or leave it")  # fmt: skip
    if session.packages_before is None:
        raise WizardError(
            "this upgrade did not record the venv's packages before it began, so the wizard cannot tell what to put back",
            f"reinstall by hand, e.g. pip install {session.recipe}=={session.installed_version}, and restore the "
            "database from the backup if the schema changed",
        )
    return session


def service_runner(context: InstanceContext, role: str) -> Literal["root", "app"]:
    """Who acts on a service: as the recipe's own steps for it do (the demo's manager is the app's), else root."""
    steps = [step for step in context.recipe.steps if step.service is not None and step.service.role == role]
    return steps[0].run_as if steps else "root"


def service_steps(context: InstanceContext, session: Session, action: Literal["stop", "start"]) -> list[StepRecord]:
    """Stop every service the upgrade found (the app server last), or start them (the app server first)."""
    app_server = context.recipe.app_server_role
    roles = sorted((role for role, unit in session.services.items() if unit), key=lambda role: role == app_server)
    if action == "start":
        roles.reverse()
    verb = "Stop" if action == "stop" else "Start"
    steps = []
    for role in roles:
        unit = session.services[role]
        steps.append(StepRecord(id=f"rollback-{action}-{role}", title=f"{verb} {role} ({unit})",
                                argv=context.services.argv(action, unit), run_as=service_runner(context, role),
                                safe_to_rerun=True,
                                service=ServiceAct(role=role, action=action)))  # fmt: skip
    return steps


def venv_command(context: InstanceContext, templates: list[str], name: str, arguments: list[str]) -> list[str]:
    values = context.venv_values
    argv: list[str] = []
    for template in templates:
        if template == "{" + name + "}":
            argv.extend(arguments)
        else:
            argv.append(template.format_map(values))
    return argv


def package_steps(context: InstanceContext, changes: PackageChanges, count: int) -> list[StepRecord]:
    spec, env = context.recipe.rollback, public_env(context.instance.env)
    steps = []
    if changes.back:
        steps.append(StepRecord(
            id="rollback-packages", title=f"Install the {count} recorded packages again ({len(changes.back)} differ)",
            argv=venv_command(context, spec.install, "requirements", install_arguments(changes.back)), env=env,
            safe_to_rerun=True, advice="pip puts back the versions recorded before the upgrade, without dependencies "
                                       "of its own choosing: exactly the set that ran before."))  # fmt: skip
    if changes.added:
        steps.append(StepRecord(
            id="rollback-remove-added", title=f"Remove the {len(changes.added)} packages the upgrade added",
            argv=venv_command(context, spec.remove, "packages", changes.added), env=env, safe_to_rerun=True))  # fmt: skip
    return steps


def again_steps(context: InstanceContext, upgrade: Session, to_version: str | None, recorded: list[str]
                ) -> list[StepRecord]:  # fmt: skip
    """The recipe's steps to run again on the old release (pretalx's rebuild), when the upgrade ran one of them:
    planned as an upgrade to that release would plan them, from the recorded packages."""
    recipe = context.recipe
    again = recipe.rollback.again
    ran = {spec.id for record in upgrade.steps if record.attempts and (spec := spec_of(record, recipe, upgrade.path))}
    if not (set(again) & ran):
        return []
    dists = {name: line.split("==", 1)[1] for line in recorded if (name := requirement_name(line)) and "==" in line}
    found = Detection(installed_version=None, target_version=to_version, python_version=upgrade.python_version or "",
                      os_family=os_family(), dists=dists)  # fmt: skip
    only = recipe.model_copy(update={"steps": [spec for spec in recipe.steps if spec.id in again]})
    hop = build_hop(only, context.instance, found, units={}, requirements=[], added=[])
    missing = missing_tools(context.instance, hop.needs, found.os_family)
    if missing:
        tools = ", ".join(note.id.removeprefix("check-tool-") for note in missing)
        raise WizardError(f"the rollback builds the old release's files again, which needs {tools}: not installed here",
                          missing[0].way_out or None)  # fmt: skip
    return [record.model_copy(update={"id": f"rollback-{record.id}", "title": f"{record.title}, for {to_version}"})
            for record in hop.records]  # fmt: skip


def rollback_step_ids(session: Session, recipe: Recipe) -> set[str]:
    """Every id a rollback of this session could have (what a saved rollback may hold)."""
    ids = {"rollback-packages", "rollback-remove-added", "rollback-database"}
    ids |= {f"rollback-{step_id}" for step_id in recipe.rollback.again}
    return ids | {f"rollback-{action}-{role}" for role in session.services for action in ("stop", "start")}


def plan_rollback(context: InstanceContext, session: Session | None, restore_database: bool | None,
                  shared: SharedCode | None = None) -> RollbackPlan:  # fmt: skip
    """The rollback of ``session`` (WizardError when it cannot be taken back, or the database choice is missing).

    ``restore_database``: True restores the backup, False keeps the database as it is, None: not said (refused
    when a step that migrates has run, since the old code may not run on the new schema). ``shared``: the session
    is one instance's part of a shared venv's upgrade (see ``SharedCode``).
    """
    upgrade = refuse_unless_undoable(session, shared)
    recorded = shared.record if shared else upgrade.packages_before
    if recorded is None:  # a shared venv's code session without its record (refused for an instance's own above)
        raise WizardError("the upgrade of the shared venv did not record its packages before it began, so the "
                          "wizard cannot tell what to put back", "reinstall the old release by hand")  # fmt: skip
    try:
        now = pipquery.freeze(context.instance)[1] if recorded.pip else None
    except pipquery.PipQueryError as exc:
        raise WizardError(f"the venv's packages cannot be read now: {exc}", "see why pip fails in the venv") from None
    if now is None:  # recorded from the metadata (the venv has no pip): read the same way now
        packages = record_packages(context.instance).packages
        now = packages.requirements if packages else []
    puts_back = shared is None or shared.puts_back
    changes = package_changes(recorded.requirements, now) if puts_back else PackageChanges(back=[], added=[])
    if changes.back and recorded.pip and context.recipe.rollback.install == PIP_REINSTALL:
        try:  # before anything is stopped: a release pip cannot find would fail the rollback half-way
            pipquery.check_installable(context.instance, install_arguments(changes.back))
        except pipquery.PipQueryError as exc:
            raise WizardError(f"pip cannot find every recorded release where it looks now: {exc}",
                              "make those releases available to pip (its index, or PIP_FIND_LINKS in the instance's "
                              "env), then roll back; nothing was changed") from None  # fmt: skip
    migrated = migrating_step(upgrade)
    warnings = []
    if restore_database is None and migrated is not None:
        raise WizardError(f"the upgrade changed the database (step {migrated.id!r} ran): say whether to restore it",
                          CHOOSE_HINT)  # fmt: skip
    database: list[StepRecord] = []
    if restore_database:
        if upgrade.backup is None:
            raise CannotRestore("the upgrade has no backup to restore from")
        database = [restore_step(context, upgrade.backup)]
    elif migrated is not None:
        warnings.append(f"the database stays as step {migrated.id!r} left it: the old code may not run on its schema "
                        "(the health check afterwards says whether it does)")  # fmt: skip
    if changes.none and not database and shared is None:  # a shared venv's: asked of all its instances at once
        raise WizardError("the venv already holds exactly the packages recorded before the upgrade, and the database "
                          "is to be kept: there is nothing to take back", "`upgrade-wizard check` says how the site is")  # fmt: skip
    to_version = shared.version if shared else upgrade.installed_version
    again = again_steps(context, upgrade, to_version, recorded.requirements)
    steps = [*service_steps(context, upgrade, "stop"), *package_steps(context, changes, len(recorded.requirements)),
             *database, *again, *service_steps(context, upgrade, "start")]  # fmt: skip
    package = requirement_name(context.recipe.package)
    from_version = next((line.split("==", 1)[1] for line in now if requirement_name(line) == package and "==" in line),
                        upgrade.target_version)  # fmt: skip
    packages_by = None if puts_back or shared is None else shared.instance
    return RollbackPlan(upgrade, steps, changes, from_version, to_version, bool(database), warnings,
                        packages_by=packages_by, restores=recorded)  # fmt: skip


WAY_BACK = "the upgrade can be taken back: `upgrade-wizard rollback` shows how, and changes nothing until --yes"
WAY_BACK_TOGETHER = ("the instances on this venv can be taken back together: `upgrade-wizard rollback --all` shows "
                     "how, and changes nothing until --yes")  # fmt: skip


def way_back(session: Session) -> str | None:
    """The line naming the way back from this session, for the command line; None when there is none to offer."""
    if can_roll_back(session):
        return WAY_BACK
    if session.shared_run is not None and not session.is_rollback and session.running is None:
        return WAY_BACK_TOGETHER
    return None


def can_roll_back(session: Session) -> bool:
    """Whether the faces offer a rollback of this session now: an upgrade (not a rollback) a step of which has
    ended, none running, its packages recorded (the planning says why not, in detail, for the rest)."""
    return (
        not session.is_rollback
        and session.shared_run is None  # a shared venv's: `rollback --all` (TOGETHER_HINT)
        and session.running is None
        and session.packages_before is not None
        and any(
            step.status in (StepStatus.SUCCEEDED, StepStatus.FAILED, StepStatus.INTERRUPTED) for step in session.steps
        )
    )
