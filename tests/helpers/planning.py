"""What a plan is built from, without a host: an instance of a built-in recipe and the facts detection found."""

from __future__ import annotations

from pathlib import Path

from wizard.config.instance import Instance
from wizard.host.detect import Detection
from wizard.host.hostfacts import HostFacts

INDICO_UNITS = {"uwsgi": "indico-uwsgi.service", "celery": "indico-celery.service"}
PRETALX_UNITS = {"web": "pretalx-web.service", "worker": "pretalx-worker.service"}


def instance(recipe: str) -> Instance:
    return Instance(name="main", recipe=recipe, venv=Path("/opt/app/.venv"), config=Path("/opt/app/etc/app.conf"))


def found(installed: str, target: str, python: str = "3.11.7", **kwargs) -> Detection:
    host = HostFacts(**kwargs.pop("host", {}))
    return Detection(installed_version=installed, target_version=target, python_version=python, host=host, **kwargs)
