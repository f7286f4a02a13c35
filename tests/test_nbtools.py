"""Tests for tools.nbtools: markers, stubs, dependency tags, cleaning, build/check/clean and nbval end to end."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat import NotebookNode
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from tools import nbtools
from tools.nbtools import NotebookMarkerError

KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}
SOL = "solutions/01_demo.ipynb"


def code(source: str, *tags: str, **extra) -> NotebookNode:
    """A code cell with optional tags and any extra fields (outputs, execution_count, metadata)."""
    cell = new_code_cell(source, **extra)
    if tags:
        cell.metadata["tags"] = list(tags)
    return cell


def notebook(*cells: NotebookNode) -> NotebookNode:
    """A notebook with the python3 kernelspec."""
    return new_notebook(cells=list(cells), metadata={"kernelspec": KERNELSPEC, "language_info": {"name": "python"}})


def todo(body: str, hint: str | None = "compute it", indent: str = "") -> str:
    """Source of a solution region, with a `# TODO:` comment above when `hint` is given."""
    lines = ([f"{indent}# TODO: {hint}"] if hint else []) + [
        f"{indent}### BEGIN SOLUTION",
        f"{indent}{body}",
        f"{indent}### END SOLUTION",
    ]
    return "\n".join(lines)


def student(*cells: NotebookNode) -> NotebookNode:
    """Student copy of a notebook made of `cells`."""
    return nbtools.to_student(notebook(*cells), SOL)


def body(nb: NotebookNode) -> list[NotebookNode]:
    """The student cells after the generated notice."""
    return nb.cells[1:]


def tags(cell: NotebookNode) -> list[str]:
    return cell.metadata.get("tags", [])


def save(nb: NotebookNode, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


# --- stubs ---------------------------------------------------------------------------------------


def test_stub_at_top_level_keeps_todo_comment():
    out = nbtools.stub_solutions("x = 1\n" + todo("y = 2 * x", "double x"))
    assert out == 'x = 1\n# TODO: double x\nraise NotImplementedError("TODO: double x")'


def test_stub_inside_function_body_keeps_indent():
    source = "def f(x):\n" + todo("return 2 * x", "double x", indent="    ")
    assert nbtools.stub_solutions(source).splitlines()[-1] == '    raise NotImplementedError("TODO: double x")'


def test_stub_inside_nested_block_keeps_indent():
    source = (
        "def f(xs):\n    for x in xs:\n        if x:\n"
        + todo("print(x)", "print it", indent="            ")
        + "\n    return xs"
    )
    lines = nbtools.stub_solutions(source).splitlines()
    assert lines[4] == '            raise NotImplementedError("TODO: print it")'
    assert lines[5] == "    return xs"


def test_default_hint_without_todo_comment():
    assert nbtools.stub_solutions(todo("y = 1", hint=None)) == 'raise NotImplementedError("TODO: fill in this cell")'


def test_hint_is_the_whole_todo_comment_joined_across_lines():
    source = ("# setup notes, not the hint\n# TODO: mask the prompt (labels are -100\n#   there; the reply keeps its ids)\n"
              "### BEGIN SOLUTION\nx = 1\n### END SOLUTION")
    assert nbtools.stub_solutions(source).endswith(
        'raise NotImplementedError("TODO: mask the prompt (labels are -100 there; the reply keeps its ids)")')


def test_hint_stops_at_an_empty_comment_line():
    source = "# TODO: mask the prompt.\n#\n# (an aside for later)\n### BEGIN SOLUTION\nx = 1\n### END SOLUTION"
    assert nbtools.stub_solutions(source).endswith('raise NotImplementedError("TODO: mask the prompt.")')


def test_todo_separated_by_code_is_not_the_hint():
    source = "# TODO: old\nx = 1\n### BEGIN SOLUTION\ny = 2\n### END SOLUTION"
    assert nbtools.stub_solutions(source).endswith('"TODO: fill in this cell")')


def test_multiple_regions_in_one_cell_each_get_their_hint():
    source = todo("a = 1", "first") + "\nb = 2\n" + todo("c = 3", "second") + "\n" + todo("d = 4", None)
    assert nbtools.stub_solutions(source) == "\n".join(
        [
            "# TODO: first",
            'raise NotImplementedError("TODO: first")',
            "b = 2",
            "# TODO: second",
            'raise NotImplementedError("TODO: second")',
            'raise NotImplementedError("TODO: fill in this cell")',
        ]
    )


def test_hint_with_quotes_is_a_valid_literal():
    out = nbtools.stub_solutions(todo("x = 1", 'use "-100" and \\n'))
    with pytest.raises(NotImplementedError, match='TODO: use "-100"'):
        exec(out, {})


# --- marker errors -------------------------------------------------------------------------------

ERRORS = {
    "nested": (code("### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION", "solution"), "line 2", "nested"),
    "end_without_begin": (code("x = 1\n  ### END SOLUTION", "solution"), "line 2", "without a BEGIN"),
    "begin_without_end": (code("x = 1\n### BEGIN SOLUTION\ny = 2", "solution"), "line 2", "without an END"),
    "untagged": (code(todo("y = 1")), "line 2", "without the 'solution' tag"),
    "tag_without_markers": (code("y = 1", "solution"), "first line 'y = 1'", "no '### BEGIN SOLUTION'"),
    "markdown": (new_markdown_cell("Text\n### BEGIN SOLUTION\nsecret\n### END SOLUTION"), "line 2", "markdown cell"),
}


@pytest.mark.parametrize("case", sorted(ERRORS))
def test_marker_errors_name_notebook_cell_and_line(case):
    bad, line, problem = ERRORS[case]
    nb = notebook(new_markdown_cell("# Title"), code("x = 1"), bad)
    with pytest.raises(NotebookMarkerError) as err:
        nbtools.to_student(nb, SOL)
    message = str(err.value)
    assert message.startswith(f"{SOL}: cell 2")
    assert line in message and problem in message
    assert err.value.cell == 2 and err.value.path == SOL


def test_marker_error_from_build_uses_the_file_path(tmp_path):
    path = save(notebook(code("x = 1"), code(todo("y = 1"))), tmp_path / "solutions" / "02_bad.ipynb")
    with pytest.raises(NotebookMarkerError, match=r"02_bad\.ipynb: cell 1, line 2"):
        nbtools.build(tmp_path / "solutions", tmp_path / "notebooks")
    assert path.exists() and not (tmp_path / "notebooks" / "02_bad.ipynb").exists()


# --- dependency analysis -------------------------------------------------------------------------


def deps(*sources: str, todo_cells: set[int] = frozenset({0})) -> dict[int, list[str]]:
    return nbtools.dependent_cells(list(sources), set(todo_cells))


def test_direct_dependency():
    assert deps(todo("y = 1"), "print(y)", "print(2)") == {1: ["y"]}


def test_transitive_dependency():
    assert deps(todo("y = 1"), "z = y + 1", "w = 3", "print(z, w)") == {1: ["y"], 3: ["z"]}


def test_reassignment_clears_but_read_first_does_not():
    assert deps(todo("y = 1"), "y = 5", "print(y)") == {}
    assert deps(todo("y = 1"), "y = y + 1", "print(y)") == {1: ["y"], 2: ["y"]}
    assert deps(todo("y = 1"), "y += 1") == {1: ["y"]}


def test_reassignment_inside_a_function_does_not_clear():
    assert deps(todo("y = 1"), "def f():\n    y = 2\n    return y", "print(y)") == {2: ["y"]}


def test_names_bound_before_the_solution_region_stay_defined():
    source = "import numpy as np\nfor i in range(2):\n    pass\nwith open('f') as fh:\n    pass\n" + todo("(n := 2)")
    assert deps(source, "print(np, i, fh, n)") == {1: ["n"]}
    assert deps(source + "\nafter = 1", "print(after)") == {1: ["after"]}  # the stub stops the rest of the cell


def test_todo_inside_a_function_makes_the_function_missing():
    source = "import math\ndef area(r):\n" + todo("return math.pi * r ** 2", indent="    ")
    assert deps(source, "print(math.pi)", "print(area(2))") == {2: ["area"]}


def test_imports_in_todo_and_reimport_clears():
    assert deps(todo("import os.path\nfrom json import dumps as d"), "os.getcwd()", "d({})") == {1: ["os"], 2: ["d"]}
    assert deps(todo("import json"), "import json", "json.dumps(1)") == {}


def test_function_def_in_todo_and_function_reading_a_missing_name():
    assert deps(todo("def mask(ids):\n    return ids"), "def g(x):\n    return mask(x)", "g(1)") == {
        1: ["mask"],
        2: ["g"],
    }


def test_parameters_and_comprehension_variables_are_local():
    assert deps(todo("x = 1\nk = 2"), "def f(x):\n    return x", "[k for k in range(3)]", "lambda x: x") == {}


def test_attribute_root_and_subscript_assignment_read_the_name():
    assert deps(todo("cfg = {}\nmodel = None"), "model.config.eos = 1", "cfg['a'] = 1") == {1: ["model"], 2: ["cfg"]}


def test_magics_are_parsed_and_their_code_is_seen():
    assert deps(todo("y = 1"), "%matplotlib inline\n!echo hi\nprint(2)", "%time z = y * 2", "print(z)") == {
        2: ["y"],
        3: ["z"],
    }
    assert deps(todo("y = 1"), "%%time\nprint(y)") == {1: ["y"]}
    assert deps(todo("y = 1"), "%time y = 3", "print(y)") == {}


def test_unparsable_cell_is_left_alone():
    assert deps(todo("y = 1"), "print(y", "print(y)") == {2: ["y"]}


def test_parse_cell_uses_ipython_transforms():
    tree = nbtools.parse_cell("!pip list\nx = 1")
    assert [type(s).__name__ for s in tree.body] == ["Expr", "Assign"]


# --- student notebook ----------------------------------------------------------------------------


def test_student_cells_tags_and_comments():
    nb = student(
        code("import math"),
        code(todo("area = math.pi * 4", "compute the area"), "solution"),
        code("print(area)"),
        code("print(math.e)"),
    )
    imports, todo_cell, dependent, independent = body(nb)
    assert tags(imports) == [] and tags(independent) == []
    assert tags(todo_cell) == ["raises-exception"]
    assert todo_cell.source == (  # no `from labhelpers.checks import ...` above: the guard's import goes here
        'from labhelpers.checks import require_todo\n# TODO: compute the area\n'
        'raise NotImplementedError("TODO: compute the area")')
    assert tags(dependent) == ["raises-exception"]
    assert dependent.source == (
        '# (runs after you finish the TODO above: it uses area)\nrequire_todo("area")\nprint(area)')


def test_notice_cell_first():
    nb = student(code("x = 1"))
    notice = nb.cells[0]
    assert notice.cell_type == "markdown" and tags(notice) == ["generated-notice"]
    assert notice.source == "> **This notebook has no TODO:** run the cells in order and read along."
    assert nb.metadata["labhelpers"] == {"generated": "generated from solutions/01_demo.ipynb by `python -m "
                                         "tools.nbtools build`: do not edit; edit the solution and rebuild"}
    notice = student(code(todo("x = 1"), "solution")).cells[0]
    for words in ("Fill in the code cells marked `TODO`", "Run the check cell right after each TODO",
                  "exactly what is wrong", "the hint in the `# TODO:` comment", '"Check your understanding"'):
        assert words in notice.source
    for maintainer_words in ("do not edit", "Generated", "solutions/", "nbtools"):
        assert maintainer_words not in notice.source


def test_parameters_cell_kept_as_is():
    params = code("MAX_STEPS = 5\nN_ROWS = area", "parameters")
    nb = student(code(todo("area = 1"), "solution"), params)
    assert body(nb)[1].source == params.source and tags(body(nb)[1]) == ["parameters"]


def test_solution_only_dropped_and_its_names_go_missing():
    nb = student(
        code("secret = 42", "solution-only"),
        new_markdown_cell("only for me", metadata={"tags": ["solution-only"]}),
        code("print(secret)"),
    )
    assert [c.source for c in body(nb)] == [
        "from labhelpers.checks import require_todo\n"
        '# (runs after you finish the TODO above: it uses secret)\nrequire_todo("secret")\nprint(secret)']


def test_outputs_counts_and_metadata_stripped():
    cell = code("print(1)", "keep-me", execution_count=3, outputs=[nbformat.v4.new_output("stream", text="1\n")])
    cell.metadata.update({"collapsed": True, "scrolled": False})
    cell2 = code("2", metadata={"tags": [], "jupyter": {"source_hidden": True}})
    nb = notebook(cell, cell2)
    nb.metadata.update({"widgets": {"x": 1}, "language_info": {"name": "python", "version": "3.11.9"}})
    out = nbtools.to_student(nb, SOL)
    assert set(out.metadata) == {"kernelspec", "language_info", "labhelpers"}
    assert out.metadata["kernelspec"] == KERNELSPEC and out.metadata["language_info"] == {"name": "python"}
    assert (out.nbformat, out.nbformat_minor) == (4, 5)
    first, second = body(out)
    assert first.outputs == [] and first.execution_count is None and dict(first.metadata) == {"tags": ["keep-me"]}
    assert dict(second.metadata) == {}
    assert len({c.id for c in out.cells}) == len(out.cells)
    nbformat.validate(out)


def test_clean_notebook_ids_are_deterministic():
    nb = notebook(code("1"), code("2"))
    a, b = (
        nbtools.clean_notebook(nb, "01_demo"),
        nbtools.clean_notebook(nbformat.from_dict(json.loads(json.dumps(nb))), "01_demo"),
    )
    assert [c.id for c in a.cells] == [c.id for c in b.cells] == [nbtools.cell_id("01_demo", i) for i in range(2)]


# --- build / check / clean -----------------------------------------------------------------------


@pytest.fixture
def repo(tmp_path, monkeypatch) -> Path:
    """A tmp repo with one solution notebook, cwd set to it."""
    sol = notebook(code("import math"), code(todo("area = math.pi * 4"), "solution"), code("print(area)"))
    sol.cells[0].execution_count = None
    save(sol, tmp_path / "solutions" / "01_demo.ipynb")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_build_is_byte_identical_twice(repo):
    lines, ok = nbtools.build()
    assert ok and lines == ["wrote notebooks/01_demo.ipynb"]
    first = (repo / "notebooks" / "01_demo.ipynb").read_bytes()
    assert first.endswith(b"}\n") and b'\n "cells": [\n  {\n' in first  # indent 1, trailing newline
    assert nbtools.build() == (["unchanged notebooks/01_demo.ipynb"], True)
    (repo / "notebooks" / "01_demo.ipynb").unlink()
    nbtools.build()
    assert (repo / "notebooks" / "01_demo.ipynb").read_bytes() == first


def test_render_matches_nbformat_write(repo, tmp_path):
    nb = nbtools.to_student(nbtools.read_notebook(repo / "solutions" / "01_demo.ipynb"), SOL)
    nbformat.write(nb, tmp_path / "ref.ipynb")
    assert (tmp_path / "ref.ipynb").read_text(encoding="utf-8") == nbtools.render(nb)


def test_check_passes_after_build(repo):
    nbtools.build()
    assert nbtools.check() == []


def test_check_detects_hand_edit(repo):
    nbtools.build()
    path = repo / "notebooks" / "01_demo.ipynb"
    nb = nbformat.read(path, as_version=4)
    nb.cells[1].source += "\n# my note"
    save(nb, path)
    assert nbtools.check() == [
        "notebooks/01_demo.ipynb: differs from what solutions/01_demo.ipynb builds"
        " (hand-edited, or the solution changed)"
    ]


def test_check_detects_missing_and_stale(repo):
    save(notebook(code("x = 1")), repo / "notebooks" / "99_old.ipynb")
    assert nbtools.check() == [
        "notebooks/01_demo.ipynb: missing (built from solutions/01_demo.ipynb)",
        "notebooks/99_old.ipynb: stale, no solutions/99_old.ipynb",
    ]


def test_check_detects_unclean_solution(repo):
    nbtools.build()
    path = repo / "solutions" / "01_demo.ipynb"
    nb = nbformat.read(path, as_version=4)
    nb.cells[0].execution_count = 1
    save(nb, path)
    assert nbtools.check() == [
        "solutions/01_demo.ipynb: has outputs or execution counts (run `python -m tools.nbtools clean`)"
    ]


def test_check_reports_marker_errors(repo):
    save(notebook(code(todo("y = 1"))), repo / "solutions" / "02_bad.ipynb")
    problems = nbtools.check()
    assert any(p.startswith("solutions/02_bad.ipynb: cell 0, line 2") for p in problems)


def test_build_deletes_stale_generated_and_keeps_hand_written(repo):
    nbtools.build()
    generated = repo / "notebooks" / "01_demo.ipynb"
    (repo / "solutions" / "01_demo.ipynb").rename(repo / "solutions" / "02_demo.ipynb")
    save(notebook(code("x = 1")), repo / "notebooks" / "50_mine.ipynb")
    lines, ok = nbtools.build()
    assert not ok and not generated.exists() and (repo / "notebooks" / "50_mine.ipynb").exists()
    assert "deleted notebooks/01_demo.ipynb (stale: no solutions/01_demo.ipynb)" in lines
    assert any(line.startswith("kept notebooks/50_mine.ipynb") for line in lines)


def test_clean_solutions_in_place(repo):
    path = repo / "solutions" / "01_demo.ipynb"
    nb = nbformat.read(path, as_version=4)
    nb.cells[0].execution_count, nb.cells[0].outputs = 7, [nbformat.v4.new_output("stream", text="x\n")]
    nb.metadata["widgets"] = {}
    save(nb, path)
    assert nbtools.clean() == [Path("solutions/01_demo.ipynb")]
    cleaned = nbformat.read(path, as_version=4)
    assert nbtools.is_clean(cleaned) and set(cleaned.metadata) == {"kernelspec", "language_info"}
    assert tags(cleaned.cells[1]) == ["solution"] and "### BEGIN SOLUTION" in cleaned.cells[1].source
    assert nbtools.clean() == []


def test_main_exit_codes_and_messages(repo, capsys):
    assert nbtools.main(["check"]) == 1
    assert (
        "fix: run `python -m tools.nbtools clean` then `python -m tools.nbtools build`"
        in capsys.readouterr().err
    )
    assert nbtools.main(["build"]) == 0
    assert nbtools.main(["check"]) == 0
    assert nbtools.main(["check", "--solutions", "nowhere"]) == 1
    assert "pass --solutions DIR" in capsys.readouterr().err


def test_module_runs_as_script(repo):
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    run = subprocess.run(
        [sys.executable, "-m", "tools.nbtools", "build", "--notebooks", "out"],
        capture_output=True,
        text=True,
        env=env,
        cwd=repo,
    )
    assert run.returncode == 0, run.stderr
    assert (repo / "out" / "01_demo.ipynb").exists()


# --- end to end with nbval ---------------------------------------------------------------------


def run_nbval(path: Path) -> subprocess.CompletedProcess:
    """`pytest --nbval path` in a subprocess, isolated from this repo's pytest config."""
    command = [
        sys.executable,
        "-m",
        "pytest",
        "--nbval",
        str(path),
        "-p",
        "no:cacheprovider",
        "-q",
        "-o",
        "addopts=",
        "--rootdir",
        str(path.parent),
    ]
    return subprocess.run(command, capture_output=True, text=True, cwd=path.parent, timeout=300)


