"""Write a student release of the series: only the TODOs a class must write are open, the others arrive filled in.

Usage::

    python -m tools.release --list
    python -m tools.release --out DIR [--todos 04.build_labels,06.sft_config] [--source git+https://github.com/O/N@REF]

``--list`` prints every TODO's id, notebook, the check that judges it and what grading it costs (tools/todos.py).
``--out`` writes ``DIR/``: ``notebooks/`` built from ``solutions/`` where only the ``--todos`` are open (default:
all) and every other TODO is filled with its solution under a ``# given by your instructor`` line, ``labhelpers/``
(with its bundled data and hints), ``colab/``, ``requirements.lock``, a ``pyproject.toml`` and a ``README.md`` for
students, and ``release.json`` (what is open, for ``tools/grade.py``). The Colab badges open the notebooks at
``--source`` and the install cells install labhelpers from it (push DIR there and tag it). Never written: ``solutions/``,
``tools/``, tests, or the solution of an open TODO.
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
import shutil
import sys
from pathlib import Path

from nbformat import NotebookNode

from tools import colab, nbtools
from tools.todos import ROOT, SOLUTIONS, Todo, catalogue

GIVEN_LINE = "# given by your instructor ({todo}): run this cell as it is"
MANIFEST = "release.json"
COPIED = ("labhelpers", "colab", "requirements.lock")  # what a student needs besides the notebooks
LEFT_OUT = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", ".ipynb_checkpoints")


def parse_todos(text: str | None, todos: list[Todo]) -> list[str]:
    """The ids of `--todos` (comma-separated; a notebook number such as `06` opens all of its TODOs), in series order;
    None or empty opens every TODO. An unknown id raises ValueError with the closest known ones.

    >>> from tools.todos import Todo
    >>> known = [Todo("04.build_labels", "04_x", 6, "", (), ""), Todo("06.sft_config", "06_y", 12, "", (), "")]
    >>> parse_todos("06.sft_config, 04.build_labels", known), parse_todos(None, known), parse_todos("06", known)
    (['04.build_labels', '06.sft_config'], ['04.build_labels', '06.sft_config'], ['06.sft_config'])
    >>> parse_todos("04.build_label", known)
    Traceback (most recent call last):
    ...
    ValueError: --todos: no TODO '04.build_label' (did you mean 04.build_labels?); `python -m tools.release --list` lists them
    """
    ids = [t.id for t in todos]
    if not text or not text.strip():
        return ids
    wanted: set[str] = set()
    for item in (part.strip() for part in text.split(",") if part.strip()):
        matched = [i for i in ids if i == item or i.split(".")[0] == item.zfill(2)]
        if not matched:
            close = difflib.get_close_matches(item, ids, n=2)
            guess = f" (did you mean {' or '.join(close)}?)" if close else ""
            raise ValueError(f"--todos: no TODO {item!r}{guess}; `python -m tools.release --list` lists them")
        wanted.update(matched)
    return [i for i in ids if i in wanted]


def give(cell: NotebookNode, todo: str) -> None:
    """Turn a TODO cell into a given one in place: the solution kept without its markers, `# TODO:` comments made plain
    comments, the `given by your instructor` line on top, the `solution` tag dropped, `"given": true` in its metadata.

    >>> import nbformat
    >>> cell = nbformat.v4.new_code_cell("def f(x):\\n    # TODO: double x\\n    ### BEGIN SOLUTION\\n    return 2 * x\\n"
    ...                                  "    ### END SOLUTION", metadata={"tags": ["solution"]})
    >>> give(cell, "01.double"); print(cell.source)
    # given by your instructor (01.double): run this cell as it is
    def f(x):
        # double x
        return 2 * x
    >>> dict(cell.metadata)
    {'sft_lab': {'todo': '01.double', 'given': True}}
    """
    lines = [re.sub(r"#\s*TODO:\s*", "# ", line, count=1) for line in cell.source.split("\n")
             if not nbtools.marker_kind(line)]
    cell.source = "\n".join([GIVEN_LINE.format(todo=todo), *lines])
    tags = [t for t in nbtools.cell_tags(cell) if t != nbtools.TAG_SOLUTION]
    cell.metadata = {**({"tags": tags} if tags else {}), nbtools.TODO_KEY: {"todo": todo, "given": True}}


def release_notebook(path: Path, open_ids: set[str], source: str) -> NotebookNode:
    """The student copy of solution `path` with only `open_ids` open, its Colab cells pointing at `source`."""
    nb = nbtools.with_colab_cells(nbtools.with_todo_ids(nbtools.read_notebook(path), path.stem, path), path.stem,
                                  source)
    for cell in nb.cells:
        todo = cell.get("metadata", {}).get(nbtools.TODO_KEY, {}).get("todo")
        if todo and todo not in open_ids:
            give(cell, todo)
    return nbtools.to_student(nb, f"solutions/{path.name}", path)


def release_pyproject(text: str, source: str) -> str:
    """The repository's pyproject.toml for the release: labhelpers installs from `source` (the Colab-install URL), and
    the instructor's test configuration (tools/, tests/, benchmarks/) is left out.

    >>> text = '[project]\\nname = "labhelpers"\\n[project.urls]\\nColab-install = "x"\\n[tool.pytest.ini_options]\\na = 1\\n'
    >>> print(release_pyproject(text, "git+https://github.com/u/c@v1"))
    [project]
    name = "labhelpers"
    [project.urls]
    Colab-install = "git+https://github.com/u/c@v1"
    <BLANKLINE>
    """
    kept, skipping = [], False
    for line in text.splitlines():
        if line.startswith("["):
            skipping = line.strip() == "[tool.pytest.ini_options]"
        if skipping:
            continue
        kept.append(f'Colab-install = "{source}"' if line.startswith("Colab-install") else line)
    return "\n".join(kept).rstrip("\n") + "\n"


def student_readme(todos: list[Todo], open_ids: list[str], source: str) -> str:
    """The release's README.md: what to open, which TODOs are yours, hints, progress, how to hand in."""
    rows = []
    for name in dict.fromkeys(t.notebook for t in todos):
        mine = [f"`{t.id}`" for t in todos if t.notebook == name and t.id in open_ids]
        rows.append(f"| {colab.badge_markdown(f'notebooks/{name}.ipynb', source)} | `{name}.ipynb` | "
                    f"{', '.join(mine) or 'none: run and read'} |")
    return "\n".join([
        "# sft-lab: supervised fine-tuning, hands on",
        "",
        "A series of notebooks from a pre-trained chat model (SmolLM2-135M-Instruct) to a fine-tuned one with Hugging "
        "Face TRL. Open them in order; each one's first cell says what it teaches and how long it runs.",
        "",
        "| open | notebook | your TODOs |",
        "|---|---|---|",
        *rows,
        "",
        "## How to work",
        "",
        "* **In Colab** (nothing to install): click a badge, then run the cells top to bottom. The install cell at the "
        "top installs the tested versions and `labhelpers`; a GPU runtime (Runtime > Change runtime type) is faster "
        "but not needed for the TODOs.",
        "* **On your machine**: `pip install -r requirements.lock && pip install -e .`, then `jupyter lab notebooks/`.",
        "* **TODO cells** raise `NotImplementedError` until you fill them; the check cell right after each one says "
        "what is right or names the mistake and the fix. Cells marked `# given by your instructor` are filled in for "
        "you: run them as they are.",
        "* **Hints**: `from labhelpers.checks import hint`, then `hint(\"04.build_labels\")` (the TODO's id is in the "
        "notebook's first cell) shows a nudge; call it again for more, the last hint is close to the answer.",
        "* **Your progress**: the last cell of each notebook shows your checks' verdicts, attempts and hints used. "
        "They are kept in the run folder's `progress.jsonl`, on your machine or runtime only: nothing is sent anywhere.",
        "",
        "## Handing in",
        "",
        "Run the notebook to the end, then in Colab *File > Download > Download .ipynb* (locally: the saved `.ipynb`). "
        "Keep the file name (`04_loss_masking.ipynb`; a prefix with your name is fine: `ada_04_loss_masking.ipynb`) "
        "and hand it in the way your instructor asked (upload, or a shared Google Drive folder). Your TODO cells are "
        "graded by the same checks you ran, so a passing check cell means a passing grade for that TODO.",
        "",
    ])


