"""TODO ids (`tools/nbtools.py`, `labhelpers.checks.core.todo_id`) and student releases (`tools/release.py`): only the
chosen TODOs open, the others given, nothing of an open TODO's solution anywhere in the release, the Colab cells
pointing at the release's source, no instructor files."""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from tools import nbtools, release
from tools.todos import catalogue

ROOT = Path(__file__).resolve().parents[1]
SOURCE = "git+https://github.com/uni/sft-class@2026-spring"
OPEN = ["04.build_labels", "06.sft_config"]
IDS = ["01.batch_math", "02.generate_answers", "03.format_chatml", "04.build_labels", "04.assistant_mask_from_ids",
       "05.pack_examples", "06.sft_config", "06.predict_run", "07.loss_plot", "08.cosine_schedule",
       "09.behaviour_scores", "09.reply_loss", "10.preflight_clean", "11.masked_lm_loss", "12.lora_config",
       "13.generation_config", "14.diagnosis", "14.fix_template_twice", "14.fix_eval_leak", "14.fix_stop_token_masked",
       "14.fix_fp16_weights", "14.fix_packing_leak", "14.fix_grad_accum_scale", "14.fix_prompt_trained"]


def _texts(folder: Path) -> dict[Path, str]:
    """Every file of `folder` as text; a notebook as its cells' sources (JSON escapes undone)."""
    texts = {}
    for path in folder.rglob("*"):
        if path.is_file():
            text = path.read_text(encoding="utf-8", errors="replace")
            if path.suffix == ".ipynb":
                text = "\n".join(c.source for c in nbformat.reads(text, as_version=4).cells)
            texts[path] = text
    return texts


