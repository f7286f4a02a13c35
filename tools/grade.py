"""Grade a folder of submitted notebooks with the release's checks: one row per student x TODO, each mistake named.

Usage::

    python -m tools.grade SUBMISSIONS --out DIR [--release RELEASE] [--todos IDS] [--timeout SECONDS] [--run RUN_DIR]

``SUBMISSIONS`` holds one subfolder per student (``ada/04_loss_masking.ipynb``, Colab's ``Copy of ...`` names too) or
files named with a student prefix (``ada_04_loss_masking.ipynb``). ``RELEASE`` is a folder written by
``tools/release.py`` (its open TODOs are graded, with its own notebooks' setup and check cells and its own
``labhelpers``); without it, the repository's ``notebooks/`` with every TODO open. For each student x TODO the
student's TODO cell is found by its id (cell metadata), else by the names it defines; it runs in a fresh process
(tools/grade_worker.py) after the notebook's setup cells and stand-ins for costly cells (tools/todos.py), with a
per-TODO timeout, no network and a fresh run folder, and the release's check judges it: the student's own check cell
is never run (deleted or edited, the grade is the same). Writes ``DIR/gradebook.csv`` (student, notebook, todo,
status, message; status one of pass / wrong / not done / error) and ``DIR/summary.html`` (the class at a glance,
then per TODO how many passed and which mistakes were common). A broken submission (not JSON, another notebook under
the name, a missing TODO cell, a cell that raises or never ends) gets its row with the reason; the others go on.
"""

from __future__ import annotations

import argparse
import csv
import html
import json
import os
import re
import subprocess
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbformat import NotebookNode

from tools import nbtools
from tools.todos import (ROOT, STAND_INS, STORED_RUN_FILES, Todo, catalogue, check_cell_index, check_code,
                         setup_sources)

STATUSES = ("pass", "wrong", "not done", "error")
COLUMNS = ("student", "notebook", "todo", "status", "message")
WORKER = Path(__file__).resolve().with_name("grade_worker.py")
SETUP_TIMEOUT_S = 300  # the first setup may convert the offline model; later ones take seconds
CHECK_NOTE = " (your check cell for it was deleted or changed: graded with the release's check)"
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
               "TOKENIZERS_PARALLELISM": "false", "MPLBACKEND": "Agg", "LAB_PROFILE": "ci", "PYTHONNOUSERSITE": "1",
               "PYTHONDONTWRITEBYTECODE": "1"}


@dataclass
class Release:
    """What grading takes from a release: its root (on PYTHONPATH), notebooks and open TODOs."""

    root: Path
    notebooks: dict[str, NotebookNode]
    open: list[str]


@dataclass
class Submission:
    """One submitted file: whose, which notebook it should be, and the notebook or why it cannot be graded."""

    student: str
    notebook: str | None
    path: Path
    nb: NotebookNode | None = None
    problem: str = ""


def load_release(folder: Path | None, todos: list[Todo]) -> Release:
    """The release in `folder` (its release.json says what is open), or the repository with every TODO open."""
    if folder is None:
        books = ROOT / "notebooks"
        return Release(ROOT, {p.stem: nbtools.read_notebook(p) for p in sorted(books.glob("*.ipynb"))},
                       [t.id for t in todos])
    manifest = folder / "release.json"
    if not manifest.is_file():
        raise ValueError(f"--release {folder}: no release.json there; pass a folder written by "
                         "`./lab.sh release --out DIR`, or leave --release out to grade with the repository's notebooks")
    opened = json.loads(manifest.read_text())["open"]
    return Release(folder.resolve(), {p.stem: nbtools.read_notebook(p)
                                      for p in sorted((folder / "notebooks").glob("*.ipynb"))}, opened)


