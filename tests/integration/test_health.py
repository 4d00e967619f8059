"""The health check on the demo sandbox: after the headless upgrade, then `check` as things go wrong one by one."""

from __future__ import annotations

import json
import sqlite3

import pytest

from wizard.demo.catalog import CORE, CORE_REVISIONS, install_metadata
from wizard.demo.sandbox import resume_services, stop_services

from ..helpers.processes import kill_tree_leftovers
from ..helpers.sites import make_site, run_cli, step_toml, toml_str
from ..helpers.wheels import build_wheel, offline_pip_env, venv_with

pytestmark = pytest.mark.slow


@pytest.fixture
def sandbox(tmp_path):
    folder = tmp_path / "demo"
    yield folder
    if (folder / "services.json").exists():
        stop_services(folder)
    kill_tree_leftovers(tmp_path)


def check(folder, *args: str):
    return run_cli("--config", str(folder / "instances.toml"), "--state-dir", str(folder / "state"), "check",
                   "--wait", "3", *args, timeout=120)  # fmt: skip


def findings(folder) -> dict[str, list[dict]]:
    done = check(folder, "--json")
    by_kind: dict[str, list[dict]] = {}
    for finding in json.loads(done.stdout)["findings"]:
        by_kind.setdefault(finding["kind"], []).append(finding)
    return by_kind


def test_the_upgrade_ends_healthy_and_check_finds_each_fault_with_its_evidence(sandbox):
    result = run_cli("demo", "--dir", str(sandbox), "--headless", "--yes", "--pace", "0.1", timeout=180)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert "health check: healthy: all 7 checks passed" in out
    assert "ok     the site runs 3.2.9" in out  # the demo uWSGI's footer, after the touch reloaded it
    session = json.loads(run_cli("--config", str(sandbox / "instances.toml"), "--state-dir", str(sandbox / "state"),
                                 "status", "--json").stdout)  # fmt: skip
    assert session["health"] is not None and all(f["outcome"] == "ok" for f in session["health"]["findings"])
    # The demo venv has no pip: its packages were read from their metadata, before step 1 installed 3.2.9.
    assert session["packages_before"]["pip"] is None
    assert "indico-demo==3.2.5" in session["packages_before"]["requirements"]

    # The demo stopped its services when it ended: nothing answers at BASE_URL.
    down = check(sandbox)
    assert down.returncode == 1, down.stdout + down.stderr
    assert "NOT healthy" in down.stdout and "connection refused" in down.stdout
    assert "what to do: is the app server running" in down.stdout

    assert resume_services(sandbox)  # the demo parked them when it ended: started again, as a resumed demo does
    healthy = check(sandbox)
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    assert "the site runs 3.2.9" in healthy.stdout

    # Older code in the venv than the upgrade's target (and than what the running uWSGI loaded).
    install_metadata(sandbox / "venv", CORE, "3.2.8")
    found = findings(sandbox)
    assert found["code"][0]["outcome"] == "failed"
    assert found["code"][0]["title"] == "indico-demo 3.2.8 installed, but the upgrade's target is 3.2.9"
    assert found["running"][0]["outcome"] == "failed"
    assert found["running"][0]["title"] == "the site still runs 3.2.9, not the installed 3.2.8"
    install_metadata(sandbox / "venv", CORE, "3.2.9")

    # The database one revision behind the code.
    with sqlite3.connect(sandbox / "indico.sqlite3") as conn:
        conn.execute("UPDATE alembic_version SET version_num = ?", (CORE_REVISIONS[-2][0],))
    conn.close()
    found = findings(sandbox)
    schema = found["schema"][0]
    assert schema["outcome"] == "failed" and schema["title"] == "the database schema is behind the installed code"
    assert "1 migration(s) to apply" in schema["evidence"]
    assert check(sandbox).returncode == 1


def test_the_venvs_packages_are_recorded_by_pip_freeze_before_the_first_step_changes_them(tmp_path):
    """A real venv with pip: the set recorded is the one before the step that installs 2.0 (what a rollback needs)."""
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    for version in ("1.0", "2.0"):
        build_wheel(wheels, "indico-demo", version)
    root = tmp_path / "site"
    root.mkdir()
    venv = venv_with(root, wheels, "indico-demo==1.0")
    install = f"import subprocess, sys; sys.exit(subprocess.call([{str(venv / 'bin' / 'python')!r}, '-m', 'pip', " \
              "'install', '-q', 'indico-demo==2.0']))"  # fmt: skip
    site = make_site(root, step_toml("install", install))
    env = "".join(f"{key} = {toml_str(value)}\n" for key, value in offline_pip_env(wheels).items())
    site.config.write_text(site.config.read_text() + f"[instances.site.env]\n{env}")
    result = site.cli("run", "--yes", "--backup-done", str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "health check: healthy" in result.stdout  # 2.0 installed: the target
    packages = site.session()["packages_before"]
    assert packages["pip"] and packages["pip"][0].isdigit(), packages
    assert "indico-demo==1.0" in packages["requirements"], packages
    assert any(line.startswith("pip==") for line in packages["requirements"])  # --all: pip itself too
    status = site.cli("status")
    assert (
        f"venv:    {len(packages['requirements'])} packages recorded before step 1 (pip freeze, pip " in status.stdout
    )
