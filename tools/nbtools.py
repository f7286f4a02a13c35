"""Build the student notebooks (`notebooks/`) from the instructor notebooks (`solutions/`) and keep both clean.

Usage: ``python -m tools.nbtools build|check|clean [--solutions DIR] [--notebooks DIR]``.

Solution notebooks are the only source. In a code cell tagged ``solution``, each region between
``### BEGIN SOLUTION`` and ``### END SOLUTION`` becomes ``raise NotImplementedError("TODO: <hint>")``
at the BEGIN line's indent (nbgrader's convention; the hint is the ``# TODO:`` comment just above).
Later cells that read names the TODO cell would have defined get a comment naming them, a
``require_todo(...)`` guard (from `labhelpers.checks`) right above their first statement that needs the
TODO, so they stop with one clear line until it is done, and the ``raises-exception`` tag, so
``pytest --nbval notebooks/`` still passes on the untouched student copy. Markers are strict:
every mistake raises `NotebookMarkerError` naming the notebook, the cell index and the line.
"""

from __future__ import annotations

import argparse
import ast
import copy
import functools
import hashlib
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbformat import NotebookNode

BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
DEFAULT_HINT = "fill in this cell"
TAG_SOLUTION = "solution"  # instructor tag: this code cell holds solution regions
TAG_SOLUTION_ONLY = "solution-only"  # instructor tag: drop this cell from the student copy
TAG_PARAMETERS = "parameters"  # papermill parameters: copied as is, never annotated
TAG_RAISES = "raises-exception"  # nbval: an exception in this cell is tolerated (see README)
TAG_NOTICE = "generated-notice"  # first cell of every generated notebook: the note for students
META_KEY = "labhelpers"  # notebook metadata of a generated copy: where it comes from, for maintainers
TODO_KEY = "sft_lab"  # cell metadata of a TODO cell: {"todo": "04.build_labels"} (+ "given": true in a release)
DEFAULT_KERNELSPEC = {"display_name": "Python 3", "language": "python", "name": "python3"}
DEPENDENT_NOTE = "# (runs after you finish the TODO above: it uses {names})"
GUARD = "require_todo({names})"  # labhelpers.checks.require_todo: one clear line while the TODO is not done
GUARD_IMPORT = "from labhelpers.checks import require_todo"
NOTICE = (
    "> **How to work through this notebook.** Fill in the code cells marked `TODO` (each one raises "
    "`NotImplementedError` until you do). Run the check cell right after each TODO: it tells you what is right, or "
    "exactly what is wrong and how to fix it. Cells further down that need your TODO stop with \"run the TODO above "
    "first\" until it is done. Stuck? Read the hint in the `# TODO:` comment, then ask for more: {hints} (from "
    "`labhelpers.checks`) shows a nudge first and says more on each call. The last cell shows your checks' verdicts so "
    "far. The answers under \"Check your understanding\" are at the end."
)
NOTICE_NO_TODO = "> **This notebook has no TODO:** run the cells in order and read along."
GENERATED_NOTE = (
    "generated from {source} by `python -m tools.nbtools build`: do not edit; edit the solution and rebuild"
)
FIX_HINT = "run `python -m tools.nbtools clean` then `python -m tools.nbtools build`, and commit both folders"

_TODO_RE = re.compile(r"^\s*#\s*TODO:\s*(.*?)\s*$")
_PY_LINE_MAGICS = frozenset({"time", "timeit", "prun"})  # line magics whose argument is Python code
_PY_CELL_MAGICS = frozenset({"time", "timeit", "prun", "capture"})  # cell magics whose body is Python code
_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)
_DEFS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
_COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)


class NotebookMarkerError(ValueError):
    """A solution-marker mistake, located by notebook path, cell index (0-based, all cells) and line (1-based)."""

    def __init__(self, path: str | Path, cell: int, line: int | None, problem: str) -> None:
        self.path, self.cell, self.line = str(path), cell, line
        where = f"{path}: cell {cell}" + (f", line {line}" if line is not None else "")
        super().__init__(f"{where}: {problem}")


# --- markers and stubs -------------------------------------------------------------------------


def marker_kind(line: str) -> str | None:
    """'begin', 'end' or None for one source line (surrounding whitespace ignored).

    >>> marker_kind("    ### BEGIN SOLUTION"), marker_kind("### END SOLUTION"), marker_kind("# BEGIN SOLUTION")
    ('begin', 'end', None)
    """
    text = line.strip()
    return "begin" if text == BEGIN else "end" if text == END else None