def read_submission(path: Path) -> tuple[NotebookNode | None, str]:
    """(the notebook, '') or (None, why it cannot be read as one)."""
    text = path.read_text(encoding="utf-8", errors="replace")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        return None, (f"not a notebook: the file is not valid JSON ({err.msg}, line {err.lineno} column {err.colno}); "
                      "ask for a fresh download (Colab: File > Download > Download .ipynb)")
    if not isinstance(data, dict) or not isinstance(data.get("cells"), list):
        return None, "not a notebook: the JSON has no list of cells; ask for the .ipynb file itself"
    try:
        return nbformat.reads(text, as_version=4), ""  # lines joined, older formats converted
    except Exception as err:  # noqa: BLE001  (any malformed notebook is one row, not a crash)
        return None, f"not a readable notebook ({type(err).__name__}: {' '.join(str(err).split())[:120]})"


def name_in(text: str, names: list[str]) -> str | None:
    """The notebook name found in a file name (`Copy of 04_loss_masking (1).ipynb` -> `04_loss_masking`).

    >>> name_in("ada_04_loss_masking.ipynb", ["04_loss_masking", "05_packing"]), name_in("x.ipynb", ["05_packing"])
    ('04_loss_masking', None)
    """
    return next((name for name in names if name in text), None)


def content_notebook(nb: NotebookNode, names: list[str]) -> str | None:
    """Which notebook `nb` is, from its TODO ids (cell metadata) or its Colab badge / heading: None if unknown.

    >>> from nbformat.v4 import new_notebook, new_markdown_cell
    >>> content_notebook(new_notebook(cells=[new_markdown_cell("# 05 · Packing")]), ["04_loss_masking", "05_packing"])
    '05_packing'
    """
    for cell in nb.cells:
        todo = cell.get("metadata", {}).get(nbtools.TODO_KEY, {}).get("todo", "")
        found = next((n for n in names if todo and n.startswith(todo.split(".")[0] + "_")), None)
        if found:
            return found
    head = "\n".join(c.source for c in nb.cells[:3])
    badge = re.search(r"notebooks/(\d\d_\w+)\.ipynb", head)
    if badge and badge.group(1) in names:
        return badge.group(1)
    heading = re.search(r"^#\s*(\d\d)\s*·", head, re.M)
    return next((n for n in names if heading and n.startswith(heading.group(1) + "_")), None)


def _student_of(path: Path, folder: Path, notebook: str | None) -> str:
    """The student a file belongs to: its subfolder, else the file name's prefix before the notebook name.

    >>> _student_of(Path("s/ada/04_x.ipynb"), Path("s"), "04_x"), _student_of(Path("s/bo-04_x.ipynb"), Path("s"), "04_x")
    ('ada', 'bo')
    """
    parts = path.relative_to(folder).parts
    if len(parts) > 1:
        return parts[0]
    prefix = path.stem.split(notebook)[0] if notebook else path.stem
    return prefix.strip(" _-.") or path.stem


def find_submissions(folder: Path, names: list[str]) -> list[Submission]:
    """Every .ipynb under `folder` (hidden files and checkpoints left out), read and attributed."""
    if not folder.is_dir():
        raise ValueError(f"no folder {folder}: pass the folder holding the submitted notebooks")
    found = []
    for path in sorted(folder.rglob("*.ipynb")):
        if any(part.startswith(".") for part in path.relative_to(folder).parts):
            continue
        expected = name_in(path.name, names)
        nb, problem = read_submission(path)
        actual = content_notebook(nb, names) if nb is not None else None
        if nb is not None and expected and actual and actual != expected:
            problem = (f"this file is notebook {actual}, not {expected}: ask for {expected}.ipynb (a second copy of "
                       "another notebook was handed in under its name)")
        elif nb is not None and not expected and not actual:
            problem = f"cannot tell which notebook {path.name} is (no known name, no TODO ids): rename it NN_topic.ipynb"
        found.append(Submission(_student_of(path, folder, expected or actual), expected or actual, path, nb, problem))
    return found


