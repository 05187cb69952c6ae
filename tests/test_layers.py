"""The package's import graph, read from the source: no module imports from a floor above its own, no imports run in
a circle, and an import inside a function is one of the few kept there on purpose (each with its reason)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

GRID = Path(__file__).resolve().parent.parent / "grid"

# Lowest first; a module may import from its own floor and the floors before it (the README's list).
FLOORS = (
    ("grid", "grid.errors"),
    ("grid._primes", "grid.primes", "grid.aws", "grid.logs", "grid.metrics", "grid.sqlite"),
    ("grid.queues",),
    ("grid.wire",),
    ("grid.store",),
    ("grid.fleet",),
    ("grid.config",),
    ("grid.client",),
    ("grid.daemons",),
    ("grid.local",),
    ("grid.cli", "grid.docgen"),
)
# Imports inside a function, and why they are there rather than at the top.
DEFERRED = {
    ("grid.aws", "botocore.session"): "a role on the embedded queue never loads botocore (start-up)",
    ("grid.aws", "botocore.config"): "the same",
    ("grid.aws", "botocore.loaders"): "the same",
    ("grid.config", "botocore.exceptions"): "the same",
    ("grid.fleet.asg", "botocore.exceptions"): "the same",
    ("grid.fleet.asg", "botocore.parsers"): "the same",
    ("grid.store.s3", "botocore.exceptions"): "the same",
    ("grid.daemons.supervisor", "botocore.exceptions"): "the same",
    ("grid.queues.url", "grid.queues.sqs"): "the same: the SQS backend imports botocore",
    ("grid.cli", "grid.local"): "grid local imports every daemon: a daemon's process, started as grid <role>, not",
    ("grid.cli", "grid.daemons.supervisor"): "the same (grid status's fleet line)",
    ("grid.local.view", "rich.table"): "rich is for a terminal and slow to import (start-up of every command)",
    ("grid.local.view", "rich.live"): "the same",
    ("grid.local.view", "rich.text"): "the same",
    ("grid.local.report", "matplotlib"): "an extra (grid[report]), and slow to import",
    ("grid.local.report", "matplotlib.pyplot"): "the same",
    ("grid.local.report", "matplotlib.ticker"): "the same",
}
DYNAMIC = {"grid.cli"}  # imports a daemon by its role's name: `grid worker` loads the worker's modules alone


def module_name(path: Path) -> str:
    parts = path.relative_to(GRID.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in GRID.rglob("*.py")}


def floor(module: str) -> int:
    """The floor of `module`: that of the longest name in FLOORS it is, or lies under."""
    found = [(len(name), i) for i, names in enumerate(FLOORS) for name in names
             if module == name or module.startswith(name + ".")]
    assert found, f"{module} is on no floor: add it to FLOORS (and the README's list)"
    return max(found)[1]


def imports(module: str) -> list[tuple[str, int, bool]]:
    """(imported module, line, inside a function) for each import in `module`, `if TYPE_CHECKING:` blocks aside."""
    found: list[tuple[str, int, bool]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and ast.unparse(child.test) == "TYPE_CHECKING":
                continue
            if isinstance(child, ast.Import):
                found.extend((alias.name, child.lineno, in_function) for alias in child.names)
            elif isinstance(child, ast.ImportFrom) and child.level == 0 and child.module:
                for alias in child.names:  # `from grid import config` imports the module grid.config
                    name = f"{child.module}.{alias.name}"
                    found.append((name if name in MODULES else child.module, child.lineno, in_function))
            visit(child, in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))

    visit(ast.parse(MODULES[module].read_text()), False)
    return found


def grid_imports(module: str) -> list[tuple[str, int, bool]]:
    return [(target, line, deferred) for target, line, deferred in imports(module)
            if target in MODULES and target != module]


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_imports_from_a_floor_above_its_own(module):
    above = [f"{target} (line {line})" for target, line, _ in grid_imports(module) if floor(target) > floor(module)]
    assert not above, f"{module} (floor {floor(module)}) imports from above: {', '.join(above)}"


def test_no_imports_run_in_a_circle():
    graph = {m: {target for target, _, _ in grid_imports(m)} for m in MODULES}
    done: set[str] = set()

    def walk(module: str, path: list[str]) -> None:
        if module in path:
            pytest.fail("an import circle: " + " -> ".join(path[path.index(module):] + [module]))
        if module in done:
            return
        for target in sorted(graph[module]):
            walk(target, path + [module])
        done.add(module)

    for module in sorted(MODULES):
        walk(module, [])


@pytest.mark.parametrize("module", sorted(MODULES))
def test_an_import_inside_a_function_is_one_kept_there_on_purpose(module):
    inside = {(module, target) for target, _, deferred in imports(module) if deferred}
    assert inside <= DEFERRED.keys(), f"move to the top, or add to DEFERRED with its reason: {inside - DEFERRED.keys()}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_modules_are_imported_by_name_only_where_that_is_the_point(module):
    calls = [node for node in ast.walk(ast.parse(MODULES[module].read_text()))
             if isinstance(node, ast.Call) and ast.unparse(node.func).endswith("import_module")]
    assert not calls or module in DYNAMIC


def test_every_import_kept_inside_a_function_is_still_there():
    inside = {(module, target) for module in MODULES for target, _, deferred in imports(module) if deferred}
    assert DEFERRED.keys() <= inside, f"no longer inside a function, drop from DEFERRED: {DEFERRED.keys() - inside}"
