"""Throwaway distributions for real pip: wheels written by hand into a find-links folder."""

from __future__ import annotations

import base64
import hashlib
import subprocess
import sys
import zipfile
from pathlib import Path

from packaging.utils import canonicalize_name


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def build_wheel(folder: Path, name: str, version: str, requires_python: str | None = None,
                requires: tuple[str, ...] = ()) -> Path:  # fmt: skip
    """A pure-Python wheel with one empty module and the metadata pip reads."""
    module = canonicalize_name(name).replace("-", "_")
    dist_info = f"{module}-{version}.dist-info"
    metadata = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    if requires_python:
        metadata.append(f"Requires-Python: {requires_python}")
    metadata.extend(f"Requires-Dist: {requirement}" for requirement in requires)
    files = {
        f"{module}/__init__.py": f"__version__ = {version!r}\n".encode(),
        f"{dist_info}/METADATA": ("\n".join(metadata) + "\n").encode(),
        f"{dist_info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: upgrade-wizard-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = [f"{path},{_record_hash(data)},{len(data)}" for path, data in files.items()] + [f"{dist_info}/RECORD,,"]
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / f"{module}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, data in files.items():
            archive.writestr(path, data)
        archive.writestr(f"{dist_info}/RECORD", "\n".join(record) + "\n")
    return wheel


def offline_pip_env(wheels: Path) -> dict[str, str]:
    """pip sees only ``wheels``: no index, no machine-wide configuration."""
    return {"PIP_CONFIG_FILE": "/dev/null", "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(wheels),
            "PIP_DISABLE_PIP_VERSION_CHECK": "1"}  # fmt: skip


def venv_with(root: Path, wheels: Path, *requirements: str) -> Path:
    """A real venv (with pip) holding ``requirements`` from ``wheels``."""
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    if requirements:
        subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", *requirements], check=True,
                       env={"PATH": "/usr/bin:/bin", **offline_pip_env(wheels)})  # fmt: skip
    return venv


def next_python_minor() -> str:
    """A Requires-Python that the running interpreter does not meet."""
    return f">={sys.version_info.major}.{sys.version_info.minor + 1}"
