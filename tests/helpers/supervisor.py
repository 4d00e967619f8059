"""supervisord as the tests' service manager: the part of its config every test shares."""

from __future__ import annotations

from pathlib import Path


def supervisord_header(folder: Path) -> str:
    """Its control socket (for the owner only), log, pid file and supervisorctl's address, all in ``folder``."""
    return (f"[unix_http_server]\nfile={folder}/supervisor.sock\nchmod=0700\n"
            f"[supervisord]\nlogfile={folder}/supervisord.log\npidfile={folder}/supervisord.pid\nchildlogdir={folder}\n"
            "[rpcinterface:supervisor]\nsupervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n"
            f"[supervisorctl]\nserverurl=unix://{folder}/supervisor.sock\n")  # fmt: skip