def _prepare_out(out: Path) -> None:
    """Make `out` an empty folder: refuse a non-empty one that is not an earlier release (never wipe other files)."""
    where = out.resolve()
    if where == ROOT or any(where.is_relative_to(ROOT / d) for d in ("solutions", "notebooks", "labhelpers", "tools")):
        raise ValueError(f"--out {out}: that is (inside) the repository's own files; choose a folder outside them")
    if out.exists() and any(out.iterdir()):
        if not (out / MANIFEST).is_file():
            raise ValueError(f"--out {out} is not empty and holds no {MANIFEST} (not a release): choose an empty or "
                             "new folder")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)


def write_release(out: Path, open_ids: list[str], source: str, solutions: Path = SOLUTIONS) -> list[str]:
    """Write the release to `out` (see the module doc); returns report lines."""
    colab.pinned_source(source, "--source")
    colab.repository_and_ref(source=source)  # the badges need a GitHub source: fail before writing anything
    todos = catalogue(solutions)
    _prepare_out(out)
    (out / "notebooks").mkdir()
    for path in sorted(solutions.glob("*.ipynb")):
        text = nbtools.render(release_notebook(path, set(open_ids), source))
        (out / "notebooks" / path.name).write_text(text, encoding="utf-8", newline="\n")
    for name in COPIED:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, out / name, ignore=LEFT_OUT)
        elif src.is_file():
            shutil.copy2(src, out / name)
    (out / "pyproject.toml").write_text(release_pyproject((ROOT / "pyproject.toml").read_text(), source))
    (out / "README.md").write_text(student_readme(todos, open_ids, source), encoding="utf-8")
    manifest = {"source": source, "open": open_ids, "given": [t.id for t in todos if t.id not in open_ids],
                "notebooks": sorted(p.stem for p in solutions.glob("*.ipynb"))}
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    opened = [t for t in todos if t.id in open_ids]
    graded = [t for t in opened if t.graded]
    with_run = [t.id for t in opened if t.needs_stored_run]
    also = f", {', '.join(with_run)} with grade --run RUN_DIR" if with_run else ""
    return [f"wrote {out}/: {len(manifest['notebooks'])} notebooks, {len(open_ids)} open TODOs "
            f"({len(graded)} graded by tools/grade.py{also}), {len(manifest['given'])} given", f"source: {source}"]