def todo_cell(nb: NotebookNode, todo: Todo, release_index: int | None) -> tuple[str | None, str]:
    """(the source of the student's cell for `todo`, how it was found): by its id in the cell metadata, else the code
    cell defining the TODO's names (the one at the release's position when several do), else (None, why not)."""
    for cell in nb.cells:
        if cell.get("metadata", {}).get(nbtools.TODO_KEY, {}).get("todo") == todo.id and cell.cell_type == "code":
            return cell.source, "id"
    candidates = []
    for i, cell in enumerate(nb.cells):
        tree = nbtools.parse_cell(cell.source) if cell.cell_type == "code" else None
        if tree is not None and set(todo.defines) <= nbtools.bound_names(tree.body):
            candidates.append(i)
    if candidates:
        at = release_index if release_index in candidates else candidates[-1]
        return nb.cells[at].source, "names"
    return None, (f"no TODO cell for {todo.id}: no cell carries its id and none defines {', '.join(todo.defines)}; "
                  "was it deleted? ask for the notebook with that cell")


def has_check_call(nb: NotebookNode, todo: Todo) -> bool:
    """True when some code cell of `nb` still calls the TODO's check function."""
    return any(cell.cell_type == "code" and re.search(rf"\b{todo.check}\s*\(", cell.source) for cell in nb.cells)


def _safe(name: str) -> str:
    """A file-system-safe form of a student's name.

    >>> _safe("Ada Lovelace/2")
    'Ada_Lovelace_2'
    """
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "student"


def _release_cells(nb: NotebookNode, todo: Todo) -> tuple[int, str]:
    """(index of the TODO's cell in the release notebook, the check code from its check cell)."""
    index = next((i for i, c in enumerate(nb.cells)
                  if c.get("metadata", {}).get(nbtools.TODO_KEY, {}).get("todo") == todo.id), None)
    at = check_cell_index(nb, index) if index is not None else None
    if index is None or at is None:
        raise ValueError(f"the release's {todo.notebook}.ipynb has no TODO cell {todo.id} with a check cell after it; "
                         "rebuild the release (`./lab.sh release`)")
    return index, check_code(nb.cells[at].source)


def _check_index(nb: NotebookNode, todo: Todo) -> int:
    """Index of the TODO's check cell in the release notebook."""
    index = _release_cells(nb, todo)[0]
    return check_cell_index(nb, index)


def _latest(submissions: list[Submission], student: str, name: str) -> Submission | None:
    """The student's newest file for notebook `name` (a second upload replaces the first), or None."""
    mine = [s for s in submissions if s.student == student and s.notebook == name]
    return max(mine, key=lambda s: s.path.stat().st_mtime) if mine else None


def _verdict_without_running(chosen: Submission | None, name: str, todo: Todo,
                             release_index: int) -> tuple[dict | None, str]:
    """(the verdict when the file alone decides it, else None; the student's TODO cell to run)."""
    if chosen is None:
        return {"status": "not done", "message": f"no submission of {name}.ipynb"}, ""
    if chosen.problem:
        return {"status": "error", "message": chosen.problem}, ""
    source, how = todo_cell(chosen.nb, todo, release_index)
    return ({"status": "error", "message": how}, "") if source is None else (None, source)


