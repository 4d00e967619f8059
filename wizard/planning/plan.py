"""From a recipe, an instance and what detection found, to the concrete steps of this upgrade."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from packaging.version import Version

from steps import Recipe, ReleaseNote, StepSpec
from steps.models import LIST_PLACEHOLDERS, NoteStep
from wizard.config.instance import Instance
from wizard.config.secrets import public_env
from wizard.errors import ConfigError
from wizard.host.detect import Detection, detect
from wizard.host.services import Unit, resolve_units
from wizard.lockwatch.watchdog import application_tag
from wizard.planning.conditions import check
from wizard.planning.path import hops
from wizard.planning.preflight import preflight, schema_checks
from wizard.planning.shared import Together, instance_steps
from wizard.planning.versions import crosses, matches
from wizard.session.state import Note, StepRecord, StepStatus

if TYPE_CHECKING:
    from wizard.config.context import InstanceContext


def placeholder_values(recipe: Recipe, instance: Instance, found: Detection) -> dict[str, str]:
    values = {**recipe.vars, **instance.vars}
    missing = [name for name in recipe.required_vars if name not in values]
    if missing:
        raise ConfigError(
            f"instance {instance.name!r}: recipe {recipe.name!r} needs vars.{missing[0]}",
            f"add it under [instances.{instance.name}.vars] in the instances file",
        )
    values.update(
        instance=instance.name,
        venv=str(instance.venv),
        python=str(instance.python),
        config=str(instance.config) if instance.config else "",
        user=instance.user or "",
        target_version=found.target_version or "",
        installed_version=found.installed_version or "",
    )
    return values


def render(template: str, values: dict[str, str]) -> str:
    # Formatting one argv element with plain string values: nothing here is parsed by a shell.
    return template.format_map(values)


def render_argv(templates: list[str], values: dict[str, str], lists: dict[str, list[str]]) -> list[str]:
    argv: list[str] = []
    for template in templates:
        name = template[1:-1]
        if name in LIST_PLACEHOLDERS and template == f"{{{name}}}":
            argv.extend(lists[name])
        else:
            argv.append(render(template, values))
    return argv


def applies(step: StepSpec, recipe: Recipe, instance: Instance, found: Detection) -> bool:
    outcome = check(step.when, recipe, instance, found)
    return outcome.holds and not outcome.unchecked  # a step runs only when its condition surely holds


@dataclass
class HopSteps:
    records: list[StepRecord]
    needs: set[str]


def ordered_specs(recipe: Recipe, added: list[NoteStep]) -> list[StepSpec]:
    """The recipe's steps with the notes' steps put before or after the step each names."""
    specs: list[StepSpec] = []
    for step in recipe.steps:
        specs.extend(extra for extra in added if extra.before == step.id)
        specs.append(step)
        specs.extend(extra for extra in added if extra.after == step.id)
    return specs


def build_hop(recipe: Recipe, instance: Instance, found: Detection, units: dict[str, str | None],
              requirements: list[str], added: list[NoteStep]) -> HopSteps:  # fmt: skip
    values = placeholder_values(recipe, instance, found)
    lists = {"plugin_requirements": list(found.plugins), "note_requirements": requirements}
    records, needs = [], set()
    # Secrets in the instance's environment stay out of the saved session: the engine hands them to each step
    # through the wrapper's private env file when it launches it.
    public = public_env(instance.env)
    for step in ordered_specs(recipe, added):
        if not applies(step, recipe, instance, found):
            continue
        if step.service is not None and instance.lacks_service(step.service.role):
            records.append(StepRecord(id=step.id, title=step.title, argv=[], status=StepStatus.SKIPPED,
                                      skip_reason=f"the instance has no {step.service.role} service"))  # fmt: skip
            continue
        if step.service is not None:
            unit = units.get(step.service.role)
            if unit is None:
                raise ConfigError(
                    f"instance {instance.name!r}: step {step.id!r} needs the service {step.service.role!r}",
                    f"name its unit under [instances.{instance.name}.services]",
                )
            argv = instance.service_argv(step.service.action, unit)
        else:
            argv = render_argv(step.argv or [], values, lists)
        env = {**public, **{key: render(value, values) for key, value in step.env.items()}}
        env = {key: value for key, value in env.items() if value}  # an unset config means the app's own lookup
        env["VIRTUAL_ENV"] = str(instance.venv)
        if step.can_hang_on_lock:
            env["PGAPPNAME"] = application_tag(step.id)  # so the lock watch finds this step's session
        needs.update(step.needs)
        records.append(
            StepRecord(
                id=step.id,
                title=step.title,
                argv=argv,
                env=env,
                run_as=step.run_as,
                safe_to_rerun=step.safe_to_rerun,
                can_hang_on_lock=step.can_hang_on_lock,
                unless_restarted=step.unless_restarted,
                advice=_unwrap(step.advice),
                needs=sorted(step.needs),
                migrates=step.migrates,
                scope=step.scope,
            )
        )
    return HopSteps(records, needs)


SEVERITY_ORDER = {"blocker": 0, "warning": 1, "info": 2}


def _unwrap(text: str) -> str:
    """Recipe text is wrapped for the TOML file; the screen wraps it again for its own width."""
    return " ".join(text.split())


def chosen_notes(recipe: Recipe, instance: Instance, hop: Detection) -> list[tuple[ReleaseNote, list[str]]]:
    """The recipe's notes for one hop, each with the parts of its condition that could not be checked."""
    chosen = []
    for note in recipe.notes:
        if note.version is not None and not crosses(note.version, hop.installed_version, hop.target_version):
            continue
        outcome = check(note.when, recipe, instance, hop)
        if outcome.holds:
            chosen.append((note, outcome.unchecked))
    return chosen


