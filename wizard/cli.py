"""The command line: parse, pick the instance, and hand over to the TUI, the plan, or the headless run.

Exit codes are a promise to our users' scripts (see DESIGN.md and wizard.errors.Exit).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.text import Text

from wizard.config.instance import DEFAULT_CONFIG, Instance, load_instances, pick_instance
from wizard.errors import Exit, WizardError
from wizard.session.store import StateStore, default_state_dir, state_dir_conflict

if TYPE_CHECKING:  # imported when used: the TUI's Textual, the headless engine
    pass


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config", type=Path, default=argparse.SUPPRESS, help=f"instances file (default {DEFAULT_CONFIG})"
    )
    common.add_argument(
        "--state-dir", type=Path, default=argparse.SUPPRESS, help="where sessions and step logs are kept"
    )

    parser = argparse.ArgumentParser(
        prog="upgrade-wizard",
        parents=[common],
        description="Upgrade a self-hosted Indico or pretalx installation, step by step, and never lose the place.",
        epilog="exit codes: 0 done; 1 a step failed; 2 usage error, bad config or state, or a blocker; "
        "3 another wizard holds the instance (for demo: another demo its sandbox); 4 an interrupted step waits for your decision; "
        "check: 0 healthy, 1 not; rollback: as run; 130 stopped with Ctrl-C (a running step goes on); "
        "run with several instances: the highest of theirs",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    tui = sub.add_parser("tui", parents=[common], help="the interactive wizard (the default)")
    tui.add_argument("instance", nargs="?")
    _add_watch_option(tui)

    plan = sub.add_parser("plan", parents=[common], help="print detection and the plan, change nothing")
    plan.add_argument("instance", nargs="*",
                      help="the instance; several: each planned whole, a shared venv's together; none: the host, briefly")  # fmt: skip

    run = sub.add_parser("run", parents=[common], help="the upgrade without a screen: plain log lines, no prompts")
    run.add_argument("instance", nargs="*", help="the instance; several: each venv's in turn, a shared venv's together")
    run.add_argument("--all", action="store_true", help="every instance in the instances file")
    _add_run_options(run)
    run.add_argument("--new", action="store_true", help="start a new upgrade after a finished one")

    status = sub.add_parser("status", parents=[common], help="show the saved session")
    status.add_argument("instance", nargs="?")
    status.add_argument("--json", action="store_true", help="print the session as JSON (the pydantic model)")

    check = sub.add_parser("check", parents=[common], help="prove the site works: code, schema, services, HTTP")
    check.add_argument("instance", nargs="?")
    check.add_argument("--json", action="store_true", help="print the findings as JSON")
    check.add_argument("--wait", type=float, default=60.0, metavar="N",
                       help="how long a service or the site may take to come up (default 60 s)")  # fmt: skip

    report = sub.add_parser("report", parents=[common],
                            help="write one archive of the upgrade for a maintainer (secrets masked)")  # fmt: skip
    report.add_argument("instance", nargs="?")
    report.add_argument("--output", type=Path, metavar="PATH",
                        help="the archive's file, or a folder for it (default: reports/ in the instance's state)")  # fmt: skip

    rollback = sub.add_parser("rollback", parents=[common],
                              help="take the last upgrade back: print what it would do; with --yes, do it")  # fmt: skip
    rollback.add_argument(
        "instance", nargs="*", help="the instance; several: each venv's in turn, a shared venv's together"
    )
    rollback.add_argument("--all", action="store_true", help="every instance in the instances file")
    rollback.add_argument("--yes", action="store_true", help="carry it out (without: print the plan, change nothing)")
    database = rollback.add_mutually_exclusive_group()
    database.add_argument("--restore-database", action="store_true",
                          help="also restore the database from the upgrade's backup (what was written since is lost)")  # fmt: skip
    database.add_argument("--keep-database", action="store_true",
                          help="put back the packages alone, leaving the database as the upgrade left it")  # fmt: skip
    decision = rollback.add_mutually_exclusive_group()
    decision.add_argument("--retry", action="store_true", help="run the failed or interrupted rollback step again")
    decision.add_argument("--skip", metavar="REASON", help="skip the failed or interrupted rollback step, saying why")

    demo = sub.add_parser("demo", parents=[common], help="build a sandbox instance and run the wizard on it")
    demo.add_argument(
        "--dir", type=Path, help="the sandbox folder (new or a sandbox to resume; default: a new temp dir)"
    )
    demo.add_argument("--headless", action="store_true", help="run it as `run --yes` does, without a screen")
    demo.add_argument("--instances", type=int, metavar="N", choices=range(1, 10),
                      help="build N instances on one shared venv (default 1; a sandbox built before keeps its own)")  # fmt: skip
    demo.add_argument(
        "--pace", type=float, default=1.0, help="scale the demo programs' delays when building (0.1 = 10x faster)"
    )
    demo.add_argument("--keep-services", action="store_true",
                      help="leave the sandbox's demo services running when the demo ends (default: they are stopped)")  # fmt: skip
    demo.add_argument("--stop", action="store_true",
                      help="with --dir: stop that sandbox's demo services (kept with --keep-services) and exit")  # fmt: skip
    _add_run_options(demo)
    return parser


def _add_watch_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--lock-wait-seconds", type=float, metavar="N",
                        help="silence (with idle CPU) before a lock wait is suspected (default: the recipe's)")  # fmt: skip


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    _add_watch_option(parser)
    parser.add_argument("--restart-after", type=float, metavar="N",
                        help="headless: restart the app server by itself N s after reporting a lock wait it is proven to cause")  # fmt: skip
    parser.add_argument("--end-blocker-after", type=float, metavar="N",
                        help="headless: end (pg_terminate_backend) an idle-in-transaction session of a role named"
                             " with --end-blocker-role N s after reporting that it blocks the upgrade")  # fmt: skip
    parser.add_argument("--end-blocker-role", action="append", metavar="ROLE",
                        help="a database role whose blocking sessions --end-blocker-after may end (repeatable)")  # fmt: skip
    parser.add_argument("--yes", action="store_true", help="go ahead without asking (required for headless runs)")
    decision = parser.add_mutually_exclusive_group()
    decision.add_argument("--retry", action="store_true", help="run the failed or interrupted step again")
    decision.add_argument("--skip", metavar="REASON", help="skip the failed or interrupted step, saying why")
    parser.add_argument("--backup-done", metavar="PATH", help="a backup of this instance exists at PATH")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    absolute_paths(args)
    if args.command is None:
        args.command, args.instance, args.lock_wait_seconds = "tui", None, None
    try:
        return int(dispatch(args))
    except WizardError as exc:
        return report_error(exc.message, exc.hint, exc.exit_code)
    except OSError as exc:
        # A path we were given or must use is wrong (a file where a folder should be, no permission, disk full).
        where = f" ({exc.filename})" if exc.filename else ""
        return report_error(
            f"{exc.strerror or exc}{where}", "check the paths given with --config, --state-dir or --dir"
        )


def absolute_paths(args: argparse.Namespace) -> None:
    """Paths given relative to where the wizard was started, made absolute once: steps run elsewhere."""
    for name in ("state_dir", "config", "dir", "output"):
        value = getattr(args, name, None)
        if isinstance(value, Path):
            setattr(args, name, Path(os.path.abspath(value)))


def report_error(message: str, hint: str | None, code: int = Exit.USAGE) -> int:
    console = Console(stderr=True, highlight=False)
    console.print(Text.assemble(("error: ", "bold red"), message), soft_wrap=True)
    if hint:
        console.print(Text.assemble(("hint: ", "dim"), hint), soft_wrap=True)
    return int(code)


def dispatch(args: argparse.Namespace) -> Exit:
    if args.command == "demo":
        from wizard.demo.command import demo

        return demo(args)
    config = getattr(args, "config", DEFAULT_CONFIG)
    instances = load_instances(config)
    if args.command is None or args.command == "tui":
        return tui_for(instances, args)
    if args.command == "status" and args.instance is None and len(instances) > 1:
        from wizard.hostcommands import show_host

        return show_host(instances, lambda name: state_root(args, name), args.json)
    if args.command == "plan":
        named = list(dict.fromkeys(args.instance))
        if len(named) > 1 or (not named and len(instances) > 1):
            chosen = {name: pick_instance(instances, name) for name in named} or instances
            from wizard.hostcommands import plan_host

            return plan_host(chosen, lambda name: state_root(args, name), whole=bool(named))
        args.instance = named[0] if named else None
    if args.command in ("run", "rollback"):
        return run_command(instances, args) if args.command == "run" else rollback_command(instances, args)
    instance = pick_instance(instances, args.instance)
    store = StateStore(state_root(args, instance.name), instance.name)
    if args.command == "plan":
        backup_root = store.backup_root(instance.backup_dir)
        for notice in store.notices:
            print(notice, file=sys.stderr)
        return show_plan(instance, backup_root)
    if args.command == "status":
        return show_status(store, args.json)
    if args.command == "check":
        return check_instance(instance, store, args.json, args.wait)
    if args.command == "report":
        return report_instance(instance, store, args.output)
    raise AssertionError(f"unknown command {args.command}")


def several_named(instances: dict[str, Instance], args: argparse.Namespace) -> list[str]:
    """The instances `run` or `rollback` is asked for: those named (each once), or every one with --all."""
    if args.all and args.instance:
        raise WizardError("--all and instance names ask for different things: give one of them")
    return list(instances) if args.all else list(dict.fromkeys(args.instance))


def one_state_root(args: argparse.Namespace, names: list[str]) -> Path:
    roots = {state_root(args, name) for name in names}
    if len(roots) > 1:
        raise WizardError("the instances keep their state under different users' state folders",
                          "run the wizard as one user for all of them, or pass --state-dir")  # fmt: skip
    return roots.pop()


def run_command(instances: dict[str, Instance], args: argparse.Namespace) -> Exit:
    """`run --yes`: one instance as ever; several (named, or --all), each venv's in turn, a shared venv's together."""
    from wizard.headless import choices_from, require_yes, run_upgrade
    from wizard.plainlines import PlainOutput
    from wizard.together.headless import run_instances

    require_yes(args)
    choices = choices_from(args)
    named = several_named(instances, args)
    if len(named) <= 1:
        instance = pick_instance(instances, named[0] if named else None)
        store = StateStore(state_root(args, instance.name), instance.name)
        return run_upgrade(instance, store, PlainOutput(), choices, new=args.new)
    chosen = [pick_instance(instances, name) for name in named]
    return run_instances(chosen, one_state_root(args, named), PlainOutput(), choices, new=args.new)


def rollback_command(instances: dict[str, Instance], args: argparse.Namespace) -> Exit:
    """`rollback`: one instance's last upgrade; several (named, or --all), each venv's in turn, a shared venv's
    upgrade taken back together. Without --yes, the plan alone."""
    from wizard.headless import Choices
    from wizard.plainlines import PlainOutput
    from wizard.rollback.command import roll_back_instances

    restore = True if args.restore_database else False if args.keep_database else None
    named = several_named(instances, args)
    chosen = [pick_instance(instances, name) for name in named] or [pick_instance(instances, None)]
    return roll_back_instances(chosen, one_state_root(args, [i.name for i in chosen]), PlainOutput(),
                               Choices(retry=args.retry, skip_reason=args.skip), restore_database=restore, go=args.yes)  # fmt: skip


def tui_for(instances: dict[str, Instance], args: argparse.Namespace) -> Exit:
    """The interactive wizard; with several instances and none named, it starts with a picker."""
    from screens.app import make_app, start_tui

    chosen = None
    if args.instance is not None or len(instances) == 1:
        chosen = pick_instance(instances, args.instance).name
        root = state_root(args, chosen)
    else:
        root = getattr(args, "state_dir", None) or default_state_dir()
    return start_tui(make_app(instances, root, chosen, lock_threshold=args.lock_wait_seconds))


def state_root(args: argparse.Namespace, instance: str) -> Path:
    chosen: Path | None = getattr(args, "state_dir", None)  # absolute_paths() made it a Path
    if chosen:
        return chosen
    other = state_dir_conflict(instance)
    if other:
        raise WizardError(
            f"instance {instance!r} already has state under {other}, kept by another user than this one",
            "run the wizard as that user (e.g. with or without sudo, as before), or pass --state-dir",
        )
    return default_state_dir()


def show_plan(instance: Instance, backup_root: Path) -> Exit:
    from wizard.config.context import InstanceContext
    from wizard.planning.plan import plan_for
    from wizard.views.report import print_plan

    if instance.target is None:  # a full resolution against a real index: say what the silence is
        Console(stderr=True, highlight=False).print(
            f"asking pip what it would install into {instance.venv} (resolving against the index can take a minute)…"
        )
    plan = plan_for(InstanceContext.open(instance), backup_root)
    print_plan(Console(highlight=False), instance, plan)
    return Exit.USAGE if plan.blocked else Exit.DONE


def show_status(store: StateStore, as_json: bool) -> Exit:
    from wizard.views.report import print_status

    session = store.load()
    for notice in store.notices:
        print(notice, file=sys.stderr)
    if session is None:
        if as_json:
            print("null")
        else:
            print(f"no upgrade is recorded for instance {store.instance!r} (state in {store.dir})")
        return Exit.DONE
    if as_json:
        print(session.model_dump_json(indent=2))
    else:
        print_status(Console(highlight=False), session)
    return Exit.DONE


def check_instance(instance: Instance, store: StateStore, as_json: bool, wait: float) -> Exit:
    """The health check on demand: 0 healthy (or as far as could be told), 1 not.  Kept with the session."""
    from wizard.config.context import InstanceContext
    from wizard.errors import LockHeld
    from wizard.health.check import check_health
    from wizard.rollback.plan import way_back
    from wizard.session.engine import Engine
    from wizard.views.health import health_grid, verdict_text

    err = Console(stderr=True, highlight=False)
    context = InstanceContext.open(instance)
    engine = Engine(context, store, say=err.print)
    try:
        engine.open()
    except LockHeld as exc:  # an upgrade under way: the check may still read, but not write its session
        err.print(f"{exc.message}: the check only reads, and its result is not kept with the session")
        health = check_health(context, store.load(), wait=wait, progress=lambda what: err.print(f"checking {what}…"))
    else:
        try:
            health = check_health(context, engine.session, wait=wait,
                                  progress=lambda what: err.print(f"checking {what}…"))  # fmt: skip
            if engine.session is not None:
                engine.record_health(health)
        finally:
            engine.close()
    if as_json:
        print(health.model_dump_json(indent=2))
    else:
        console = Console(highlight=False)
        console.print(verdict_text(health))
        console.print(health_grid(health, evidence_of_ok=True))
        session = store.load()
        if not health.healthy and session is not None and (back := way_back(session)):
            console.print(back)
    return Exit.DONE if health.healthy else Exit.STEP_FAILED


def report_instance(instance: Instance, store: StateStore, output: Path | None) -> Exit:
    """Write the report archive and say where it is and how big (exit 0), or why not (exit 2)."""
    from datetime import UTC, datetime

    from wizard.config.context import InstanceContext
    from wizard.support.report import default_path, size_text, write_report

    err = Console(stderr=True, highlight=False)
    context = InstanceContext.open(instance)
    session = store.load()  # read as `status` does: an upgrade under way may hold the lock
    at = datetime.now(UTC).astimezone()
    if output is None:
        store.ensure_dir()
        reports = store.dir / "reports"
        reports.mkdir(mode=0o700, exist_ok=True)
        target = default_path(reports, instance.name, at)
    elif output.is_dir():
        target = default_path(output, instance.name, at)
    else:
        target = output
    written = write_report(context, session, store.session_path, target,
                           progress=lambda what: err.print(f"gathering {what}…"))  # fmt: skip
    print(f"report written: {size_text(written)}")
    print("passwords, secret keys and tokens are masked in every file; read summary.txt before you send it")
    return Exit.DONE
