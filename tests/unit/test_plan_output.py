"""`plan` at 80 columns: the environment the steps get shown once, each command alone, secrets never shown.

Plans of the built-in recipes are built without a host (tests/helpers/planning.py) and printed by Rich into a
string; one test runs the real `plan` on a site whose instance env holds secrets.
"""

from __future__ import annotations

import io
import os
import re
from pathlib import Path

from rich.console import Console

from steps import load_recipe
from wizard.config.instance import Instance
from wizard.planning.plan import Plan, build_plan
from wizard.session.state import StepRecord, StepStatus
from wizard.views.report import print_plan
from wizard.views.rows import EnvRow, argv_text, command_text, env_rows, step_numbers

from ..helpers.planning import INDICO_UNITS, PRETALX_UNITS, found
from ..helpers.sites import make_site, toml_str

PUBLIC_ENV = {
    "PIP_INDEX_URL": "https://pypi.mirror.example.org/simple",
    "PIP_CERT": "/etc/ssl/certs/mirror-ca.pem",
    "HTTPS_PROXY": "http://proxy.example.org:3128",
}
SECRET_ENV = {
    "PRETALX_DB_PASS": "s3cr3t-db-pass-value",  # a key that names a password
    "PIP_EXTRA_INDEX_URL": "https://bob:hunter22-url-pass@private.example.org/simple",  # a URL with a password
}
SECRETS = ("s3cr3t-db-pass-value", "hunter22-url-pass")


def step(step_id: str, env: dict[str, str], argv: list[str] | None = None, **more) -> StepRecord:
    return StepRecord(id=step_id, title=step_id, argv=["run", step_id] if argv is None else argv, env=env, **more)


def recipe_plan(recipe: str) -> tuple[Instance, Plan]:
    instance = Instance(name="main", recipe=recipe, venv=Path(f"/opt/{recipe}/.venv"), user=recipe,
                        config=Path(f"/opt/{recipe}/etc/{recipe}.conf"), env={**PUBLIC_ENV, **SECRET_ENV})  # fmt: skip
    if recipe == "indico":
        facts, units = found("3.2.6", "3.2.9", plugins={"indico-plugin-livesync": "3.2.1"}), INDICO_UNITS
    else:
        facts, units = found("2024.3.1", "2025.2.2"), PRETALX_UNITS
    return instance, build_plan(load_recipe(recipe), instance, facts, units)


def printed(instance: Instance, plan: Plan, width: int = 80, terminal: bool = False) -> str:
    out = io.StringIO()
    console = Console(file=out, width=width, highlight=False, color_system=None, force_terminal=terminal)
    print_plan(console, instance, plan)
    return out.getvalue()


def table_commands(out: str) -> dict[int, str]:
    """The command column of the plan's table, each row's lines joined with a space."""
    commands: dict[int, list[str]] = {}
    number = 0
    for line in out.splitlines():
        cells = [cell.strip() for cell in line.split("│")]
        if len(cells) != 5:  # │ # │ step │ command │
            continue
        number = int(cells[1]) if cells[1] else number
        if cells[3]:
            commands.setdefault(number, []).append(cells[3])
    return {number: " ".join(parts) for number, parts in commands.items()}


# -- the environment, once ---------------------------------------------------------


def test_each_variable_is_listed_once_under_the_steps_that_get_it():
    shared = {"PIP_CERT": "/ca.pem", "VIRTUAL_ENV": "/v"}
    steps = [
        step("stop", shared),
        step("skipped", {}, argv=[], status=StepStatus.SKIPPED),  # runs nothing: not counted against "every step"
        step("db", {**shared, "INDICO_CONFIG": "/etc/i.conf", "PGAPPNAME": "uw:db"}),
        step("db-plugins", {**shared, "INDICO_CONFIG": "/etc/i.conf", "PGAPPNAME": "uw:db-plugins"}),
        step("start", {**shared, "A": "b c"}),
    ]
    assert env_rows(steps) == [
        EnvRow("every step", ["PIP_CERT=/ca.pem"]),
        EnvRow("steps 3, 4", ["INDICO_CONFIG=/etc/i.conf"]),
        EnvRow("step 3", ["PGAPPNAME=uw:db"]),
        EnvRow("step 4", ["PGAPPNAME=uw:db-plugins"]),
        EnvRow("step 5", ["A='b c'"]),  # quoted as a shell would take it
    ]
    assert env_rows([step("only", {"VIRTUAL_ENV": "/v"})]) == []  # the venv's own is implied
    assert env_rows([step("one", {"A": "1"})]) == [EnvRow("step 1", ["A=1"])]


def test_step_numbers_read_as_runs():
    assert step_numbers([4]) == "step 4"
    assert step_numbers([5, 4]) == "steps 4, 5"
    assert step_numbers([1, 2, 3, 7]) == "steps 1-3, 7"