def list_lines(todos: list[Todo]) -> list[str]:
    """The `--list` table: id, notebook, check, cost (what grading runs, or why the TODO is not graded)."""
    rows = [("id", "notebook", "check", "cost")] + [(t.id, t.notebook, t.check or "-", t.cost) for t in todos]
    widths = [max(len(r[k]) for r in rows) for k in range(3)]
    return [f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:<{widths[2]}}  {r[3]}" for r in rows]


def main(argv: list[str] | None = None) -> int:
    """Command line (see the module doc); returns the exit code."""
    parser = argparse.ArgumentParser(prog="python -m tools.release", description=__doc__.splitlines()[0])
    parser.add_argument("--list", action="store_true", help="print every TODO: id, notebook, check, cost")
    parser.add_argument("--out", type=Path, metavar="DIR", help="write the release here (empty or an old release)")
    parser.add_argument("--todos", metavar="IDS", help="comma-separated TODO ids (or notebook numbers) left open; "
                        "default: all")
    parser.add_argument("--source", default=None, metavar="URL", help="git+https://github.com/OWNER/NAME@REF where "
                        "the release will live (badges, install cell); default: pyproject's Colab-install")
    parser.add_argument("--solutions", type=Path, default=SOLUTIONS, metavar="DIR", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        todos = catalogue(args.solutions)
        if args.list:
            print("\n".join(list_lines(todos)))
            return 0
        if args.out is None:
            parser.error("give --out DIR (or --list)")
        lines = write_release(args.out, parse_todos(args.todos, todos), args.source or colab.labhelpers_source(),
                              args.solutions)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
