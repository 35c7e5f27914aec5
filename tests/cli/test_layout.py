"""The front ends' module layout: no import circles among the command modules."""

from __future__ import annotations

import ast

from tests.helpers import REPO

CLI = REPO / "cli"


def _module(path) -> str:
    rel = path.relative_to(CLI).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts) or "__init__"


def _imports(path, name: str) -> set[str]:
    """The cli modules ``path`` imports, at the top or inside functions (relative imports only)."""
    package = name.split(".")[:-1] if path.name != "__init__.py" else name.split(".")
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
            target = ".".join([*base, *(node.module.split(".") if node.module else [])])
            if node.module:
                found.add(target)
            else:  # from . import x, y: modules of the package
                found.update(".".join([*base, a.name]) for a in node.names)
    return {t for t in found if t}


def test_no_import_circles():
    paths = [p for p in CLI.rglob("*.py") if "tui" not in p.relative_to(CLI).parts]
    graph = {_module(p): _imports(p, _module(p)) for p in paths}
    graph = {m: {t for t in deps if t in graph and t != m} for m, deps in graph.items()}
    state: dict[str, int] = {}

    def visit(m, path):
        if state.get(m) == 1:
            raise AssertionError("import circle: " + " -> ".join([*path, m]))
        if state.get(m) == 2:
            return
        state[m] = 1
        for t in sorted(graph[m]):
            visit(t, [*path, m])
        state[m] = 2

    for m in sorted(graph):
        visit(m, [])
    assert "families.ffn" in graph and "families.rnn" in graph and "rnn" not in graph