def test_student_notebook_passes_nbval_and_untagged_todo_fails(tmp_path):
    sol = notebook(
        new_markdown_cell("# Areas"),
        code("import math\nr = 2"),
        code(todo("area = math.pi * r ** 2", "compute the area of a circle of radius r"), "solution"),
        code("print(round(area, 2))"),
        code("circumference = 2 * math.pi * r\nassert round(circumference, 2) == 12.57\nprint('independent ran')"),
    )
    nb = nbtools.to_student(sol, SOL)
    assert [tags(c) for c in nb.cells if c.cell_type == "code"] == [[], ["raises-exception"], ["raises-exception"], []]
    good = save(nb, tmp_path / "good" / "student.ipynb")
    result = run_nbval(good)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 passed" in result.stdout

    nb.cells[3].metadata["tags"] = []  # the TODO cell, without its tag, must fail nbval
    bad = save(nb, tmp_path / "bad" / "student.ipynb")
    result = run_nbval(bad)
    assert result.returncode == 1 and "1 failed" in result.stdout and "NotImplementedError" in result.stdout


def test_nbval_raises_exception_tag_tolerates_but_does_not_require_an_error(tmp_path):
    """nbval 0.11: the tag only stops an error from failing the cell; a tagged cell that runs fine passes too."""
    nb = notebook(
        code("x = 1 + 1", "raises-exception"),
        code("raise ValueError('any type')", "raises-exception"),
        code("print(x)"),
    )
    result = run_nbval(save(nb, tmp_path / "tags" / "tags.ipynb"))
    assert result.returncode == 0 and "3 passed" in result.stdout, result.stdout


