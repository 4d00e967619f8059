"""The report archive of the demo's upgrade: what it holds, and no secret of the instance in any form."""

from __future__ import annotations

import json
import re
import tarfile
from pathlib import Path

import pytest

from wizard.config.context import InstanceContext
from wizard.config.instance import load_instances
from wizard.demo.sandbox import stop_services

from ..helpers.processes import kill_tree_leftovers
from ..helpers.sites import run_cli

pytestmark = pytest.mark.slow

# Written into the demo's indico.conf as a Python literal with escapes; the steps' log quotes it as a traceback would.
SMTP_PASSWORD = 'pa"ss\\wörd-9f3e'


@pytest.fixture
def upgraded(tmp_path):
    folder = tmp_path / "demo"
    result = run_cli("demo", "--dir", str(folder), "--headless", "--yes", "--pace", "0.1", timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    yield folder
    if (folder / "services.json").exists():
        stop_services(folder)
    kill_tree_leftovers(tmp_path)


def cli(folder: Path, *args: str):
    return run_cli("--config", str(folder / "instances.toml"), "--state-dir", str(folder / "state"), *args,
                   timeout=120)  # fmt: skip


def unpack(archive: Path, into: Path) -> dict[str, bytes]:
    with tarfile.open(archive) as tar:
        members = tar.getmembers()
        assert all(m.isfile() and m.mode == 0o600 and ".." not in m.name for m in members)
        tar.extractall(into, filter="data")
    return {
        str(path.relative_to(into)).split("/", 1)[1]: path.read_bytes() for path in into.rglob("*") if path.is_file()
    }


def test_the_report_holds_the_upgrade_and_masks_every_secret_in_every_form(upgraded, tmp_path):
    conf = upgraded / "etc" / "indico.conf"
    conf.write_text(conf.read_text() + f"SMTP_PASSWORD = {SMTP_PASSWORD!r}\n")
    session = json.loads(cli(upgraded, "status", "--json").stdout)
    log = Path(session["steps"][3]["log"])  # db-upgrade's: a traceback quoting the config line, in two forms
    with log.open("a") as handle:
        handle.write(
            f'  File "indico.conf", line 4\n    SMTP_PASSWORD = {SMTP_PASSWORD!r}\n{json.dumps(SMTP_PASSWORD)}\n'
        )
    context = InstanceContext.open(load_instances(upgraded / "instances.toml")["demo"])
    secret_key = re.search(r"SECRET_KEY = '([0-9a-f]+)'", conf.read_text()).group(1)
    forms = set(context.secrets)
    assert secret_key in forms and SMTP_PASSWORD in forms and repr(SMTP_PASSWORD)[1:-1] in forms

    done = cli(upgraded, "report")
    assert done.returncode == 0, done.stdout + done.stderr
    written = re.search(r"report written: (\S+\.tar\.gz) \(([\d.]+ \w+), (\d+) files\)", done.stdout)
    assert written, done.stdout
    archive = Path(written.group(1))
    assert archive.parent == upgraded / "state" / "demo" / "reports" and archive.stat().st_mode & 0o777 == 0o600
    files = unpack(archive, tmp_path / "unpacked")
    assert len(files) == int(written.group(3))

    for name in ("summary.txt", "session.json", "plan.txt", "health.txt", "host.txt", "found-now.txt",
                 "packages-before.txt", "packages-now.txt", "config/indico.conf"):  # fmt: skip
        assert name in files, sorted(files)
    logs = [name for name in files if name.startswith("logs/") and name.endswith(".log")]
    assert len(logs) == 7, logs  # every step's log
    summary = files["summary.txt"].decode()
    assert "3.2.5 -> 3.2.9" in summary and "health check: healthy" in summary and "7. start-celery" in summary
    assert "indico-demo==3.2.5" in files["packages-before.txt"].decode()
    assert "Running upgrade" in files["logs/04-db-upgrade.log"].decode()
    assert "SECRET_KEY = ********" in files["config/indico.conf"].decode()
    assert "SMTP_PASSWORD = ********" in files["logs/04-db-upgrade.log"].decode()

    leaks = [(name, form) for name, data in files.items() for form in forms if form.encode() in data]
    assert not leaks, leaks

    # --output: a folder of the operator's choice.
    elsewhere = tmp_path / "for-upstream"
    elsewhere.mkdir()
    again = cli(upgraded, "report", "--output", str(elsewhere))
    assert again.returncode == 0, again.stderr
    assert [p.parent for p in elsewhere.glob("upgrade-wizard-report-demo-*.tar.gz")] == [elsewhere]


def test_a_report_that_cannot_be_written_says_why_and_leaves_nothing_behind(upgraded, tmp_path):
    missing = tmp_path / "no" / "such" / "folder" / "report.tar.gz"
    done = cli(upgraded, "report", "--output", str(missing))
    assert done.returncode == 2
    assert "the report could not be written" in done.stderr and "--output" in done.stderr
    assert not (tmp_path / "no").exists()