def plan(release: Release, todos: list[Todo], submissions: list[Submission], work: Path,
         timeout: float, stored_run: Path | None = None) -> tuple[dict, list[dict], dict[str, dict]]:
    """(the worker's spec, the rows decided without running anything, {job key: its row}) for every student x TODO."""
    students = sorted({s.student for s in submissions})
    notebooks, rows, pending = [], [], {}
    for name in dict.fromkeys(t.notebook for t in todos):
        its_todos = [t for t in todos if t.notebook == name]
        nb = release.notebooks[name]
        cells = {t.id: _release_cells(nb, t) for t in its_todos}
        jobs = []
        for student, todo in ((student, todo) for student in students for todo in its_todos):
            row = {"student": student, "notebook": name, "todo": todo.id}
            chosen = _latest(submissions, student, name)
            decided, source = _verdict_without_running(chosen, name, todo, cells[todo.id][0])
            if decided:
                rows.append({**row, **decided})
                continue
            key, folder = f"{student}\t{todo.id}", work / "students" / _safe(student)
            folder.mkdir(parents=True, exist_ok=True)
            pending[key] = {**row, "note": "" if has_check_call(chosen.nb, todo) else CHECK_NOTE}
            jobs.append({"key": key, "todo": todo.id, "cell": source, "defines": list(todo.defines),
                         "check": cells[todo.id][1], "timeout": timeout, "run_dir": str(folder / "run"),
                         "log": str(folder / f"{todo.id}.log")})
        if jobs:
            stand_ins = dict.fromkeys(s for t in its_todos for s in t.stand_ins)
            last_check = max(_check_index(nb, t) for t in its_todos)  # its imports up to there run too
            # the notebook's own cells that make the model, a trainer, a batch ...: non-TODO cells, as in the release,
            # in the notebook's order (what one TODO needs never comes after what another's cells rebind)
            cells = [source for _, source in sorted({cell for t in its_todos for cell in t.prerequisites})]
            setup = "\n\n".join([*setup_sources(nb, last_check), *(STAND_INS[s] for s in stand_ins), *cells])
            stored = {"root": str(stored_run), "files": list(STORED_RUN_FILES)} if stored_run and any(
                t.needs_stored_run for t in its_todos) else None
            notebooks.append({"notebook": name, "setup": setup, "setup_dir": str(work / "setup" / name),
                              "setup_timeout": SETUP_TIMEOUT_S, "jobs": jobs, "stored": stored})
    warm = any("load_tokenizer" in nb["setup"] for nb in notebooks)
    spec = {"preload": import_lines([nb["setup"] for nb in notebooks]), "warm_tokenizer": warm, "notebooks": notebooks}
    return spec, rows, pending


def import_lines(sources: list[str]) -> list[str]:
    """The top-level import statements of `sources`, once each: the worker runs them before forking, so every
    notebook's setup finds its modules loaded.

    >>> import_lines(["import math\\nx = 1", "import math\\nfrom trl import SFTConfig"])
    ['import math', 'from trl import SFTConfig']
    """
    import ast

    found: list[str] = []
    for source in sources:
        tree = nbtools.parse_cell(source)
        for stmt in tree.body if tree else []:
            if isinstance(stmt, (ast.Import, ast.ImportFrom)) and ast.unparse(stmt) not in found:
                found.append(ast.unparse(stmt))
    return found


def run_worker(spec: dict, work: Path, release_root: Path) -> dict[str, dict]:
    """Run tools/grade_worker.py on `spec` offline, the release first on the path; {job key: verdict}."""
    spec_path, results = work / "spec.json", work / "results.jsonl"
    spec_path.write_text(json.dumps(spec, indent=1))
    results.unlink(missing_ok=True)
    env = {**os.environ, **OFFLINE_ENV, "PYTHONPATH": str(release_root)}
    limit = sum(j["timeout"] + 10 for nb in spec["notebooks"] for j in nb["jobs"]) + \
        sum(nb["setup_timeout"] for nb in spec["notebooks"]) + 60
    with open(work / "worker.log", "w") as log:
        try:
            subprocess.run([sys.executable, str(WORKER), str(spec_path), str(results)], env=env, cwd=work,
                           stdout=log, stderr=log, timeout=limit, check=False)
        except subprocess.TimeoutExpired:
            pass  # the jobs without a verdict say so below
    verdicts = {}
    for line in results.read_text().splitlines() if results.is_file() else []:
        verdict = json.loads(line)
        verdicts[verdict["key"]] = verdict
    return verdicts


