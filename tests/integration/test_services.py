"""Service units and their states.

Which uWSGI unit a host has is looked up (systemctl reads unit files even where
systemd is not running).  Each service's state is asked of the service manager
the instance names: a real supervisord here (running, exited at once, stopped),
systemd's words through a stand-in where systemd does not run, and a manager
that does not answer.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from steps import load_recipe
from wizard.config.instance import Instance
from wizard.host import services
from wizard.host.detect import Detection
from wizard.host.services import resolve_units, service_state
from wizard.planning.plan import Plan
from wizard.views.facts import facts_for

from ..helpers.processes import kill_tree_leftovers, wait_for
from ..helpers.sites import PYTHON, make_site, toml_str
from ..helpers.supervisor import supervisord_header

BIN = Path(sys.executable).parent  # the project's venv: supervisord and supervisorctl
needs_systemctl = pytest.mark.skipif(shutil.which("systemctl") is None, reason="needs systemctl")
SYSTEMD_RUNS = Path("/run/systemd/system").is_dir()  # what sd_booted() checks


def host_with(tmp_path, *units: str) -> Instance:
    root = tmp_path / "root"
    (root / "etc/systemd/system").mkdir(parents=True)
    for unit in units:
        (root / "etc/systemd/system" / unit).write_text("[Service]\nExecStart=/bin/true\n")
    return Instance(name="main", recipe="indico", venv=tmp_path / "venv",
                    service_manager=["systemctl", f"--root={root}", "{action}", "{service}"])  # fmt: skip


def units(instance: Instance) -> dict[str, tuple[str, str]]:
    return {u.role: (u.name, u.how) for u in resolve_units(instance, load_recipe("indico"))}


@needs_systemctl
def test_an_indico_3_host_has_indico_uwsgi(tmp_path):
    found = units(host_with(tmp_path, "indico-uwsgi.service", "indico-celery.service", "uwsgi.service"))
    assert found["uwsgi"] == ("indico-uwsgi.service", "found")
    assert found["celery"] == ("indico-celery.service", "found")


@needs_systemctl
def test_an_old_host_has_the_distributions_uwsgi(tmp_path):
    assert units(host_with(tmp_path, "uwsgi.service"))["uwsgi"] == ("uwsgi.service", "found")


@needs_systemctl
def test_a_unit_not_found_is_assumed_and_flagged(tmp_path):
    instance = host_with(tmp_path)
    assert units(instance)["uwsgi"] == ("indico-uwsgi.service", "assumed")
    plan = Plan(
        load_recipe("indico"),
        Detection("3.2.6", "3.2.9", "3.11.7"),
        [],
        [],
        resolve_units(instance, load_recipe("indico")),
    )
    flagged = [f for f in facts_for(instance, plan) if f.name == "uwsgi service"]
    assert flagged[0].state == "warning" and "not found on this host" in flagged[0].hint
    # Not asked: systemd says "inactive" of a unit it has never heard of, which would be a guess.
    uwsgi = next(unit for unit in plan.units if unit.role == "uwsgi")
    assert uwsgi.state == "unknown" and "no such unit was found" in uwsgi.said


@needs_systemctl
def test_a_configured_unit_wins(tmp_path):
    instance = host_with(tmp_path, "uwsgi.service")
    instance = instance.model_copy(update={"services": {"uwsgi": "indico-uwsgi@conference.service"}})
    assert units(instance)["uwsgi"] == ("indico-uwsgi@conference.service", "configured")


# -- States, from a real supervisord.

PROGRAMS = """
[program:appserver]
command={python} -c "import time; time.sleep(3600)"
startsecs=1
[program:crasher]
command={python} -c "raise SystemExit(3)"
startsecs=1
startretries=0
[program:broken]
command={python} -c "raise SystemExit(3)"
startsecs=1
startretries=0
[program:flapper]
command={python} -c "raise SystemExit(3)"
startsecs=1
startretries=1000
[program:idle]
command={python} -c "import time; time.sleep(3600)"
autostart=false
[program:oneshot]
command={python} -c "import time; time.sleep(1.5)"
startsecs=1
autorestart=false
"""


def program_states(ctl: list[str]) -> dict[str, str]:
    out = subprocess.run([*ctl, "status"], capture_output=True, text=True, timeout=30).stdout
    return {line.split()[0]: line.split()[1] for line in out.splitlines() if len(line.split()) > 1}


@pytest.fixture(scope="module")
def supervised(tmp_path_factory):
    """supervisord with a program running (appserver), some that exit at once (crasher and broken: FATAL, flapper:
    BACKOFF again and again), one never started (idle: STOPPED) and one that ran and ended (oneshot: EXITED)."""
    folder = tmp_path_factory.mktemp("services")
    conf = folder / "supervisord.conf"
    conf.write_text(supervisord_header(folder) + textwrap.dedent(PROGRAMS.format(python=PYTHON)))
    subprocess.run([BIN / "supervisord", "-c", conf], check=True, timeout=30)
    ctl = [str(BIN / "supervisorctl"), "-c", str(conf)]
    settled = {"appserver": "RUNNING", "crasher": "FATAL", "broken": "FATAL", "idle": "STOPPED", "oneshot": "EXITED"}
    try:
        wait_for(lambda: settled.items() <= program_states(ctl).items(), timeout=60, interval=0.2,
                 what=f"supervisord's programs to settle as {settled} (last seen: {program_states(ctl)})")  # fmt: skip
        yield ctl
    finally:
        subprocess.run([*ctl, "shutdown"], capture_output=True, timeout=30)
        kill_tree_leftovers(folder)


def under(ctl: list[str], **services: str) -> Instance:
    return Instance(name="main", recipe="indico", venv=Path("/nonexistent/venv"),
                    service_manager=[*ctl, "{action}", "{service}"], services=services)  # fmt: skip


def test_supervisord_states_are_read_as_running_stopped_failed(supervised):
    instance = under(supervised)
    state, said = service_state(instance, "appserver")
    assert (state, said.split()[0]) == ("running", "RUNNING"), said
    state, said = service_state(instance, "crasher")
    assert (state, said.split()[0]) == ("failed", "FATAL"), said
    assert service_state(instance, "idle")[0] == "stopped"
    assert service_state(instance, "oneshot")[0] == "stopped"
    assert service_state(instance, "oneshot")[1].startswith("EXITED")
    # The flapping program is in BACKOFF between short STARTING spells: asked until it is caught in BACKOFF.
    seen = []

    def caught_in_backoff() -> bool:
        seen.append(service_state(instance, "flapper"))
        return seen[-1][0] == "failed" and seen[-1][1].startswith("BACKOFF")

    wait_for(caught_in_backoff, timeout=60, interval=0.2, what="flapper read as failed (BACKOFF)")
    assert {state for state, _ in seen} <= {"failed", "starting"}, seen  # never running, never a guess
    state, said = service_state(instance, "no-such-program")
    assert state == "unknown" and "no such process" in said, said


def test_a_plan_shows_each_state_and_warns_of_the_services_that_are_down(site_root, supervised):
    steps = ('[[steps]]\nid = "pip"\ntitle = "Install"\nargv = ["true"]\n\n'
             '[[steps]]\nid = "restart-uwsgi"\ntitle = "Restart the app server"\n'
             'service = { action = "restart", role = "uwsgi" }\n\n'
             '[[steps]]\nid = "start-worker"\ntitle = "Start the worker"\n'
             'service = { action = "start", role = "worker" }\n')  # fmt: skip
    site = make_site(site_root, steps)
    recipe = site.root / "recipe.toml"
    recipe.write_text(recipe.read_text() + '\n[services]\nuwsgi = "crasher"\ncelery = "idle"\nworker = "oneshot"\n'
                      'search = "broken"\ncache = "appserver"\nmailer = "no-such-program"\n')  # fmt: skip
    with open(site.config, "a") as handle:
        handle.write(f"service_manager = [{', '.join(toml_str(part) for part in supervised)}, "
                     '"{action}", "{service}"]\n')  # fmt: skip
    result = site.cli("plan", timeout=120, env={**os.environ, "COLUMNS": "300"})
    out = result.stdout
    assert result.returncode == 0, out + result.stderr  # warnings: the upgrade may go on
    lines = {line.split()[0]: " ".join(line.split()) for line in out.splitlines() if line.strip()}
    assert lines["cache"] == "cache service appserver (default) running"
    assert lines["celery"] == "celery service idle (default) stopped (STOPPED Not started)"
    assert lines["worker"].startswith("worker service oneshot (default) stopped (EXITED"), lines["worker"]
    assert lines["uwsgi"].startswith("uwsgi service crasher (default) failed (FATAL"), lines["uwsgi"]
    assert lines["search"].startswith("search service broken (default) failed (FATAL"), lines["search"]
    assert lines["mailer"].startswith(
        "mailer service no-such-program (default) state unknown (supervisorctl gave no state"
    )
    assert "no such process" in lines["mailer"]
    ctl = " ".join(supervised)
    # Running, or unknown: no warning.  Each service that is down: one, with its way out.
    assert sorted(line for line in out.splitlines() if line.startswith("WARNING")) == [
        "WARNING broken (the search service) has failed",
        "WARNING crasher (the app server) has failed",
        "WARNING idle (the celery service) is not running",
        "WARNING oneshot (the worker service) is not running",
    ]
    # The app server failed, and the plan restarts it: look first.
    assert (
        "supervisorctl reports FATAL Exited too quickly (process log may have details). The site is not being "
        'served now. The upgrade\'s step "Restart the app server" starts it.' in out
    )
    assert f"way out: The upgrade restarts it; check why it failed first: `{ctl} status crasher`" in out
    # Failed, and nothing in the plan starts it.
    assert f"way out: Check why it failed: `{ctl} status broken`; then start it: `{ctl} start broken`" in out
    # Stopped, and nothing starts it; stopped, and the plan starts it.
    assert (
        "supervisorctl reports STOPPED Not started. Its background tasks are not being run now. "
        "Nothing in this upgrade starts it." in out
    )
    assert f"way out: Start it: `{ctl} start idle`\n" in out
    assert (
        f"way out: Start it: `{ctl} start oneshot` (or leave it stopped, if that is on purpose: "
        "the upgrade starts it)" in out
    )


def test_a_manager_that_does_not_answer_is_unknown_after_its_timeout(tmp_path, monkeypatch):
    """Real supervisorctl against a supervisord that accepts and never answers (a stuck one)."""
    path = tmp_path / "stuck.sock"
    stuck = socket.socket(socket.AF_UNIX)
    stuck.bind(str(path))
    stuck.listen(5)
    monkeypatch.setattr(services, "STATE_TIMEOUT", 2.0)
    instance = under([str(BIN / "supervisorctl"), "-s", f"unix://{path}"])
    try:
        started = time.monotonic()
        state, said = service_state(instance, "uwsgi")
        took = time.monotonic() - started
    finally:
        stuck.close()
    assert state == "unknown" and "did not answer within 2 s" in said, said
    assert took < 20, f"the question took {took:.1f} s with a 2 s timeout"


def test_a_manager_the_wizard_cannot_read_is_unknown_and_not_asked(tmp_path):
    instance = Instance(name="main", recipe="indico", venv=tmp_path / "venv",
                        service_manager=["rc-service", "{service}", "{action}"])  # fmt: skip
    assert service_state(instance, "uwsgi") == (
        "unknown",
        "not asked: the wizard reads states from systemctl and supervisorctl only",
    )


# -- systemd's words.

FAKE_SYSTEMCTL = """#!{python}
# A stand-in for `systemctl is-active UNIT`: systemd's own words, from a table (see the test's docstring).
import json, sys
words = json.load(open({table!r}))
if sys.argv[1:2] == ["show"] and sys.argv[3:] == ["--property=LoadState", "--value"]:
    print("not-found" if sys.argv[2] == "gone.service" else "loaded")
    sys.exit(0)
