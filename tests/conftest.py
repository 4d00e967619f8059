"""Fixtures for every test folder; the helpers they use live in tests/helpers/."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from .helpers.processes import kill_tree_leftovers


@pytest.fixture
def site_root(tmp_path: Path):
    root = tmp_path / "site"
    yield root
    kill_tree_leftovers(tmp_path)


@pytest.fixture(autouse=True)
def _quiet_environment(monkeypatch):
    # Tests must not read the machine's own instances or state.
    monkeypatch.setenv("XDG_STATE_HOME", os.devnull + "-not-a-dir")
