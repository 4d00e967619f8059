"""One instance as the wizard sees it for one run: its recipe, its config (read once), its secrets and services.

Built once when an instance is opened (`InstanceContext.open`) and handed to
detection, planning, the backup, the lock watch and the Engine, so none of
them reads the app's config again, and they all judge from the same text.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path

from steps import Recipe
from wizard.config.dbconf import Database, database_in
from wizard.config.instance import Instance
from wizard.config.secrets import config_files, config_overrides, env_secrets, secrets_in_text
from wizard.errors import ConfigError
from wizard.host.services import ServiceManager


@dataclass(frozen=True)
class InstanceContext:
    instance: Instance
    recipe: Recipe
    config_files: list[Path]  # the files the app reads (named by the instance, else found where the app looks)
    config_texts: list[str]  # the text of each of them that could be read
    unreadable: dict[Path, str] = field(default_factory=dict)  # file -> why it could not be read
    read_from: tuple[Path, ...] = ()  # the file each of config_texts was read from, in the same order
    services: ServiceManager = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "services", ServiceManager(self.instance))

    @classmethod
    def open(cls, instance: Instance) -> InstanceContext:
        """Load the recipe and read the config files once (a file that cannot be read is noted, not fatal here)."""
        recipe = instance.load_recipe()
        files = config_files(recipe, instance)
        texts: list[str] = []
        read: list[Path] = []
        unreadable: dict[Path, str] = {}
        for path in files:
            try:
                texts.append(path.read_text(encoding="utf-8", errors="replace"))
                read.append(path)
            except FileNotFoundError:
                continue  # check_paths reports a missing configured file where it matters
            except OSError as exc:
                unreadable[path] = exc.strerror or str(exc)
        return cls(instance, recipe, files, texts, unreadable, tuple(read))

    @property
    def name(self) -> str:
        return self.instance.name

    @property
    def overrides(self) -> dict[str, str]:
        """The config keys the instance's environment sets, as ``section.key: value``."""
        return config_overrides(self.recipe, self.instance)

    @property
    def venv_values(self) -> dict[str, str]:
        """What a command run in the venv may name: the recipe's and the instance's vars, {python}, {venv}."""
        instance = self.instance
        return {**self.recipe.vars, **instance.vars, "python": str(instance.python), "venv": str(instance.venv)}

    @cached_property
    def database(self) -> Database | None:
        """The app's database as its config says (None when it does not say); asked as the app's Unix user."""
        found = database_in(self.config_texts, self.recipe.config_format, self.overrides)
        return replace(found, os_user=self.instance.user) if found else None

    @property
    def secrets(self) -> list[str]:
        """Every secret in the config files and the instance's environment, in every form it may be printed.

        A config file that could not be read stops the wizard here: it would mask nothing of it.
        """
        for path, why in self.unreadable.items():
            raise ConfigError(
                f"instance {self.instance.name!r}: cannot read {path} ({why}), so its passwords could not be masked",
                "run the wizard as a user that can read the app's config (usually root)",
            )
        found: list[str] = []
        for text in self.config_texts:
            found.extend(secrets_in_text(text, self.recipe.config_format))
        return found + env_secrets(self.instance.env)
