"""The catalogue of the series' TODOs, read from `solutions/`: each TODO's id (`04.build_labels`), notebook, the names
its cell defines, the check that judges it, its solution text, and what grading it costs.

The id is `labhelpers.checks.core.todo_id` (the notebook's number and the name its check judges), written into the
cell's metadata by `python -m tools.nbtools clean` / `build`. Grading a TODO (tools/grade.py) runs the notebook's
parameters and setup cells (the series frame, `solutions/README.md`), then a *stand-in* for each object the TODO or
its check needs that a costly cell would make (the tokenizer without the model, the base model for the tuned one),
then the notebook's own cells that make the rest (*prerequisites*: the model, a trainer, a batch, its logits; never a
cell that trains or generates, nor one that needs a TODO), once per notebook, then the student's TODO cell, then the
check cell's code up to its `check_*` call. A TODO whose needs neither covers is not graded; `python -m tools.release
--list` says which and why.
"""

from __future__ import annotations

import ast
import builtins
from dataclasses import dataclass, field
from pathlib import Path

from nbformat import NotebookNode

from tools import nbtools

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = ROOT / "solutions"

# name -> code that makes it cheaply in the grader, in order of cost. Each runs after the notebook's setup cell.
STAND_INS: dict[str, str] = {
    "tokenizer": "from labhelpers.model.loading import load_tokenizer\n"
                 "tokenizer = load_tokenizer(MODEL_ID)  # grader stand-in: the tokenizer, without the model",
    "tuned_model": "from labhelpers.model.loading import load_model_and_tokenizer\n"
                   "tuned_model, tokenizer = load_model_and_tokenizer(MODEL_ID, recipe, verbose=False)  # grader "
                   "stand-in: the base model (the check compares the TODO with the reference on the model it gets)",
}
COSTS = {(): "setup cell only", ("tokenizer",): "setup cell + tokenizer"}
# calls that make a cell too costly to run for grading: what each does. Loading the model is not among them: the
# grader's worker runs a notebook's setup and prerequisite cells once and forks every submission from there.
COSTLY_CALLS = {"ensure_tuned_model": "trains the reference run when the run folder holds none",
                "finished_run_or_train": "trains", "train_or_explain_oom": "trains", "generate_replies": "generates",
                "train": "trains", "tiny_run": "trains (a few steps)"}
STORED_RUN_SETUP = COSTLY_CALLS["ensure_tuned_model"]  # read from a stored run instead: ``grade --run RUN_DIR``
STORED_RUN_FILES = ("metrics/training.json",)  # what such a setup cell reads back instead of training


@dataclass(frozen=True)
class Todo:
    """One TODO of the series, as the solutions define it."""

    id: str  # "04.build_labels"
    notebook: str  # "04_loss_masking"
    cell: int  # index of the TODO cell in the solution notebook
    check: str  # the check function's name, "check_build_labels" ("" when its check cell calls none)
    defines: tuple[str, ...]  # the names the TODO defines: what the check reads
    solution: tuple[str, ...]  # the code of each of its solution regions (markers excluded), dedented
    stand_ins: tuple[str, ...] = ()  # STAND_INS keys grading needs
    missing: tuple[str, ...] = field(default=())  # names neither a stand-in nor a prerequisite makes: not graded
    prerequisites: tuple[tuple[int, str], ...] = ()  # (index, code) of the notebook's own cells grading runs first
    makes: tuple[str, ...] = ()  # what those cells make that the TODO or its check reads
    costly_setup: str = ""  # what the notebook's setup cell does that is too costly per submission: not graded

    @property
    def graded(self) -> bool:
        """True when tools/grade.py can grade it without training or generating."""
        return bool(self.check) and not self.missing and not self.costly_setup

    @property
    def needs_stored_run(self) -> bool:
        """True when its only cost is a setup cell that trains the reference run if the run folder has none: graded
        when the grader is given a finished run to read it from (``grade --run RUN_DIR``)."""
        return bool(self.check) and not self.missing and self.costly_setup == STORED_RUN_SETUP

    def gradable(self, stored_run: bool = False) -> bool:
        """Graded as it is, or with a stored run when one is given."""
        return self.graded or (stored_run and self.needs_stored_run)

    @property
    def cost(self) -> str:
        """What grading one submission of it runs, in words."""
        if not self.check:
            return "not graded: its check cell calls no check_* function"
        if self.needs_stored_run:
            return (f"not graded without --run: the notebook's setup cell {self.costly_setup}; with --run RUN_DIR (a "
                    "finished series run) it reads that run's metrics instead: setup cell only")
        if self.costly_setup:
            return f"not graded: the notebook's setup cell {self.costly_setup}"
        if self.missing:
            return f"not graded: needs {', '.join(self.missing)} (made by cells that train or generate)"
        if not self.prerequisites:
            return COSTS.get(self.stand_ins, "setup cell + " + " + ".join(self.stand_ins))
        return " + ".join(["setup cell", *self.stand_ins, f"{len(self.prerequisites)} notebook cell(s) making "
                           f"{', '.join(self.makes)}"]) + ", once per grading run"


