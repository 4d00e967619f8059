"""Which release notes, hops and added steps the real Indico and pretalx recipes give for a given host."""

from __future__ import annotations

import pytest

from steps import load_recipe
from wizard.host.hostfacts import HostFacts, mysql_server, version_from_num
from wizard.planning.path import hops
from wizard.planning.plan import build_plan

from ..helpers.planning import INDICO_UNITS, PRETALX_UNITS, found, instance

PRETALX_RELEASES = ["2023.1.3", "2024.1.0", "2024.2.0", "2024.2.1", "2024.3.0", "2024.3.1", "2025.1.0",
                    "2025.2.0", "2025.2.1", "2025.2.2"]  # fmt: skip


def indico_plan(installed, target, **kwargs):
    return build_plan(load_recipe("indico"), instance("indico"), found(installed, target, **kwargs), INDICO_UNITS)


def pretalx_plan(installed, target, **kwargs):
    kwargs.setdefault("releases", PRETALX_RELEASES)
    return build_plan(load_recipe("pretalx"), instance("pretalx"), found(installed, target, **kwargs), PRETALX_UNITS)


def severities(notes) -> dict[str, str]:
    return {note.id: note.severity for note in notes}


# -- Indico -------------------------------------------------------------------


def test_indico_3_2_9_on_python_3_11_has_nothing_to_do_and_says_how_to_reach_3_3():
    plan = indico_plan("3.2.9", "3.2.9", newest_version="3.3.14", newest_requires_python=">=3.12.2,<3.13")
    assert plan.steps == [] and plan.blocked
    assert severities(plan.beyond)["python-3.12-for-3.3"] == "blocker"
    way_out = next(n.way_out for n in plan.beyond if n.id == "python-3.12-for-3.3")
    assert "upgrade-python --force-version 3.12" in way_out and "create-symlinks" in way_out
    assert "python-gate" not in severities(plan.beyond)  # the recipe's own note explains the move


def test_indico_within_the_3_2_line_runs_and_shows_3_3_as_beyond():
    plan = indico_plan("3.2.7", "3.2.9", newest_version="3.3.14", newest_requires_python=">=3.12.2,<3.13")
    assert [s.id for s in plan.steps][:2] == ["stop-celery", "pip-core"] and not plan.blocked
    assert plan.notes == [] and "python-3.12-for-3.3" in severities(plan.beyond)


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ({"database": "postgresql", "postgres_version": "10.23"}, "blocker"),
        ({"database": "postgresql", "postgres_version": "15.18"}, None),
        ({"database": "postgresql"}, "warning"),  # the server did not answer: shown, unchecked, not blocking
        ({"database": "sqlite"}, None),
    ],
)
def test_indico_3_2_on_old_postgres(host, expected):
    plan = indico_plan("3.1.1", "3.2.9", host=host)
    assert severities(plan.notes).get("postgres-11-for-3.2") == expected
    if expected == "warning":
        note = next(n for n in plan.notes if n.id == "postgres-11-for-3.2")
        assert "Not checked here: the PostgreSQL server's version is not known" in note.text


def test_indico_3_3_point_releases_by_web_server_and_latex():
    nginx = indico_plan(
        "3.3.9",
        "3.3.14",
        python="3.12.4",
        host={"web_servers": ("nginx",), "config_keys": frozenset({"XELATEX_PATH", "BASE_URL"})},
    )
    assert set(severities(nginx.notes)) == {"nginx-csp-3.3.10", "latex-container-3.3.12", "index-3.3.14"}
    apache = indico_plan(
        "3.3.9", "3.3.14", python="3.12.4", host={"web_servers": ("apache",), "config_keys": frozenset({"BASE_URL"})}
    )
    assert set(severities(apache.notes)) == {"index-3.3.14"}
    assert indico_plan("3.3.12", "3.3.14", python="3.12.4").notes[0].id == "index-3.3.14"