# --- guards, dependency comments and hints on toy and real notebooks ---------------------------------------------


def test_guard_goes_above_the_first_statement_that_needs_the_todo():
    nb = student(
        code("from labhelpers.checks import check_area\nimport math"),
        code(todo("area = math.pi * 4"), "solution"),
        code("log = {}\nn = 3\nfor k in range(n):\n    log[k] = area * k"),
        code("print(n)"),
        code("print(log)"),
    )
    imports, _, loop, uses_n, uses_log = body(nb)
    assert imports.source == "from labhelpers.checks import check_area, require_todo\nimport math"
    assert loop.source == ('# (runs after you finish the TODO above: it uses area)\nlog = {}\nn = 3\n'
                           'require_todo("area")\nfor k in range(n):\n    log[k] = area * k')
    assert tags(uses_n) == [] and uses_n.source == "print(n)"  # n was bound above the guard
    # `log` exists but was only half filled: it depends on the TODO like a name the TODO binds
    assert uses_log.source == '# (runs after you finish the TODO above: it uses log)\nrequire_todo("area")\nprint(log)'


def test_names_the_cell_binds_before_reading_are_not_listed():
    nb = student(
        code(todo("def build(x):\n    return x"), "solution"),
        code("for name, batch in pairs:\n    keep = batch[name]\n    enc = build(keep)\n    print(enc, keep, name)"),
    )
    assert body(nb)[1].source.splitlines()[0] == "# (runs after you finish the TODO above: it uses build)"


