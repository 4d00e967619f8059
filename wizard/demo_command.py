"""``upgrade-wizard demo``: build (or find again) a sandbox instance and run the wizard on it."""

from __future__ import annotations

import argparse
from pathlib import Path

from .cli import choices_from, require_yes, start_tui, temp_sandbox
from .demo.sandbox import INSTANCE, build, is_sandbox, start_services, stop_services
from .errors import Exit, WizardError
from .headless import PlainOutput, run_upgrade
from .instance import load_instances
from .store import StateStore


def prepare_sandbox(folder: Path | None, pace: float, out: PlainOutput) -> Path:
    folder = (folder or temp_sandbox()).expanduser().resolve()
    if is_sandbox(folder):
        out.line(f"resuming the demo sandbox in {folder}")
        return folder
    if folder.exists() and any(folder.iterdir()):
        raise WizardError(
            f"{folder} is not empty and is not a demo sandbox",
            "give --dir a new or empty folder, or one an earlier demo built",
        )
    out.line(f"building the demo sandbox in {folder}")
    build(folder, pace)
    start_services(folder)
    return folder


def demo(args: argparse.Namespace) -> Exit:
    out = PlainOutput()
    if args.headless:
        require_yes(args)
    folder = prepare_sandbox(args.dir, args.pace, out)
    instance = load_instances(folder / "instances.toml")[INSTANCE]
    state = getattr(args, "state_dir", None) or folder / "state"
    if not args.headless:
        from .app import make_app

        result = start_tui(make_app({INSTANCE: instance}, state, INSTANCE, lock_threshold=args.lock_wait_seconds))
        if result == Exit.DONE and StateStore(state, INSTANCE).load_done():
            stop_services(folder)
        return result
    result = run_upgrade(instance, StateStore(state, INSTANCE), out, choices_from(args))
    if result == Exit.DONE:
        stop_services(folder)
        out.line(f"the demo's services were stopped; the sandbox stays in {folder}")
    return result
