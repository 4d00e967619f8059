"""Fail when the project's modules import each other in a circle at module level.

Imports inside functions and under `if TYPE_CHECKING:` are not followed: they do not run when a
module is first imported.  Run from the repository root: python .ci/import_cycles.py
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGES = ("wizard", "screens", "steps")


def module_name(path: Path) -> str:
    parts = list(path.with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(tree: ast.Module, known: set[str]) -> set[str]:
    """The project modules this module imports when it is loaded."""
    found: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        for sub in ast.walk(node) if isinstance(node, ast.Import | ast.ImportFrom | ast.Try) else ():
            if isinstance(sub, ast.ImportFrom) and sub.module and sub.level == 0:
                for alias in sub.names:
                    full = f"{sub.module}.{alias.name}"
                    found.add(full if full in known else sub.module)
            elif isinstance(sub, ast.Import):
                found.update(alias.name for alias in sub.names)
    return found & known


def cycle_from(start: str, graph: dict[str, set[str]]) -> list[str] | None:
    """A circle of imports through ``start``, if there is one (depth first)."""
    path, seen = [start], set()

    def walk(node: str) -> list[str] | None:
        for nxt in sorted(graph[node]):
            if nxt == start:
                return [*path, start]
            if nxt not in seen:
                seen.add(nxt)
                path.append(nxt)
                if found := walk(nxt):
                    return found
                path.pop()
        return None

    return walk(start)


def main() -> int:
    files = {module_name(p): p for package in PACKAGES for p in Path(package).rglob("*.py")}
    known = set(files)
    graph = {name: imported(ast.parse(path.read_text()), known) - {name} for name, path in files.items()}
    circles = {tuple(c) for name in sorted(graph) if (c := cycle_from(name, graph))}
    for circle in sorted(circles):
        print("import cycle: " + " -> ".join(circle))
    print(f"{len(files)} modules, {'no import cycle' if not circles else f'{len(circles)} import cycle(s)'}")
    return 1 if circles else 0


if __name__ == "__main__":
    sys.exit(main())
