"""The layers of the code base hold (docs/DEVELOPING.md draws them): `gis/` imports nothing of
`app/`; services import nothing of the web layer or the API; models import no service, view or
API; and no two modules import each other at load time, directly or round a cycle."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _modules() -> dict[str, Path]:
    out = {}
    for path in [*ROOT.glob("app/**/*.py"), *ROOT.glob("gis/**/*.py")]:
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        out[name.removesuffix(".__init__")] = path
    return out


MODULES = _modules()


def _imports(path: Path, *, load_time: bool) -> set[str]:
    """The project's modules ``path`` imports (at load time only: the module's own top level)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if load_time else list(ast.walk(tree))
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in MODULES else node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {m for m in found if m in MODULES}


def _layer_breaches() -> list[tuple[str, str]]:
    breaches = []
    for name, path in MODULES.items():
        for target in _imports(path, load_time=False):
            if name.startswith("gis") and target.startswith("app"):
                breaches.append((name, target))
            if name.startswith("app.services") and target.startswith(("app.web", "app.api")):
                breaches.append((name, target))
            if name.startswith("app.models") and target.startswith(
                ("app.services", "app.web", "app.api")
            ):
                breaches.append((name, target))
    return breaches


def test_each_layer_imports_only_the_layers_below_it() -> None:
    assert len(MODULES) > 50
    assert _layer_breaches() == []


def test_no_import_cycle_at_load_time() -> None:
    graph = {name: _imports(path, load_time=True) for name, path in MODULES.items()}
    cycles: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt) :] + [nxt])
            elif not state.get(nxt):
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if not state.get(node):
            visit(node)
    assert cycles == []


# Modules that still import private helpers of a sibling module (to be given public names).
_PRIVATE_IMPORTS_LEFT = {
    "app.backup",
    "app.embedded_replica",
    "app.services.grid_edit.division",
    "app.services.grid_edit.moves",
    "app.services.grid_edit.operations",
    "app.services.grid_edit.reads",
    "app.services.grid_edit.undo",
    "app.services.importer.basemap",
    "app.services.importer.grids",
    "app.services.importer.load",
    "app.services.importer.people",
    "app.services.importer.points",
    "app.services.importer.sample",
    "gis.mclp",
}


def _private_imports(path: Path) -> list[str]:
    """The private names (``_x``) ``path`` imports from another module of the project."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and (node.level or node.module in MODULES):
            found += [
                f"{node.module}.{a.name}"
                for a in node.names
                if a.name.startswith("_") and not a.name.startswith("__")
            ]
    return found


def test_no_module_imports_another_modules_private_helpers() -> None:
    """A helper another module needs has a public name where it belongs (the case package and
    the case reports keep to it; the modules listed above are still to be cut so)."""
    offenders = {name for name, path in MODULES.items() if _private_imports(path)}
    assert offenders <= _PRIVATE_IMPORTS_LEFT, sorted(offenders - _PRIVATE_IMPORTS_LEFT)
    assert not any(m.startswith("app.services.cases") for m in _PRIVATE_IMPORTS_LEFT)


def test_the_checks_see_a_breach(tmp_path: Path) -> None:
    """The import reader finds a service that imports a view (so the checks above can fail)."""
    fake = tmp_path / "svc.py"
    fake.write_text("from app.web import emap\nfrom app.services import tiles\n", encoding="utf-8")
    assert _imports(fake, load_time=True) == {"app.web.emap", "app.services.tiles"}
    fake.write_text("from app.services.cases.queries import _hidden\n", encoding="utf-8")
    assert _private_imports(fake) == ["app.services.cases.queries._hidden"]
