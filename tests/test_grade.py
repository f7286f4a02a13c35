"""`tools/grade.py` on a table of synthetic submissions: per graded notebook two right answers written differently, the
wrong answers the check names, the unfilled stub, and (on 04) every broken submission (check cell removed, metadata
lost, invalid JSON, another notebook under the name, the TODO cell deleted, an endless loop, a cell that raises).
One release (tools/release.py) and one grading run serve every case: the worker starts once, each case is a fork."""

from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path

import pytest

from tools import grade, release
from tools.todos import catalogue

ROOT = Path(__file__).resolve().parents[1]
OPEN = "01,03,04,05,06,08,09.behaviour_scores,13"  # every TODO tools/grade.py grades
TIMEOUT_S = 3.0
SOLUTION = {t.id: t for t in catalogue()}


def solution_cell(todo: str) -> str:
    """The solution's TODO cell with its markers dropped (what a student who wrote the reference answer hands in)."""
    import nbformat

    t = SOLUTION[todo]
    nb = nbformat.read(ROOT / "solutions" / f"{t.notebook}.ipynb", as_version=4)
    return "\n".join(line for line in nb.cells[t.cell].source.split("\n") if "### " not in line)


BUILD_LABELS_LOOP = '''def build_labels(input_ids, assistant_mask):
    labels = []
    for i in range(len(input_ids)):
        labels.append(input_ids[i] if assistant_mask[i] == 1 else -100)
    return labels'''
CONFIG_OTHER_LR = solution_cell("06.sft_config").replace("learning_rate=sizes.learning_rate", "learning_rate=1e-4")
BATCH_MATH_OTHER = '''def effective_batch_size(per_device, grad_accum, n_gpus):
    return n_gpus * grad_accum * per_device


def optimizer_steps_per_epoch(n_examples, per_device, grad_accum, n_gpus):
    batches = -(-n_examples // (per_device * n_gpus))
    return -(-batches // grad_accum)


def warmup_steps(total_steps, ratio):
    return int(math.ceil(total_steps * ratio))'''
CHATML_OTHER = '''DEFAULT_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"


def format_chatml(messages, add_generation_prompt=False):
    turns = list(messages)
    if not turns or turns[0]["role"] != "system":
        turns = [{"role": "system", "content": DEFAULT_SYSTEM}] + turns
    text = "".join("<|im_start|>" + m["role"] + "\\n" + m["content"] + "<|im_end|>\\n" for m in turns)
    return text + ("<|im_start|>assistant\\n" if add_generation_prompt else "")'''
PACK_FIRST_FIT = '''def pack_examples(examples, max_length):
    rows = []
    for example in examples:
        ids = list(example[:max_length])
        row = next((r for r in rows if len(r["input_ids"]) + len(ids) <= max_length), None)
        if row is None:
            row = {"input_ids": [], "position_ids": [], "seq_lengths": []}
            rows.append(row)
        row["input_ids"].extend(ids)
        row["position_ids"].extend(range(len(ids)))
        row["seq_lengths"].append(len(ids))
    return rows'''
COSINE_OTHER = '''def cosine_with_warmup_lr(step, total_steps, warmup_steps, peak_lr):
    if warmup_steps and step < warmup_steps:
        return peak_lr * (step / warmup_steps)
    done = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * peak_lr * (1 + math.cos(done * math.pi))'''

