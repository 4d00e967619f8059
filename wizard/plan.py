"""From a recipe, an instance and what detection found, to the concrete steps of this upgrade."""

from __future__ import annotations

from dataclasses import dataclass, field

from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version

from steps import Recipe, ReleaseNote, StepSpec
from steps.models import LIST_PLACEHOLDERS

from .detect import Detection
from .errors import ConfigError
from .instance import Instance
from .services import Unit, resolve_units
from .state import Note, StepRecord
from .watchdog import application_tag


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


def applies(step: StepSpec | ReleaseNote, recipe: Recipe, instance: Instance, found: Detection) -> bool:
    when = step.when
    if when.plugins_installed is not None and bool(found.plugins) != when.plugins_installed:
        return False
    if when.os_family is not None and found.os_family not in when.os_family:
        return False
    if when.service is not None and not (instance.services.get(when.service) or recipe.services.get(when.service)):
        return False
    checks = ((when.installed, found.installed_version), (when.target, found.target_version), (when.python, found.python_version))
    for spec, version in checks:
        if spec is not None and not _matches(spec, version):
            return False
    return True


def _matches(spec: str, version: str | None) -> bool:
    try:
        return version is not None and Version(version) in SpecifierSet(spec, prereleases=True)
    except InvalidVersion:
        return False


def build_plan(recipe: Recipe, instance: Instance, found: Detection, units: dict[str, str | None] | None = None) -> list[StepRecord]:
    if units is None:
        units = {unit.role: unit.name for unit in resolve_units(instance, recipe)}
    values = placeholder_values(recipe, instance, found)
    lists = {"plugin_requirements": list(found.plugins)}
    records = []
    for step in recipe.steps:
        if not applies(step, recipe, instance, found):
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
            argv = render_argv(step.argv, values, lists)
        env = {**instance.env, **{key: render(value, values) for key, value in step.env.items()}}
        env = {key: value for key, value in env.items() if value}  # an unset config means the app's own lookup
        env["VIRTUAL_ENV"] = str(instance.venv)
        if step.can_hang_on_lock:
            env["PGAPPNAME"] = application_tag(step.id)  # so the lock watch finds this step's session
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
            )
        )
    return records


SEVERITY_ORDER = {"blocker": 0, "warning": 1, "info": 2}


def crosses(version: str, installed: str | None, target: str | None) -> bool:
    """Does going from installed to target pass the release ``version``?"""
    try:
        return installed is not None and target is not None and Version(installed) < Version(version) <= Version(target)
    except InvalidVersion:
        return False


def _unwrap(text: str) -> str:
    """Recipe text is wrapped for the TOML file; the screen wraps it again for its own width."""
    return " ".join(text.split())


def notes_for(recipe: Recipe, instance: Instance, found: Detection) -> list[Note]:
    """The release notes this jump crosses, most severe first, then by version."""
    chosen = [
        note for note in recipe.notes
        if crosses(note.version, found.installed_version, found.target_version) and applies(note, recipe, instance, found)
    ]  # fmt: skip
    chosen.sort(key=lambda n: (SEVERITY_ORDER[n.severity], Version(n.version)))
    return [
        Note(id=n.id, version=n.version, severity=n.severity, title=n.title, text=_unwrap(n.text), way_out=_unwrap(n.way_out))
        for n in chosen
    ]


@dataclass
class Plan:
    recipe: Recipe
    found: Detection
    steps: list[StepRecord]
    notes: list[Note]
    units: list[Unit] = field(default_factory=list)

    @property
    def services(self) -> dict[str, str]:
        return {unit.role: unit.name for unit in self.units if unit.name}


def plan_for(instance: Instance) -> Plan:
    """Detect what the instance has and plan its upgrade (no steps when it is up to date)."""
    from .detect import detect

    instance.check_paths()
    recipe = instance.load_recipe()
    found = detect(instance, recipe)
    if found.installed_version is None:
        raise ConfigError(
            f"instance {instance.name!r}: {recipe.package} is not installed in {instance.venv}",
            "check that 'venv' is the virtualenv the app runs from",
        )
    units = resolve_units(instance, recipe)
    if found.up_to_date:
        return Plan(recipe, found, [], [], units)
    steps = build_plan(recipe, instance, found, {unit.role: unit.name for unit in units})
    return Plan(recipe, found, steps, notes_for(recipe, instance, found), units)