def has_markers(source: str) -> bool:
    """True when any line of `source` is a BEGIN or END marker.

    >>> has_markers("x = 1\\n  ### END SOLUTION"), has_markers("x = 1")
    (True, False)
    """
    return any(marker_kind(line) for line in source.splitlines())


def find_regions(source: str, path: str | Path = "<notebook>", cell: int = 0) -> list[tuple[int, int]]:
    """0-based (BEGIN line, END line) pairs in `source`; raises `NotebookMarkerError` on nested or unpaired markers.

    >>> find_regions("a = 1\\n### BEGIN SOLUTION\\nb = 2\\n### END SOLUTION")
    [(1, 3)]
    >>> find_regions("### END SOLUTION", "solutions/01_x.ipynb", 4)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    tools.nbtools.NotebookMarkerError: solutions/01_x.ipynb: cell 4, line 1: '### END SOLUTION' without a BEGIN ...
    """
    regions: list[tuple[int, int]] = []
    begin: int | None = None
    for i, line in enumerate(source.splitlines()):
        kind = marker_kind(line)
        if kind == "begin" and begin is not None:
            raise NotebookMarkerError(
                path,
                cell,
                i + 1,
                f"nested '{BEGIN}' (the region opened on line {begin + 1} has no END yet); "
                f"add '{END}' before this line",
            )
        if kind == "begin":
            begin = i
        elif kind == "end" and begin is None:
            raise NotebookMarkerError(
                path,
                cell,
                i + 1,
                f"'{END}' without a BEGIN above it; add '{BEGIN}' before the solution or delete this line",
            )
        elif kind == "end":
            regions.append((begin, i))  # type: ignore[arg-type]  # begin is set here
            begin = None
    if begin is not None:
        raise NotebookMarkerError(
            path, cell, begin + 1, f"'{BEGIN}' without an END; add '{END}' after the solution code"
        )
    return regions


def todo_hint(lines: list[str], begin: int) -> str:
    """Hint for the region opening at `begin`: the whole `# TODO:` comment right above it, its continuation lines
    joined (up to the BEGIN line or an empty `#` line), so the stub never cuts a sentence.

    >>> todo_hint(["# TODO: mask the prompt tokens", "# (labels are -100 there)", "### BEGIN SOLUTION"], 2)
    'mask the prompt tokens (labels are -100 there)'
    >>> todo_hint(["# TODO: not this one", "x = 1", "### BEGIN SOLUTION"], 2)
    'fill in this cell'
    """
    block: list[str] = []
    for line in reversed(lines[:begin]):
        if not line.strip().startswith("#") or marker_kind(line):
            break  # code, a blank line or the previous region's END ends the comment block
        block.insert(0, line)
    start = next((i for i in range(len(block) - 1, -1, -1) if _TODO_RE.match(block[i])), None)
    if start is None:
        return DEFAULT_HINT
    words = [_TODO_RE.match(block[start]).group(1)]  # type: ignore[union-attr]  # matched just above
    for line in block[start + 1:]:
        text = line.strip().lstrip("#").strip()
        if not text:
            break  # an empty comment line ends the TODO's paragraph
        words.append(text)
    return " ".join(w for w in words if w) or DEFAULT_HINT


def stub_line(indent: str, hint: str) -> str:
    """The line that replaces one solution region.

    >>> print(stub_line("    ", 'use "-100"'))
        raise NotImplementedError("TODO: use \\"-100\\"")
    """
    return f"{indent}raise NotImplementedError({json.dumps('TODO: ' + hint, ensure_ascii=False)})"


def stub_solutions(source: str, path: str | Path = "<notebook>", cell: int = 0) -> str:
    """`source` with every solution region replaced by a `NotImplementedError` stub at the BEGIN line's indent.

    >>> source = "def f(x):\\n    # TODO: double x\\n    ### BEGIN SOLUTION\\n    return 2 * x\\n    ### END SOLUTION"
    >>> print(stub_solutions(source))
    def f(x):
        # TODO: double x
        raise NotImplementedError("TODO: double x")
    """
    lines = source.splitlines()
    out: list[str] = []
    done = 0
    for begin, end in find_regions(source, path, cell):
        out += lines[done:begin]
        indent = lines[begin][: len(lines[begin]) - len(lines[begin].lstrip())]
        out.append(stub_line(indent, todo_hint(lines, begin)))
        done = end + 1
    out += lines[done:]
    return "\n".join(out) + ("\n" if source.endswith("\n") else "")