# (student, notebook, todo, the TODO cell's new source or None for the stub, status, words the message must hold)
CASES = [
    ("01-right", "01_setup_and_hardware", "01.batch_math", solution_cell("01.batch_math"), "pass", "batch arithmetic"),
    ("01-right-other", "01_setup_and_hardware", "01.batch_math", BATCH_MATH_OTHER, "pass", "batch arithmetic"),
    ("01-warmup-int", "01_setup_and_hardware", "01.batch_math",
     solution_cell("01.batch_math").replace("return math.ceil(total_steps * ratio)", "return int(total_steps * ratio)"),
     "wrong", "warmup_steps("),
    ("01-unfilled", "01_setup_and_hardware", "01.batch_math", None, "not done", "not implemented yet"),
    ("03-right", "03_chat_formatting", "03.format_chatml", solution_cell("03.format_chatml"), "pass", "format_chatml"),
    ("03-right-other", "03_chat_formatting", "03.format_chatml", CHATML_OTHER, "pass", "format_chatml"),
    ("03-no-system", "03_chat_formatting", "03.format_chatml",
     CHATML_OTHER.replace('if not turns or turns[0]["role"] != "system"', "if False"), "wrong", "system"),
    ("03-unfilled", "03_chat_formatting", "03.format_chatml", None, "not done", "not implemented yet"),
    ("04-right", "04_loss_masking", "04.build_labels", solution_cell("04.build_labels"), "pass", "labels train exactly"),
    ("04-right-loop", "04_loss_masking", "04.build_labels", BUILD_LABELS_LOOP, "pass", "labels train exactly"),
    ("04-minus-one", "04_loss_masking", "04.build_labels", BUILD_LABELS_LOOP.replace("-100", "-1"), "wrong",
     "you put -1 where assistant_mask is 0"),
    ("04-zero", "04_loss_masking", "04.build_labels", BUILD_LABELS_LOOP.replace("-100", "0"), "wrong",
     "you put 0 where assistant_mask is 0"),
    ("04-inverted", "04_loss_masking", "04.build_labels", BUILD_LABELS_LOOP.replace("== 1", "== 0"), "wrong",
     "your mask is inverted"),
    ("04-shifted", "04_loss_masking", "04.build_labels", BUILD_LABELS_LOOP.replace("    return labels",
                                                                                  "    return labels[1:] + [-100]"),
     "wrong", "shifted by one token to the left"),
    ("04-unfilled", "04_loss_masking", "04.build_labels", None, "not done", "not implemented yet"),
    ("04-endless", "04_loss_masking", "04.build_labels",
     "def build_labels(input_ids, assistant_mask):\n    while True:\n        pass", "error",
     f"no verdict after {TIMEOUT_S:g} s"),
    ("04-cell-raises", "04_loss_masking", "04.build_labels", "labels = build_labels(ids, mask)\n", "error",
     "your TODO cell raised NameError"),
    ("04-function-raises", "04_loss_masking", "04.build_labels",
     "def build_labels(input_ids, assistant_mask):\n    return [input_ids[i + 1] for i in range(len(input_ids))]",
     "wrong", "build_labels raised IndexError"),
    ("04-renamed", "04_loss_masking", "04.build_labels", BUILD_LABELS_LOOP.replace("def build_labels", "def labels_of"),
     "error", "does not define build_labels"),
    ("05-right", "05_packing", "05.pack_examples", solution_cell("05.pack_examples"), "pass", "pack_examples passes"),
    ("05-right-first-fit", "05_packing", "05.pack_examples", PACK_FIRST_FIT, "pass", "pack_examples passes"),
    ("05-positions-run-on", "05_packing", "05.pack_examples",
     PACK_FIRST_FIT.replace("range(len(ids))", "range(len(row['position_ids']), len(row['position_ids']) + len(ids))"),
     "wrong", "position"),
    ("05-unfilled", "05_packing", "05.pack_examples", None, "not done", "not implemented yet"),
    ("06-right", "06_sft_trainer", "06.sft_config", solution_cell("06.sft_config"), "pass", "SFTConfig fits"),
    ("06-right-own-lr", "06_sft_trainer", "06.sft_config", CONFIG_OTHER_LR, "pass", "note: learning_rate is 0.0001"),
    ("06-no-assistant-only", "06_sft_trainer", "06.sft_config",
     solution_cell("06.sft_config").replace("    assistant_only_loss=True,\n", ""), "wrong",
     "assistant_only_loss is False; set assistant_only_loss=True"),
    ("06-bf16-left-out", "06_sft_trainer", "06.sft_config",
     solution_cell("06.sft_config").replace("    bf16=recipe.bf16,\n", ""), "wrong", "bf16 is True; set bf16=False"),
    ("06-unfilled", "06_sft_trainer", "06.sft_config", None, "not done", "its cell still raises NotImplementedError"),
    ("08-right", "08_lr_schedulers", "08.cosine_schedule", solution_cell("08.cosine_schedule"), "pass", "cosine"),
    ("08-right-other", "08_lr_schedulers", "08.cosine_schedule", COSINE_OTHER, "pass", "cosine"),
    ("08-no-warmup", "08_lr_schedulers", "08.cosine_schedule",
     COSINE_OTHER.replace("if warmup_steps and step < warmup_steps", "if False"), "wrong", "warmup"),
    ("08-unfilled", "08_lr_schedulers", "08.cosine_schedule", None, "not done", "not implemented yet"),
    # the other graded TODOs: the reference answer, a named mistake, the stub
    ("04m-right", "04_loss_masking", "04.assistant_mask_from_ids", solution_cell("04.assistant_mask_from_ids"), "pass",
     "your mask from the token ids alone equals"),
    ("04m-header-marked", "04_loss_masking", "04.assistant_mask_from_ids",
     solution_cell("04.assistant_mask_from_ids").replace("            i += len(header)\n", ""), "wrong", "header"),
    ("04m-unfilled", "04_loss_masking", "04.assistant_mask_from_ids", None, "not done", "not implemented yet"),
    ("06p-right", "06_sft_trainer", "06.predict_run", solution_cell("06.predict_run"), "pass", "your predictions match"),
    ("06p-floor", "06_sft_trainer", "06.predict_run",
     solution_cell("06.predict_run").replace("math.ceil(batches_per_epoch / accum)", "batches_per_epoch // accum"),
     "wrong", "the last, partial group still steps"),
    ("06p-unfilled", "06_sft_trainer", "06.predict_run", None, "not done", "not implemented yet"),
    ("09-right", "09_before_after", "09.behaviour_scores", solution_cell("09.behaviour_scores"), "pass",
     "behaviour_scores gives"),
    ("09-percent", "09_before_after", "09.behaviour_scores",
     solution_cell("09.behaviour_scores").replace(") / n,", ") / n * 100,"), "wrong", "percent"),
    ("09-unfilled", "09_before_after", "09.behaviour_scores", None, "not done", "not implemented yet"),
    ("13-right", "13_share_model", "13.generation_config", solution_cell("13.generation_config"), "pass",
     "generation config: stops at <|im_end|>"),
    ("13-sampling", "13_share_model", "13.generation_config",
     solution_cell("13.generation_config").replace("do_sample=False", "do_sample=True"), "wrong", "do_sample is True"),
    ("13-unfilled", "13_share_model", "13.generation_config", None, "not done", "not implemented yet"),
]
# broken files for 04, each with its own reason: (student, how the file is broken, status, words of the message)
BROKEN = [
    ("04-check-removed", "check cell removed", "pass", "graded with the release's check"),
    ("04-metadata-lost", "metadata lost", "pass", "labels train exactly"),
    ("04-invalid-json", "invalid JSON", "error", "not a notebook: the file is not valid JSON"),
    ("04-other-notebook", "another notebook", "error", "this file is notebook 05_packing, not 04_loss_masking"),
    ("04-cell-deleted", "TODO cell deleted", "error", "no TODO cell for 04.build_labels"),
]


