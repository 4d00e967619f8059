"""Who runs a command: the argv that switches to the app's user or to root, as root and as a normal user."""

from __future__ import annotations

import pytest

from wizard.host import privilege
from wizard.host.privilege import as_db_client, as_runner


@pytest.fixture(params=[0, 1000], ids=["as-root", "as-user"])
def euid(request, monkeypatch):
    monkeypatch.setattr(privilege.os, "geteuid", lambda: request.param)
    monkeypatch.setattr(privilege, "current_user", lambda: "root" if request.param == 0 else "operator")
    return request.param


def test_the_app_user_is_reached_with_runuser_as_root_and_sudo_otherwise(euid):
    argv = as_runner(["pip", "install"], "app", "indico", {"INDICO_CONFIG": "/etc/indico.conf"})
    if euid == 0:
        assert argv == ["runuser", "-u", "indico", "--", "pip", "install"]  # runuser keeps the environment
    else:  # sudo resets it: the step's own, non-secret variables go through env
        assert argv == ["sudo", "-n", "-u", "indico", "--", "env", "INDICO_CONFIG=/etc/indico.conf", "pip", "install"]
    assert as_runner(["true"], "root", "indico", {}) == (["true"] if euid == 0 else ["sudo", "-n", "--", "true"])


def test_a_database_client_switches_user_only_for_a_password_less_login(euid):
    peer = as_db_client(["pg_dump", "-Fc"], "indico", has_password=False)
    assert peer == (["runuser", "-u", "indico", "--", "pg_dump", "-Fc"] if euid == 0
                    else ["sudo", "-n", "-u", "indico", "--", "pg_dump", "-Fc"])  # fmt: skip
    # With a password the wizard's own user connects: sudo would have dropped PGPASSWORD.
    assert as_db_client(["pg_dump", "-Fc"], "indico", has_password=True) == ["pg_dump", "-Fc"]
