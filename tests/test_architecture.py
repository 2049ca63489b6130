"""The shape of the package: declared layers, no import against them, no cycle between packages.

The layers follow the data flow (README, "Code layout"); a module imports only its own layer or
lower ones, lazy imports included. `devtools/` stands beside the stack and may use it, but its
simulators never import a vendor client or model of syncd's.
"""

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


# Lowest first. `__init__` (the version) and `__main__` (the entry point) are outside the stack.
LAYERS: list[set[str]] = [
    {"errors", "logs", "metrics", "backoff", "transition", "heap", "sdnotify", "supervisor"},
    {"vendors"},
    {"settings"},
    {"db"},
    {"sync"},
    {"inbox"},
    {"actions"},
    {"reconcile"},
    {"alerts"},
    {"jobs"},
    {"web"},
    {"registry"},
    {"runtime", "app", "daemon"},
    {"cli"},
]
BESIDE = {"devtools", "__init__", "__main__"}


def rank(unit: str) -> int:
    """The layer a unit belongs to; an undeclared unit fails, so a new package must be placed."""
    for index, layer in enumerate(LAYERS):
        if unit in layer:
            return index
    raise AssertionError(f"syncd/{unit} is in no layer: add it to LAYERS in {__name__}")


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    """Every edge from a unit to a unit in a higher layer, as `source -> target`."""
    return sorted(f"{source} -> {target}" for source, targets in graph.items()
                  if source not in BESIDE for target in targets
                  if target not in BESIDE and rank(target) > rank(source))


def test_no_unit_imports_a_higher_layer() -> None:
    """No module of syncd imports (even lazily) a module of a higher layer than its own, and
    nothing but the CLI reaches into devtools/."""
    graph = package_graph()
    assert layer_violations(graph) == []
    assert [u for u, targets in graph.items() if "devtools" in targets and u not in
            {"cli", "devtools"}] == []


def test_layer_check_catches_an_upward_import() -> None:
    """The layer check itself flags a lower unit importing a higher one (vendors -> db, sync ->
    jobs), so the test above cannot pass by checking nothing."""
    graph = package_graph()
    graph["vendors"] = graph["vendors"] | {"db"}
    graph["sync"] = graph["sync"] | {"jobs"}
    assert layer_violations(graph) == ["sync -> jobs", "vendors -> db"]


def test_vendors_and_simulators_stay_on_their_side() -> None:
    """Vendor clients import no db, sync or settings; the simulators import no syncd module
    outside devtools/ (each side reads the vendor docs on its own)."""
    graph = package_graph()
    assert graph["vendors"] & {"db", "sync", "settings"} == set()
    sims = ROOT / "devtools" / "simulators"
    for path in sims.rglob("*.py"):
        outside = {m for m in _imports(path) if m.startswith("syncd.")
                   and not m.startswith("syncd.devtools.simulators")}
        assert outside == set(), (path.name, outside)