def _is_todo_cell(cell: NotebookNode) -> bool:
    """True for a TODO cell (tagged `solution`, or carrying a TODO id in its metadata)."""
    return nbtools.TAG_SOLUTION in nbtools.cell_tags(cell) or nbtools.TODO_KEY in cell.get("metadata", {})


def check_cell_index(nb: NotebookNode, todo_cell: int) -> int | None:
    """Index of the check cell of the TODO at `todo_cell`: the first later code cell (before the next TODO) that calls
    a `check_*` function; None when there is none."""
    for i in range(todo_cell + 1, len(nb.cells)):
        cell = nb.cells[i]
        if cell.cell_type != "code":
            continue
        if _is_todo_cell(cell):
            return None
        if _check_call(cell.source):
            return i
    return None


def _check_call(source: str) -> str | None:
    """The first `check_*` function `source` calls, or None.

    >>> _check_call("figure = plot_losses(h)\\ncheck_loss_plot(figure, h)"), _check_call("print(1)")
    ('check_loss_plot', None)
    """
    tree = nbtools.parse_cell(source)
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)] if tree else []
    return next((n.func.id for n in sorted(calls, key=lambda n: (n.lineno, n.col_offset))
                 if n.func.id.startswith("check_")), None)


def check_code(source: str) -> str:
    """The statements of a check cell up to and including the first that calls a `check_*` function (what follows
    uses the TODO's results for the lesson, not for the verdict), without a student copy's `require_todo` guard (the
    check names an unfilled TODO itself).

    >>> print(check_code("with ctx():\\n    check_f(f)\\nprint(f(2))"))
    with ctx():
        check_f(f)
    >>> print(check_code('# (runs after you finish the TODO above: it uses f)\\nrequire_todo("f")\\ncheck_f(f)'))
    # (runs after you finish the TODO above: it uses f)
    check_f(f)
    """
    tree = nbtools.parse_cell(source)
    lines = source.split("\n")
    guards = [stmt for stmt in tree.body if _calls(stmt, "require_todo")] if tree else []
    for stmt in tree.body if tree else []:
        if _check_call(ast.get_source_segment(source, stmt) or ""):
            kept = [line for n, line in enumerate(lines[:stmt.end_lineno], start=1)
                    if not any(g.lineno <= n <= g.end_lineno for g in guards)]
            return "\n".join(kept)
    return source


def _calls(stmt: ast.stmt, name: str) -> bool:
    """True when `stmt` is a bare call of `name` (the student copies' `require_todo(...)` guard line)."""
    return isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call) and \
        isinstance(stmt.value.func, ast.Name) and stmt.value.func.id == name


