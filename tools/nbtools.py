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
import hashlib
import json
import sys
from pathlib import Path

import nbformat
from nbformat import NotebookNode

# Re-exported: the tests, release, grade and todos read these as nbtools.X.
from tools.cell_dependencies import (Dependency, _todo_effect, bound_names, dependencies, dependent_cells, names_assigned,
                                     names_mutated, names_read, parse_cell)
from tools.solution_markers import (BEGIN, DEFAULT_HINT, END, TAG_SOLUTION, NotebookMarkerError, cell_tags, check_markers,
                                    find_regions, has_markers, marker_kind, stub_line, stub_solutions, todo_hint)

__all__ = ["BEGIN", "DEFAULT_HINT", "END", "TAG_SOLUTION", "Dependency", "NotebookMarkerError", "bound_names",
           "dependencies", "dependent_cells", "names_assigned", "names_mutated", "names_read", "parse_cell", "cell_tags",
           "check_markers", "find_regions", "has_markers", "marker_kind", "stub_line", "stub_solutions", "todo_hint",
           "build", "check", "clean", "clean_notebook", "read_notebook", "render", "to_student", "todo_ids",
           "with_colab_cells", "with_todo_ids", "main"]

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