def check_stored_run(stored_run: Path) -> Path:
    """`stored_run` resolved, or a ValueError naming what it lacks and how to make it."""
    missing = [f for f in STORED_RUN_FILES if not (stored_run / f).is_file()]
    if missing:
        raise ValueError(f"--run {stored_run}: no {', '.join(missing)} there; pass the run folder of a finished "
                         "series run (runs/<profile> after notebook 06, or `./lab.sh run`)")
    return stored_run.resolve()


def grade(submissions: Path, out: Path, release_dir: Path | None = None, todo_ids: list[str] | None = None,
          timeout: float = 30.0, stored_run: Path | None = None) -> tuple[list[dict], list[Todo]]:
    """Grade every submission in `submissions` into `out` (gradebook.csv, summary.html); returns (rows, the open
    TODOs that are not graded). `stored_run`: a finished series run whose reference-run metrics stand in for a setup
    cell that would train it (07)."""
    every = catalogue()
    release = load_release(release_dir, every)
    stored_run = check_stored_run(stored_run) if stored_run else None
    opened = [t for t in every if t.id in release.open and (not todo_ids or t.id in todo_ids)]
    gradable = [t.gradable(stored_run is not None) for t in opened]
    graded = [t for t, ok in zip(opened, gradable) if ok]
    ungraded = [t for t, ok in zip(opened, gradable) if not ok]
    subs = find_submissions(submissions, list(release.notebooks))
    handed_in = {s.notebook for s in subs}
    graded = [t for t in graded if t.notebook in handed_in]
    work = out / "work"
    work.mkdir(parents=True, exist_ok=True)
    spec, rows, pending = plan(release, graded, subs, work, timeout, stored_run)
    verdicts = run_worker(spec, work, release.root) if pending else {}
    for key, row in pending.items():
        verdict = verdicts.get(key, {"status": "error", "message": f"the grader stopped before this TODO (see "
                                     f"{work / 'worker.log'})"})
        rows.append({**{k: row[k] for k in COLUMNS[:3]}, "status": verdict["status"],
                     "message": verdict["message"] + row["note"], "seconds": verdict.get("seconds")})
    order = {t.id: i for i, t in enumerate(every)}
    rows.sort(key=lambda r: (r["student"], order.get(r["todo"], 0)))
    write_gradebook(rows, out / "gradebook.csv")
    (out / "summary.html").write_text(summary_html(rows, ungraded), encoding="utf-8")
    return rows, ungraded


def write_gradebook(rows: list[dict], path: Path) -> None:
    """`path` as CSV with the COLUMNS, one row per student x TODO."""
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def mistake_kind(message: str) -> str:
    """The kind of a mistake, for counting: the problem before its fix, numbers and quoted text blanked.

    >>> mistake_kind("your labels train the user turn at tokens 21-29 ('Hi'). Fix: set -100")
    'your labels train the user turn at tokens N-N (…)'
    """
    problem = message.split(" Fix:")[0].rstrip(".")
    problem = re.sub(r"'[^']*'|\"[^\"]*\"|`[^`]*`", "…", problem)
    return re.sub(r"\d+(\.\d+)?(e-?\d+)?", "N", problem)


COLOURS = {"pass": "#c8e6c9", "wrong": "#ffcdd2", "not done": "#eeeeee", "error": "#ffe0b2"}