def as_note(note: ReleaseNote, unchecked: list[str]) -> Note:
    severity, text = note.severity, _unwrap(note.text)
    if unchecked:
        text += f" (Not checked here: {'; '.join(unchecked)}. Check it by hand.)"
        severity = "warning" if severity == "blocker" else severity  # a guess never blocks; it must be read
    return Note(id=note.id, version=note.version or "", severity=severity, title=note.title, text=text,
                way_out=_unwrap(note.way_out))  # fmt: skip


def sort_notes(notes: list[Note]) -> list[Note]:
    return sorted(notes, key=lambda n: (SEVERITY_ORDER[n.severity], Version(n.version or "0")))


@dataclass
class Plan:
    recipe: Recipe
    found: Detection
    steps: list[StepRecord]
    notes: list[Note]
    units: list[Unit] = field(default_factory=list)
    hops: list[str] = field(default_factory=list)
    beyond: list[Note] = field(default_factory=list)  # what stands between the target and the newest release
    needs: set[str] = field(default_factory=set)

    @property
    def services(self) -> dict[str, str]:
        return {unit.role: unit.name for unit in self.units if unit.name}

    @property
    def nothing_to_do(self) -> str:
        """Why there are no steps, in one sentence."""
        found, title = self.found, self.recipe.title
        if found.pinned:
            return (
                f"{title} is already at {found.target_version}, the version pinned in the instance: nothing to upgrade."
            )
        return (f"pip would install nothing here: {title} {found.target_version} is the newest release this venv's "
                f"Python ({found.python_version}) allows; nothing to upgrade.")  # fmt: skip

    @property
    def session_notes(self) -> list[Note]:
        """The notes the operator reads: this upgrade's, then what lies beyond it (never gating)."""
        beyond = [note.model_copy(update={"id": f"beyond-{note.id}", "severity": "info",
                                          "title": f"Beyond {self.found.target_version}: {note.title}"})
                  for note in self.beyond]  # fmt: skip
        return [*self.notes, *beyond]

    @property
    def blocked(self) -> bool:
        """A blocker stops this upgrade, or (nothing to do here) the way to the newest release."""
        stoppers = self.notes if self.steps else [*self.notes, *self.beyond]
        return any(note.severity == "blocker" for note in stoppers)


