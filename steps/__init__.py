"""Recipes: one TOML file per product, validated by the models in steps.models."""

from __future__ import annotations

import tomllib
from pathlib import Path

from pydantic import ValidationError

from .models import Recipe, ReleaseNote, StepError, StepSpec

__all__ = ["Recipe", "RecipeError", "ReleaseNote", "StepSpec", "builtin_recipes", "load_recipe"]

RECIPE_DIR = Path(__file__).resolve().parent


class RecipeError(Exception):
    """A recipe that cannot be used; the message names the file, the step and the field."""


def builtin_recipes() -> list[str]:
    return sorted(p.stem for p in RECIPE_DIR.glob("*.toml"))


def load_recipe(name_or_path: str) -> Recipe:
    """Load a built-in recipe by name, or a site recipe from a path to a .toml file."""
    if name_or_path in builtin_recipes():
        path = RECIPE_DIR / f"{name_or_path}.toml"
    elif name_or_path.endswith(".toml"):
        path = Path(name_or_path).expanduser()
    else:
        raise RecipeError(
            f"unknown recipe {name_or_path!r}: the built-in ones are {', '.join(builtin_recipes())}; "
            "a site recipe is given as a path to a .toml file"
        )
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RecipeError(f"{path}: recipe file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RecipeError(f"{path}: cannot read the recipe: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise RecipeError(f"{path}: not valid TOML: {exc}") from None
    try:
        return Recipe.model_validate(raw)
    except ValidationError as exc:
        raise RecipeError(describe_errors(path, raw, exc)) from None


def describe_errors(path: Path, raw: dict, exc: ValidationError) -> str:
    """One line per problem: file, step (by id where it has one), field, what is wrong."""
    given = raw.get("steps")
    steps = given if isinstance(given, list) else []
    lines = []
    for error in exc.errors():
        loc = list(error["loc"])
        cause = (error.get("ctx") or {}).get("error")
        if isinstance(cause, StepError):
            loc = ["steps", cause.index, cause.field]
            message = cause.message
        else:
            message = error["msg"].removeprefix("Value error, ")
        where = _where(loc, steps)
        lines.append(f"{path}: {where}: {message}")
    return "\n".join(lines)


def _where(loc: list, steps: list) -> str:
    if len(loc) >= 2 and loc[0] == "steps" and isinstance(loc[1], int):
        index = loc[1]
        step = steps[index] if index < len(steps) and isinstance(steps[index], dict) else {}
        name = f"step {step['id']!r}" if isinstance(step.get("id"), str) else f"step #{index + 1}"
        field = ".".join(str(part) for part in loc[2:]) or "(the step itself)"
        return f"{name}, field {field!r}"
    return "field " + repr(".".join(str(part) for part in loc) or "(top level)")
