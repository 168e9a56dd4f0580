"""The package's shape, read from its source: no import circle, argparse only in the CLI, small
functions and modules, no backend switch or global torch setting at import."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import robustbench_mm

PACKAGE = Path(robustbench_mm.__file__).parent
MAX_FUNCTION_LINES = 80
MAX_MODULE_LINES = 400


def _modules() -> dict[str, ast.Module]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = ast.parse(path.read_text(), str(path))
    return out


def _imports(name: str, tree: ast.Module, known: set[str]) -> set[str]:
    """Package modules ``name`` imports anywhere in its body (function-level imports included)."""
    package = name if name in known and any(k.startswith(name + ".") for k in known) else name.rsplit(".", 1)[0]
    found = set()
    type_only = {
        id(n)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
        for n in ast.walk(block)
    }
    for node in ast.walk(tree):
        if id(node) in type_only:  # annotations only: never imported at run time
            continue
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                full = f"{base}.{alias.name}"
                found.add(full if full in known else base)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    # importing a.b.c runs a and a.b first: an edge to each package above it (not the importer's own)
    for module in list(found):
        parts = module.split(".")
        found.update(".".join(parts[:i]) for i in range(2, len(parts)))
    own = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
    return {m for m in found if m in known and m != name and m not in own}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_circle():
    """No two modules import each other, directly or through others — lazy imports inside
    functions count too (a circle there is still two modules that each need the other). A package's
    ``__init__`` re-exporting its own modules is not a circle."""
    modules = _modules()
    known = set(modules)
    graph = {name: _imports(name, tree, known) for name, tree in modules.items()}
    assert _cycle(graph) is None, " -> ".join(_cycle(graph) or [])


# The rooms of the package, lowest first: a module may import its own room and the rooms of lower
# layers, never a higher layer nor another room of its own layer (TYPE_CHECKING imports excepted:
# annotations are never imported at run time). The top-level modules (__init__, __main__) sit above.
LAYERS: list[tuple[str, ...]] = [
    ("core",),  # errors, registries, files, results schema: imports no other room
    ("data",),  # datasets, dataset cards, threat models, splits
    ("settings",),  # reads the dataset cards
    ("models",),
    ("methods",),
    ("store",),  # the run directory: what training and evaluation write and the report reads
    ("training", "attacks", "corruptions"),  # independent of each other
    ("evaluation",),  # the suites, built on the attacks and corruptions
    ("report",),
    ("app",),
    ("cli",),
]
SUITE_ROOMS = ("attacks", "corruptions", "evaluation")  # where suites and what they run live
# (module, room) imports that break a rule today, each with the work that removes it (delete it then).
PENDING: set[tuple[str, str]] = set()  # known exceptions to the layer rule: none


def _room(module: str) -> str:
    """``robustbench_mm.store.rundir`` -> ``store``; a top-level module -> ``""``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and (PACKAGE / parts[1]).is_dir() else ""


def _layer(room: str) -> int:
    if room == "":
        return len(LAYERS)
    for index, rooms in enumerate(LAYERS):
        if room in rooms:
            return index
    raise AssertionError(f"room {room!r} is in no layer: add it to LAYERS")


def _room_edges() -> list[tuple[str, str]]:
    """(importer, imported) for every run-time import across rooms, minus the pending ones."""
    modules = _modules()
    known = set(modules)
    edges = []
    for name, tree in modules.items():
        for dep in _imports(name, tree, known):
            if _room(name) != _room(dep) and (name, _room(dep)) not in PENDING:
                edges.append((name, dep))
    return sorted(edges)


def test_every_room_has_a_layer():
    rooms = {p.name for p in PACKAGE.iterdir() if p.is_dir() and any(p.glob("*.py"))}
    assert rooms == {room for layer in LAYERS for room in layer}


def test_layers_point_down():
    """A room imports only lower layers: core nothing, settings the data cards, the store no suite."""
    upward = [
        f"{a} -> {b}"
        for a, b in _room_edges()
        if _layer(_room(b)) >= _layer(_room(a)) and _room(a) != ""  # same layer: sibling rooms stay apart
    ]
    assert not upward, upward


def test_core_imports_no_other_room_and_the_store_no_suite():
    edges = _room_edges()
    assert not [f"{a} -> {b}" for a, b in edges if _room(a) == "core"]
    assert not [f"{a} -> {b}" for a, b in edges if _room(a) == "store" and _room(b) in SUITE_ROOMS]


def test_the_layer_check_sees_an_upward_import(tmp_path):
    """The rule reads real import statements: an upward one written into a copy of a core module
    is found (so an empty result above means no such import, not a blind check)."""
    tree = ast.parse("from robustbench_mm.report.tables import write_tables\n")
    known = set(_modules())
    found = _imports("robustbench_mm.core.results", tree, known)
    assert "robustbench_mm.report.tables" in found
    assert _layer(_room("robustbench_mm.report.tables")) > _layer(_room("robustbench_mm.core.results"))


def test_argparse_only_in_the_cli():
    users = [
        name
        for name, tree in _modules().items()
        if any(
            isinstance(n, (ast.Import, ast.ImportFrom))
            and "argparse" in ([a.name for a in n.names] if isinstance(n, ast.Import) else [n.module or ""])
            for n in ast.walk(tree)
        )
    ]
    assert users and all(name == "robustbench_mm.cli" or name.startswith("robustbench_mm.cli.") for name in users), (
        users
    )


def test_functions_and_modules_stay_small():
    long_functions, long_modules = [], []
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text()
        if len(text.splitlines()) > MAX_MODULE_LINES:
            long_modules.append(f"{path.name}: {len(text.splitlines())}")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long_functions.append(f"{path.name}:{node.name}: {length}")
    assert not long_functions and not long_modules, (long_functions, long_modules)


def test_importing_the_package_changes_nothing_in_the_process():
    """No matplotlib backend switch and no torch thread or default-dtype change at import."""
    code = (
        "import matplotlib; matplotlib.use('svg'); import torch; torch.set_num_threads(3)\n"
        "import robustbench_mm, robustbench_mm.cli, robustbench_mm.evaluation.runner, robustbench_mm.report, "
        "robustbench_mm.report.figures, robustbench_mm.corruptions, robustbench_mm.training.loop, "
        "robustbench_mm.app.pipeline\n"
        "assert matplotlib.get_backend() == 'svg', matplotlib.get_backend()\n"
        "assert torch.get_num_threads() == 3 and torch.get_default_dtype() == torch.float32\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=PACKAGE.parent)
    assert result.returncode == 0, result.stderr[-2000:]