if sys.argv[1:2] != ["is-active"] or len(sys.argv) != 3:
    sys.exit("this stand-in answers is-active UNIT and show UNIT --property=LoadState --value only")
word = words.get(sys.argv[2])
if word is None:
    sys.exit(1)  # no answer on stdout, as when systemd is not running
print(word)
sys.exit(0 if word == "active" else 3)
"""


@pytest.mark.skipif(SYSTEMD_RUNS, reason="systemd runs here: the real one is asked (test_real_systemd_*)")
def test_systemctl_words_are_read_as_states(tmp_path, monkeypatch):
    """systemd is installed here but does not run (it is not PID 1), so the real `systemctl is-active` cannot
    answer; a stand-in named systemctl, first on the PATH, prints systemd's documented words instead."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    table = tmp_path / "words.json"
    words = {"web.service": "active", "worker.service": "inactive", "broken.service": "failed",
             "coming.service": "activating", "reload.service": "reloading", "going.service": "deactivating",
             "gone.service": "inactive"}  # fmt: skip
    table.write_text(json.dumps(words))
    fake = bin_dir / "systemctl"
    fake.write_text(FAKE_SYSTEMCTL.format(python=PYTHON, table=str(table)))
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    instance = Instance(name="main", recipe="indico", venv=tmp_path / "venv")  # the default: systemctl
    assert service_state(instance, "web.service") == ("running", "active")
    assert service_state(instance, "worker.service") == ("stopped", "inactive")
    assert service_state(instance, "broken.service") == ("failed", "failed")
    assert service_state(instance, "coming.service") == ("starting", "activating")
    assert service_state(instance, "reload.service") == ("starting", "reloading")
    assert service_state(instance, "going.service") == ("unknown", "systemctl says 'deactivating'")
    assert service_state(instance, "silent.service")[0] == "unknown"
    # "inactive" for a unit systemd has never heard of is no stopped service (LoadState says not-found).
    assert service_state(instance, "gone.service") == (
        "unknown",
        "systemd knows no unit gone.service (is-active says inactive of any name)",
    )