def summary_html(rows: list[dict], ungraded: list[Todo]) -> str:
    """The class at a glance (students x TODOs, coloured by status, the message on hover), then per TODO the counts
    and the common mistakes."""
    todos = list(dict.fromkeys(r["todo"] for r in rows))
    students = list(dict.fromkeys(r["student"] for r in rows))
    cell = {(r["student"], r["todo"]): r for r in rows}
    esc = html.escape
    head = "".join(f"<th>{esc(t)}</th>" for t in todos)
    body = []
    for student in students:
        tds = []
        for t in todos:
            r = cell.get((student, t))
            tds.append(f"<td style='background:{COLOURS[r['status']]}' title='{esc(r['message'], quote=True)}'>"
                       f"{esc(r['status'])}</td>" if r else "<td></td>")
        passed = sum(1 for t in todos if cell.get((student, t), {}).get("status") == "pass")
        body.append(f"<tr><th>{esc(student)}</th>{''.join(tds)}<td>{passed}/{len(todos)}</td></tr>")
    sections = []
    for t in todos:
        mine = [r for r in rows if r["todo"] == t]
        counts = Counter(r["status"] for r in mine)
        kinds: dict[str, list[dict]] = defaultdict(list)
        for r in mine:
            if r["status"] != "pass":
                kinds[(r["status"], mistake_kind(r["message"]))].append(r)
        items = "".join(
            f"<li><b>{len(rs)}</b> × {esc(status)}: {esc(rs[0]['message'])} <i>({esc(', '.join(r['student'] for r in rs))})"
            f"</i></li>" for (status, _), rs in sorted(kinds.items(), key=lambda kv: -len(kv[1])))
        sections.append(f"<h3>{esc(t)}</h3><p>" + ", ".join(f"{s}: {counts.get(s, 0)}" for s in STATUSES) +
                        f"</p><ul>{items or '<li>every submission passes</li>'}</ul>")
    skipped = "".join(f"<li>{esc(t.id)}: {esc(t.cost)}</li>" for t in ungraded)
    return "\n".join([
        "<!doctype html><meta charset='utf-8'><title>sft-lab gradebook</title>",
        "<style>body{font-family:sans-serif} td,th{padding:3px 8px;border:1px solid #ccc} table{border-collapse:"
        "collapse}</style>",
        f"<h1>Gradebook: {len(students)} students, {len(todos)} TODOs</h1>",
        "<h2>The class</h2><p>Hover a cell for its message; gradebook.csv has every row.</p>",
        f"<table><tr><th>student</th>{head}<th>passed</th></tr>{''.join(body)}</table>",
        "<h2>Per TODO: the common mistakes</h2>", *sections,
        f"<h2>Open but not graded</h2><ul>{skipped or '<li>none</li>'}</ul>",
    ])


def main(argv: list[str] | None = None) -> int:
    """Command line (see the module doc); returns the exit code (0 graded, 1 bad arguments)."""
    parser = argparse.ArgumentParser(prog="python -m tools.grade", description=__doc__.splitlines()[0])
    parser.add_argument("submissions", type=Path, help="folder of submitted notebooks (a subfolder or prefix each)")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="where gradebook.csv and summary.html go")
    parser.add_argument("--release", type=Path, metavar="DIR", help="the release the class got (default: the "
                        "repository's notebooks, every TODO open)")
    parser.add_argument("--todos", metavar="IDS", help="grade only these TODO ids (comma-separated)")
    parser.add_argument("--timeout", type=float, default=30.0, metavar="S", help="seconds per TODO (default 30)")
    parser.add_argument("--run", type=Path, metavar="RUN_DIR", help="a finished series run (runs/ci ...): its "
                        "reference-run metrics stand in for a setup cell that would train it (07.loss_plot)")
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        ids = [i.strip() for i in args.todos.split(",")] if args.todos else None
        rows, ungraded = grade(args.submissions, args.out, args.release, ids, args.timeout, args.run)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    counts = Counter(r["status"] for r in rows)
    print(f"graded {len({r['student'] for r in rows})} students x {len({r['todo'] for r in rows})} TODOs in "
          f"{time.monotonic() - started:.1f} s: " + ", ".join(f"{counts.get(s, 0)} {s}" for s in STATUSES))
    for todo in ungraded:
        print(f"open but not graded: {todo.id} ({todo.cost})")
    print(f"wrote {args.out / 'gradebook.csv'} and {args.out / 'summary.html'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
