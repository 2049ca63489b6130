"""The shape of the package: the import graph between syncd's packages has no cycle."""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import syncd

ROOT = Path(syncd.__file__).parent


def _unit(module: str) -> str | None:
    """The package-level unit a dotted module belongs to: `syncd.web.health` → `web`."""
    parts = module.split(".")
    if parts[0] != "syncd" or len(parts) < 2:
        return None  # a third-party module, or `syncd` itself (only its __version__)
    return parts[1]


def _imports(path: Path) -> set[str]:
    """Every syncd module `path` imports, at any depth of the file (lazy imports count too)."""
    rel = path.relative_to(ROOT.parent).with_suffix("")
    package = list(rel.parts[:-1])
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def package_graph() -> dict[str, set[str]]:
    """Unit → the units it imports, for every module under syncd/."""
    graph: dict[str, set[str]] = {}
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT.parent).with_suffix("")
        unit = _unit(".".join(rel.parts))
        if unit is None:
            continue
        deps = graph.setdefault(unit, set())
        for module in _imports(path):
            target = _unit(module)
            # `from syncd import cli_terminals` names a unit through the root package; names
            # that are neither a sub-package nor a module (`__version__`) are not units.
            if target in (None, unit):
                continue
            if (ROOT / target).is_dir() or (ROOT / f"{target}.py").exists():
                deps.add(target)
    return graph


# Edges allowed despite a cycle (none now: BioTime's online rule and time parsing sit beside its
# models). Each listed edge must still exist, so an allowance is deleted with its edge.
KNOWN_EDGES: set[tuple[str, str]] = set()


def test_package_import_graph_has_no_cycle() -> None:
    """No package or top-level module of syncd imports, even lazily, one that imports it back
    (except the known edges above, each of which must still exist)."""
    graph = package_graph()
    for source, target in KNOWN_EDGES:
        assert target in graph[source], f"{source} -> {target} is gone: drop it from KNOWN_EDGES"
        graph[source].discard(target)
    assert {"web", "jobs", "inbox", "db", "metrics"} <= graph.keys()  # the walk saw the tree
    try:
        order = list(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as err:
        raise AssertionError(f"import cycle between packages: {' -> '.join(err.args[1])}") from None
    assert order.index("metrics") < order.index("web")


def test_metrics_settings_logs_and_errors_import_nothing_above_them() -> None:
    """The shared modules below everything (DESIGN.md) import no other syncd unit but each other."""
    graph = package_graph()
    below = {"settings", "settings_checks", "metrics", "logs", "errors"}
    for unit in below:
        assert graph.get(unit, set()) <= below, (unit, graph[unit])
