"""`run --yes` end to end, with real processes: death of the wizard, resume, decisions, safety."""

from __future__ import annotations

import io
import json
import os
import signal
from pathlib import Path

import psutil
import pytest

from wizard.host.procs import alive

from ..helpers.headless import counting_steps, kill_step_and_wizard, running_slow_step, start_and_kill
from ..helpers.processes import wait_for
from ..helpers.sites import PYTHON, make_site, step_toml, toml_str

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGHUP, signal.SIGTERM], ids=["kill-9", "sighup", "sigterm"])
def test_relaunch_reattaches_to_a_step_that_outlived_the_wizard(site_root, sig):
    runs = site_root / "runs.txt"
    site = make_site(site_root, counting_steps(runs, slow_seconds=4))
    start_and_kill(site, sig)

    result = site.cli("run", "--yes")
    assert result.returncode == 0, result.stdout + result.stderr
    if sig == signal.SIGKILL:
        assert "lock left by an earlier wizard" in result.stdout and "was taken over" in result.stdout
    assert "reattached to the running step" in result.stdout
    assert "[slow] end" in result.stdout
    assert runs.read_text().splitlines() == ["first", "slow", "last"]  # nothing ran twice
    steps = site.steps()
    assert [s["status"] for s in steps.values()] == ["succeeded"] * 3
    assert all(s["attempts"] == 1 for s in steps.values())


def test_a_step_that_finished_while_no_wizard_watched_is_recorded(site_root):
    runs = site_root / "runs.txt"
    site = make_site(site_root, counting_steps(runs, slow_seconds=1))
    step = start_and_kill(site, signal.SIGKILL)
    wait_for(lambda: not alive(step["pid"], step["start_ticks"]), what="the step to end")

    status = site.cli("status", env={**os.environ, "COLUMNS": "250"})
    assert "ended with 0; not yet recorded" in status.stdout

    result = site.cli("run", "--yes")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "finished while no wizard was watching (exit code 0)" in result.stdout
    assert runs.read_text().splitlines() == ["first", "slow", "last"]
    assert site.steps()["slow"]["exit_code"] == 0 and site.steps()["slow"]["attempts"] == 1


def test_ctrl_c_stops_following_but_not_the_step(site_root):
    runs = site_root / "runs.txt"
    site = make_site(site_root, counting_steps(runs, slow_seconds=3))
    wizard = site.spawn("run", "--yes", "--backup-done", str(site.root))
    step = running_slow_step(site)
    wizard.send_signal(signal.SIGINT)
    output, _ = wizard.communicate(timeout=10)
    assert wizard.returncode == 130, output
    assert "the step goes on" in output and "run again to reattach" in output
    assert psutil.pid_exists(step["pid"])
    result = site.cli("run", "--yes")
    assert result.returncode == 0, result.stdout + result.stderr
    assert runs.read_text().splitlines() == ["first", "slow", "last"]


def test_a_wizard_dying_between_launch_and_save_leaves_a_record_to_resume(site_root, monkeypatch):
    from wizard.config.instance import load_instances
    from wizard.execution import runner
    from wizard.headless import Choices, run_upgrade
    from wizard.plainlines import PlainOutput
    from wizard.session.store import StateStore

    runs = site_root / "runs.txt"
    site = make_site(site_root, counting_steps(runs, slow_seconds=2))
    real_launch = runner.launch

    def launch_then_die(step, **kwargs):
        child = real_launch(step, **kwargs)
        if step.id == "slow":
            raise SystemExit("the wizard dies right after the launch, before saving the pid")
        return child

    monkeypatch.setattr(runner, "launch", launch_then_die)  # as the engine's step processes call it
    instance = load_instances(site.config)[site.name]
    with pytest.raises(SystemExit):
        run_upgrade(instance, StateStore(site.state, site.name), PlainOutput(io.StringIO()),
                    Choices(backup_done=str(site_root)))  # fmt: skip
    saved = json.loads(site.session_file.read_text())["steps"][1]
    assert saved["status"] == "running" and saved["pid"] is None and saved["token"]

    result = site.cli("run", "--yes")
    assert result.returncode == 0, result.stdout + result.stderr
    assert runs.read_text().splitlines() == ["first", "slow", "last"]
    assert site.steps()["slow"]["attempts"] == 1


