"""The catalogue of the series' TODOs, read from `solutions/`: each TODO's id (`04.build_labels`), notebook, the names
its cell defines, the check that judges it, its solution text, and what grading it costs.

The id is `labhelpers.checks.core.todo_id` (the notebook's number and the name its check judges), written into the
cell's metadata by `python -m tools.nbtools clean` / `build`. Grading a TODO (tools/grade.py) runs the notebook's
parameters and setup cells (the series frame, `solutions/README.md`), then a *stand-in* for each object the TODO or
its check needs that a costly cell would make (the tokenizer without the model ...), then the student's TODO cell,
then the check cell's code up to its `check_*` call. A TODO whose needs no stand-in covers (a trained run, a trainer,
logits of a forward pass) is not graded; `python -m tools.release --list` says which and why.
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
}
COSTS = {(): "setup cell only", ("tokenizer",): "setup cell + tokenizer"}
# calls that make a setup cell too costly to run per submission: what each does
COSTLY_CALLS = {"load_model_and_tokenizer": "loads the model", "ensure_tuned_model": "trains the reference run when "
                "the run folder holds none", "finished_run_or_train": "trains", "train_or_explain_oom": "trains",
                "generate_replies": "generates"}


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
    missing: tuple[str, ...] = field(default=())  # names no stand-in makes: not graded
    costly_setup: str = ""  # what the notebook's setup cell does that is too costly per submission: not graded

    @property
    def graded(self) -> bool:
        """True when tools/grade.py can grade it without loading the model, training or generating."""
        return bool(self.check) and not self.missing and not self.costly_setup

    @property
    def cost(self) -> str:
        """What grading one submission of it runs, in words."""
        if not self.check:
            return "not graded: its check cell calls no check_* function"
        if self.costly_setup:
            return f"not graded: the notebook's setup cell {self.costly_setup}"
        if self.missing:
            return f"not graded: needs {', '.join(self.missing)} (cells that load the model, train or generate)"
        return COSTS.get(self.stand_ins, "setup cell + " + " + ".join(self.stand_ins))


def check_cell_index(nb: NotebookNode, todo_cell: int) -> int | None:
    """Index of the check cell of the TODO at `todo_cell`: the first later code cell (before the next TODO) that calls
    a `check_*` function; None when there is none."""
    for i in range(todo_cell + 1, len(nb.cells)):
        cell = nb.cells[i]
        if cell.cell_type != "code":
            continue
        if nbtools.TAG_SOLUTION in nbtools.cell_tags(cell) or nbtools.TODO_KEY in cell.get("metadata", {}):
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


def _needs(todo_source: str, check: str, setup: list[str]) -> list[str]:
    """Names the TODO cell and its check read that neither they, the setup cells nor Python's builtins bind."""
    tree = nbtools.parse_cell(todo_source + "\n" + check)
    bound = set().union(*(nbtools.names_assigned(nbtools.parse_cell(s) or ast.Module(body=[], type_ignores=[]))
                          for s in setup))
    return [n for n in nbtools.names_read(tree) if n not in bound and not hasattr(builtins, n)] if tree else []


def costly_calls(sources: list[str]) -> str:
    """What the costly calls among `sources` do ('' when none), from COSTLY_CALLS.

    >>> costly_calls(["recipe = detect_recipe(PROFILE)", "model, tok = load_model_and_tokenizer(MODEL_ID, recipe)"])
    'loads the model'
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
        stand_ins, missing = plan_stand_ins(_needs(source, check, setup_sources(nb, at if at is not None else i)))
        todos.append(Todo(todo, path.stem, i, _check_call(check) or "", tuple(own), solution_regions(source),
                          stand_ins, missing, costly))
    return todos


def catalogue(solutions: Path = SOLUTIONS) -> list[Todo]:
    """Every TODO of the series, notebook by notebook."""
    return [todo for path in sorted(solutions.glob("*.ipynb")) for todo in notebook_todos(path)]
