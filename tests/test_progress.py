"""The student's own progress (`labhelpers.views.progress`): each check's verdict recorded in the notebook's run folder
without changing what it prints, hints revealed tier by tier, the table of the last cell; nothing recorded and nothing
failing when there is no run folder. Checks are called from code run in a namespace holding `RUN`, as a cell is."""

from __future__ import annotations

import json
import math
import re
import tomllib
from pathlib import Path

import pytest

from labhelpers.views import progress
from labhelpers.checks import TodoCheckError
from tools.todos import catalogue

ROOT = Path(__file__).resolve().parents[1]
RIGHT = '''def cosine_with_warmup_lr(step, total_steps, warmup_steps, peak_lr):
    if step < warmup_steps:
        return peak_lr * step / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return peak_lr * 0.5 * (1.0 + math.cos(math.pi * progress))'''
NO_WARMUP = RIGHT.replace("if step < warmup_steps", "if False")


def run_cell(source: str, namespace: dict) -> None:
    """Run `source` as a notebook cell would: its globals are the notebook's namespace."""
    exec(compile(source, "<cell>", "exec"), namespace)  # noqa: S102


def check_in_cell(run: Path | None, solution: str, capsys) -> tuple[str, str]:
    """(what the check printed, the error as Jupyter shows it or '') for a cosine schedule checked in a cell."""
    namespace = {"math": math, **({"RUN": run} if run else {})}
    run_cell("from labhelpers.checks import check_cosine_schedule\n" + solution, namespace)
    shown = ""
    try:
        run_cell("check_cosine_schedule(cosine_with_warmup_lr)", namespace)
    except TodoCheckError as err:
        shown = "\n".join(err._render_traceback_())  # what IPython calls to show it
    return capsys.readouterr().out, shown


@pytest.fixture(autouse=True)
def no_run_dir_env(monkeypatch):
    monkeypatch.delenv("LAB_RUN_DIR", raising=False)
    monkeypatch.setattr(progress, "_SHOWN", {})


def test_each_verdict_is_recorded_with_attempt_hint_tier_and_time(tmp_path, capsys):
    out, failure = check_in_cell(tmp_path, NO_WARMUP, capsys)
    assert failure.startswith("TodoCheckError: ") and out == ""
    progress.record_hint(tmp_path, "08.cosine_schedule", 1)
    out, shown = check_in_cell(tmp_path, RIGHT, capsys)
    assert shown == "" and out.startswith("✓ your cosine schedule matches") and out.count("\n") == 1
    checks = [r for r in progress.read_records(tmp_path) if "status" in r]
    assert [(r["todo"], r["status"], r["attempt"], r["hint_tier"]) for r in checks] == [
        ("08.cosine_schedule", "wrong", 1, 0), ("08.cosine_schedule", "pass", 2, 1)]
    assert checks[0]["verdict"] == failure.removeprefix("TodoCheckError: ") and "\n" not in checks[0]["verdict"]
    assert checks[1]["verdict"] == "pass" and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", checks[1]["time"])


def test_in_ipython_the_shown_mistake_and_the_hint_are_recorded(tmp_path, capsys):
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    shell.run_cell(f"import math\nfrom pathlib import Path\nRUN = Path({str(tmp_path)!r})\n" + NO_WARMUP)
    shell.run_cell("from labhelpers.checks import check_cosine_schedule, hint\nhint('08.cosine_schedule')")
    shell.run_cell("check_cosine_schedule(cosine_with_warmup_lr)")
    out = capsys.readouterr().out
    assert "TodoCheckError: at step 0" in out and "Traceback" not in out and "Out[" not in out
    records = progress.read_records(tmp_path)
    assert [(r.get("hint"), r.get("status"), r.get("hint_tier")) for r in records] == [(1, None, None),
                                                                                       (None, "wrong", 1)]


def test_a_failure_shown_twice_is_recorded_once(tmp_path):
    namespace = {"math": math, "RUN": tmp_path}
    run_cell("from labhelpers.checks import check_cosine_schedule\n" + NO_WARMUP, namespace)
    with pytest.raises(TodoCheckError) as err:
        run_cell("check_cosine_schedule(cosine_with_warmup_lr)", namespace)
    err.value._render_traceback_()
    err.value._render_traceback_()  # %tb shows it again
    assert len(progress.read_records(tmp_path)) == 1


