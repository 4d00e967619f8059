"""SVG snapshots of the way through the gate at 80x24 and 120x40: info-only release notes, and the ready screen.

Built like tests/snapshots/test_snapshots.py (its sessions, fixed paths and times). To accept a deliberate
change of look: `pytest tests/snapshots/test_gate_snapshots.py --snapshot-update`, then look at the SVGs.
"""

from __future__ import annotations

import pytest

from steps import load_recipe
from wizard.host.detect import Detection
from wizard.planning.plan import as_note, chosen_notes, sort_notes

from .test_snapshots import BACKUP, SIZES, app_for, arrive, fresh, instances_file, saved_session
from .test_snapshots import utc as utc  # the fixture: times on screen are local

# The info notes of Indico 3.2.9 -> 3.3.14 on Python 3.12 (setuptools beside 3.3, the 3.3.14 index), alone.
INDICO_3_3 = chosen_notes(load_recipe("indico"), None, Detection("3.2.9", "3.3.14", "3.12.3"))
INFO_NOTES = [note for note in sort_notes([as_note(*chosen) for chosen in INDICO_3_3]) if note.severity == "info"]
SERVICES = {"celery": "indico-celery.service", "uwsgi": "indico-uwsgi.service"}


@pytest.mark.parametrize("size", SIZES)
def test_notes_info_only(snap_compare, size):
    """Release notes with no warning: two info notes, shown before the gate; Enter goes on, nothing to acknowledge."""
    assert [note.id for note in INFO_NOTES] == ["setuptools-for-3.3", "index-3.3.14"]
    folder = fresh("notes-info")
    instances_file(folder)
    saved_session(folder, ["pending"] * 5, notes=INFO_NOTES)
    assert snap_compare(app_for(folder, past_resume=True), terminal_size=size, run_before=arrive("NotesScreen"))


@pytest.mark.parametrize("size", SIZES)
def test_ready(snap_compare, size, utc):
    """The ready screen, as a wizard started again on a session whose gate is open and where nothing has run:
    the numbered steps, Celery stopped from step 1 to 5 and uWSGI reloaded, no downtime figure, the backup."""
    folder = fresh("ready")
    instances_file(folder)
    saved_session(folder, ["pending"] * 5, backup=BACKUP, services=SERVICES)
    assert snap_compare(app_for(folder), terminal_size=size, run_before=arrive("ReadyScreen"))
