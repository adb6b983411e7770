"""The plumbing's modules import each other without a circle, lazy imports included."""

from __future__ import annotations

import ast
from pathlib import Path

import tpp_plumbing

ROOT = Path(tpp_plumbing.__file__).parent


def _module_name(path: Path) -> str:
    parts = ("tpp_plumbing", *path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Each plumbing module and the plumbing modules it imports, anywhere in its body."""
    modules = {_module_name(path): path for path in ROOT.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        imported: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:
                    submodule = f"{node.module}.{alias.name}"
                    imported.add(submodule if submodule in modules else node.module)
            elif isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
        graph[name] = {m for m in imported if m in modules and m != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The circles of the graph: each strongly connected component of more than one module."""
    order: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(module: str) -> None:
        order[module] = low[module] = len(order)
        stack.append(module)
        for other in sorted(graph[module]):
            if other not in order:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in stack:
                low[module] = min(low[module], order[other])
        if low[module] == order[module]:
            component = stack[stack.index(module) :]
            del stack[stack.index(module) :]
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(graph):
        if module not in order:
            visit(module)
    return found


def test_the_import_graph_is_read_from_the_sources() -> None:
    graph = import_graph()

    assert "tpp_plumbing.web.problems" in graph["tpp_plumbing.web.openapi"]


def test_no_plumbing_module_imports_itself_through_others() -> None:
    assert cycles(import_graph()) == []


def test_the_plumbing_imports_no_service() -> None:
    services = {"tpp_registry", "tpp_enrollment", "tpp_reporting", "tpp_ops"}
    importers = {
        module: sorted(imported)
        for module, imported in _imports_outside().items()
        if imported & services
    }
    assert importers == {}


def _imports_outside() -> dict[str, set[str]]:
    """Each plumbing module and the top-level packages it imports, anywhere in its body."""
    found: dict[str, set[str]] = {}
    for path in ROOT.rglob("*.py"):
        tops: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                tops.add(node.module.split(".")[0])
            elif isinstance(node, ast.Import):
                tops.update(alias.name.split(".")[0] for alias in node.names)
        found[_module_name(path)] = tops
    return found