def cell_tags(cell: NotebookNode) -> list[str]:
    """The cell's tags (empty list when it has none)."""
    return list(cell.get("metadata", {}).get("tags", []))


def check_markers(nb: NotebookNode, path: str | Path) -> None:
    """Raise `NotebookMarkerError` for the first marker mistake in `nb` (markdown, untagged, unpaired, nested)."""
    for i, cell in enumerate(nb.cells):
        tagged = TAG_SOLUTION in cell_tags(cell)
        lines = cell.source.splitlines()
        first = next((n for n, line in enumerate(lines) if marker_kind(line)), None)
        if cell.cell_type != "code" and first is not None:
            raise NotebookMarkerError(
                path,
                i,
                first + 1,
                f"solution marker in a {cell.cell_type} cell; only code cells can hold solutions, "
                "so move the solution to a code cell or delete the marker",
            )
        if cell.cell_type != "code":
            continue
        find_regions(cell.source, path, i)  # pairing first: its message is the more precise one
        if first is not None and not tagged:
            raise NotebookMarkerError(
                path,
                i,
                first + 1,
                f"solution markers in a cell without the '{TAG_SOLUTION}' tag; add the tag "
                "(JupyterLab: Property Inspector > Common Tools > Cell Tags)",
            )
        if tagged and first is None:
            head = lines[0] if lines else ""
            raise NotebookMarkerError(
                path,
                i,
                None,
                f"tagged '{TAG_SOLUTION}' but has no '{BEGIN}'/'{END}' markers (first line {head!r}); "
                "add the markers around the solution or remove the tag",
            )


# --- dependency analysis -----------------------------------------------------------------------


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


# --- cleaning and generation -------------------------------------------------------------------


def cell_id(name: str, index: int) -> str:
    """Deterministic cell id from the notebook's file name and the cell's position.

    >>> cell_id("01_chat_templates", 0) == cell_id("01_chat_templates", 0), len(cell_id("x", 3))
    (True, 12)
    """
    return hashlib.sha256(f"{name}:{index}".encode()).hexdigest()[:12]


def _judged_name(cells: list[NotebookNode], i: int) -> str:
    """What TODO cell `i` is judged as: the `check_*` function its check cell calls (the first code cell after it, up
    to the next TODO, that calls one), else the first name the solution defines, else `todo<i>`.

    >>> cells = [nbformat.v4.new_code_cell(s) for s in ("def f(x):\\n    return x", "print(f(1))", "check_f(f)")]
    >>> _judged_name(cells, 0), _judged_name(cells[:2], 0)
    ('check_f', 'f')
    """
    for cell in cells[i + 1:]:
        if cell.cell_type != "code":
            continue
        if TAG_SOLUTION in cell_tags(cell):
            break
        tree = parse_cell(cell.source)
        calls = [n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)] \
            if tree else []
        found = next((name for name in calls if name.startswith("check_")), None)
        if found:
            return found
    tree = parse_cell(cells[i].source)
    if tree is not None:
        _, own = _todo_effect(tree, find_regions(cells[i].source) if has_markers(cells[i].source) else [])
        if own:
            return own[0]
    return f"todo{i}"


def todo_ids(nb: NotebookNode, name: str, path: str | Path = "<notebook>") -> dict[int, str]:
    """{cell index: TODO id} of the `solution` cells of notebook `name` (labhelpers.checks.core.todo_id: the notebook's
    number and the name its check judges, `04.build_labels`); raises `NotebookMarkerError` when two share an id."""
    from labhelpers.checks.core import todo_id

    found: dict[int, str] = {}
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and TAG_SOLUTION in cell_tags(cell):
            found[i] = todo_id(name, _judged_name(nb.cells, i))
            twin = next((k for k, other in found.items() if other == found[i] and k != i), None)
            if twin is not None:
                raise NotebookMarkerError(path, i, None, f"TODO id {found[i]!r} is also cell {twin}'s (both are "
                                          "judged by the same check); give each TODO its own check function")
    return found


def with_todo_ids(nb: NotebookNode, name: str, path: str | Path = "<notebook>") -> NotebookNode:
    """Copy of `nb` whose TODO cells carry their id in metadata (`"sft_lab": {"todo": "04.build_labels"}`); a stale id
    on a cell that is no longer a TODO is removed (a release's given TODO, marked `"given": true`, keeps its id)."""
    nb = copy.deepcopy(nb)
    ids = todo_ids(nb, name, path)
    for i, cell in enumerate(nb.cells):
        meta = cell.setdefault("metadata", {})
        if i in ids:
            meta[TODO_KEY] = {"todo": ids[i]}
        elif TODO_KEY in meta and not meta[TODO_KEY].get("given"):
            del meta[TODO_KEY]
    return nb


