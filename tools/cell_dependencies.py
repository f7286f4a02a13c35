"""Which later cells of a notebook need what a TODO cell defines: names bound and read per cell (IPython magics
understood), so the student copy can guard exactly the cells that depend on an unfinished TODO.

>>> sorted(names_read(parse_cell("y = x + len(z)")))
['len', 'x', 'z']
"""

from __future__ import annotations

import ast
import functools
from dataclasses import dataclass

from tools.solution_markers import find_regions, has_markers


_PY_LINE_MAGICS = frozenset({"time", "timeit", "prun"})  # line magics whose argument is Python code
_PY_CELL_MAGICS = frozenset({"time", "timeit", "prun", "capture"})  # cell magics whose body is Python code
_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)
_DEFS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
_COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)


@functools.lru_cache(maxsize=1)
def _ipython_transformer():  # imported lazily: IPython is heavy and only needed here
    from IPython.core.inputtransformer2 import TransformerManager

    return TransformerManager()


def _magic_code(node: ast.stmt) -> list[ast.stmt] | None:
    """Statements hidden in a `%time`-like magic call (`get_ipython().run_*_magic(...)`), or None."""
    if not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)):
        return None
    call = node.value
    func = call.func
    if not (isinstance(func, ast.Attribute) and func.attr in ("run_line_magic", "run_cell_magic")):
        return None
    if not all(isinstance(arg, ast.Constant) and isinstance(arg.value, str) for arg in call.args):
        return None
    args = [arg.value for arg in call.args]  # type: ignore[attr-defined]
    magics = _PY_LINE_MAGICS if func.attr == "run_line_magic" else _PY_CELL_MAGICS
    if len(args) < 2 or args[0] not in magics:
        return None
    try:
        inner = ast.parse(args[-1])
    except SyntaxError:  # e.g. `%timeit -n 3 f()`: the options make it unparsable; keep the opaque call
        return None
    # line numbers in the cell: a line magic's code sits on its own line, a cell magic's body starts one line below
    ast.increment_lineno(inner, node.lineno - (1 if func.attr == "run_line_magic" else 0))
    return inner.body


def parse_cell(source: str) -> ast.Module | None:
    """Parse a code cell the way IPython runs it (magics, `!shell`); the code inside `%time`-like magics is inlined.

    >>> ast.unparse(parse_cell("!ls\\n%time y = f(x)"))
    "get_ipython().system('ls')\\ny = f(x)"
    >>> parse_cell("def (") is None
    True
    """
    try:
        tree = ast.parse(_ipython_transformer().transform_cell(source))
    except SyntaxError:
        return None
    body: list[ast.stmt] = []
    for stmt in tree.body:
        body += _magic_code(stmt) or [stmt]
    tree.body = body
    return tree


def _alias_names(node: ast.Import | ast.ImportFrom) -> set[str]:
    """Names an import binds: `import a.b` binds `a`, `as` names bind themselves, `*` binds nothing we know."""
    return {(a.asname or a.name.split(".")[0]) for a in node.names if a.name != "*"}


def _binds(node: ast.AST) -> set[str]:
    """Names this one node binds in the scope it appears in (its children not included)."""
    if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
        return {node.id}
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {node.name}
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return _alias_names(node)
    if isinstance(node, (ast.ExceptHandler, ast.MatchAs, ast.MatchStar)) and node.name:
        return {node.name}
    if isinstance(node, ast.MatchMapping) and node.rest:
        return {node.rest}
    return set()


def names_assigned(tree: ast.AST) -> set[str]:
    """Every name bound anywhere in `tree` (assignments, defs, imports, loop/with/except targets, walrus).

    >>> source = "import numpy as np\\nfor i in range(3):\\n    with open(f) as fh:\\n        (n := 2)\\ndef g(): pass"
    >>> sorted(names_assigned(parse_cell(source)))
    ['fh', 'g', 'i', 'n', 'np']
    """
    return set().union(*(_binds(node) for node in ast.walk(tree)))


