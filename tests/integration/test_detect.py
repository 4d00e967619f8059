"""Detection with real pip against real venvs: what pip would install, what is out of reach, and the hops."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ..helpers.sites import Site, toml_str
from ..helpers.wheels import build_wheel, next_python_minor, offline_pip_env, venv_with

PIP_STEP = """
[[steps]]
id = "pip-core"
title = "Install the release"
argv = ["{python}", "-m", "pip", "install", "-q", "wizapp=={target_version}", "{note_requirements}"]
safe_to_rerun = true
"""


def pip_site(root: Path, wheels: Path, installed: str, recipe_extra: str = "", steps: str = PIP_STEP) -> Site:
    root.mkdir(parents=True, exist_ok=True)
    venv = venv_with(root, wheels, f"wizapp=={installed}")
    recipe = root / "recipe.toml"
    recipe.write_text('name = "wizapp"\ntitle = "Wizapp"\npackage = "wizapp"\nconfig_format = "python"\n'
                      + recipe_extra + "\n" + steps)  # fmt: skip
    env = "\n".join(f"{key} = {toml_str(value)}" for key, value in offline_pip_env(wheels).items())
    config = root / "instances.toml"
    config.write_text(
        f"[instances.app]\nrecipe = {toml_str(recipe)}\nvenv = {toml_str(venv)}\n\n[instances.app.env]\n{env}\n"
    )
    return Site(root=root, name="app", config=config, state=root / "state", venv=venv)


def installed_version(site: Site, name: str) -> str:
    code = f"import importlib.metadata as m; print(m.version({name!r}))"
    return subprocess.run([str(site.venv / "bin" / "python"), "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip()  # fmt: skip


@pytest.fixture(scope="module")
def wheels(tmp_path_factory) -> Path:
    """An index of semantic versions: 1.2 needs a dependency nobody has, 2.0 a newer Python."""
    folder = tmp_path_factory.mktemp("wheels")
    for version in ("1.0", "1.1"):
        build_wheel(folder, "wizapp", version)
    build_wheel(folder, "wizapp", "1.2", requires=("wizdep>=5",))
    build_wheel(folder, "wizapp", "2.0", requires_python=next_python_minor())
    build_wheel(folder, "wizdep", "1.0")
    return folder


@pytest.fixture(scope="module")
def calendar_wheels(tmp_path_factory) -> Path:
    """An index of feature releases (YEAR.N.patch), the newest needing a newer Python."""
    folder = tmp_path_factory.mktemp("calendar-wheels")
    for version in ("2024.3.1", "2025.1.0", "2025.1.1", "2025.2.0", "2025.2.2"):
        build_wheel(folder, "wizapp", version)
    build_wheel(folder, "wizapp", "2026.1.0", requires_python=next_python_minor())
    for version in ("1.0", "2.0"):
        build_wheel(folder, "wizhelper", version)
    return folder


def test_target_is_what_pip_resolves_and_the_newest_is_out_of_reach(site_root, wheels):
    site = pip_site(site_root, wheels, "1.0")
    result = site.cli("plan", timeout=120)
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    # 1.2 needs a dependency nobody has, 2.0 needs a newer Python: pip settles on 1.1.
    assert "1.1  (what pip would install into this venv)" in out
    py = ".".join(map(str, sys.version_info[:3]))
    assert f"2.0 (needs Python {next_python_minor()}; this venv has {py})" in out
    assert "Beyond 1.1" in out and f"wizapp 2.0 needs Python {next_python_minor()}" in out
    assert "pip-core" in out and "wizapp==1.1" in out
    assert "asking pip what it would install into" in result.stderr  # said before the silent resolution


def test_nothing_pip_can_do_but_a_newer_python_would(site_root, wheels):
    site = pip_site(site_root, wheels, "1.1")
    result = site.cli("plan", timeout=120)
    assert result.returncode == 2, result.stdout + result.stderr  # a blocker stands between it and 2.0
    assert "pip would install nothing here: Wizapp 1.1 is the newest release this venv" in result.stdout
    assert "way out:" in result.stdout and "Rebuild the venv on a Python matching" in result.stdout
    headless = site.cli("run", "--yes", timeout=120)
    assert headless.returncode == 2 and "Wizapp 1.1 is the newest release" in headless.stdout
    assert not (site.state / "app" / "session.json").exists()


FEATURE_RECIPE = """
hops = "feature"

[[notes]]
id = "helper-below-2"
severity = "info"
title = "Old releases need wizhelper below 2"
text = "They import something wizhelper 2 removed."
when = { target = "<2025.2.0" }
pip_requirements = ["wizhelper<2"]

[[notes]]
id = "gone-in-2025.2"
version = "2025.2.0"
severity = "warning"
title = "2025.2 removes a command"
text = "Scripts calling it must change."
"""


def test_feature_releases_are_hops_each_with_its_own_requirements(site_root, calendar_wheels):
    site = pip_site(site_root, calendar_wheels, "2024.3.1", FEATURE_RECIPE)
    result = site.cli("plan", timeout=120)
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "2024.3.1 -> 2025.1.1 -> 2025.2.2" in out
    assert "2026.1.0 (needs Python" in out
    run = site.cli("run", "--yes", "--backup-done", str(site_root), timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    steps = site.steps()
    assert list(steps) == ["pip-core-2025.1.1", "pip-core-2025.2.2"]
    assert steps["pip-core-2025.1.1"]["argv"][-2:] == ["wizapp==2025.1.1", "wizhelper<2"]
    assert steps["pip-core-2025.2.2"]["argv"][-1] == "wizapp==2025.2.2"
    assert installed_version(site, "wizapp") == "2025.2.2"
    assert installed_version(site, "wizhelper") == "1.0"  # installed by the first hop, within its limit
    session = site.session()
    assert session["path"] == ["2025.1.1", "2025.2.2"]
    assert {n["id"]: n["severity"] for n in session["notes"]} == {
        "helper-below-2": "info", "gone-in-2025.2": "warning",
        "beyond-python-gate": "info",  # 2026.1.0 needs a newer Python: said, never gating
    }  # fmt: skip


def test_a_tool_the_plan_needs_is_checked_before_anything_runs(site_root, wheels):
    steps = PIP_STEP + 'needs = ["wizard-test-no-such-tool"]\n'
    site = pip_site(site_root, wheels, "1.0", steps=steps)
    result = site.cli("plan", timeout=120)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "wizard-test-no-such-tool missing" in result.stdout
    assert "wizard-test-no-such-tool is not installed, and the plan needs it" in result.stdout
    run = site.cli("run", "--yes", "--backup-done", str(site_root), timeout=120)
    assert run.returncode == 2 and installed_version(site, "wizapp") == "1.0"


def test_pip_that_cannot_reach_its_index_is_a_clear_error(site_root, wheels):
    site = pip_site(site_root, wheels, "1.0")
    text = site.config.read_text().replace(toml_str(wheels), toml_str(site_root / "no-such-folder"))
    site.config.write_text(text)
    result = site.cli("plan", timeout=120)
    assert result.returncode == 2
    assert "pip cannot resolve wizapp for this venv" in result.stderr
    assert "hint:" in result.stderr and "Traceback" not in result.stderr