def clean_notebook(nb: NotebookNode, name: str) -> NotebookNode:
    """Copy of `nb` as nbformat 4.5 with no outputs or counts, allowlisted metadata (tags, TODO id, Colab's form view) and ids derived
    from `name`."""
    nb = copy.deepcopy(nb)
    nb.nbformat, nb.nbformat_minor = 4, 5
    # Every lab notebook runs on the standard Python 3 kernel; papermill and nbval need it named.
    meta: dict = {"kernelspec": dict(DEFAULT_KERNELSPEC), "language_info": {"name": "python"}}
    nb.metadata = nbformat.from_dict(meta)
    for i, cell in enumerate(nb.cells):
        tags = cell_tags(cell)
        todo = cell.get("metadata", {}).get(TODO_KEY)
        view = cell.get("metadata", {}).get("cellView")  # Colab's folded form (the install cell)
        cell.metadata = nbformat.from_dict({**({"tags": tags} if tags else {}), **({TODO_KEY: todo} if todo else {}),
                                            **({"cellView": view} if view == "form" else {})})
        cell.id = cell_id(name, i)
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return nb


BADGE_PREFIX = "[![Open In Colab]"
INSTALL_PREFIXES = ("# @title Install cell", "# Install cell:")  # today's first line, and the one before


def with_colab_cells(nb: NotebookNode, name: str, source: str | None = None) -> NotebookNode:
    """Copy of `nb` whose Colab badge (cell 0's first line) and install cell (cell 1) are regenerated from
    `tools.colab`, i.e. from the versions in pyproject.toml, pointing at `source` (default: pyproject's
    Colab-install; a release passes its own). Notebooks without those two cells are returned as is.
    """
    from tools import colab

    nb = copy.deepcopy(nb)
    if len(nb.cells) < 2:
        return nb
    badge, install = nb.cells[0], nb.cells[1]
    if badge.cell_type == "markdown" and badge.source.startswith(BADGE_PREFIX):
        rest = badge.source.split("\n", 1)[1:]
        badge.source = "\n".join([colab.badge_markdown(f"notebooks/{name}.ipynb", source), *rest])
    if install.cell_type == "code" and install.source.startswith(INSTALL_PREFIXES):
        install.source = colab.install_cell_source(source=source)
        install.setdefault("metadata", {})["cellView"] = "form"  # Colab opens it folded, as its title and settings
    return nb


def is_clean(nb: NotebookNode) -> bool:
    """True when no code cell has outputs or an execution count."""
    return all(not c.get("outputs") and c.get("execution_count") is None for c in nb.cells if c.cell_type == "code")


def _add_tag(cell: NotebookNode, tag: str) -> None:
    tags = [t for t in cell_tags(cell) if t != TAG_SOLUTION]  # `solution` means nothing in the student copy
    cell.setdefault("metadata", {})["tags"] = tags + ([tag] if tag not in tags else [])


def _with_guard(source: str, dependency: Dependency) -> str:
    """`source` with the dependency comment on top and the `require_todo` guard above its first statement needing
    the TODO (below a leading `%%magic` line, which must stay first).

    >>> print(_with_guard("n = 3\\nshow(area)", Dependency(["area"], ["area"], 2)))
    # (runs after you finish the TODO above: it uses area)
    n = 3
    require_todo("area")
    show(area)
    """
    lines = source.split("\n")
    top = 1 if lines[0].startswith("%%") else 0
    at = max(dependency.line - 1, top)
    if dependency.needs:
        lines.insert(at, GUARD.format(names=", ".join(json.dumps(n) for n in dependency.needs)))
    lines.insert(top, DEPENDENT_NOTE.format(names=", ".join(dependency.uses)))
    return "\n".join(lines)