def test_multi_line_checks_import_gets_its_own_guard_import_line():
    nb = student(code("from labhelpers.checks import (\n    check_area,\n)"), code(todo("area = 1"), "solution"),
                 code("print(area)"))
    assert body(nb)[0].source == "from labhelpers.checks import (\n    check_area,\n)\n" + nbtools.GUARD_IMPORT


def run_cells(nb: NotebookNode, namespace: dict) -> list[str]:
    """Run a student copy's code cells in order like a kernel would, stopping nowhere; the error of each cell."""
    errors = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        try:
            exec(cell.source, namespace)
            errors.append("")
        except Exception as err:  # noqa: BLE001  # a notebook shows any error and goes on
            errors.append(f"{type(err).__name__}: {err}")
    return errors


def test_guards_stop_dependent_cells_with_one_clear_line_until_the_todo_is_done():
    sol = notebook(
        code("from labhelpers.checks import passed"),
        code("def pack(xs):\n    # TODO: sort them\n    ### BEGIN SOLUTION\n    return sorted(xs)\n    ### END SOLUTION",
             "solution"),
        code("table = {}\nfor n in (1, 2):\n    table[n] = pack([n, 0])"),
        code("packed = pack([3, 1, 2])"),
        code("passed(f'{packed} {table}')"),
    )
    nb = nbtools.to_student(sol, SOL)
    errors = run_cells(nb, {})
    guard_error = ("TodoNotDoneError: run the TODO above first: pack is not implemented yet (its code still has "
                   "the TODO's raise NotImplementedError line). Fix: fill in the TODO, run its cell and its check, then the cells below it "
                   "in order")
    assert errors == ["", "", guard_error, guard_error, guard_error]  # not KeyError: 1 nor NameError: 'packed'
    done = copy.deepcopy(nb)
    done.cells[2].source = "def pack(xs):\n    return sorted(xs)"  # the student fills the TODO in
    assert run_cells(done, {}) == ["", "", "", "", ""]


