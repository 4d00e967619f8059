"""Recipes and instances: the built-in ones load, broken ones are named precisely."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import steps
from steps import RecipeError, builtin_recipes, load_recipe
from wizard.config.instance import load_instances, pick_instance
from wizard.errors import ConfigError

from ..helpers.sites import make_site, run_cli, toml_str


def test_builtin_recipes_load_and_follow_the_upstream_order():
    assert builtin_recipes() == ["demo", "indico", "pretalx"]
    indico = [s.id for s in load_recipe("indico").steps]
    assert indico == [
        "stop-celery", "pip-core", "pip-plugins", "db-upgrade", "db-upgrade-plugins", "pull-latex-image",
        "reload-uwsgi", "start-celery",
    ]  # fmt: skip
    db = load_recipe("indico").steps[3]
    assert db.can_hang_on_lock and db.safe_to_rerun and db.env == {"INDICO_CONFIG": "{config}"}
    assert load_recipe("indico").steps[6].unless_restarted == "uwsgi"
    pretalx = load_recipe("pretalx")
    assert "--upgrade-strategy" in pretalx.steps[0].argv and "eager" in pretalx.steps[0].argv


def test_every_recipe_file_loads_and_names_the_steps_that_migrate():
    recipes = {path.stem: load_recipe(str(path)) for path in sorted(Path(steps.__file__).parent.glob("*.toml"))}
    assert sorted(recipes) == builtin_recipes()
    migrating = {name: {s.id: s.migrates for s in recipe.steps if s.migrates} for name, recipe in recipes.items()}
    assert migrating == {
        "demo": {"db-upgrade": "core", "db-upgrade-plugins": "plugins"},
        "indico": {"db-upgrade": "core", "db-upgrade-plugins": "plugins"},
        "pretalx": {"migrate": "all"},
    }


def write_recipe(tmp_path: Path, body: str) -> str:
    path = tmp_path / "broken.toml"
    path.write_text('name = "x"\ntitle = "X"\npackage = "x"\nconfig_format = "ini"\n' + body)
    return str(path)


@pytest.mark.parametrize(
    "body, expected",
    [
        ('[[steps]]\nid = "one"\ntitle = "One"\nargv = ["{venvv}/bin/x"]\n',
         "step 'one', field 'argv': unknown placeholder {venvv}"),
        ('[[steps]]\nid = "one"\ntitle = "One"\n',
         "step 'one', field '(the step itself)': a step needs exactly one of 'argv' or 'service'"),
        ('[[steps]]\nid = "one"\ntitle = "One"\nargv = ["x"]\nwhen = { target = "not a spec" }\n',
         "step 'one', field 'when.target': not a version specifier"),
        ('[[steps]]\nid = "one"\ntitle = "One"\nargv = ["x"]\n[[steps]]\nid = "one"\ntitle = "Again"\nargv = ["y"]\n',
         "step 'one', field 'id': duplicate step id 'one'"),
        ('[[steps]]\nid = "one"\ntitle = "One"\nargv = ["x"]\nrun_as = "nobody"\n',
         "step 'one', field 'run_as'"),
        ('[[steps]]\nid = "one"\ntitle = "One"\nargv = ["x"]\nsafe_to_rerun = "maybe"\n',
         "step 'one', field 'safe_to_rerun'"),
        ('[[steps]]\ntitle = "Nameless"\nargv = ["x"]\n', "step #1, field 'id'"),
        ('[[steps]]\nid = "one"\ntitle = "One"\nargv = ["x", "--flag={plugin_requirements}"]\n',
         "a list placeholder must stand alone"),
        ('[[steps]]\nid = "one"\ntitle = "One"\nargv = ["x"]\nmigrates = "everything"\n',
         "step 'one', field 'migrates'"),
    ],
)  # fmt: skip
def test_a_broken_recipe_names_the_file_the_step_and_the_field(tmp_path, body, expected):
    path = write_recipe(tmp_path, body)
    with pytest.raises(RecipeError) as error:
        load_recipe(path)
    assert str(error.value).startswith(f"{path}: ")
    assert expected in str(error.value)


def test_unreadable_recipes_are_named(tmp_path):
    with pytest.raises(RecipeError, match=r"unknown recipe 'plone'.*demo, indico, pretalx"):
        load_recipe("plone")
    with pytest.raises(RecipeError, match="recipe file not found"):
        load_recipe(str(tmp_path / "missing.toml"))
    bad = tmp_path / "bad.toml"
    bad.write_text("name = \n")
    with pytest.raises(RecipeError, match="not valid TOML"):
        load_recipe(str(bad))


def test_instances_file_errors_are_clear(tmp_path):
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match=r"instances file .*nope\.toml not found"):
        load_instances(missing)
    config = tmp_path / "instances.toml"
    config.write_text('[instances.main]\nrecipe = "plone"\nvenv = "/opt/x"\n')
    with pytest.raises(ConfigError, match="instance 'main': unknown recipe 'plone'"):
        load_instances(config)
    config.write_text('[instances.main]\nrecipe = "indico"\nvenv = "/opt/x"\ncolour = "red"\n')
    with pytest.raises(ConfigError, match=r"\[instances.main\]: colour: Extra inputs are not permitted"):
        load_instances(config)
    config.write_text('[instances.main]\nrecipe = "indico"\nvenv = "/opt/x"\nservice_manager = ["rc-service"]\n')
    with pytest.raises(ConfigError, match="needs a \\{service\\} element"):
        load_instances(config)


def test_a_config_named_through_the_env_is_the_instances_config(tmp_path):
    config = tmp_path / "instances.toml"
    config.write_text('[instances.main]\nrecipe = "indico"\nvenv = "/opt/x"\n'
                      '[instances.main.env]\nINDICO_CONFIG = "/srv/second/indico.conf"\n')  # fmt: skip
    # what the app reads, the wizard reads
    assert load_instances(config)["main"].config == Path("/srv/second/indico.conf")
    config.write_text('[instances.talks]\nrecipe = "pretalx"\nvenv = "/opt/x"\nconfig = "/etc/pretalx/a.cfg"\n'
                      '[instances.talks.env]\nPRETALX_CONFIG_FILE = "/etc/pretalx/b.cfg"\n')  # fmt: skip
    with pytest.raises(
        ConfigError,
        match=re.escape("config is /etc/pretalx/a.cfg, but its env sets PRETALX_CONFIG_FILE=/etc/pretalx/b.cfg"),
    ):
        load_instances(config)


def test_several_instances_need_a_name(tmp_path):
    config = tmp_path / "instances.toml"
    config.write_text(
        '[instances.a]\nrecipe = "indico"\nvenv = "/opt/a"\n[instances.b]\nrecipe = "indico"\nvenv = "/opt/b"\n'
    )
    instances = load_instances(config)
    with pytest.raises(ConfigError, match="several instances"):
        pick_instance(instances, None)
    with pytest.raises(ConfigError, match="no instance named 'c'"):
        pick_instance(instances, "c")
    assert pick_instance(instances, "b").venv == Path("/opt/b")


def test_cli_reports_config_errors_with_exit_2(tmp_path):
    result = run_cli("--config", str(tmp_path / "nope.toml"), "plan")
    assert result.returncode == 2
    assert "instances file" in result.stderr and "not found" in result.stderr
    assert "Traceback" not in result.stderr

    config = tmp_path / "instances.toml"
    config.write_text(f'[instances.main]\nrecipe = "indico"\nvenv = {toml_str(tmp_path / "no-venv")}\n')
    result = run_cli("--config", str(config), "plan")
    assert result.returncode == 2
    assert f"no Python at {tmp_path / 'no-venv'}/bin/python" in result.stderr


def test_plan_prints_the_steps_for_this_instance(site_root):
    site = make_site(site_root, '[[steps]]\nid = "hello"\ntitle = "Say hello"\nargv = ["echo", "{instance}"]\n')
    result = site.cli("plan")
    assert result.returncode == 0, result.stderr
    assert "1.0" in result.stdout and "2.0" in result.stdout
    assert "echo site" in result.stdout
    assert not site.session_file.exists()  # plan changes nothing


def test_database_urls_are_read_without_running_or_exposing_anything():
    from wizard.config.dbconf import from_url

    db = from_url("postgresql://indico:s%40cret@db.example:5433/indico")
    assert (db.kind, db.host, db.port, db.user, db.password, db.name) == (
        "postgresql",
        "db.example",
        5433,
        "indico",
        "s@cret",
        "indico",
    )
    assert "s@cret" not in repr(db) and "s@cret" not in db.describe()
    assert from_url("postgresql:///indico").host is None  # the local socket
    assert from_url("sqlite:////var/lib/app/db.sqlite3").name == "/var/lib/app/db.sqlite3"
    assert from_url("postgresql://indico:Sup3r/Secret@localhost/indico") is None  # unparseable: no crash