@needs_systemctl
@pytest.mark.skipif(SYSTEMD_RUNS, reason="systemd runs here")
def test_real_systemctl_without_a_running_systemd_is_unknown(tmp_path):
    instance = Instance(name="main", recipe="indico", venv=tmp_path / "venv")
    state, said = service_state(instance, "indico-uwsgi.service")
    assert state == "unknown" and said.startswith("systemctl gave no state (exit 1): "), said


@pytest.mark.skipif(not SYSTEMD_RUNS, reason="systemd does not run here (installed, not PID 1)")
def test_real_systemd_says_its_journal_is_running(tmp_path):
    unit = "systemd-journald.service"
    active = subprocess.run(["systemctl", "show", "--property=ActiveState", "--value", unit],
                            capture_output=True, text=True, timeout=30).stdout.strip()  # fmt: skip
    if active != "active":
        pytest.skip(f"{unit} is {active or 'not known'} here")
    instance = Instance(name="main", recipe="indico", venv=tmp_path / "venv")
    assert service_state(instance, unit) == ("running", "active")
    assert service_state(instance, "upgrade-wizard-no-such-unit.service")[0] == "unknown"


# -- systemd template units: one instance of indico-celery@.service per Indico instance ----------------------


def systemd_root(tmp_path: Path, enabled: list[str]) -> Path:
    """A root for `systemctl --root` (read offline): the two template units, these instances of them enabled."""
    root = tmp_path / "root"
    units = root / "etc" / "systemd" / "system"
    (units / "multi-user.target.wants").mkdir(parents=True)
    for template in ("indico-uwsgi@.service", "indico-celery@.service"):
        (units / template).write_text("[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\n")
    for unit in enabled:
        template = unit.split("@")[0] + "@.service"
        (units / "multi-user.target.wants" / unit).symlink_to(f"/etc/systemd/system/{template}")
    return root