def _squeezed(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("release") / "class"
    release.write_release(out, OPEN, SOURCE)
    return out


# --- ids ----------------------------------------------------------------------------------------------------------


def test_every_todo_has_its_stable_id_in_both_copies():
    assert [t.id for t in catalogue()] == IDS
    for folder in ("solutions", "notebooks"):
        found = [c.metadata[nbtools.TODO_KEY]["todo"] for p in sorted((ROOT / folder).glob("*.ipynb"))
                 for c in nbtools.read_notebook(p).cells if nbtools.TODO_KEY in c.metadata]
        assert found == IDS, folder


def test_id_falls_back_to_the_defined_name_and_refuses_twins():
    todo = "# TODO: area\n### BEGIN SOLUTION\narea = 3\n### END SOLUTION"
    nb = new_notebook(cells=[new_code_cell(todo, metadata={"tags": ["solution"]}), new_code_cell("print(area)")])
    assert nbtools.todo_ids(nb, "07_demo") == {1 - 1: "07.area"}
    twins = new_notebook(cells=[new_code_cell(todo, metadata={"tags": ["solution"]}), new_code_cell("check_a(area)"),
                                new_code_cell(todo, metadata={"tags": ["solution"]}), new_code_cell("check_a(area)")])
    with pytest.raises(nbtools.NotebookMarkerError, match="TODO id '07.a' is also cell 0's"):
        nbtools.todo_ids(twins, "07_demo")


# --- the release --------------------------------------------------------------------------------------------------


def test_list_names_each_todo_its_check_and_cost(capsys):
    assert release.main(["--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["id", "notebook", "check", "cost"] and len(lines) == len(IDS) + 1
    row = next(line for line in lines if line.startswith("04.build_labels "))
    assert "04_loss_masking" in row and "check_build_labels" in row and "setup cell + tokenizer" in row
    assert any(line.startswith("11.masked_lm_loss ") and "notebook cell(s) making logits" in line for line in lines)
    assert any(line.startswith("07.loss_plot ") and "not graded without --run" in line for line in lines)


def test_release_holds_what_students_need_and_no_instructor_files(built):
    assert sorted(p.name for p in built.iterdir()) == ["README.md", "colab", "labhelpers", "notebooks",
                                                       "pyproject.toml", "release.json", "requirements.lock"]
    assert (built / "labhelpers" / "bundled_data" / "train.jsonl").is_file()
    assert (built / "labhelpers" / "checks" / "hints.json").is_file()
    assert not list(built.rglob("__pycache__")) and not list(built.rglob("*.pyc"))
    manifest = json.loads((built / "release.json").read_text())
    assert manifest["open"] == OPEN and len(manifest["given"]) == len(IDS) - len(OPEN)
    pyproject = (built / "pyproject.toml").read_text()
    assert f'Colab-install = "{SOURCE}"' in pyproject and "pytest.ini_options" not in pyproject
    assert "`04.build_labels`" in (built / "README.md").read_text()


def test_only_the_chosen_todos_are_open_and_the_rest_are_given(built):
    for path in sorted((built / "notebooks").glob("*.ipynb")):
        nb = nbtools.read_notebook(path)
        for cell in nb.cells:
            meta = cell.metadata.get(nbtools.TODO_KEY)
            if not meta:
                continue
            is_open = meta["todo"] in OPEN
            assert ("raise NotImplementedError(\"TODO:" in cell.source) is is_open, meta
            assert meta.get("given", False) is not is_open and "### BEGIN" not in cell.source
            if not is_open:
                assert cell.source.startswith(release.GIVEN_LINE.format(todo=meta["todo"]))
                assert nbtools.TAG_RAISES not in cell.metadata.get("tags", []) and "# TODO:" not in cell.source
    notice = nbtools.read_notebook(built / "notebooks" / "01_setup_and_hardware.ipynb").cells[0].source
    assert notice == nbtools.NOTICE_NO_TODO


def test_colab_cells_point_at_the_release_source(built):
    nb = nbtools.read_notebook(built / "notebooks" / "06_sft_trainer.ipynb")
    assert "github/uni/sft-class/blob/2026-spring/notebooks/06_sft_trainer.ipynb" in nb.cells[1].source
    assert f'LABHELPERS_SOURCE = "{SOURCE}"' in nb.cells[2].source


def test_no_open_todo_solution_anywhere_in_the_release(built):
    texts = {path: _squeezed(text) for path, text in _texts(built).items()}
    for todo in catalogue():
        for region in todo.solution:
            holders = [str(p.relative_to(built)) for p, text in texts.items() if _squeezed(region) in text]
            if todo.id in OPEN:
                assert holders == [], f"{todo.id}'s solution is in {holders}"
            else:
                assert f"notebooks/{todo.notebook}.ipynb" in holders, todo.id  # given: filled in


# The only solution regions found outside the notebooks: two one-line answers of 01 that its check quotes in its fix
# messages (README, instructor section: open 01.batch_math knowing that its check says the product when it fails).
QUOTED_BY_CHECKS = {("01.batch_math", "labhelpers/checks/nb01_setup_and_hardware.py")}


def test_labhelpers_quotes_no_solution_but_the_known_one_liners(built):
    texts = {path: _squeezed(text) for path, text in _texts(built / "labhelpers").items()}
    found = {(todo.id, str(p.relative_to(built))) for todo in catalogue() for region in todo.solution
             for p, text in texts.items() if _squeezed(region) in text}
    assert found == QUOTED_BY_CHECKS


def test_no_solution_in_the_all_open_student_notebooks():
    texts = {path: _squeezed(text) for path, text in _texts(ROOT / "notebooks").items()}
    for todo in catalogue():
        for region in todo.solution:
            assert not [p.name for p, text in texts.items() if _squeezed(region) in text], todo.id


@pytest.mark.parametrize("argv, words", [
    (["--todos", "04.build_label"], "did you mean 04.build_labels?"),
    (["--source", "git+https://github.com/uni/c@main"], "never a moving branch"),
    (["--source", "https://example.org/c.zip@v1"], "must be git+https://github.com/OWNER/NAME@REF"),
])
def test_bad_arguments_stop_with_the_fix(tmp_path, capsys, argv, words):
    assert release.main(["--out", str(tmp_path / "r"), *argv]) == 1
    assert words in capsys.readouterr().err and not (tmp_path / "r").exists()


def test_a_folder_that_is_not_a_release_is_never_overwritten(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    assert release.main(["--out", str(tmp_path)]) == 1
    assert "holds no release.json" in capsys.readouterr().err and (tmp_path / "notes.txt").read_text() == "mine"


def test_lab_sh_lists_release_and_grade():
    text = (ROOT / "lab.sh").read_text()
    assert re.search(r"^  release\) setup; exec .* -m tools\.release", text, re.M)
    assert re.search(r"^  grade\) setup; exec .* -m tools\.grade", text, re.M)


@pytest.mark.slow
def test_release_notebook_runs_with_only_its_open_todo_raising(built, tmp_path):
    """nbval on the release's 04 (build_labels open, the mask from ids given): every untagged cell runs, the given
    TODO and its check included, with the release's own labhelpers."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": str(built), "LAB_RUN_DIR": str(tmp_path), "HF_HUB_OFFLINE": "1"}
    run = subprocess.run([sys.executable, "-m", "pytest", "--nbval-lax", "notebooks/04_loss_masking.ipynb", "-q",
                          "-p", "no:cacheprovider", "-o", "addopts=", "--rootdir", str(built)],
                         cwd=built, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:]
    passed = [r["todo"] for r in map(json.loads, (tmp_path / "progress.jsonl").read_text().splitlines())]
    assert passed == ["04.assistant_mask_from_ids"]  # the given TODO's check ran and passed
