"""SVG snapshots of the way through the gate at 80x24 and 120x40: info-only release notes, and the ready screen.

Sessions are built as in tests/snapshots/test_snapshots.py (fixed paths and times; no test module imports
another, so the little it needs is here). To accept a deliberate change of look:
`pytest tests/snapshots/test_gate_snapshots.py --snapshot-update`, then look at the SVGs.
"""

from __future__ import annotations

import shutil
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from screens.app import make_app
from steps import load_recipe
from wizard.config.instance import load_instances
from wizard.host.detect import Detection
from wizard.planning.plan import as_note, chosen_notes, sort_notes
from wizard.session.state import Backup, Session, StepRecord
from wizard.session.store import StateStore

ROOT = Path("/tmp/upgrade-wizard-snapshots")  # fixed: paths show on screen
T0 = datetime(2026, 11, 21, 22, 40, tzinfo=UTC)
ARRIVE_SECONDS = 90.0
SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((120, 40), id="120x40")]
STEP_IDS = ["stop-celery", "pip-core", "db-upgrade", "reload-uwsgi", "start-celery"]
SERVICES = {"celery": "indico-celery.service", "uwsgi": "indico-uwsgi.service"}
BACKUP = Backup(kind="taken", path="/var/backups/indico/indico-20261121-224000.dump", at=T0, size=19_000_000,
                checksum="sha256:" + "ab" * 32)  # fmt: skip
# The info notes of Indico 3.2.9 -> 3.3.14 on Python 3.12 (setuptools beside 3.3, the 3.3.14 index), alone.
INDICO_3_3 = chosen_notes(load_recipe("indico"), None, Detection("3.2.9", "3.3.14", "3.12.3"))
INFO_NOTES = [note for note in sort_notes([as_note(*chosen) for chosen in INDICO_3_3]) if note.severity == "info"]


def saved(name: str, **fields) -> Path:
    """An Indico instance whose session is saved with the recipe's five steps of a 3.2 upgrade, none started."""
    folder = ROOT / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    (folder / "instances.toml").write_text(
        f'[instances.main]\nrecipe = "indico"\nvenv = "{folder}/venv"\nuser = "indico"\ntarget = "3.2.9"\n'
    )
    specs = {spec.id: spec for spec in load_recipe("indico").steps}
    steps = [StepRecord(id=step_id, title=specs[step_id].title, argv=["true"], run_as=specs[step_id].run_as,
                        migrates=specs[step_id].migrates) for step_id in STEP_IDS]  # fmt: skip
    session = Session(id="20261121-224000-snap", instance="main", recipe="indico", created=T0,
                      installed_version="3.2.6", target_version="3.2.9", python_version="3.11.7",
                      steps=steps, **fields)  # fmt: skip
    StateStore(folder / "state", "main").save(session)
    return folder


def app_for(folder: Path, past_resume: bool = False):
    app = make_app(load_instances(folder / "instances.toml"), folder / "state", "main")
    app.resumed = past_resume  # True: straight to where the session stands, as after "continue"
    return app


def arrive(screen: str):
    async def run_before(pilot) -> None:
        deadline = time.monotonic() + ARRIVE_SECONDS
        while type(pilot.app.screen).__name__ != screen:
            if time.monotonic() > deadline:
                raise AssertionError(f"waited {ARRIVE_SECONDS:.0f} s for {screen}; "
                                     f"the app shows {type(pilot.app.screen).__name__}")  # fmt: skip
            await pilot.pause(0.05)
        await pilot.pause(0.3)

    return run_before


@pytest.mark.parametrize("size", SIZES)
def test_notes_info_only(snap_compare, size):
    """Release notes with no warning: two info notes, shown before the gate; Enter goes on, nothing to acknowledge."""
    assert [note.id for note in INFO_NOTES] == ["setuptools-for-3.3", "index-3.3.14"]
    folder = saved("notes-info", notes=INFO_NOTES)
    assert snap_compare(app_for(folder, past_resume=True), terminal_size=size, run_before=arrive("NotesScreen"))


@pytest.mark.parametrize("size", SIZES)
def test_ready(snap_compare, size, utc):
    """The ready screen, as a wizard started again on a session whose gate is open and where nothing has run:
    the numbered steps, Celery stopped from step 1 to 5 and uWSGI reloaded, no downtime figure, the backup."""
    folder = saved("ready", backup=BACKUP, services=SERVICES)
    assert snap_compare(app_for(folder), terminal_size=size, run_before=arrive("ReadyScreen"))