def _notebook(release_dir: Path, name: str) -> dict:
    return json.loads((release_dir / "notebooks" / f"{name}.ipynb").read_text())


def _todo_of(cell: dict) -> str | None:
    return cell["metadata"].get("sft_lab", {}).get("todo")


def _filled(release_dir: Path, name: str, todo: str, source: str | None) -> dict:
    nb = _notebook(release_dir, name)
    for cell in nb["cells"]:
        if _todo_of(cell) == todo and source is not None:
            cell["source"] = source
    return nb


def _broken(release_dir: Path, how: str) -> str:
    """The text of a 04 submission broken in the way `how` says (the rest right)."""
    nb = _filled(release_dir, "04_loss_masking", "04.build_labels", BUILD_LABELS_LOOP)
    if how == "check cell removed":
        nb["cells"] = [c for c in nb["cells"] if "check_build_labels(build_labels" not in "".join(c["source"])]
    elif how == "metadata lost":  # e.g. copied cell by cell into a fresh notebook
        for cell in nb["cells"]:
            cell["metadata"] = {}
    elif how == "invalid JSON":
        return json.dumps(nb)[:-200]  # cut off, as a failed upload leaves it
    elif how == "another notebook":
        nb = _notebook(release_dir, "05_packing")
    elif how == "TODO cell deleted":
        nb["cells"] = [c for c in nb["cells"] if _todo_of(c) != "04.build_labels"]
    return json.dumps(nb)