def setup_sources(nb: NotebookNode, upto: int | None = None) -> list[str]:
    """The notebook's parameters cell and the setup cell right after it (the series frame: ``start_lesson``, the
    recipe, data and run folder), the cells every graded TODO runs first; with ``upto`` (a cell index), also the
    import statements of the code cells after the setup cell up to that one: a notebook imports where it first uses
    a name, and a TODO's check may read one imported above it (grading runs those imports, not those cells).
    """
    for i, cell in enumerate(nb.cells):
        if nbtools.TAG_PARAMETERS in nbtools.cell_tags(cell):
            code = [j for j in range(i + 1, len(nb.cells)) if nb.cells[j].cell_type == "code"]
            frame = [cell.source] + ([nb.cells[code[0]].source] if code else [])
            later = [nb.cells[j].source for j in code[1:] if upto is not None and j <= upto]
            imports = "\n".join(line for source in later for line in import_statements(source))
            return frame + ([imports] if imports else [])
    raise ValueError("no cell tagged 'parameters': the series frame (solutions/README.md) puts the parameters cell "
                     "third, followed by the setup cell")


def import_statements(source: str) -> list[str]:
    r"""The top-level import statements of a cell, one line each (IPython magics in the cell are understood).

    >>> import_statements("# NBVAL_IGNORE_OUTPUT\n%matplotlib inline\nimport math\nfrom a import (b,\n    c)\nx = 1")
    ['import math', 'from a import b, c']
    """
    tree = nbtools.parse_cell(source)
    return [ast.unparse(node) for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))] if tree else []


def solution_regions(source: str) -> tuple[str, ...]:
    """The code between the markers of each solution region of `source`, dedented.

    >>> solution_regions("def f():\\n    ### BEGIN SOLUTION\\n    return 1\\n    ### END SOLUTION")
    ('return 1',)
    """
    import textwrap

    lines = source.splitlines()
    return tuple(textwrap.dedent("\n".join(lines[a + 1:b])) for a, b in nbtools.find_regions(source))


def _bound_by(sources: list[str]) -> set[str]:
    """Every name the code of `sources` binds (a cell that does not parse binds nothing)."""
    return set().union(*(nbtools.names_assigned(nbtools.parse_cell(s) or ast.Module(body=[], type_ignores=[]))
                         for s in sources))


def _needs(todo_source: str, check: str, setup: list[str]) -> list[str]:
    """Names the TODO cell and its check read that neither they, the setup cells nor Python's builtins bind."""
    tree = nbtools.parse_cell(todo_source + "\n" + check)
    bound = _bound_by(setup)
    return [n for n in nbtools.names_read(tree) if n not in bound and not hasattr(builtins, n)] if tree else []


def costly_calls(sources: list[str]) -> str:
    """What the costly calls among `sources` do ('' when none), from COSTLY_CALLS.

    >>> costly_calls(["model, tok = load_model_and_tokenizer(MODEL_ID, recipe)", "out = generate_replies(model, tok, p)"])
    'generates'
    """
    found = []
    for source in sources:
        tree = nbtools.parse_cell(source)
        for node in ast.walk(tree) if tree else []:
            name = getattr(getattr(node, "func", None), "id", None) or getattr(getattr(node, "func", None), "attr", None)
            if isinstance(node, ast.Call) and name in COSTLY_CALLS and COSTLY_CALLS[name] not in found:
                found.append(COSTLY_CALLS[name])
    return " and ".join(found)