def test_an_unfilled_todo_is_recorded_as_not_done(tmp_path, capsys):
    stub = "def cosine_with_warmup_lr(step, total_steps, warmup_steps, peak_lr):\n    raise NotImplementedError('TODO: x')"
    check_in_cell(tmp_path, stub, capsys)
    assert progress.read_records(tmp_path)[0]["status"] == "not done"


def test_without_a_run_folder_nothing_is_recorded_and_the_check_is_unchanged(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out, shown = check_in_cell(None, RIGHT, capsys)
    assert out.startswith("✓ ") and not list(tmp_path.rglob("*.jsonl"))
    monkeypatch.setenv("LAB_RUN_DIR", str(tmp_path / "gone"))  # set, but the folder does not exist
    assert check_in_cell(None, NO_WARMUP, capsys)[1].startswith("TodoCheckError: ")
    assert not list(tmp_path.rglob("*.jsonl"))


def test_a_read_only_run_folder_never_fails_a_check(tmp_path, capsys):
    (tmp_path / progress.PROGRESS_FILE).mkdir()  # appending to it fails
    out, _ = check_in_cell(tmp_path, RIGHT, capsys)
    assert out.startswith("✓ ")


def test_lab_run_dir_is_the_fallback(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("LAB_RUN_DIR", str(tmp_path))
    check_in_cell(None, RIGHT, capsys)
    assert progress.read_records(tmp_path)[0]["status"] == "pass"


def test_hints_come_tier_by_tier_and_are_recorded(tmp_path, capsys):
    namespace = {"RUN": tmp_path}
    for _ in range(4):
        run_cell("from labhelpers.checks import hint\nhint('04.build_labels')", namespace)
    shown = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in shown] == ["Hint 1 of 3 for 04.build_labels", "Hint 2 of 3 for 04.build_labels",
                                                     "Hint 3 of 3 for 04.build_labels",
                                                     "Hint 3 of 3 for 04.build_labels (the last one)"]
    assert progress.hints_used(progress.read_records(tmp_path), "04.build_labels") == 3


def test_show_progress_lists_the_notebooks_todos(tmp_path, capsys):
    progress.record_check(tmp_path, "04.build_labels", "wrong", "you put -1 where assistant_mask is 0. Fix: -100")
    progress.record_check(tmp_path, "04.build_labels", "pass", "pass")
    table = progress.show_progress(tmp_path, "04")
    assert list(table.index) == ["04.build_labels", "04.assistant_mask_from_ids"]
    assert table.loc["04.build_labels", "status"] == "pass" and table.loc["04.build_labels", "attempts"] == 2
    assert table.loc["04.assistant_mask_from_ids", "status"] == "not run yet"
    assert str(tmp_path / "progress.jsonl") in capsys.readouterr().out


def test_every_solution_ends_with_the_progress_cell():
    for path in sorted((ROOT / "solutions").glob("*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        assert f'show_progress(RUN, "{path.stem[:2]}")' in "".join(cells[-1]["source"]), path.name


# --- the hints file -----------------------------------------------------------------------------------------------


def test_every_todo_has_one_to_three_hints_and_no_other_key():
    hints = progress.load_hints()
    assert list(hints) == [t.id for t in catalogue()]
    assert all(1 <= len(tiers) <= progress.MAX_TIERS and all(len(h) > 40 for h in tiers) for tiers in hints.values())


def test_a_nudge_gives_no_line_of_the_answer_and_no_hint_the_whole_of_it():
    hints = progress.load_hints()
    for todo in catalogue():
        lines = [line.strip() for region in todo.solution for line in region.splitlines()
                 if len(line.strip()) >= 12 and not line.strip().startswith("#")]
        assert not [line for line in lines if line in hints[todo.id][0]], todo.id
        for tier in hints[todo.id]:
            assert not any(" ".join(region.split()) in " ".join(tier.split()) for region in todo.solution
                           if "\n" in region), todo.id


def test_the_hints_file_is_installed_with_labhelpers():
    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert "checks/*.json" in package_data["labhelpers"]