def _add_guard_import(cells: list[NotebookNode], first_dependent: int, fallback: int) -> None:
    """Import `require_todo` where the notebook imports its checks (`from labhelpers.checks import ...` in a cell
    above the first dependent cell), else at the top of cell `fallback` (the first TODO cell)."""
    for i, cell in enumerate(cells[:first_dependent]):
        if cell.cell_type != "code" or TAG_PARAMETERS in cell_tags(cell):
            continue
        tree = parse_cell(cell.source)
        for stmt in tree.body if tree else []:
            if isinstance(stmt, ast.ImportFrom) and stmt.module == "labhelpers.checks" and stmt.col_offset == 0:
                if any(a.name == "require_todo" and not a.asname for a in stmt.names):
                    return
                lines = cell.source.split("\n")
                last = stmt.end_lineno - 1  # type: ignore[operator]
                if last == stmt.lineno - 1 and "#" not in lines[last] and "(" not in lines[last]:
                    lines[last] += ", require_todo"
                else:
                    lines.insert(last + 1, GUARD_IMPORT)
                cell.source = "\n".join(lines)
                return
    cell = cells[fallback]
    cell.source = GUARD_IMPORT + "\n" + cell.source


def to_student(solution: NotebookNode, source: str, path: str | Path | None = None) -> NotebookNode:
    """Student copy of a solution notebook; `source` is the solution's path, kept in the notebook metadata
    (e.g. 'solutions/01_x.ipynb')."""
    path = path or source
    check_markers(solution, path)  # 1. fail before changing anything
    nb = with_todo_ids(solution, Path(source).stem, path)  # each TODO cell keeps its id in the student copy
    cells = nb.cells
    todo = {i for i, c in enumerate(cells) if TAG_SOLUTION in cell_tags(c)}
    dropped = {i for i, c in enumerate(cells) if TAG_SOLUTION_ONLY in cell_tags(c)}
    codes = [c.source if c.cell_type == "code" else "" for c in cells]
    # 2. analyse the solution code (stubs would hide the names) with solution-only cells still in:
    #    what they define is missing from the student copy just like a TODO's names.
    found = dependencies(codes, todo | {i for i in dropped if cells[i].cell_type == "code"})
    guarded = sorted(i for i in found if TAG_PARAMETERS not in cell_tags(cells[i]) and i not in dropped)
    for i in guarded:  # 3. comment + guard, and nbval tolerates the guard's error
        cells[i].source = _with_guard(cells[i].source, found[i])
        _add_tag(cells[i], TAG_RAISES)
    if any(found[i].needs for i in guarded):  # 4. the guard's import, above every guarded cell
        kept_todo = sorted(todo - dropped) or guarded
        _add_guard_import(cells, guarded[0], kept_todo[0])
    for i in todo:  # 5. stubs last among the code edits, so hints and analysis saw the solution
        cells[i].source = stub_solutions(cells[i].source, path, i)
        _add_tag(cells[i], TAG_RAISES)
    nb.cells = [c for i, c in enumerate(cells) if i not in dropped]  # 6. indexes are no longer needed
    ids = [cells[i].metadata[TODO_KEY]["todo"] for i in sorted(todo - dropped)]
    hints = " or ".join(f'`hint("{todo_id}")`' for todo_id in ids)
    note = NOTICE.format(hints=hints) if ids else NOTICE_NO_TODO
    nb.cells.insert(0, nbformat.v4.new_markdown_cell(note, metadata={"tags": [TAG_NOTICE]}))  # 7.
    nb = clean_notebook(nb, Path(source).stem)  # 8. ids follow the final positions; metadata allowlisted
    nb.metadata[META_KEY] = {"generated": GENERATED_NOTE.format(source=source)}  # 9. for maintainers only
    return nb


def render(nb: NotebookNode) -> str:
    """The exact text `nbformat.write` puts in the file (JSON, indent 1, trailing newline)."""
    text = nbformat.writes(nb)
    return text if text.endswith("\n") else text + "\n"


def read_notebook(path: Path) -> NotebookNode:
    """Read a notebook as nbformat 4."""
    return nbformat.read(path, as_version=4)


def _write_if_changed(path: Path, text: str) -> bool:
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return False
    path.write_text(text, encoding="utf-8", newline="\n")
    return True


def _require_dir(folder: Path, flag: str) -> None:
    if not folder.is_dir():
        raise FileNotFoundError(f"no folder {folder}/; run from the repository root or pass {flag} DIR")


def student_texts(solutions: Path) -> dict[str, str]:
    """{file name: rendered student notebook} for every `solutions/*.ipynb`; raises `NotebookMarkerError`."""
    _require_dir(solutions, "--solutions")
    label = solutions.resolve().name
    return {
        p.name: render(to_student(read_notebook(p), f"{label}/{p.name}", p)) for p in sorted(solutions.glob("*.ipynb"))
    }


def _is_generated(path: Path) -> bool:
    nb = read_notebook(path)
    return META_KEY in nb.metadata or (bool(nb.cells) and TAG_NOTICE in cell_tags(nb.cells[0]))