@pytest.mark.parametrize(
    ("installed", "target", "xelatex", "pulls"),
    [
        ("3.3.11", "3.3.14", "podman", True),
        ("3.3.12", "3.3.13", "podman:image=ghcr.io/indico/latex:3,connection=remote", True),
        ("3.3.11", "3.3.14", "/usr/bin/xelatex", False),  # LaTeX on the host: the 3.3.12 warning says what to do
        ("3.3.11", "3.3.14", None, False),  # no LaTeX at all
        ("3.3.10", "3.3.11", "podman", False),  # the command comes with 3.3.12
    ],
)
def test_indico_pulls_the_latex_image_only_for_a_containerised_latex(installed, target, xelatex, pulls):
    values = {"XELATEX_PATH": xelatex} if xelatex else {}
    host = {"config_keys": frozenset({"BASE_URL", *values}), "config_values": values}
    plan = indico_plan(installed, target, python="3.12.4", host=host)
    ids = [s.id for s in plan.steps]
    assert ("pull-latex-image" in ids) is pulls
    if pulls:
        assert ids.index("pull-latex-image") == ids.index("db-upgrade-plugins") + 1 == ids.index("reload-uwsgi") - 1
        step = plan.steps[ids.index("pull-latex-image")]
        assert step.argv == ["/opt/app/.venv/bin/indico", "maint", "pull-latex-image"] and step.needs == ["podman"]


def test_indico_schema_map_knows_3_3_13_and_3_3_14():
    releases = load_recipe("indico").schema_check.releases
    assert releases["06a037da1ec6"] == "3.3.13" and releases["73b2a6245c40"] == "3.3.14"


def test_indico_crossing_3_3_on_python_3_12_relinks_and_adds_setuptools():
    plan = indico_plan("3.2.9", "3.3.14", python="3.12.4", plugins={"indico-plugin-livesync": "3.2.2"})
    ids = [s.id for s in plan.steps]
    assert ids.index("relink-static-files") == ids.index("pip-plugins") + 1
    pip_core = next(s for s in plan.steps if s.id == "pip-core")
    assert pip_core.argv[-2:] == ["indico==3.3.14", "setuptools"]
    assert {"symlinks-3.3", "plugins-3.3", "setuptools-for-3.3"} <= set(severities(plan.notes))
    assert "python-3.12-for-3.3" not in severities(plan.notes)


def test_indico_2_to_3_and_1_x_are_refused_with_the_way_out():
    assert severities(indico_plan("2.3.6", "3.0.3", python="3.9.18").notes)["python3-for-3.0"] == "blocker"
    legacy = indico_plan("1.9.11", "2.0.3", python="2.7.18")
    assert severities(legacy.notes)["reset-alembic-2.0"] == "blocker" and "legacy-1.x" not in severities(legacy.notes)
    assert severities(indico_plan("1.2.1", "2.0.3", python="2.7.18").notes)["legacy-1.x"] == "blocker"
    linked = indico_plan("2.1.3", "2.2.8", python="2.7.18")
    assert "link-static-files" in [s.id for s in linked.steps]


# -- pretalx ------------------------------------------------------------------


def test_pretalx_2024_3_1_goes_through_2025_1_0_with_the_setuptools_constraint():
    plan = pretalx_plan("2024.3.1", "2025.2.2", host={"database": "postgresql", "postgres_version": "15.18"})
    assert plan.hops == ["2025.1.0", "2025.2.2"]
    pip_steps = {s.id: s.argv for s in plan.steps if s.id.startswith("pip-core")}
    assert pip_steps["pip-core-2025.1.0"][-2:] == ["pretalx==2025.1.0", "setuptools<82"]
    assert pip_steps["pip-core-2025.2.2"][-1] == "pretalx==2025.2.2"
    assert {"rebuild-2025.1.0", "rebuild-2025.2.2", "check-deploy-2025.1.0", "migrate-2025.2.2"} <= {
        s.id for s in plan.steps
    }
    assert plan.needs == {"npm", "msgfmt"}
    assert not plan.blocked


def test_pretalx_hops_and_their_notes_per_release():
    plan = pretalx_plan("2024.1.0", "2024.3.1", plugins={"pretalx-pages": "1.5"}, host={"database": "mysql"})
    assert plan.hops == ["2024.2.1", "2024.3.1"]
    ids = [s.id for s in plan.steps]
    assert "regenerate-css-2024.2.1" in ids and "regenerate-css-2024.3.1" not in ids
    assert ids.index("regenerate-css-2024.2.1") == ids.index("rebuild-2024.2.1") + 1
    notes = severities(plan.notes)
    assert notes["mysql-dropped-2024.3"] == "blocker" and notes["plugins-2024.3"] == "warning"
    assert plan.blocked


def test_pretalx_setuptools_already_too_new_is_said():
    plan = pretalx_plan("2024.3.1", "2025.1.0", dists={"setuptools": "84.2.1"})
    assert severities(plan.notes)["setuptools-broken-now"] == "warning"
    assert "setuptools-broken-now" not in severities(
        pretalx_plan("2024.3.1", "2025.1.0", dists={"setuptools": "81.0.0"}).notes
    )