def test_guard_names_a_missing_top_level_todo_name():
    nb = student(code("from labhelpers.checks import passed"),
                 code("# TODO: make the config\n### BEGIN SOLUTION\nconfig = {}\n### END SOLUTION", "solution"),
                 code("print(config)"))
    errors = run_cells(nb, {})
    assert errors[1].startswith("NotImplementedError: TODO: make the config")
    assert errors[2].startswith("TodoNotDoneError: run the TODO above first (it defines `config`)")


REPO = Path(__file__).resolve().parents[1]


def real_student(name: str) -> NotebookNode:
    path = REPO / "solutions" / f"{name}.ipynb"
    return nbtools.to_student(nbtools.read_notebook(path), f"solutions/{name}.ipynb", path)


def cell_with(nb: NotebookNode, text: str) -> NotebookNode:
    """The one code cell whose source contains `text` (real notebooks change; indexes would break)."""
    (cell,) = [c for c in nb.cells if c.cell_type == "code" and text in c.source]
    return cell


def note(cell: NotebookNode) -> str | None:
    first = cell.source.splitlines()[0]
    return first if first.startswith("# (runs after") else None


def test_real_04_dependency_comments():
    nb = real_student("04_loss_masking")
    for independent in ("by_length = sorted(range(len(lengths))", "trainer_a, batch_a = collated(text_rows)",
                        "trainer_b, batch_b = collated(demo_rows)"):  # they run fine before the TODO
        cell = cell_with(nb, independent)
        assert note(cell) is None and "raises-exception" not in tags(cell) and "require_todo" not in cell.source
    agree = cell_with(nb, "agree += build_labels(")
    assert note(agree) == "# (runs after you finish the TODO above: it uses build_labels)"  # not enc, i, keep, name
    metrics = cell_with(nb, '"trained_share_single_turn"')
    assert note(metrics) == "# (runs after you finish the TODO above: it uses shares)"
    assert 'require_todo("build_labels")' in metrics.source.splitlines()
    shares = cell_with(nb, "shares[name] =")
    lines = shares.source.splitlines()
    assert lines.index('require_todo("build_labels")') == lines.index("shares = {}") + 1  # n_turns etc. still run