def hand_in(tmp: Path, open_ids: str, cases: list[tuple]) -> tuple[Path, Path]:
    """(the release with `open_ids` open, the submissions folder): each case's notebook, its TODO cell replaced by the
    case's source (None: the stub), in a subfolder named after the student."""
    release_dir = tmp / "release"
    release.write_release(release_dir, release.parse_todos(open_ids, catalogue()), "git+https://github.com/u/c@t1")
    subs = tmp / "submissions"
    for student, name, todo, source, _, _ in cases:
        (subs / student).mkdir(parents=True)
        (subs / student / f"{name}.ipynb").write_text(json.dumps(_filled(release_dir, name, todo, source)))
    return release_dir, subs


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """(rows by (student, todo), the output folder): one release, every case handed in, one grading run."""
    tmp = tmp_path_factory.mktemp("grade")
    release_dir, subs = hand_in(tmp, OPEN, CASES)
    for student, how, _, _ in BROKEN:  # file-name prefixes this time, as a flat upload folder holds them
        (subs / f"{student}_04_loss_masking.ipynb").write_text(_broken(release_dir, how))
    out = tmp / "out"
    rows, ungraded = grade.grade(subs, out, release_dir, timeout=TIMEOUT_S)
    return {(r["student"], r["todo"]): r for r in rows}, out, ungraded


@pytest.mark.slow
@pytest.mark.parametrize("student, todo, status, words",
                         [(c[0], c[2], c[4], c[5]) for c in CASES] + [(b[0], "04.build_labels", b[2], b[3])
                                                                      for b in BROKEN])
def test_each_submission_lands_in_its_status_with_its_message(graded, student, todo, status, words):
    row = graded[0][(student, todo)]
    assert (row["status"], words in row["message"]) == (status, True), row["message"]


@pytest.mark.slow
def test_gradebook_has_one_row_per_student_and_todo_and_a_summary(graded):
    rows, out, ungraded = graded
    with open(out / "gradebook.csv", newline="") as handle:
        table = list(csv.DictReader(handle))
    assert list(table[0]) == list(grade.COLUMNS)
    students = {r["student"] for r in table}
    todos = {r["todo"] for r in table}
    assert len(table) == len(students) * len(todos) and {r["status"] for r in table} <= set(grade.STATUSES)
    assert ("04-right", "05.pack_examples") in rows and rows[("04-right", "05.pack_examples")]["status"] == "not done"
    summary = (out / "summary.html").read_text()
    assert "your mask is inverted" in summary and "<h3>04.build_labels</h3>" in summary
    assert ungraded == []  # the release opened only gradable TODOs


@pytest.mark.slow
def test_readme_sample_gradebook_comes_from_this_table(graded):
    """The instructor section's sample rows are real rows of this run (re-run the test and copy them after a change)."""
    with open(graded[1] / "gradebook.csv", newline="") as handle:
        produced = set(handle.read().splitlines())
    readme = (ROOT / "README.md").read_text()
    sample = re.search(r"```csv\n(student,notebook,todo,status,message\n.*?)```", readme, re.S)
    assert sample, "README.md's instructor section shows a ```csv gradebook excerpt"
    missing = [line for line in sample.group(1).splitlines() if line not in produced]
    assert missing == [], missing


def test_submissions_are_attributed_by_folder_or_prefix(tmp_path):
    names = ["04_loss_masking", "05_packing"]
    (tmp_path / "ada").mkdir()
    shutil.copy(ROOT / "notebooks" / "04_loss_masking.ipynb", tmp_path / "ada" / "Copy of 04_loss_masking (1).ipynb")
    shutil.copy(ROOT / "notebooks" / "05_packing.ipynb", tmp_path / "bo-05_packing.ipynb")
    shutil.copy(ROOT / "notebooks" / "05_packing.ipynb", tmp_path / "mystery.ipynb")
    found = {(s.student, s.notebook, s.problem) for s in grade.find_submissions(tmp_path, names)}
    assert found == {("ada", "04_loss_masking", ""), ("bo", "05_packing", ""), ("mystery", "05_packing", "")}