def test_an_interrupted_step_waits_for_a_decision_then_reruns(site_root):
    runs = site_root / "runs.txt"
    site = make_site(
        site_root, counting_steps(runs, slow_seconds=6)
    )  # the kill must land before it ends, loaded or not
    kill_step_and_wizard(site)

    result = site.cli("run", "--yes")
    assert result.returncode == 4, result.stdout + result.stderr
    assert "'slow' (Step slow) was interrupted" in result.stdout
    assert "--retry (it is marked safe to run again)" in result.stdout
    assert site.steps()["slow"]["status"] == "interrupted"
    assert site.cli("run", "--yes").returncode == 4  # still waiting: no silent choice

    result = site.cli("run", "--yes", "--retry")
    assert result.returncode == 0, result.stdout + result.stderr
    assert runs.read_text().splitlines() == ["first", "slow", "last"]
    assert site.steps()["slow"]["attempts"] == 2
    log = Path(site.steps()["slow"]["log"]).read_text()
    assert log.count("started:") == 2  # both attempts, in the same log


def test_an_interrupted_step_can_be_skipped_with_a_reason(site_root):
    runs = site_root / "runs.txt"
    site = make_site(
        site_root, counting_steps(runs, slow_seconds=6)
    )  # the kill must land before it ends, loaded or not
    kill_step_and_wizard(site)
    assert site.cli("run", "--yes", "--skip", "  ").returncode == 2  # a reason is required
    result = site.cli("run", "--yes", "--skip", "ran it by hand")
    assert result.returncode == 0, result.stdout + result.stderr
    slow = site.steps()["slow"]
    assert slow["status"] == "skipped" and slow["skip_reason"] == "ran it by hand"
    assert runs.read_text().splitlines() == ["first", "last"]


def test_a_second_wizard_on_the_same_instance_exits_3(site_root):
    site = make_site(site_root, counting_steps(site_root / "runs.txt", slow_seconds=3))
    wizard = site.spawn("run", "--yes", "--backup-done", str(site.root))
    try:
        running_slow_step(site)
        second = site.cli("run", "--yes")
        assert second.returncode == 3
        assert f"another upgrade-wizard (pid {wizard.pid})" in second.stderr
        assert site.cli("status").returncode == 0  # looking is always allowed
    finally:
        wizard.wait(timeout=30)
    assert wizard.returncode == 0


def test_a_failing_step_exits_1_and_a_retry_succeeds(site_root):
    flag = site_root / "fixed"
    site = make_site(
        site_root,
        step_toml("flaky", f"import os, sys\nprint('checking')\nsys.exit(0 if os.path.exists({str(flag)!r}) else 3)")
        + step_toml("after", "print('after')"),
    )
    result = site.cli("run", "--yes", "--backup-done", str(site.root))
    assert result.returncode == 1
    assert "'flaky' (Step flaky) failed with exit code 3" in result.stdout
    assert "--retry" in result.stdout
    assert site.steps()["after"]["status"] == "pending"

    flag.touch()
    again = site.cli("run", "--yes")
    assert again.returncode == 1 and site.steps()["flaky"]["attempts"] == 1  # no silent retry

    retried = site.cli("run", "--yes", "--retry")
    assert retried.returncode == 0, retried.stdout + retried.stderr
    assert retried.stdout.count("[flaky] checking") == 1  # the new attempt's line, not the failed one's replayed
    steps = site.steps()
    assert steps["flaky"]["attempts"] == 2 and steps["flaky"]["exit_code"] == 0
    assert steps["after"]["status"] == "succeeded"
    assert site.cli("run", "--yes", "--retry").returncode == 2  # nothing left to retry


def test_the_backup_gate_holds_without_a_backup(site_root):
    runs = site_root / "runs.txt"
    site = make_site(site_root, counting_steps(runs))
    result = site.cli("run", "--yes")
    assert result.returncode == 2
    assert "backup gate is closed" in result.stderr and "--backup-done PATH" in result.stderr
    assert not runs.exists()
    missing = site.cli("run", "--yes", "--backup-done", str(site_root / "no-such-backup"))
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    (site_root / "empty-backup" / "inside").mkdir(parents=True)
    (site_root / "empty-backup" / "inside" / "indico.dump").touch()
    empty = site.cli("run", "--yes", "--backup-done", str(site_root / "empty-backup"))
    assert empty.returncode == 2 and "is empty" in empty.stderr
    assert not runs.exists()
    assert site.session()["backup"] is None


def test_run_without_yes_is_a_usage_error(site_root):
    site = make_site(site_root, step_toml("one", "print(1)"))
    result = site.cli("run")
    assert result.returncode == 2 and "--yes" in result.stderr