def test_real_05_and_11_dependency_comments():
    packing = real_student("05_packing")
    final = cell_with(packing, "save_metrics(RUN, \"packing\"")
    assert note(final) == "# (runs after you finish the TODO above: it uses packed, table, waste)"
    assert 'require_todo("pack_examples")' in final.source.splitlines()
    loop = cell_with(real_student("11_custom_accelerate_loop"), "for mb in group:")
    assert note(loop) == "# (runs after you finish the TODO above: it uses masked_lm_loss)"  # not mb


def test_every_real_dependent_cell_is_tagged_guarded_and_lists_only_used_names():
    for path in sorted((REPO / "solutions").glob("*.ipynb")):
        nb = real_student(path.stem)
        for cell in nb.cells:
            if cell.cell_type != "code" or note(cell) is None:
                continue
            assert "raises-exception" in tags(cell)
            assert any(line.startswith("require_todo(") for line in cell.source.splitlines()), cell.source
            listed = note(cell).split("it uses ")[1].rstrip(")").split(", ")
            read = nbtools.names_read(nbtools.parse_cell(cell.source))
            assert set(listed) <= set(read), (path.name, listed)


def test_real_hints_are_the_whole_todo_comment():
    for path in sorted((REPO / "solutions").glob("*.ipynb")):
        solution = nbtools.read_notebook(path)
        for cell in solution.cells:
            if nbtools.TAG_SOLUTION not in nbtools.cell_tags(cell):
                continue
            lines = cell.source.splitlines()
            for begin, _ in nbtools.find_regions(cell.source):
                hint = nbtools.todo_hint(lines, begin)
                comment = " ".join(line.strip().lstrip("#").strip() for line in lines[:begin]
                                   if line.strip().startswith("#"))
                assert hint in comment.replace("TODO: ", ""), (path.name, hint)
                assert hint.count("(") == hint.count(")") and hint.count("[") == hint.count("]"), (path.name, hint)
                assert not hint.endswith((",", ";", ":", "(", " -")), (path.name, hint)
        if path.stem == "05_packing":
            stub = cell_with(nbtools.to_student(solution, "solutions/05_packing.ipynb"), "raise NotImplementedError")
            assert "(best fit: the fullest such row; first fit: the first one) or to a new row;" in stub.source


