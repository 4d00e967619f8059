"""Whether the running uWSGI reloads on a touch is read from its own command line and ini file."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from wizard.config.instance import Instance
from wizard.host.services import ServiceManager
from wizard.host.uwsgiconf import touch_reload_check, touch_reload_files

from ..helpers.processes import wait_for


@pytest.fixture
def process():
    """A stand-in with uWSGI's command line (psutil reads it as it would the real master's)."""
    started = []

    def start(*args: str) -> int:
        argv = [sys.executable, "-c", "import time; time.sleep(60)", *args]
        proc = subprocess.Popen(argv)
        started.append(proc)
        # Until the child has exec'd, /proc shows an empty (or the parent's) command line: a loaded machine showed ''.
        wait_for(
            lambda: psutil.Process(proc.pid).cmdline() == argv, what=f"process {proc.pid} to show its command line"
        )
        return proc.pid

    yield start
    for proc in started:
        proc.kill()


def ini(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "uwsgi.ini"
    path.write_text(text)
    return path


def test_touch_reload_in_the_ini_file_is_found(tmp_path, process):
    wsgi = tmp_path / "indico.wsgi"
    conf = ini(
        tmp_path, f"[uwsgi]\nmaster = true\nwsgi-file = {wsgi}\ntouch-reload = {wsgi}\n[other]\ntouch-reload = /x\n"
    )
    watched = touch_reload_files(process("--ini", str(conf)))
    assert watched.files == {str(wsgi)} and str(conf) in watched.why


def test_touch_reload_on_the_command_line_is_found(tmp_path, process):
    wsgi = tmp_path / "indico.wsgi"
    assert touch_reload_files(process("--master", f"--touch-reload={wsgi}")).files == {str(wsgi)}


def test_a_config_the_wizard_cannot_read_is_said_so(tmp_path, process):
    assert touch_reload_files(process("--yaml", str(tmp_path / "uwsgi.yaml"))).files is None
    with_include = ini(tmp_path, "[uwsgi]\ninclude = /etc/uwsgi/common.ini\n")
    assert touch_reload_files(process("--ini", str(with_include))).files is None


def test_without_touch_reload_the_reload_step_would_do_nothing(tmp_path, process):
    conf = ini(tmp_path, "[uwsgi]\nmaster = true\n")
    pid = process("--ini", str(conf))
    instance = Instance(name="main", recipe="indico", venv=tmp_path / "venv", service_pid=["echo", str(pid)])
    watched, note = touch_reload_check(ServiceManager(instance), "uwsgi", "uwsgi", str(tmp_path / "indico.wsgi"))
    assert watched is False and "the plan restarts it instead" in note.title

    conf.write_text(f"[uwsgi]\ntouch-reload = {tmp_path / 'indico.wsgi'}\n")
    watched, note = touch_reload_check(ServiceManager(instance), "uwsgi", "uwsgi", str(tmp_path / "indico.wsgi"))
    assert watched is True and note.severity == "info"


def test_a_service_that_is_not_running_cannot_be_checked(tmp_path):
    instance = Instance(name="main", recipe="indico", venv=tmp_path / "venv", service_pid=["true", "{service}"])
    watched, note = touch_reload_check(ServiceManager(instance), "uwsgi", "uwsgi", "/opt/indico/web/indico.wsgi")
    assert watched is None and note.severity == "warning" and "not running" in note.text


def test_a_uwsgi_that_renamed_its_process_cannot_be_read(tmp_path):
    # Indico's recommended uwsgi.ini sets auto-procname: the master's command line becomes a title.
    conf = ini(tmp_path, f"[uwsgi]\ntouch-reload = {tmp_path / 'indico.wsgi'}\n")
    titled = subprocess.Popen(["indico uWSGI master", "-f", "/dev/null", str(conf)], executable=shutil.which("tail"))
    try:
        wait_for(
            lambda: psutil.Process(titled.pid).cmdline()[:1] == ["indico uWSGI master"],
            what="the titled process to exec",
        )
        watched = touch_reload_files(titled.pid)
        assert watched.files is None and "renamed its process" in watched.why
    finally:
        titled.kill()
