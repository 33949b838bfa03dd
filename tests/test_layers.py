"""The import contract of the package: layers, each importing only the layers below it, and no cycles.

The whole graph is read from the source (every `import` statement, at any depth, TYPE_CHECKING blocks
included), so a function-level import cannot hide an edge. A function-level import is allowed only for the
heavy optional dependencies of `LAZY`, with a comment that says so.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "vqe"
# lowest first; a module may import its own layer's package and any layer listed before its own
LAYERS: list[tuple[str, ...]] = [
    ("vqe", "vqe.util"),
    ("vqe.registry",),
    ("vqe.config",),
    ("vqe.metrics",),
    ("vqe.data",),
    ("vqe.models",),
    ("vqe.losses",),
    ("vqe.inference",),
    ("vqe.train", "vqe.evaluation"),  # independent of each other
    ("vqe.studies",),
    ("vqe.release", "vqe.reporting"),  # independent of each other
    ("vqe.cli",),
]
LAZY: dict[str, str] = {}  # optional dependency -> the one module that may import it lazily (none today)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> list[tuple[str, ast.stmt, bool]]:
    """(imported module, statement, at module level) for every import in the file."""
    tree = ast.parse(path.read_text())
    top = {id(n) for n in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, node, id(node) in top) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, node, id(node) in top))
            found += [(f"{node.module}.{a.name}", node, id(node) in top) for a in node.names]
    return found


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def resolve(name: str) -> str | None:
    """The vqe module an imported name refers to (`vqe.x.y` for `from vqe.x import y` where y is a module)."""
    return name if name in MODULES else None


def graph() -> dict[str, set[str]]:
    return {m: {t for name, _, _ in imports(p) if (t := resolve(name)) and t != m} for m, p in MODULES.items()}


def layer(module: str) -> tuple[int, str]:
    """(layer index, the layer's package) of `module`: the longest package prefix that a layer names."""
    best = None
    for i, names in enumerate(LAYERS):
        for pkg in names:
            if (module == pkg or module.startswith(pkg + ".")) and (best is None or len(pkg) > len(best[1])):
                best = (i, pkg)
    assert best is not None, f"{module} belongs to no layer of LAYERS"
    return best


def test_every_module_has_a_layer():
    for module in MODULES:
        layer(module)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_only_lower_layers(module):
    mine, my_pkg = layer(module)
    bad = []
    for target in sorted(graph()[module]):
        theirs, their_pkg = layer(target)
        if theirs > mine or (theirs == mine and their_pkg != my_pkg and my_pkg != "vqe"):
            bad.append(f"{target} (layer {theirs}: {their_pkg})")
    assert not bad, f"{module} (layer {mine}: {my_pkg}) imports upwards or sideways: {bad}"


def test_no_cycles():
    edges = graph()
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for t in sorted(edges[m]):
            if state.get(t) == 1:
                raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(t):] + [t]))
            if t not in state:
                visit(t)
        stack.pop()
        state[m] = 2

    for m in sorted(edges):
        if m not in state:
            visit(m)


def test_function_level_imports_are_only_the_lazy_optional_ones():
    bad = []
    for module, path in MODULES.items():
        source = path.read_text().splitlines()
        for name, node, at_top in imports(path):
            if at_top or name == "__future__" or name.startswith("vqe.") and not resolve(name) and "." in name:
                continue
            root = name.split(".")[0]
            line = source[node.lineno - 1]
            if LAZY.get(root) != module or "#" not in line:
                bad.append(f"{module}:{node.lineno}: {line.strip()}")
    assert not sorted(set(bad)), "imports inside functions (move them to the top, or add them to LAZY with a comment):\n" + "\n".join(sorted(set(bad)))


def test_the_contract_check_sees_a_violation(tmp_path):
    """The walk catches an upward import inside a function (the kind that hid the old tangles)."""
    path = tmp_path / "vqe" / "data" / "bad.py"
    path.parent.mkdir(parents=True)
    path.write_text("def f():\n    from vqe.train.core.loop import fit\n    return fit\n")
    found = [(name, top) for name, _, top in imports(path)]
    assert ("vqe.train.core.loop", False) in found
    assert layer("vqe.train.core.loop")[0] > layer("vqe.data.bad")[0]