def test_colab_cells_are_written_from_pyproject_and_stale_ones_are_caught(repo):
    """The install cell is generated from pyproject.toml's versions: clean writes it, check flags a stale copy."""
    from nbformat.v4 import new_markdown_cell

    from tools import colab

    stale_install = "# Install cell: old\n!pip install transformers==4.0"
    sol = notebook(new_markdown_cell("[![Open In Colab](old-url)]\n\n# 01 · Demo"), code(stale_install), code("x = 1"))
    save(sol, repo / "solutions" / "01_demo.ipynb")
    nbtools.build()
    assert any("install cell is not what pyproject.toml's versions give" in p for p in nbtools.check())
    nbtools.clean()
    cleaned = nbtools.read_notebook(repo / "solutions" / "01_demo.ipynb")
    assert cleaned.cells[1].source == colab.install_cell_source()
    assert cleaned.cells[1].metadata["cellView"] == "form"  # Colab opens it folded: its title and two settings
    assert cleaned.cells[0].source == colab.badge_markdown("notebooks/01_demo.ipynb") + "\n\n# 01 · Demo"
    nbtools.build()
    assert nbtools.check() == []
    student = nbtools.read_notebook(repo / "notebooks" / "01_demo.ipynb")
    install = next(c for c in student.cells if c.source == colab.install_cell_source())
    assert install.metadata["cellView"] == "form"
    plain = notebook(code("x = 1"), code("y = 2"))  # a notebook without Colab cells is left as it is
    assert nbtools.with_colab_cells(plain, "01_demo") == plain