def build(solutions: Path = Path("solutions"), notebooks: Path = Path("notebooks")) -> tuple[list[str], bool]:
    """Write `notebooks/` from `solutions/`; returns (report lines, ok). Stale generated notebooks are deleted."""
    texts = student_texts(solutions)  # all or nothing: a marker error writes no file
    notebooks.mkdir(parents=True, exist_ok=True)
    lines, ok = [], True
    for name, text in texts.items():
        lines.append(f"{'wrote' if _write_if_changed(notebooks / name, text) else 'unchanged'} {notebooks / name}")
    for stale in sorted(p for p in notebooks.glob("*.ipynb") if p.name not in texts):
        if _is_generated(stale):
            stale.unlink()
            lines.append(f"deleted {stale} (stale: no {solutions / stale.name})")
        else:
            ok = False
            lines.append(
                f"kept {stale}: no {solutions / stale.name} and not generated; move it to {solutions}/ or delete it"
            )
    return lines, ok


def check(solutions: Path = Path("solutions"), notebooks: Path = Path("notebooks")) -> list[str]:
    """What `clean` / `build` would fix: unclean solutions, missing, differing or stale notebooks ([] if none)."""
    _require_dir(solutions, "--solutions")
    problems = []
    names = set()
    for path in sorted(solutions.glob("*.ipynb")):
        names.add(path.name)
        nb = read_notebook(path)
        if not is_clean(nb):
            problems.append(f"{path}: has outputs or execution counts (run `python -m tools.nbtools clean`)")
        if render(with_colab_cells(nb, path.stem)) != render(nb):
            problems.append(f"{path}: its Colab badge or install cell is not what pyproject.toml's versions give "
                            "(run `python -m tools.nbtools clean`)")
        try:
            text = render(to_student(nb, f"{solutions.resolve().name}/{path.name}", path))
        except NotebookMarkerError as err:
            problems.append(str(err))
            continue
        target = notebooks / path.name
        if not target.exists():
            problems.append(f"{target}: missing (built from {path})")
        elif target.read_text(encoding="utf-8") != text:
            problems.append(f"{target}: differs from what {path} builds (hand-edited, or the solution changed)")
    if notebooks.is_dir():
        for stale in sorted(p for p in notebooks.glob("*.ipynb") if p.name not in names):
            problems.append(f"{stale}: stale, no {solutions / stale.name}")
    return problems


def clean(solutions: Path = Path("solutions")) -> list[Path]:
    """Clean every `solutions/*.ipynb` in place; returns the files that changed."""
    _require_dir(solutions, "--solutions")
    changed = []
    for path in sorted(solutions.glob("*.ipynb")):
        cleaned = with_colab_cells(clean_notebook(with_todo_ids(read_notebook(path), path.stem, path), path.stem),
                                   path.stem)
        if _write_if_changed(path, render(cleaned)):
            changed.append(path)
    return changed


def main(argv: list[str] | None = None) -> int:
    """Command line: `build`, `check` or `clean`; returns the exit code (0 ok, 1 problems)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--solutions", type=Path, default=Path("solutions"), metavar="DIR", help="instructor notebooks (the source)"
    )
    common.add_argument(
        "--notebooks", type=Path, default=Path("notebooks"), metavar="DIR", help="generated student notebooks"
    )
    parser = argparse.ArgumentParser(prog="python -m tools.nbtools", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("build", parents=[common], help="write notebooks/ from solutions/, delete stale ones")
    sub.add_parser("check", parents=[common], help="exit 1 if build or clean would change anything (CI)")
    sub.add_parser("clean", parents=[common], help="strip outputs and metadata from solutions/ in place and "
                   "write their Colab badge and install cell (versions from pyproject.toml)")
    args = parser.parse_args(argv)
    try:
        if args.command == "build":
            lines, ok = build(args.solutions, args.notebooks)
            print("\n".join(lines) or f"no notebooks in {args.solutions}/")
            return 0 if ok else 1
        if args.command == "clean":
            changed = clean(args.solutions)
            print("\n".join(f"cleaned {p}" for p in changed) or "solutions already clean")
            return 0
        problems = check(args.solutions, args.notebooks)
    except (NotebookMarkerError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if problems:
        print(
            "notebooks out of date:\n" + "\n".join(f"  - {p}" for p in problems) + f"\nfix: {FIX_HINT}", file=sys.stderr
        )
        return 1
    print(f"ok: {args.notebooks}/ matches {args.solutions}/")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
