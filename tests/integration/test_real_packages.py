"""`plan` against the real indico and pretalx releases on PyPI, in venvs on this machine's Python.

The packages are installed without their dependencies (their metadata and code
are what detection reads); the wizard's own dry run then resolves everything
pip would really install.  Needs the registry: deselect with -m 'not network'.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ..helpers.sites import PYTHON, Site, toml_str

pytestmark = [pytest.mark.network, pytest.mark.slow]
ON_PYTHON_3_11 = sys.version_info[:2] == (3, 11)


def real_site(root: Path, recipe: str, requirement: str) -> Site:
    root.mkdir(parents=True, exist_ok=True)
    venv = root / "venv"
    if not venv.exists():
        subprocess.run([PYTHON, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps", requirement],
                   check=True, timeout=600)  # fmt: skip
    config = root / "instances.toml"
    config.write_text(f"[instances.real]\nrecipe = {toml_str(recipe)}\nvenv = {toml_str(venv)}\n"
                      'service_manager = ["true", "{action}", "{service}"]\n')  # fmt: skip
    return Site(root=root, name="real", config=config, state=root / "state", venv=venv)


@pytest.mark.skipif(not ON_PYTHON_3_11, reason="the facts asserted are those of Python 3.11")
def test_indico_3_2_on_python_3_11(tmp_path):
    site = real_site(tmp_path / "indico", "indico", "indico==3.2.7")
    result = site.cli("plan", timeout=900)
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "3.2.9  (what pip would install into this venv)" in out
    assert re.search(r"newest +3\.3\.\d+ \(needs Python >=3\.12\.2,<3\.13; this venv has 3\.11", out), out
    assert "Indico 3.3 runs only on Python 3.12.2" in out and "upgrade-python --force-version 3.12" in out
    assert "indico==3.2.9" in out

    real_site(tmp_path / "indico", "indico", "indico==3.2.9")
    result = site.cli("plan", timeout=900)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "pip would install nothing here: Indico 3.2.9 is the newest release this venv" in result.stdout
    assert "BLOCKER" in result.stdout and "Indico 3.3 runs only on Python 3.12.2" in result.stdout


@pytest.mark.skipif(not ON_PYTHON_3_11, reason="the facts asserted are those of Python 3.11")
def test_pretalx_2024_3_1_on_python_3_11(tmp_path):
    site = real_site(tmp_path / "pretalx", "pretalx", "pretalx==2024.3.1")
    result = site.cli("plan", timeout=900)
    out = result.stdout
    tools_found = all(shutil.which(tool) for tool in ("npm", "msgfmt"))
    assert result.returncode == (0 if tools_found else 2), out + result.stderr
    assert re.search(r"path +2024\.3\.1 -> 2025\.1\.0 -> 2025\.2\.\d+", out), out
    assert re.search(r"newest +2026\.\d+\.\d+ \(needs Python >=3\.13", out), out
    assert "setuptools<82" in out  # in the first hop's pip command
    assert re.search(r"tools +(msgfmt|npm) (found|missing), (msgfmt|npm) (found|missing)", out), out
    assert "pretalx 2026.1 needs Python 3.12 or newer" in out