def test_ungraded_todos_are_listed_with_their_reason():
    costs = {t.id: t.cost for t in catalogue()}
    assert costs["04.build_labels"] == "setup cell + tokenizer" and costs["06.sft_config"] == "setup cell only"
    assert costs["07.loss_plot"].startswith("not graded without --run: the notebook's setup cell trains")
    assert costs["11.masked_lm_loss"] == ("setup cell + 4 notebook cell(s) making logits, batch, trainer_loss, once "
                                          "per grading run")
    assert costs["09.reply_loss"] == "setup cell + tokenizer + tuned_model"  # the base model stands in: no training


# ------------------------------------------------------------------ the TODOs that need the model (or its forward)
# Graded with the notebook's own cells that make what the check reads (the model, 11's trainer, batch and logits),
# run once per notebook before the submissions are forked from there; never a cell that trains or generates (09's
# tuned model: the base model stands in, the check compares the TODO with the reference on the model it gets).
MODEL_OPEN = "02,09.reply_loss,10,11,12,14.diagnosis,14.fix_prompt_trained"
MODEL_TIMEOUT_S = 90.0
MODEL_CASES = [
    ("02-right", "02_baseline_generation", "02.generate_answers", solution_cell("02.generate_answers"), "pass",
     "left-padded greedy replies match one-at-a-time generation"),
    ("02-right-padded", "02_baseline_generation", "02.generate_answers",
     solution_cell("02.generate_answers").replace('tokenizer.padding_side = "left"', 'tokenizer.padding_side = "right"'),
     "wrong", "left"),
    ("02-unfilled", "02_baseline_generation", "02.generate_answers", None, "not done", "not implemented yet"),
    ("09r-right", "09_before_after", "09.reply_loss", solution_cell("09.reply_loss"), "pass", "your reply loss equals"),
    ("09r-unfilled", "09_before_after", "09.reply_loss", None, "not done", "not implemented yet"),
    ("10-right", "10_sanity_protocol", "10.preflight_clean", solution_cell("10.preflight_clean"), "pass",
     "preflight passes"),
    ("10-prompt-trained", "10_sanity_protocol", "10.preflight_clean",
     solution_cell("10.preflight_clean").replace("assistant_only_loss=True, ", ""), "wrong", "assistant_only_loss"),
    ("10-unfilled", "10_sanity_protocol", "10.preflight_clean", None, "not done",
     "its cell still raises NotImplementedError"),
    ("11-right", "11_custom_accelerate_loop", "11.masked_lm_loss", solution_cell("11.masked_lm_loss"), "pass",
     "masked_lm_loss"),
    ("11-no-shift", "11_custom_accelerate_loop", "11.masked_lm_loss",
     solution_cell("11.masked_lm_loss").replace("logits[:, :-1, :]", "logits").replace("labels[:, 1:]", "labels"),
     "wrong", "shift"),
    ("11-unfilled", "11_custom_accelerate_loop", "11.masked_lm_loss", None, "not done", "not implemented yet"),
    ("12-right", "12_lora", "12.lora_config", solution_cell("12.lora_config"), "pass", "LoraConfig"),
    ("12-attention-only", "12_lora", "12.lora_config",
     solution_cell("12.lora_config").replace(', "gate_proj", "up_proj", "down_proj"', ""), "wrong", "MLP"),
    ("12-unfilled", "12_lora", "12.lora_config", None, "not done", "not implemented yet"),
    ("14-right", "14_diagnose_the_broken_run", "14.diagnosis", solution_cell("14.diagnosis"), "pass",
     "all 7 cases diagnosed"),
    ("14-swapped", "14_diagnose_the_broken_run", "14.diagnosis", solution_cell("14.diagnosis").replace(
        '3: "stop_token_masked"', '3: "SWAP"').replace('7: "prompt_trained"', '7: "stop_token_masked"').replace(
        '3: "SWAP"', '3: "prompt_trained"'), "wrong", "case 3 is not prompt_trained: the assistant's check for it passes"),
    ("14-unfilled", "14_diagnose_the_broken_run", "14.diagnosis", None, "not done", "NotImplementedError"),
    ("14f7-right", "14_diagnose_the_broken_run", "14.fix_prompt_trained", solution_cell("14.fix_prompt_trained"), "pass",
     "case 7 fixed"),
    ("14f7-still", "14_diagnose_the_broken_run", "14.fix_prompt_trained",
     solution_cell("14.fix_prompt_trained").replace("assistant_only_loss=True", "learning_rate=1e-4"), "wrong",
     "case 7's bug is still there"),
]