def bound_names(nodes: list[ast.stmt]) -> set[str]:
    """Names bound in the scope of `nodes` itself, not inside nested functions, classes, lambdas or comprehensions.

    >>> sorted(bound_names(parse_cell("x = 1\\ndef f(a):\\n    y = a\\nsquares = [k * k for k in range(3)]").body))
    ['f', 'squares', 'x']
    """
    out: set[str] = set()
    stack: list[ast.AST] = list(nodes)
    while stack:
        node = stack.pop()
        out |= _binds(node)
        if isinstance(node, _SCOPES):
            stack += getattr(node, "decorator_list", [])  # evaluated in the enclosing scope
            continue
        if not isinstance(node, _COMPREHENSIONS):
            stack += ast.iter_child_nodes(node)
    return out


class _FreeReads(ast.NodeVisitor):
    """Names read from the cell's global scope before the cell binds them, in execution order; names local to a
    function, class body or comprehension are skipped."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self.local: list[set[str]] = []
        self.bound: set[str] = set()  # global names this code has bound so far

    def _read(self, name: str) -> None:
        if not any(name in scope for scope in self.local) and name not in self.bound and name not in self.names:
            self.names.append(name)

    def _bind(self, names: set[str]) -> None:
        if not self.local:  # inside a function the scope sets already hold its locals
            self.bound |= names

    def _store(self, target: ast.AST) -> None:
        """Visit an assignment target: names are bound, subscripts and attributes read their roots first."""
        if isinstance(target, ast.Name):
            self._bind({target.id})
        elif isinstance(target, (ast.Tuple, ast.List)):
            for element in target.elts:
                self._store(element)
        elif isinstance(target, ast.Starred):
            self._store(target.value)
        else:
            self.visit(target)

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, (ast.Load, ast.Del)):  # `del x` fails too when x was never defined
            self._read(node.id)
        else:
            self._bind({node.id})

    def visit_Assign(self, node: ast.Assign) -> None:  # the value runs before the targets are bound
        self.visit(node.value)
        for target in node.targets:
            self._store(target)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        if node.value is not None:
            self.visit(node.value)
            self._store(node.target)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        if isinstance(node.target, ast.Name):  # `x += 1` reads x first
            self._read(node.target.id)
        else:
            self.visit(node.target)
        self.visit(node.value)
        self._store(node.target)

    def visit_NamedExpr(self, node: ast.NamedExpr) -> None:
        self.visit(node.value)
        self._store(node.target)

    def visit_For(self, node: ast.For | ast.AsyncFor) -> None:
        self.visit(node.iter)
        self._store(node.target)
        for child in [*node.body, *node.orelse]:
            self.visit(child)

    visit_AsyncFor = visit_For  # type: ignore[assignment]

    def visit_With(self, node: ast.With | ast.AsyncWith) -> None:
        for item in node.items:
            self.visit(item.context_expr)
            if item.optional_vars is not None:
                self._store(item.optional_vars)
        for child in node.body:
            self.visit(child)

    visit_AsyncWith = visit_With  # type: ignore[assignment]

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        if node.type is not None:
            self.visit(node.type)
        if node.name:
            self._bind({node.name})
        for child in node.body:
            self.visit(child)

    def visit_Import(self, node: ast.Import | ast.ImportFrom) -> None:
        self._bind(_alias_names(node))

    visit_ImportFrom = visit_Import  # type: ignore[assignment]

    def _visit_scope(self, local: set[str], body: list[ast.AST]) -> None:
        self.local.append(local)
        for child in body:
            self.visit(child)
        self.local.pop()

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        a = node.args
        for outer in [*node.decorator_list, *a.defaults, *(d for d in a.kw_defaults if d)]:
            self.visit(outer)
        params = {p.arg for p in [*a.posonlyargs, *a.args, *a.kwonlyargs, a.vararg, a.kwarg] if p}
        declared = {n for stmt in ast.walk(node) if isinstance(stmt, ast.Global) for n in stmt.names}
        self._visit_scope((params | bound_names(node.body)) - declared, node.body)
        self._bind({node.name})

    visit_AsyncFunctionDef = visit_FunctionDef  # type: ignore[assignment]

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        for outer in [*node.decorator_list, *node.bases, *(k.value for k in node.keywords)]:
            self.visit(outer)
        self._visit_scope(bound_names(node.body), node.body)
        self._bind({node.name})

    def visit_Lambda(self, node: ast.Lambda) -> None:
        a = node.args
        for outer in [*a.defaults, *(d for d in a.kw_defaults if d)]:
            self.visit(outer)
        params = {p.arg for p in [*a.posonlyargs, *a.args, *a.kwonlyargs, a.vararg, a.kwarg] if p}
        self._visit_scope(params, [node.body])

    def _visit_comprehension(self, node: ast.AST) -> None:
        targets = {n.id for gen in node.generators for n in ast.walk(gen.target) if isinstance(n, ast.Name)}  # type: ignore[attr-defined]
        self._visit_scope(targets, list(ast.iter_child_nodes(node)))

    visit_ListComp = visit_SetComp = visit_DictComp = visit_GeneratorExp = _visit_comprehension  # type: ignore[assignment]


def names_read(tree: ast.AST) -> list[str]:
    """Names `tree` reads from the notebook's namespace before binding them itself, in execution order (attribute
    roots, decorators, function bodies; a loop variable or an earlier assignment is not a read).

    >>> source = "y = model.config.eos\\ndef f(a):\\n    b = a + scale\\n    return b\\ntotal += sum(k for k in ks)"
    >>> names_read(parse_cell(source))
    ['model', 'scale', 'total', 'sum', 'ks']
    >>> names_read(parse_cell("for name, batch in pairs:\\n    keep = batch[name]\\n    show(keep, row)"))
    ['pairs', 'show', 'row']
    """
    visitor = _FreeReads()
    visitor.visit(tree)
    return visitor.names


_MUTATORS = frozenset({"append", "extend", "insert", "update", "setdefault", "add", "pop", "popitem", "remove",
                       "discard", "clear", "sort", "reverse"})


def names_mutated(nodes: list[ast.stmt]) -> set[str]:
    """Global names whose object `nodes` change in place: `x[k] = v`, `del x[k]`, `x[k] += v`, `x.append(v)`, ...

    A cell that stops before such a line leaves the object incomplete (an empty dict, a short list), so later cells
    reading it depend on the TODO as much as on a name it never bound. Function bodies are not looked into.
    >>> sorted(names_mutated(parse_cell("shares[name] = 1\\nrows.append(2)\\nmodel.config.x = 3\\nprint(y)").body))
    ['rows', 'shares']
    """
    out: set[str] = set()
    stack: list[ast.AST] = list(nodes)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Subscript) and isinstance(node.ctx, (ast.Store, ast.Del)):
            if isinstance(node.value, ast.Name):
                out.add(node.value.id)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in _MUTATORS \
                and isinstance(node.func.value, ast.Name):
            out.add(node.func.value.id)
        if not isinstance(node, _SCOPES):
            stack += ast.iter_child_nodes(node)
    return out


def _first_line(stmt: ast.stmt) -> int:
    """1-based first line of a statement, its decorators included."""
    return min([stmt.lineno, *(d.lineno for d in getattr(stmt, "decorator_list", []))])


@dataclass(frozen=True)
class Dependency:
    """How one cell after a TODO depends on it."""

    uses: list[str]  # the missing names the cell reads, sorted (its comment lists them)
    needs: list[str]  # the TODO's own names behind them, in the TODO's order (its `require_todo` guard checks them)
    line: int  # 1-based line of the first statement that needs the TODO: the guard goes right above it


def _todo_effect(tree: ast.Module, regions: list[tuple[int, int]]) -> tuple[int, list[str]]:
    """(index of the first top-level statement a solution region touches, the TODO's own names): the functions
    and classes holding a region, else the names the region's statements bind. Regions are 0-based line pairs;
    no regions (a solution-only cell) means the whole cell."""
    body = tree.body
    def touches(stmt: ast.stmt) -> bool:
        last = stmt.end_lineno or stmt.lineno
        return not regions or any(_first_line(stmt) - 1 <= end and last - 1 >= begin for begin, end in regions)

    touched = [k for k, stmt in enumerate(body) if touches(stmt)]
    if not touched:
        return len(body), []
    own: list[str] = []
    for k in touched:
        stmt = body[k]
        found = [stmt.name] if isinstance(stmt, _DEFS) else sorted(bound_names([stmt]))  # type: ignore[union-attr]
        own += [name for name in found if name not in own]
    return touched[0], own


def dependencies(sources: list[str], todo: set[int]) -> dict[int, Dependency]:
    """{index: Dependency} for the cells after a TODO (index in `todo`) that use what the TODO would define.

    `sources` lists every cell's code ('' for markdown). A TODO cell runs up to its first solution region: the
    names bound from there on go missing. A later cell runs up to its first statement reading a missing name; from
    there on, what it binds or changes in place (`d[k] = v`, `xs.append(v)`) goes missing too, traced back to the
    TODO names it needed.
    >>> todo_cell = "r = 2\\n# TODO: area\\n### BEGIN SOLUTION\\nA = math.pi * r**2\\n### END SOLUTION"
    >>> later = ["doubled = 2 * A", "log = {}\\nlog['a'] = A", "print(doubled, log)", "A = 1\\nprint(A)", "print(r)"]
    >>> found = dependencies(["import math", todo_cell, *later], todo={1})
    >>> {i: (d.uses, d.needs, d.line) for i, d in found.items()}
    {2: (['A'], ['A'], 1), 3: (['A'], ['A'], 2), 4: (['doubled', 'log'], ['A'], 1)}
    """
    missing: dict[str, tuple[str, ...]] = {}  # name -> the TODO names it stems from
    found: dict[int, Dependency] = {}
    for i, source in enumerate(sources):
        tree = parse_cell(source) if source.strip() else None
        if tree is None:  # markdown, or not Python: nothing we can say, so assume it neither reads nor binds
            continue
        body = tree.body
        if i in todo:
            start, own = _todo_effect(tree, find_regions(source) if has_markers(source) else [])
            for stmt in body[:start]:
                for name in bound_names([stmt]):
                    missing.pop(name, None)
            gone = bound_names(body[start:]) | names_mutated(body[start:])
            own = own or sorted(gone)
            missing.update({name: (name,) if name in own else tuple(own) for name in gone})
            continue
        start = len(body)
        for k, stmt in enumerate(body):
            if any(name in missing for name in names_read(stmt)):
                start = k
                break
            for name in bound_names([stmt]):
                missing.pop(name, None)
        if start == len(body):
            continue
        while start > 0 and body[start - 1].end_lineno >= _first_line(body[start]):  # type: ignore[operator]
            start -= 1  # `a = 1; b = f(missing)`: the guard line stops the whole line
        rest = ast.Module(body=body[start:], type_ignores=[])
        uses = sorted(name for name in names_read(rest) if name in missing)
        needs = list(dict.fromkeys(root for name in uses for root in missing[name]))
        found[i] = Dependency(uses, needs, _first_line(body[start]))
        for name in bound_names(body[start:]) | names_mutated(body[start:]):
            missing[name] = tuple(dict.fromkeys([*missing.get(name, ()), *needs]))
    return found


def dependent_cells(sources: list[str], todo: set[int]) -> dict[int, list[str]]:
    """{index: missing names it reads} for cells after a TODO (index in `todo`) that use what the TODO would define.

    >>> todo_cell = "r = 2\\n# TODO: area\\n### BEGIN SOLUTION\\nA = math.pi * r**2\\n### END SOLUTION"
    >>> later = ["doubled = 2 * A", "print(doubled)", "A = 1\\nprint(A)", "print(A, math.pi)", "print(r)"]
    >>> dependent_cells(["import math", todo_cell, *later], todo={1})
    {2: ['A'], 3: ['doubled']}
    """
    return {i: d.uses for i, d in dependencies(sources, todo).items()}