def plan_stand_ins(needs: list[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(the STAND_INS to run, the needs none covers), stand-ins in their table's order.

    >>> plan_stand_ins(["tokenizer"]), plan_stand_ins(["trainer", "tokenizer"])
    ((('tokenizer',), ()), (('tokenizer',), ('trainer',)))
    """
    chosen, left = [], list(needs)
    for name, code in STAND_INS.items():
        makes = nbtools.names_assigned(nbtools.parse_cell(code))
        if any(n in makes for n in left):
            chosen.append(name)
            left = [n for n in left if n not in makes]
    return tuple(chosen), tuple(left)


def _plain_python(source: str) -> bool:
    """True when `source` runs outside IPython (the grader execs it): no magics, no shell escapes.

    >>> _plain_python("x = 1"), _plain_python("%matplotlib inline\\nx = 1")
    (True, False)
    """
    try:
        compile(source, "<cell>", "exec")
    except SyntaxError:
        return False
    return True


def prerequisites(nb: NotebookNode, check_cell: int, needs: list[str],
                  bound: set[str]) -> tuple[tuple[int, ...], tuple[str, ...]]:
    """(the notebook's own cells that make ``needs``, in cell order; the needs they leave): for each name, the last
    code cell after the setup cell and before ``check_cell`` that binds it, unless that cell is a TODO, needs a TODO
    (``cell_dependencies.dependencies``) or trains or generates (``COSTLY_CALLS``); what such a cell reads must come
    from ``bound`` (the setup cells and stand-ins), Python's builtins or another such cell.

    >>> from nbformat.v4 import new_code_cell as code, new_notebook
    >>> nb = new_notebook(cells=[code("P = 1", metadata={"tags": ["parameters"]}), code("recipe = 1"),
    ...     code("model = load(recipe)"), code("batch = make(model)"), code("out = train(model)")])
    >>> prerequisites(nb, 5, ["batch"], {"P", "recipe", "load", "make", "train"})  # batch needs model: cells 2, 3
    ((2, 3), ())
    >>> prerequisites(nb, 5, ["batch", "out"], {"P", "recipe", "load", "make", "train"})  # out is trained: not graded
    ((), ('out',))
    """
    from tools.cell_dependencies import bound_names, dependencies, names_read

    sources = [c.source if c.cell_type == "code" else "" for c in nb.cells]
    todo_cells = {i for i, c in enumerate(nb.cells) if _is_todo_cell(c)}
    needs_a_todo = set(dependencies(sources, todo_cells))
    parameters = next(i for i, c in enumerate(nb.cells) if nbtools.TAG_PARAMETERS in nbtools.cell_tags(c))
    first = next((i for i in range(parameters + 1, len(nb.cells)) if nb.cells[i].cell_type == "code"), parameters) + 1
    chosen: set[int] = set()

    def make(name: str, before: int) -> bool:
        for i in range(min(before, check_cell) - 1, first - 1, -1):
            tree = nbtools.parse_cell(sources[i]) if sources[i].strip() else None
            if tree is None or name not in bound_names(tree.body):
                continue
            if i in todo_cells or i in needs_a_todo or costly_calls([sources[i]]) or not _plain_python(sources[i]):
                return False
            if i not in chosen:
                chosen.add(i)
                if not all(read in bound or hasattr(builtins, read) or make(read, i) for read in names_read(tree)):
                    return False
            return True
        return False

    left = tuple(name for name in needs if not make(name, check_cell))
    return tuple(sorted(chosen)) if not left else (), left


def notebook_todos(path: Path) -> list[Todo]:
    """The TODOs of one solution notebook, in cell order."""
    nb = nbtools.read_notebook(path)
    ids = nbtools.todo_ids(nb, path.stem, path)
    costly = costly_calls(setup_sources(nb))
    todos = []
    for i, todo in ids.items():
        source = nb.cells[i].source
        at = check_cell_index(nb, i)
        check = check_code(nb.cells[at].source) if at is not None else ""
        _, own = nbtools._todo_effect(nbtools.parse_cell(source), nbtools.find_regions(source))
        setup = setup_sources(nb, at if at is not None else i)
        stand_ins, left = plan_stand_ins(_needs(source, check, setup))
        bound = _bound_by([*setup, *(STAND_INS[k] for k in stand_ins)])
        cells, missing = prerequisites(nb, at if at is not None else i, list(left), bound) if left else ((), ())
        todos.append(Todo(todo, path.stem, i, _check_call(check) or "", tuple(own), solution_regions(source),
                          stand_ins=stand_ins, missing=missing, costly_setup=costly,
                          prerequisites=tuple((k, nb.cells[k].source) for k in cells),
                          makes=tuple(n for n in left if n not in missing)))
    return todos


def catalogue(solutions: Path = SOLUTIONS) -> list[Todo]:
    """Every TODO of the series, notebook by notebook."""
    return [todo for path in sorted(solutions.glob("*.ipynb")) for todo in notebook_todos(path)]
