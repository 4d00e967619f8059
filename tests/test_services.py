"""Which uWSGI unit a host has is looked up (systemctl reads unit files even where systemd is not running)."""

from __future__ import annotations

import shutil

import pytest

from steps import load_recipe
from wizard.detect import Detection
from wizard.facts import facts_for
from wizard.instance import Instance
from wizard.plan import Plan
from wizard.services import resolve_units

pytestmark = pytest.mark.skipif(shutil.which("systemctl") is None, reason="needs systemctl")


def host_with(tmp_path, *units: str) -> Instance:
    root = tmp_path / "root"
    (root / "etc/systemd/system").mkdir(parents=True)
    for unit in units:
        (root / "etc/systemd/system" / unit).write_text("[Service]\nExecStart=/bin/true\n")
    return Instance(name="main", recipe="indico", venv=tmp_path / "venv",
                    service_manager=["systemctl", f"--root={root}", "{action}", "{service}"])  # fmt: skip


def units(instance: Instance) -> dict[str, tuple[str, str]]:
    return {u.role: (u.name, u.how) for u in resolve_units(instance, load_recipe("indico"))}


def test_an_indico_3_host_has_indico_uwsgi(tmp_path):
    found = units(host_with(tmp_path, "indico-uwsgi.service", "indico-celery.service", "uwsgi.service"))
    assert found["uwsgi"] == ("indico-uwsgi.service", "found")
    assert found["celery"] == ("indico-celery.service", "found")


def test_an_old_host_has_the_distributions_uwsgi(tmp_path):
    assert units(host_with(tmp_path, "uwsgi.service"))["uwsgi"] == ("uwsgi.service", "found")


def test_a_unit_not_found_is_assumed_and_flagged(tmp_path):
    instance = host_with(tmp_path)
    assert units(instance)["uwsgi"] == ("indico-uwsgi.service", "assumed")
    plan = Plan(load_recipe("indico"), Detection("3.2.6", "3.2.9", "3.11.7"), [], [], resolve_units(instance, load_recipe("indico")))
    flagged = [f for f in facts_for(instance, plan) if f.name == "uwsgi service"]
    assert flagged[0].state == "warning" and "not found on this host" in flagged[0].hint


def test_a_configured_unit_wins(tmp_path):
    instance = host_with(tmp_path, "uwsgi.service")
    instance = instance.model_copy(update={"services": {"uwsgi": "indico-uwsgi@conference.service"}})
    assert units(instance)["uwsgi"] == ("indico-uwsgi@conference.service", "configured")
