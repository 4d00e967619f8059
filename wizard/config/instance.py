"""Installations, read from the instances TOML file and validated by pydantic.

A host may carry several instances of one product: each has its own config
file, database and services, and perhaps a virtualenv it shares with others.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator

from steps import Recipe, RecipeError, load_recipe
from wizard.errors import ConfigError

DEFAULT_CONFIG = Path("/etc/upgrade-wizard/instances.toml")
SYSTEMD = ["systemctl", "{action}", "{service}"]


class Instance(BaseModel):
    """One installation the wizard can upgrade."""

    model_config = ConfigDict(extra="forbid")

    name: str
    recipe: str = Field(description="a built-in recipe name or a path to a recipe .toml file")
    venv: Path
    user: str | None = Field(None, description="the app's Unix user; steps marked 'app' run as it")
    config: Path | None = Field(None, description="the app's own config file (indico.conf, pretalx.cfg)")
    target: str | None = Field(None, description="pin the version to upgrade to")
    services: dict[str, str] = Field(
        {},
        description="unit name per service role, over the recipe's defaults ({instance}: this instance's name,"
        " for systemd template units); an empty name: this instance has no such service",
    )
    service_manager: list[str] = Field(SYSTEMD, min_length=1)
    service_pid: list[str] | None = Field(
        None, description="a command printing a service's main pid ({service}); systemd's is known"
    )
    env: dict[str, str] = Field({}, description="extra environment for every step")
    backup_dir: Path | None = Field(None, description="where the wizard keeps its backups (default: in the state dir)")
    backup_keep: int = Field(3, ge=1, description="how many of the wizard's own backups to keep")
    backup_archive: bool = Field(False, description="Indico: also back up the archive storage (it can be large)")
    vars: dict[str, str] = Field({}, description="values for the recipe's own placeholders")
    url: str | None = Field(
        None, description="the site's address for the health check, over the app's config (BASE_URL, [site] url)"
    )
    connect_to: str | None = Field(
        None,
        description="HOST:PORT the health check connects to instead of the address's own host"
        " (the site's name still goes in the Host header and TLS)",
    )

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        # The name becomes a directory under the state dir, beside the wizard's own (.venvs): anything else is allowed.
        if not value or value.startswith(".") or "/" in value or "\0" in value:
            raise ValueError(f"{value!r} cannot name an instance (no '/', not empty, not beginning with '.')")
        return value

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^/\s]+", value):
            raise ValueError(f"{value!r} is not an http:// or https:// address")
        return value

    @field_validator("connect_to")
    @classmethod
    def _connect_to(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"(\[[0-9a-fA-F:.]+\]|[^\s:/\[\]]+):[0-9]{1,5}", value):
            raise ValueError(f"{value!r} is not HOST:PORT (an IPv6 address in brackets: [::1]:8000)")
        return value

    @field_validator("service_manager")
    @classmethod
    def _manager(cls, value: list[str]) -> list[str]:
        if not any("{service}" in part for part in value):
            raise ValueError("the service manager template needs a {service} element")
        return value

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    def load_recipe(self) -> Recipe:
        try:
            return load_recipe(self.recipe)
        except RecipeError as exc:
            raise ConfigError(f"instance {self.name!r}: {exc}") from None

    _shares_venv_with: list[str] = PrivateAttr(default_factory=list)

    @property
    def shares_venv_with(self) -> list[str]:
        """The other instances of the instances file that run from this venv: its code changes under them too."""
        return list(self._shares_venv_with)

    def unit(self, name: str) -> str:
        """A unit name with ``{instance}`` filled in: systemd template units, one per instance
        (``indico-celery@{instance}.service`` is ``indico-celery@main.service`` for the instance main)."""
        return name.replace("{instance}", self.name)

    def service_unit(self, recipe: Recipe, role: str) -> str | None:
        return self.unit(self.services.get(role, recipe.services.get(role)) or "") or None

    def lacks_service(self, role: str) -> bool:
        """The instance says it has no such service (an empty unit name), e.g. no Celery worker."""
        return self.services.get(role) == ""

    def service_argv(self, action: str, unit: str) -> list[str]:
        """The service manager's command, each element filled on its own (never a shell string)."""
        return [part.replace("{action}", action).replace("{service}", unit) for part in self.service_manager]

    def check_paths(self) -> None:
        """Raise ConfigError when the venv or the config file is not where the instance says."""
        if not self.python.exists():
            raise ConfigError(
                f"instance {self.name!r}: no Python at {self.python}",
                "set 'venv' to the virtualenv the app runs from (the folder holding bin/python)",
            )
        if self.config is not None and not self.config.is_file():
            raise ConfigError(
                f"instance {self.name!r}: config file {self.config} not found",
                "set 'config' to the app's own config file, or leave it out to use the app's default lookup",
            )


class InstancesFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    instances: dict[str, dict] = Field(min_length=1)


def load_instances(path: Path) -> dict[str, Instance]:
    """Read every instance from the TOML file; a broken file is a ConfigError naming it."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"instances file {path} not found",
            "describe your installation there, or point --config at the file (see the README)",
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read instances file {path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"instances file {path} is not valid TOML: {exc}") from None
    try:
        table = InstancesFile.model_validate(raw).instances
    except ValidationError:
        raise ConfigError(f"instances file {path}: it needs at least one [instances.NAME] table") from None
    instances = {}
    for name, given in table.items():
        body = dict(given, name=name)
        recipe = body.get("recipe")
        if isinstance(recipe, str) and recipe.endswith(".toml"):
            body["recipe"] = str(path.parent / Path(recipe).expanduser())  # relative to the instances file
        try:
            instances[name] = Instance.model_validate(body)
        except ValidationError as exc:
            raise ConfigError(f"instances file {path}, [instances.{name}]: {_problems(exc)}") from None
    for name, instance in instances.items():
        # Recipe problems are reported here, with the instance that uses the recipe.
        instances[name] = config_from_env(instance, instance.load_recipe())
    venvs = {name: os.path.realpath(instance.venv) for name, instance in instances.items()}
    for name, instance in instances.items():
        instance._shares_venv_with = [other for other, venv in venvs.items() if other != name and venv == venvs[name]]
    return instances


def config_from_env(instance: Instance, recipe: Recipe) -> Instance:
    """An instance that points its app at the config through its env (INDICO_CONFIG=...) has that file as its config.

    The app reads the file the variable names; the wizard must back up and read the same one.
    """
    named = instance.env.get(recipe.config_file_env) if recipe.config_file_env else None
    if not named:
        return instance
    path = Path(named).expanduser()
    if instance.config is not None and instance.config != path:
        raise ConfigError(
            f"instance {instance.name!r}: config is {instance.config}, but its env sets {recipe.config_file_env}={named}",
            "keep only one of them: the app reads the file the variable names",
        )
    return instance.model_copy(update={"config": path})


def pick_instance(instances: dict[str, Instance], name: str | None) -> Instance:
    if name is None:
        if len(instances) == 1:
            return next(iter(instances.values()))
        raise ConfigError(
            "several instances are configured: name the one to work on",
            "one of: " + ", ".join(repr(n) for n in instances),
        )
    try:
        return instances[name]
    except KeyError:
        raise ConfigError(
            f"no instance named {name!r}", "configured: " + ", ".join(repr(n) for n in instances)
        ) from None


def _problems(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors():
        field = ".".join(str(part) for part in error["loc"]) or "(the table)"
        problems.append(f"{field}: {error['msg'].removeprefix('Value error, ')}")
    return "; ".join(problems)