def test_the_advice_panel_keeps_the_command_with_its_environment():
    record = step("x", {"VIRTUAL_ENV": "/v", "A": "b c"}, argv=["pretalx", "migrate"])
    assert command_text(record) == "A='b c' pretalx migrate"
    assert argv_text(record) == "pretalx migrate"


def test_plan_shows_the_environment_once_and_each_command_alone():
    for recipe in ("indico", "pretalx"):
        instance, plan = recipe_plan(recipe)
        out = printed(instance, plan)
        for name, value in PUBLIC_ENV.items():
            assert out.count(f"{name}=") == 1, (recipe, name, out)
            assert f"{name}={value}" in out
        assert "every step" in out
        config_env = "INDICO_CONFIG" if recipe == "indico" else "PRETALX_CONFIG_FILE"
        assert out.count(f"{config_env}=") == 1
        commands = table_commands(out)
        assert list(commands) == list(range(1, len(plan.steps) + 1)), out
        for number, record in enumerate(plan.steps, 1):
            assert commands[number] == argv_text(record), out  # whole, in order, no env in front


def test_plan_fits_80_columns_and_cuts_no_word_of_these_recipes():
    for recipe in ("indico", "pretalx"):
        instance, plan = recipe_plan(recipe)
        for terminal in (False, True):
            out = printed(instance, plan, terminal=terminal)
            table = out[out.index("The plan") : out.index("Going back: until step")]  # then a sentence (one line piped)
            assert max(map(len, table.splitlines())) <= 80, table
            env_block = out[out.index("Environment") : out.index("The plan")]
            assert max(map(len, env_block.splitlines())) <= 80, env_block
            words = {word for record in plan.steps for word in record.argv}
            cells = {word for command in table_commands(out).values() for word in command.split()}
            assert words <= cells, words - cells  # each argument on one line: none folded at this width
        wrapped = printed(instance, plan, terminal=True)
        assert max(map(len, wrapped.splitlines())) <= 80, wrapped  # on a terminal the notes wrap too


def test_on_a_terminal_a_note_wraps_under_its_indent_and_in_a_pipe_stays_one_line():
    instance, plan = recipe_plan("pretalx")
    note = next(note for note in plan.notes if len(note.text) > 80)
    piped = printed(instance, plan)
    assert f"  {note.text}" in piped.splitlines()  # one line per sentence, for grep and logs
    on_screen = printed(instance, plan, terminal=True).splitlines()
    start = next(i for i, line in enumerate(on_screen) if line.startswith("  " + note.text[:20]))
    assert on_screen[start + 1].startswith("  ") and not on_screen[start + 1].startswith("   ")


def test_a_skipped_step_says_why_in_the_command_column():
    instance, plan = recipe_plan("indico")
    plan.steps.insert(0, step("start-worker", {}, argv=[], status=StepStatus.SKIPPED,
                              skip_reason="the instance has no worker service"))  # fmt: skip
    commands = table_commands(printed(instance, plan, width=120))
    assert commands[1] == "skipped: the instance has no worker service"


# -- secrets -------------------------------------------------------------------------


def test_no_secret_of_the_instance_env_is_in_the_plan():
    for recipe in ("indico", "pretalx"):
        instance, plan = recipe_plan(recipe)
        for width, terminal in ((80, False), (80, True), (300, False)):
            out = printed(instance, plan, width, terminal)
            assert not any(secret in out for secret in SECRETS), out
            assert not re.search(r"PRETALX_DB_PASS|PIP_EXTRA_INDEX_URL", out)  # as before: a secret's entry is left out


def test_plan_on_the_command_line_never_prints_a_secret_of_the_instance_env(site_root):
    site = make_site(site_root, '[[steps]]\nid = "hello"\ntitle = "Say hello"\nargv = ["echo", "{instance}"]\n\n'
                     '[[steps]]\nid = "bye"\ntitle = "Say goodbye"\nargv = ["echo", "bye"]\n')  # fmt: skip
    with open(site.config, "a") as handle:
        handle.write(f"[instances.{site.name}.env]\n")
        handle.writelines(f"{key} = {toml_str(value)}\n" for key, value in {**PUBLIC_ENV, **SECRET_ENV}.items())
    for columns in ("80", "300"):
        result = site.cli("plan", env={**os.environ, "COLUMNS": columns})
        assert result.returncode == 0, result.stdout + result.stderr
        out = result.stdout + result.stderr
        assert "echo site" in out and "every step" in out and out.count("PIP_CERT=/etc/ssl/certs/mirror-ca.pem") == 1
        assert not any(secret in out for secret in SECRETS), out
