"""`plan` and `status` of the whole host: several instances and none named (or several named, for `plan`).

Each instance is read or planned on its own, so one that cannot be does not hide the others; nothing is written.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from wizard.config.instance import Instance
from wizard.errors import Exit, WizardError
from wizard.session.store import StateStore

if TYPE_CHECKING:
    from wizard.session.state import Session


def plan_host(instances: dict[str, Instance], root_of: Callable[[str], Path], *, whole: bool = False) -> Exit:
    """`plan` with several instances: each one detected and planned (nothing written), the instances on a shared
    venv together, as `run` would upgrade them; briefly when none was named, ``whole`` when they were.
    Exit 2 when a blocker stands in any instance's way, as `plan` does for one."""
    from wizard.config.context import InstanceContext
    from wizard.planning.plan import plan_for
    from wizard.planning.shared import Together, by_venv
    from wizard.views.report import print_host_plan, print_plan

    console, err = Console(highlight=False), Console(stderr=True, highlight=False)
    blocked = False
    together = {instance.name: Together(tuple(i.name for i in group))
                for group in by_venv(list(instances.values())) if len(group) > 1 for instance in group}  # fmt: skip
    for name, instance in instances.items():
        store = StateStore(root_of(name), name)
        try:
            plan = plan_for(InstanceContext.open(instance), store.backup_root(instance.backup_dir), together.get(name))
        except WizardError as exc:  # one instance that cannot be planned does not hide the others
            err.print(f"instance {name}: error: {exc.message}" + (f"\n  hint: {exc.hint}" if exc.hint else ""))
            blocked = True
            continue
        if whole:
            print_plan(console, instance, plan)
            console.print()
        else:
            print_host_plan(console, instance, plan, list(together[name].order) if name in together else [name])
        blocked = blocked or plan.blocked
    return Exit.USAGE if blocked else Exit.DONE


def show_host(instances: dict[str, Instance], root_of: Callable[[str], Path], as_json: bool) -> Exit:
    """`status` with several instances and none named: every instance, which share a venv, where each stands."""
    from rich.table import Table

    from wizard.errors import StateError
    from wizard.views.host import host_rows, venv_groups

    sessions: dict[str, Session | str | None] = {}
    for name in instances:
        store = StateStore(root_of(name), name)
        try:
            sessions[name] = store.load()
        except StateError as exc:
            sessions[name] = exc.message
    rows = host_rows(instances, sessions)
    if as_json:
        listed = {}
        for row in rows:
            saved = sessions[row.instance]
            listed[row.instance] = {"recipe": row.recipe, "venv": row.venv, "shares_venv_with": row.shares_with,
                                    "session": saved.model_dump(mode="json") if saved and not isinstance(saved, str)
                                    else None, "error": saved if isinstance(saved, str) else None}  # fmt: skip
        print(json.dumps(listed, indent=2))
        return Exit.DONE
    console = Console(highlight=False)
    table = Table(expand=False)
    for column in ("instance", "recipe", "session", "now"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(row.instance, row.recipe, row.session, row.now)
    console.print(table)
    for venv, names in venv_groups(instances).items():
        shared = " (shared: its code changes under all of them at once)" if len(names) > 1 else ""
        console.print(f"venv {venv}: {', '.join(names)}{shared}", soft_wrap=True)
    return Exit.DONE