def build_plan(
    recipe: Recipe, instance: Instance, found: Detection, units: dict[str, str | None] | None = None
) -> Plan:
    """The steps of every hop from installed to target, and the notes that come with them."""
    if units is None:
        units = {unit.role: unit.name for unit in resolve_units(instance, recipe, states=False)}
    path = hops(found.installed_version or "", found.target_version or "", recipe.hops, found.releases)
    if not path and found.target_version and found.up_to_date and found.schema is not None and found.schema.pending:
        path = [found.target_version]  # the code is new but the database is not: finish the upgrade
    steps: list[StepRecord] = []
    notes: dict[str, Note] = {}
    needs: set[str] = set()
    start = found.installed_version
    for to in path:
        hop = replace(found, installed_version=start, target_version=to)
        chosen = chosen_notes(recipe, instance, hop)
        requirements = list(dict.fromkeys(req for note, _ in chosen for req in note.pip_requirements))
        added = [step for note, _ in chosen for step in note.steps]
        built = build_hop(recipe, instance, hop, units, requirements, added)
        if len(path) > 1:
            for record in built.records:
                record.id, record.title = f"{record.id}-{to}", f"{record.title} ({to})"
        steps.extend(built.records)
        needs |= built.needs
        for note, unchecked in chosen:
            notes.setdefault(note.id, as_note(note, unchecked))
        start = to
    plan = Plan(recipe, found, steps, sort_notes(list(notes.values())), hops=path, needs=needs)
    plan.beyond = beyond_target(recipe, instance, found)
    return plan


def beyond_target(recipe: Recipe, instance: Instance, found: Detection) -> list[Note]:
    """Why pip stops short of the newest release, and what would get past it."""
    if not found.out_of_reach:
        return []
    further = replace(found, installed_version=found.target_version, target_version=found.newest_version)
    # Only what surely applies (and blockers, which must be seen even unchecked): this is not today's upgrade.
    chosen = [(note, unchecked) for note, unchecked in chosen_notes(recipe, instance, further)
              if note.version and (note.severity == "blocker" or (note.severity == "warning" and not unchecked))]  # fmt: skip
    notes = [as_note(note, unchecked) for note, unchecked in chosen]
    spec = found.newest_requires_python
    explained = any(note.when.python for note, _ in chosen)  # the recipe's own note says how to move Python
    if spec and not matches(spec, found.python_version) and not explained:
        notes.append(Note(
            id="python-gate", version=found.newest_version or "", severity="blocker",
            title=f"{recipe.package} {found.newest_version} needs Python {spec}",
            text=f"This venv runs Python {found.python_version}, so pip stops at {found.target_version}.",
            way_out=f"Rebuild the venv on a Python matching {spec}, reinstall {recipe.package} and its plugins there, "
                    "then run the wizard again.",
        ))  # fmt: skip
    return sort_notes(notes)


def plan_for(context: InstanceContext, backup_root: Path | None = None, together: Together | None = None) -> Plan:
    """Detect what the instance has and plan its upgrade (no steps when it is up to date).

    ``together``: the instances of its shared venv upgraded with it; only the first one's plan installs the code."""
    instance, recipe = context.instance, context.recipe
    instance.check_paths()
    found = detect(context)
    if found.installed_version is None:
        raise ConfigError(
            f"instance {instance.name!r}: {recipe.package} is not installed in {instance.venv}",
            "check that 'venv' is the virtualenv the app runs from",
        )
    units = context.services.units(recipe)
    plan = build_plan(recipe, instance, found, {unit.role: unit.name for unit in units})
    plan.units = units
    if together is not None and instance.name != together.code_by:
        plan.steps = instance_steps(plan.steps)
    checks = preflight(context, plan, backup_root, together) if plan.steps else schema_checks(plan)
    plan.notes = sort_notes(plan.notes + checks)
    return plan