@needs_systemctl
def test_template_units_are_found_only_for_the_instance_systemd_has_enabled(tmp_path):
    """Detection asks the real systemctl (offline, on a private root): main's enabled instances are its units;
    for an instance whose name systemd has no enabled unit of, the template is never taken as proof."""
    root = systemd_root(tmp_path, ["indico-uwsgi@main.service", "indico-celery@main.service"])
    manager = ["systemctl", f"--root={root}", "{action}", "{service}"]
    recipe = load_recipe("indico")

    def units(name: str, **fields) -> dict[str, tuple[str | None, str]]:
        instance = Instance(name=name, recipe="indico", venv=tmp_path / "venv", service_manager=manager, **fields)
        return {unit.role: (unit.name, unit.how) for unit in resolve_units(instance, recipe, states=False)}

    assert units("main") == {"uwsgi": ("indico-uwsgi@main.service", "found"),
                             "celery": ("indico-celery@main.service", "found")}  # fmt: skip
    assert units("other") == {"uwsgi": ("indico-uwsgi.service", "assumed"),
                              "celery": ("indico-celery.service", "assumed")}  # fmt: skip
    # Named in the instances file with the placeholder: each instance its own unit, no lookup needed.
    configured = {"celery": "indico-celery@{instance}.service", "uwsgi": "indico-uwsgi@{instance}.service"}
    assert units("other", services=configured) == {"uwsgi": ("indico-uwsgi@other.service", "configured"),
                                                   "celery": ("indico-celery@other.service", "configured")}  # fmt: skip
    instance = Instance(name="b", recipe="indico", venv=tmp_path / "venv", service_manager=manager, services=configured)
    assert instance.service_unit(recipe, "celery") == "indico-celery@b.service"
    assert instance.service_argv("restart", "indico-celery@b.service")[-2:] == ["restart", "indico-celery@b.service"]