@pytest.fixture(scope="module")
def graded_with_model(tmp_path_factory):
    """Rows by (student, todo) of one grading run over MODEL_CASES, and the worker's log."""
    tmp = tmp_path_factory.mktemp("grade-model")
    release_dir, subs = hand_in(tmp, MODEL_OPEN, MODEL_CASES)
    rows, ungraded = grade.grade(subs, tmp / "out", release_dir, timeout=MODEL_TIMEOUT_S)
    return {(r["student"], r["todo"]): r for r in rows}, tmp / "out" / "work", ungraded


@pytest.mark.slow
@pytest.mark.parametrize("student, todo, status, words", [(c[0], c[2], c[4], c[5]) for c in MODEL_CASES])
def test_model_todos_land_in_their_status_with_their_message(graded_with_model, student, todo, status, words):
    row = graded_with_model[0][(student, todo)]
    assert (row["status"], words in row["message"]) == (status, True), row["message"]


@pytest.mark.slow
def test_model_todos_load_the_model_once_per_notebook_and_never_train(graded_with_model):
    rows, work, ungraded = graded_with_model
    log = (work / "worker.log").read_text()
    assert ungraded == []
    assert all(r["status"] != "error" for r in rows.values()), [r["message"] for r in rows.values()]
    assert log.count("setup cells and stand-ins ran") == 6, log  # one setup per notebook, every submission forked
    trained = [str(p) for pattern in ("checkpoint-*", "trainer_state.json", "*.safetensors") for p in work.rglob(pattern)]
    assert trained == [], trained


# ------------------------------------------------------------------------ 07: graded from a finished run's metrics
LOSS_PLOT_CASES = [
    ("07-right", "07_loss_curves", "07.loss_plot", solution_cell("07.loss_plot"), "pass", "loss plot"),
    ("07-no-eval-line", "07_loss_curves", "07.loss_plot", solution_cell("07.loss_plot").replace(
        '    ax.plot(*zip(*evals), label="eval loss", marker="s")\n', ""), "wrong", "eval"),
    ("07-unfilled", "07_loss_curves", "07.loss_plot", None, "not done", "its cell still raises NotImplementedError"),
]


@pytest.mark.slow
def test_loss_plot_is_graded_from_a_stored_run_and_listed_without_one(tmp_path, series_result):
    """07's setup cell trains the reference run when its run folder has none: given a finished run (`--run`), the
    grader copies that run's metrics into the setup folder and nothing trains; without one, 07 is listed, not graded."""
    stored = series_result("metrics", "training.json")
    if stored is None:
        pytest.skip("needs this session's ci series (tests/test_notebooks.py runs it first in ./lab.sh test)")
    release_dir, subs = hand_in(tmp_path, "07", LOSS_PLOT_CASES)
    rows, ungraded = grade.grade(subs, tmp_path / "out", release_dir, timeout=30.0, stored_run=stored.parents[1])
    found = {r["student"]: r for r in rows}
    for student, _, _, _, status, words in LOSS_PLOT_CASES:
        assert (found[student]["status"], words in found[student]["message"]) == (status, True), found[student]
    assert ungraded == [] and not list((tmp_path / "out" / "work").rglob("checkpoint-*"))
    rows, ungraded = grade.grade(subs, tmp_path / "out-without", release_dir, timeout=30.0)
    assert rows == [] and [t.id for t in ungraded] == ["07.loss_plot"] and "--run" in ungraded[0].cost


def test_a_stored_run_without_the_reference_metrics_is_refused(tmp_path):
    (tmp_path / "metrics").mkdir()
    with pytest.raises(ValueError, match=r"no metrics/training.json there; pass the run folder of a finished"):
        grade.grade(tmp_path, tmp_path / "out", stored_run=tmp_path)
