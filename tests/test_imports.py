"""The import graph of ``labhelpers``, read statically: no module imports itself back through others.

An edge ``a -> b`` is an import statement in ``a`` that names ``b`` (``import labhelpers.b``, ``from labhelpers import
b``, ``from labhelpers.b import name``, relative forms too), at module level or inside a function: a function-level
import only delays the loop to the first call, it does not remove it. Imports under ``if TYPE_CHECKING:`` are left
out (they never run). A package is its ``__init__.py``; importing a submodule is not counted as importing the package's
``__init__`` (Python runs it first, but a package importing its own submodules is the ordinary layout, not a loop).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest


ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "labhelpers"


def module_files() -> dict[str, Path]:
    """``{dotted module name: file}`` for every ``.py`` file of the package."""
    modules = {}
    for path in sorted((ROOT / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement in ``tree`` at any depth, except those in an ``if TYPE_CHECKING:`` body."""
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
            return
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def import_graph() -> dict[str, set[str]]:
    """``{module: modules of the package it imports}``; ``from labhelpers.x import y`` counts as importing
    ``labhelpers.x.y`` when that is a module, else ``labhelpers.x``."""
    modules = module_files()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in _imports(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                if node.level:  # relative: from . import x / from .x import y
                    base = package.split(".")
                    base = base[:len(base) - node.level + 1]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module or ""
                targets = [f"{source}.{alias.name}" if f"{source}.{alias.name}" in modules else source
                           for alias in node.names]
            for target in targets:
                while target and target not in modules:  # `import labhelpers.x.y` names a module; trim attributes
                    target = target.rpartition(".")[0]
                if target and target != name:
                    graph[name].add(target)
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component with a loop, as ``[a, b, ..., a]`` (Tarjan, then a shortest path
    back to the component's first module).

    >>> find_cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}})
    [['a', 'b', 'a']]
    >>> find_cycles({"a": {"b"}, "b": set()})
    []
    """
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    cycles = []
    for component in sorted(components):
        start, members = component[0], set(component)
        paths = {start: [start]}
        queue = [start]
        while queue:  # breadth-first inside the component, until an edge leads back to start
            v = queue.pop(0)
            if v != start and start in graph[v]:
                cycles.append(paths[v] + [start])
                break
            for w in sorted(graph[v] & members):
                if w not in paths:
                    paths[w] = paths[v] + [w]
                    queue.append(w)
    return cycles


def reaches(graph: dict[str, set[str]], start: str, goal: str) -> bool:
    """True when ``start`` imports ``goal``, directly or through other modules."""
    seen, todo = {start}, [start]
    while todo:
        for w in graph[todo.pop()] - seen:
            if w == goal:
                return True
            seen.add(w)
            todo.append(w)
    return False


def test_labhelpers_has_no_import_cycle():
    cycles = find_cycles(import_graph())
    assert cycles == [], "import cycles in labhelpers:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_data_and_formats_do_not_import_each_other():
    """The loop there was (data -> formats inside a function, formats -> data for its error types) is broken by
    ``data_problems``, which both import."""
    graph = import_graph()
    data, formats = "labhelpers.data.datasets", "labhelpers.data.formats"
    assert not (reaches(graph, data, formats) and reaches(graph, formats, data))


def test_only_the_checks_package_imports_the_checks():
    """The TODO checks sit on top: they import the lessons' plumbing (``lora``, ``handoff``, ``sanity`` ...), never
    the other way round (``labhelpers.checks`` is for the notebooks and the tests)."""
    offenders = sorted(f"{module} -> {target}" for module, targets in import_graph().items() for target in targets
                       if target.split(".")[:2] == [PACKAGE, "checks"] and module.split(".")[:2] != [PACKAGE, "checks"])
    assert offenders == [], offenders


# The package's floors, bottom first: a module imports its own floor and the floors below it, never one above, so the
# folders read as the architecture (what each floor holds is its __init__'s docstring).
LAYERS = ("base", "data", "model", "run", "measure", "views", "sanity", "series", "checks")
NOT_A_LAYER = {PACKAGE, f"{PACKAGE}.bundled_data"}  # the package's own __init__ and the lesson data's folder


def layer_of(module: str) -> str:
    """The floor a module sits on: the first folder under the package.

    >>> layer_of("labhelpers.model.hardware.sizes"), layer_of("labhelpers.checks")
    ('model', 'checks')
    """
    return module.split(".")[1]


def test_every_module_sits_on_a_floor():
    stray = sorted(m for m in module_files() if m not in NOT_A_LAYER and layer_of(m) not in LAYERS)
    assert stray == [], f"modules outside the floors {LAYERS}: {stray}; move each into the folder of its job"


def test_imports_point_down_the_floors():
    """No floor imports a floor above it (function-level imports included): the run's plumbing never needs the sanity
    assistant, the assistant never needs a notebook's TODO feedback."""
    up = sorted(f"{module} -> {target}" for module, targets in import_graph().items() if module not in NOT_A_LAYER
                for target in targets if target not in NOT_A_LAYER
                and LAYERS.index(layer_of(target)) > LAYERS.index(layer_of(module)))
    assert up == [], "imports that point up the floors " + " < ".join(LAYERS) + ":\n" + "\n".join(up)


def test_the_floor_check_sees_an_upward_import(tmp_path, monkeypatch):
    """A run module that imports the sanity assistant is named (the loop lora -> sanity.report -> ... was one)."""
    package = tmp_path / PACKAGE
    for folder in ("run", "sanity"):
        (package / folder).mkdir(parents=True)
        (package / folder / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    (package / "run" / "lora.py").write_text("from labhelpers.sanity.report import Finding\n")
    (package / "sanity" / "report.py").write_text("")
    monkeypatch.setitem(globals(), "ROOT", tmp_path)
    with pytest.raises(AssertionError, match="labhelpers.run.lora -> labhelpers.sanity.report"):
        test_imports_point_down_the_floors()


def test_the_graph_sees_function_level_and_relative_imports(tmp_path, monkeypatch):
    """The reader resolves the import forms the package uses, so a missing edge cannot hide a loop."""
    package = tmp_path / PACKAGE
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("def f():\n    from labhelpers.b import thing\n")
    (package / "b.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import labhelpers.c\n"
                                  "from .sub import d\n")
    (package / "c.py").write_text("import labhelpers.a\n")
    (package / "sub" / "__init__.py").write_text("")
    (package / "sub" / "d.py").write_text("from .. import a\n")
    monkeypatch.setitem(globals(), "ROOT", tmp_path)
    graph = import_graph()
    assert graph == {"labhelpers": set(), "labhelpers.a": {"labhelpers.b"}, "labhelpers.b": {"labhelpers.sub.d"},
                     "labhelpers.c": {"labhelpers.a"}, "labhelpers.sub": set(), "labhelpers.sub.d": {"labhelpers.a"}}
    assert find_cycles(graph) == [["labhelpers.a", "labhelpers.b", "labhelpers.sub.d", "labhelpers.a"]]