def test_pretalx_beyond_python_3_11():
    plan = pretalx_plan(
        "2025.2.2",
        "2025.2.2",
        newest_version="2026.2.1",
        newest_requires_python=">=3.13",
        host={"database": "postgresql", "postgres_version": "15.18", "config_keys": frozenset({"redis.location"})},
    )
    beyond = severities(plan.beyond)
    assert beyond["python-3.12-2026.1"] == "blocker" and beyond["postgres-16-2026.1"] == "blocker"
    assert "redis-celery-2026.2" not in beyond and plan.blocked


def test_pretalx_2026_2_says_the_redis_default_and_the_proxy_count_only_when_unset():
    unset = pretalx_plan("2026.1.2", "2026.2.1", python="3.13.1", host={"config_keys": frozenset({"site.url"})})
    notes = {n.id: n for n in unset.notes}
    assert "redis://127.0.0.1:6379/1" in notes["redis-celery-2026.2"].text
    assert "trusted_proxy_count" in notes["trusted-proxy-count-2026.2"].way_out
    configured = pretalx_plan("2026.1.2", "2026.2.1", python="3.13.1", host={
        "config_keys": frozenset({"site.url", "redis.location", "site.trusted_proxy_count"})})  # fmt: skip
    assert {"redis-celery-2026.2", "trusted-proxy-count-2026.2"}.isdisjoint(n.id for n in configured.notes)


# -- hops and facts -------------------------------------------------------------


def test_hops():
    assert hops("2024.3.1", "2025.2.2", "feature", PRETALX_RELEASES) == ["2025.1.0", "2025.2.2"]
    assert hops("2025.1.0", "2025.2.2", "feature", PRETALX_RELEASES) == ["2025.2.2"]
    assert hops("2024.3.0", "2024.3.1", "feature", PRETALX_RELEASES) == ["2024.3.1"]
    assert hops("2024.3.1", "2025.2.2", "feature", []) == ["2025.2.2"]  # releases unknown: one jump
    assert hops("2024.1.0", "2025.1.0", "feature", [*PRETALX_RELEASES, "2024.2.2rc1"]) == [
        "2024.2.1",
        "2024.3.1",
        "2025.1.0",
    ]
    assert hops("3.2.5", "3.3.14", "none", ["3.2.9", "3.3"]) == ["3.3.14"]
    assert hops("3.2.9", "3.2.9", "none", []) == []


@pytest.mark.parametrize(
    ("host", "mysql_note", "mariadb_note"),
    [
        ({"database": "mysql", "mysql_flavour": "mysql", "mysql_version": "5.7.44"}, "blocker", None),
        ({"database": "mysql", "mysql_flavour": "mysql", "mysql_version": "8.0.36"}, None, None),
        ({"database": "mysql", "mysql_flavour": "mariadb", "mysql_version": "10.3.39"}, None, "blocker"),
        ({"database": "mysql", "mysql_flavour": "mariadb", "mysql_version": "10.11.19"}, None, None),
        ({"database": "mysql"}, "warning", "warning"),  # the server did not answer: both shown, unchecked
        ({"database": "postgresql", "postgres_version": "15.18"}, None, None),
    ],
)
def test_pretalx_2023_1_on_old_mysql_or_mariadb(host, mysql_note, mariadb_note):
    plan = pretalx_plan("2.3.2", "2023.1.3", releases=["2.3.2", "2023.1.3"], host=host)
    found = severities(plan.notes)
    assert (found.get("mysql-8-2023.1"), found.get("mariadb-10.4-2023.1")) == (mysql_note, mariadb_note)


def test_mysql_server_versions():
    assert mysql_server("10.11.19-MariaDB-0+deb12u1") == ("mariadb", "10.11.19")
    assert mysql_server("5.5.5-10.3.39-MariaDB") == ("mariadb", "10.3.39")
    assert mysql_server("8.0.36-0ubuntu0.22.04.1") == ("mysql", "8.0.36")
    with pytest.raises(ValueError):
        mysql_server("unknown")
    assert (
        HostFacts(database="mysql", mysql_flavour="mariadb", mysql_version="10.11.19").database_text()
        == "mysql (MariaDB 10.11.19)"
    )
    assert HostFacts(database="postgresql", postgres_version="15.18").database_text() == "postgresql 15.18"


def test_postgres_version_numbers():
    assert version_from_num(150018) == "15.18"
    assert version_from_num(90624) == "9.6.24"
    assert version_from_num(100023) == "10.23"
