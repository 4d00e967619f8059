"""Throwaway instances of a site recipe over real venvs, and the real CLI run as a process."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from wizard.demo.catalog import install_metadata

PYTHON = sys.executable


def toml_str(value) -> str:
    return json.dumps(str(value))


@dataclass
class Site:
    """An instance built for one test: its folder, config, state dir and recipe."""

    root: Path
    name: str
    config: Path
    state: Path
    venv: Path

    def cli(self, *args: str, timeout: float = 60, **kwargs) -> subprocess.CompletedProcess:
        return run_cli("--config", str(self.config), "--state-dir", str(self.state), *args, timeout=timeout, **kwargs)

    def spawn(self, *args: str, **kwargs) -> subprocess.Popen:
        """Start the wizard as its own process group, as a login shell would run it."""
        return subprocess.Popen(
            [PYTHON, "-m", "wizard", "--config", str(self.config), "--state-dir", str(self.state), *args],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, start_new_session=True, **kwargs,
        )  # fmt: skip

    def session(self) -> dict:
        out = self.cli("status", self.name, "--json")
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    def steps(self) -> dict[str, dict]:
        return {step["id"]: step for step in self.session()["steps"]}

    @property
    def session_file(self) -> Path:
        return self.state / self.name / "session.json"


def run_cli(*args: str, timeout: float = 60, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PYTHON, "-m", "wizard", *args], capture_output=True, text=True, timeout=timeout,
        stdin=subprocess.DEVNULL, **kwargs,
    )  # fmt: skip


def step_toml(step_id: str, code: str, **extra) -> str:
    """A recipe step running a small Python program (argv, never a shell)."""
    lines = [
        "[[steps]]",
        f"id = {toml_str(step_id)}",
        f"title = {toml_str(extra.pop('title', 'Step ' + step_id))}",
        f'argv = [{toml_str(PYTHON)}, "-c", {toml_str(textwrap.dedent(code))}]',
    ]
    for key, value in extra.items():
        lines.append(f"{key} = {json.dumps(value) if not isinstance(value, str) else toml_str(value)}")
    return "\n".join(lines) + "\n"


def make_site(
    root: Path,
    steps: str,
    *,
    name: str = "site",
    installed: str = "1.0",
    target: str = "2.0",
    app_config: str | None = None,
    vars: dict[str, str] | None = None,
    config_format: str = "python",
) -> Site:
    """An instance of a site recipe whose steps are ``steps`` (TOML), over a real venv."""
    root.mkdir(parents=True, exist_ok=True)
    venv = root / "venv"
    if not venv.exists():
        subprocess.run([PYTHON, "-m", "venv", "--without-pip", str(venv)], check=True)
        install_metadata(venv, "indico-demo", installed)
    recipe = root / "recipe.toml"
    recipe.write_text(
        f'name = "site"\ntitle = "Test site"\npackage = "indico-demo"\nconfig_format = "{config_format}"\n'
        f"required_vars = {json.dumps(sorted(vars or {}))}\n\n" + steps
    )
    lines = [f"[instances.{toml_str(name)}]", f"recipe = {toml_str(recipe)}", f"venv = {toml_str(venv)}",
             f"target = {toml_str(target)}"]  # fmt: skip
    if app_config is not None:
        conf = root / "app.conf"
        conf.write_text(app_config)
        lines.append(f"config = {toml_str(conf)}")
    if vars:
        lines.append(f"[instances.{toml_str(name)}.vars]")
        lines.extend(f"{key} = {toml_str(value)}" for key, value in vars.items())
    config = root / "instances.toml"
    config.write_text("\n".join(lines) + "\n")
    return Site(root=root, name=name, config=config, state=root / "state", venv=venv)


@contextlib.contextmanager
def demo_host(tmp_path: Path, instances: int = 2) -> Iterator[Path]:
    """A demo sandbox with several instances on one venv, their services running; all stopped afterwards."""
    from wizard.demo.sandbox import build, start_services, stop_services

    from .processes import kill_tree_leftovers

    folder = tmp_path / "host"
    build(folder, pace=0.1, instances=instances)
    start_services(folder)
    try:
        yield folder
    finally:
        stop_services(folder)
        kill_tree_leftovers(tmp_path)