NASTY = "x; touch PWNED $(touch PWNED2) `touch PWNED3` 'single' \"double\""


def test_shell_metacharacters_in_names_and_paths_stay_literal(tmp_path):
    root = tmp_path / "dir with $(touch PWNED4) & 'quotes'; touch PWNED5"
    try:
        show = (
            '[[steps]]\nid = "show"\ntitle = "Show the arguments"\n'
            f'argv = [{toml_str(PYTHON)}, "-c", "import sys, json; print(json.dumps(sys.argv[1:]))", '
            '"{instance}", "{venv}"]\n'
        )
        site = make_site(root, show, name=NASTY)
        result = site.cli("run", NASTY, "--yes", "--backup-done", str(root), cwd=tmp_path)
        assert result.returncode == 0, result.stdout + result.stderr
        assert NASTY.replace('"', '\\"') in result.stdout
        assert str(site.venv).replace('"', '\\"') in result.stdout
        assert site.session()["instance"] == NASTY
        assert (site.state / NASTY / "session.json").exists()
        created = [p.name for p in tmp_path.rglob("PWNED*")] + [p.name for p in Path.cwd().glob("PWNED*")]
        assert created == []
    finally:
        from ..helpers.processes import kill_tree_leftovers

        kill_tree_leftovers(tmp_path)


SECRET = "Sup3r-S3cret-pw"
KEY = "k3y-abcdef-123456"


def test_secrets_never_reach_logs_output_or_state(site_root):
    app_config = f"SQLALCHEMY_DATABASE_URI = 'postgresql://indico:{SECRET}@localhost/indico'\nSECRET_KEY = '{KEY}'\n"
    conf = site_root / "app.conf"
    code = (
        "import re, time\n"
        f"text = open({str(conf)!r}).read()\n"
        "pw = re.search(r'indico:([^@]+)@', text).group(1)\n"
        "print(text, flush=True)\n"
        # Unfinished lines, paused long enough for the wrapper to show them before the newline:
        # a whole secret followed by more text, then half a secret and the rest after a pause.
        "print('password ' + pw + ' then', end='', flush=True)\ntime.sleep(1.6)\nprint(' ok')\n"
        "print('again ' + pw[:6], end='', flush=True)\ntime.sleep(1.6)\nprint(pw[6:])\n"
    )
    site = make_site(site_root, step_toml("leaky", code), app_config=app_config)
    result = site.cli("run", "--yes", "--backup-done", str(site_root))
    assert result.returncode == 0, result.stdout + result.stderr
    log = Path(site.steps()["leaky"]["log"]).read_text()
    assert "postgresql://indico:********@localhost/indico" in log
    assert "password ******** then ok" in log and "again ********" in log
    texts = {
        "stdout": result.stdout + result.stderr,
        "log": log,
        "state": site.session_file.read_text(),
        "status": site.cli("status").stdout + site.cli("status", "--json").stdout,
    }
    for where, text in texts.items():
        assert SECRET not in text and KEY not in text, where
    leftovers = [
        p for p in (site.state / site.name).rglob("*") if p.is_file() and SECRET in p.read_text(errors="ignore")
    ]
    assert leftovers == []


def test_secrets_in_the_instance_environment_reach_the_step_and_nothing_else(site_root):
    """A password given to the app through the instance's env (pretalx's PRETALX_DB_PASS, an index URL with one)."""
    code = "import os\nprint('db', os.environ['PRETALX_DB_PASS'])\nprint('index', os.environ['PIP_INDEX_URL'])\n"
    site = make_site(site_root, step_toml("uses-env", code))
    index = f"https://deploy:{SECRET}@pypi.example.org/simple"
    with site.config.open("a") as config:
        config.write(f"[instances.site.env]\nPRETALX_DB_PASS = {toml_str(KEY)}\nPIP_INDEX_URL = {toml_str(index)}\n"
                     "PRETALX_DATA_DIR = '/var/pretalx'\n")  # fmt: skip
    result = site.cli("run", "--yes", "--backup-done", str(site_root))
    assert result.returncode == 0, result.stdout + result.stderr
    step = site.steps()["uses-env"]
    log = Path(step["log"]).read_text()
    assert "db ********" in log and "index https://deploy:********@pypi.example.org/simple" in log  # the step had them
    assert step["env"]["PRETALX_DATA_DIR"] == "/var/pretalx" and "PRETALX_DB_PASS" not in step["env"]
    texts = [result.stdout + result.stderr, log, site.cli("status", "--json").stdout]
    texts += [p.read_text(errors="ignore") for p in (site.state / site.name).rglob("*") if p.is_file()]
    assert not [text for text in texts if SECRET in text or KEY in text]


