"""The package's import graph: no cycles, imports only downward through the declared layers.

Every module under ``qjaxrob/`` and ``kernels/`` (installed as ``qjaxrob.kernels``) is parsed
(never imported); every ``import``/``from ... import`` statement anywhere in it, function
bodies included (an import inside a function must not dodge a cycle), is an edge to the
qjaxrob module it names. New modules and packages are covered automatically: a module's
layer is that of its longest matching prefix in ``LAYERS``.
"""

from __future__ import annotations

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]

LAYERS = {
    # rank: lower ranks never import higher ones (DESIGN.md, "Where things live"). The core
    # is a pipeline whose stages are folders: ir (what the user builds) -> lower (what the
    # walk applies) -> sim (walks, measurement, gradients) -> simulate (entry points).
    "qjaxrob.kernels": 0,
    "qjaxrob.errors": 1, "qjaxrob.cache": 1, "qjaxrob.extras": 1, "qjaxrob.storage": 1,
    "qjaxrob.devices": 1,
    "qjaxrob.ir": 2, "qjaxrob.checks": 2,
    "qjaxrob.lower": 3, "qjaxrob.backend": 3,
    "qjaxrob.sim": 4,
    "qjaxrob.simulate": 5,
    "qjaxrob.cutting": 6, "qjaxrob.qml": 6, "qjaxrob.interop": 6,
    # the package root eagerly loads the core and cutting; the rest loads lazily
    "qjaxrob": 6,
    "qjaxrob.federated": 7, "qjaxrob.attacks": 7, "qjaxrob.defenses": 7,
    "qjaxrob.experiments": 8,
    "qjaxrob.cli": 9,
}

FORBIDDEN = [
    # (importer prefix, imported prefix, allowed importers)
    ("qjaxrob.federated", "qjaxrob.attacks", ()),
    ("qjaxrob.federated", "qjaxrob.defenses", ()),
    ("qjaxrob.defenses", "qjaxrob.attacks", ("qjaxrob.defenses.adversarial",)),
]


def _module_name(path: pathlib.Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[0] == "kernels":
        parts = ["qjaxrob"] + parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict[str, pathlib.Path]:
    files = list((ROOT / "qjaxrob").rglob("*.py")) + list((ROOT / "kernels").rglob("*.py"))
    return {_module_name(p): p for p in files}


def _resolve(name: str, modules) -> str | None:
    """The longest prefix of dotted ``name`` that is a qjaxrob module."""
    parts = name.split(".")
    for k in range(len(parts), 0, -1):
        cand = ".".join(parts[:k])
        if cand in modules:
            return cand
    return None


def _edges(mod: str, path: pathlib.Path, modules) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    is_pkg = path.name == "__init__.py"
    out = set()
    for node in ast.walk(tree):
        targets = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = mod.split(".") if is_pkg else mod.split(".")[:-1]
                pkg = pkg[: len(pkg) - (node.level - 1)]
                base = ".".join(pkg + ([base] if base else []))
            # "from pkg import sub" imports the submodule pkg.sub when there is one
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                       for a in node.names]
        for t in targets:
            r = _resolve(t, modules)
            if r is not None and r != mod:
                out.add(r)
    return out


def _declared(mod: str):
    """The layer of ``mod`` from ``LAYERS`` (longest prefix), or ``None``. The root
    "qjaxrob" names only the package ``__init__``."""
    matches = [p for p in LAYERS if mod == p or (p != "qjaxrob" and mod.startswith(p + "."))]
    return LAYERS[max(matches, key=len)] if matches else None


def _ranks(graph) -> dict[str, int]:
    """Every module's layer: declared, or (a top-level module nobody has placed yet) the
    highest layer among its qjaxrob imports, so it is checked against what imports it."""
    out = {}

    def rank(m, seen=()):
        if m not in out:
            declared = _declared(m)
            if declared is None:
                deps = [d for d in graph.get(m, ()) if d not in seen]
                declared = max([rank(d, seen + (m,)) for d in deps], default=0)
            out[m] = declared
        return out[m]

    for m in graph:
        rank(m)
    return out


@pytest.fixture(scope="module")
def graph():
    modules = _modules()
    return {m: _edges(m, p, modules) for m, p in modules.items()}


def test_the_graph_covers_every_package(graph):
    for pkg in ("qjaxrob.kernels.dense", "qjaxrob.sim.engine", "qjaxrob.cutting.kak",
                "qjaxrob.qml.models", "qjaxrob.attacks", "qjaxrob.ir.circuit",
                "qjaxrob.lower.fusion"):
        assert pkg in graph
    assert "qjaxrob.sim.dense" in graph["qjaxrob.simulate"]
    assert "qjaxrob.sim.adjoint" in graph["qjaxrob.simulate"]


def test_every_core_module_sits_in_a_stage_folder(graph):
    """A core module's layer can be named from its path: the flat ``qjaxrob/`` holds only
    the public face and shared plumbing."""
    flat = {m.split(".")[1] for m in graph if m.count(".") == 1}
    allowed = {"errors", "cache", "extras", "storage", "devices", "checks", "backend",
               "simulate", "cli",
               # packages
               "kernels", "ir", "lower", "sim", "cutting", "qml", "interop", "federated",
               "attacks", "defenses", "experiments"}
    assert flat <= allowed, f"unplaced top-level modules: {sorted(flat - allowed)}"


def test_no_upward_imports(graph):
    rank = _ranks(graph)
    bad = []
    for mod, deps in graph.items():
        for dep in deps:
            if rank[dep] > rank[mod]:
                bad.append(f"{mod} (layer {rank[mod]}) imports {dep} (layer {rank[dep]})")
    assert not bad, "upward imports:\n" + "\n".join(sorted(bad))


def test_forbidden_edges(graph):
    bad = []
    for mod, deps in graph.items():
        for importer, imported, allowed in FORBIDDEN:
            if not (mod == importer or mod.startswith(importer + ".")) or mod in allowed:
                continue
            bad += [f"{mod} imports {d}" for d in deps
                    if d == imported or d.startswith(imported + ".")]
    assert not bad, "forbidden imports:\n" + "\n".join(sorted(bad))


def test_no_import_cycles(graph):
    """Depth-first search for a back edge (a package's ``__init__`` is a module like any
    other: a submodule importing a name from its own package's ``__init__`` while that
    ``__init__`` imports the submodule is a cycle)."""
    state, stack, cycles = {}, [], []

    def visit(m):
        state[m] = "open"
        stack.append(m)
        for d in sorted(graph.get(m, ())):
            if state.get(d) == "open":
                cycles.append(" -> ".join(stack[stack.index(d):] + [d]))
            elif d not in state:
                visit(d)
        stack.pop()
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m)
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_the_library_uses_the_kernels_package_interface():
    """Outside ``kernels/``, kernels come from ``qjaxrob.kernels`` (its ``__init__`` exports
    what the library uses), never ``from qjaxrob.kernels.<module> import ...``."""
    bad = []
    for path in (ROOT / "qjaxrob").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                    "qjaxrob.kernels."):
                bad.append(f"{path.relative_to(ROOT)}: from {node.module} import ...")
    assert not bad, "\n".join(bad)