def test_a_relative_state_dir_is_taken_from_where_the_wizard_started(site_root):
    from ..helpers.sites import run_cli

    runs = site_root / "runs.txt"
    site = make_site(site_root, counting_steps(runs, slow_seconds=0.1))
    result = run_cli("--config", "instances.toml", "--state-dir", "state", "run", "--yes", "--backup-done", ".",
                     cwd=site_root)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert runs.read_text().splitlines() == ["first", "slow", "last"]
    assert all(step["status"] == "succeeded" for step in site.steps().values())
    leftovers = [p.name for p in (site.state / site.name).rglob("*") if "env" in p.name and p.is_file()]
    assert leftovers == [], leftovers  # the wrapper found its private env file and removed it


def test_a_relaunch_checks_again_for_the_tools_the_steps_to_come_need(site_root):
    tools = site_root / "bin"
    tools.mkdir(parents=True)
    tool = tools / "uw-rebuild-tool"
    flag = site_root / "fixed"
    site = make_site(
        site_root,
        step_toml(
            "build", f"import os, sys\nsys.exit(0 if os.path.exists({str(flag)!r}) else 1)", needs=["uw-rebuild-tool"]
        )
        + step_toml("after", "print('after')"),
    )
    with open(site.config, "a") as handle:
        handle.write(f'[instances."site".env]\nPATH = {toml_str(str(tools) + ":" + os.environ["PATH"])}\n')

    def put_tool_back():
        tool.write_text("#!/bin/sh\n")
        tool.chmod(0o755)

    put_tool_back()
    assert site.cli("run", "--yes", "--backup-done", str(site.root)).returncode == 1

    tool.unlink()  # gone since the plan was made
    blocked = site.cli("run", "--yes", "--retry")
    assert blocked.returncode == 2, blocked.stdout + blocked.stderr
    assert "uw-rebuild-tool is not installed, and the plan needs it" in blocked.stdout
    assert site.steps()["build"]["attempts"] == 1  # nothing ran

    put_tool_back()
    flag.touch()
    done = site.cli("run", "--yes", "--retry")
    assert done.returncode == 0, done.stdout + done.stderr
    assert site.steps()["after"]["status"] == "succeeded"


def test_an_instance_without_a_worker_service_skips_its_steps_and_says_why(site_root):
    steps = ('[[steps]]\nid = "stop-worker"\ntitle = "Stop the worker"\nservice = { action = "stop", role = "worker" }\n\n'
             + step_toml("work", "print('working')"))  # fmt: skip
    site = make_site(site_root, steps)
    recipe = site.root / "recipe.toml"
    recipe.write_text(recipe.read_text() + '\n[services]\nworker = "site-worker.service"\n')
    with open(site.config, "a") as handle:
        handle.write('[instances."site".services]\nworker = ""\n')
    result = site.cli("run", "--yes", "--backup-done", str(site.root))
    assert result.returncode == 0, result.stdout + result.stderr
    steps = site.steps()
    assert steps["stop-worker"]["status"] == "skipped" and steps["stop-worker"]["attempts"] == 0
    assert steps["stop-worker"]["skip_reason"] == "the instance has no worker service"
    assert "stop-worker: skipped: the instance has no worker service" in result.stdout


def test_a_fast_step_s_last_line_is_shown_whatever_came_before(site_root):
    # 300,000 lines as fast as Python writes them, then the line that says what went wrong.
    code = "import sys\nw = sys.stdout.write\nfor n in range(300000): w('line %d ' % n + 'x' * 40 + '\\n')\nprint('FATAL the end', flush=True)\nsys.exit(3)"
    site = make_site(site_root, step_toml("flood", code))
    result = site.cli("run", "--yes", "--backup-done", str(site.root), timeout=300)
    assert result.returncode == 1, result.stderr
    shown = [line.split("[flood] ", 1)[1] for line in result.stdout.splitlines() if "[flood] line " in line]
    assert len(shown) == 300000 and shown[-1].startswith("line 299999 ")  # every line, in order, none cut
    assert all(len(line) == len(f"line {n} ") + 40 for n, line in enumerate(shown[:10]))
    assert "[flood] FATAL the end" in result.stdout
    assert result.stdout.index("[flood] FATAL the end") < result.stdout.index("FAILED (exit code 3)")
