"""The lab series as a product: generated copies in sync, Colab cells, current API, and every solution executed."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import json
import os
import re
import time
from pathlib import Path

import nbformat
import pytest

from tools import colab, nbtools, runtime_estimate
from tools.series import execute

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = sorted((ROOT / "solutions").glob("[0-9][0-9]_*.ipynb"))
EXPECTED_SERIES = ["01", "02", "03", "04", "05", "06", "07", "08", "09", "10", "11", "12", "13", "14"]


def _code_cells(path: Path) -> list[str]:
    return [c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]


def test_series_is_complete_and_ordered():
    assert [p.name[:2] for p in SOLUTIONS] == EXPECTED_SERIES


def test_student_notebooks_are_generated_and_in_sync():
    problems = nbtools.check(ROOT / "solutions", ROOT / "notebooks")
    assert problems == [], "\n".join(problems) + "\nrun: python -m tools.nbtools clean && python -m tools.nbtools build"


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.stem)
def test_colab_badge_and_install_cell(path):
    cells = nbformat.read(path, as_version=4).cells
    assert cells[0].source.splitlines()[0] == colab.badge_markdown(f"notebooks/{path.name}")
    assert cells[1].source == colab.install_cell_source()
    assert cells[1].metadata.get("cellView") == "form"  # Colab folds it to its title and two settings
    assert "parameters" in cells[2].metadata.get("tags", [])


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.stem)
def test_first_cell_states_the_measured_run_time(path):
    """A student knows before Run All how long it takes, with the machine's reference step to scale it."""
    intro = nbformat.read(path, as_version=4).cells[0].source
    assert "*Run time:*" in intro and "reference step of" in intro and " s" in intro.split("*Run time:*")[1][:20]


@pytest.fixture(scope="module")
def t4_estimates() -> dict[str, tuple[float, float]]:
    return runtime_estimate.t4_estimates()


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.stem)
def test_first_cell_states_what_the_speed_model_estimates_for_a_t4(path, t4_estimates):
    """The Colab T4 range is the speed model's for today's recipe and data, and says it is an estimate."""
    intro = nbformat.read(path, as_version=4).cells[0].source
    phrase = runtime_estimate.minutes_phrase(*t4_estimates[path.name[:2]])
    assert f"On a Colab T4, `colab` profile: {phrase}, estimated by a speed model" in intro, (
        f"{path.name}: the first cell's T4 time is stale; the speed model now says {phrase!r} "
        "(python -m tools.runtime_estimate)")
    assert "not yet timed on a T4" in intro


@pytest.mark.parametrize("path", [p for p in SOLUTIONS if p.name[:2] in runtime_estimate.NEEDS_REFERENCE_RUN],
                         ids=lambda p: p.stem)
def test_first_cell_says_what_a_runtime_without_06s_model_costs(path, t4_estimates):
    """Colab gives each notebook its own runtime: a notebook that needs 06's model says up front that it trains the
    reference run first when the model is not there, and what that costs on a T4."""
    intro = nbformat.read(path, as_version=4).cells[0].source
    phrase = runtime_estimate.reference_run_phrase(t4_estimates)
    opening = ("In a Colab runtime without notebook 06's model (each notebook gets its own runtime; `USE_DRIVE = True` "
               "in the install cell keeps it on Google Drive), it trains the reference run")
    said = re.escape(opening) + " (first|after the adapters): " + re.escape(f"{phrase} on a T4.")  # 12: adapters first
    assert re.search(said, " ".join(intro.split())), f"{path.name}: say what a runtime without 06's model costs ({phrase})"


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.stem)
def test_every_solution_has_a_todo_and_questions(path):
    nb = nbformat.read(path, as_version=4)
    assert any("solution" in c.metadata.get("tags", []) for c in nb.cells), "no TODO cell"
    assert "Check your understanding" in nb.cells[-1].source or any(
        "Check your understanding" in c.source for c in nb.cells if c.cell_type == "markdown")
    assert "<details>" in "".join(c.source for c in nb.cells if c.cell_type == "markdown")


def _keywords_passed_to(names: set[str]) -> list[tuple[str, str, str]]:
    """(notebook, callee, keyword) for every call to one of ``names`` in the solution notebooks."""
    found = []
    for path in SOLUTIONS:
        for source in _code_cells(path):
            try:
                tree = nbtools.parse_cell(source)
            except SyntaxError:
                continue
            for node in ast.walk(tree) if tree else []:
                if isinstance(node, ast.Call):
                    callee = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
                    if callee in names:
                        found += [(path.name, callee, kw.arg) for kw in node.keywords if kw.arg]
    return found


def test_notebooks_use_only_current_api():
    """Every keyword the notebooks pass to SFTConfig / SFTTrainer / from_pretrained is accepted today."""
    from trl import SFTConfig, SFTTrainer

    from labhelpers.base.drift import REMOVED_ARGUMENTS

    accepted = {
        "SFTConfig": {f.name for f in dataclasses.fields(SFTConfig)},
        "SFTTrainer": set(inspect.signature(SFTTrainer.__init__).parameters),
    }
    calls = _keywords_passed_to({"SFTConfig", "SFTTrainer", "from_pretrained"})
    assert calls, "found no SFTConfig/SFTTrainer call in the notebooks"
    bad = []
    for notebook, callee, keyword in calls:
        if callee in accepted and keyword not in accepted[callee]:
            bad.append(f"{notebook}: {callee}({keyword}=...) is not accepted by the installed version")
        if callee == "from_pretrained" and keyword in REMOVED_ARGUMENTS:
            bad.append(f"{notebook}: from_pretrained({keyword}=...) is gone")
    # a drift demonstration passes an old name on purpose, inside try/except TypeError
    demos = {(n, c, k) for n, c, k in calls if k in REMOVED_ARGUMENTS}
    bad = [b for b in bad if not any(b.startswith(f"{n}: {c}({k}=") for n, c, k in demos)]
    assert bad == [], "\n".join(bad)
    for keyword in REMOVED_ARGUMENTS:
        if keyword != "tokenizer":
            assert keyword not in accepted["SFTConfig"], f"{keyword} is accepted again: update labhelpers.base.drift"
    assert "tokenizer" not in accepted["SFTTrainer"] and "processing_class" in accepted["SFTTrainer"]


def test_notebooks_that_never_train_do_not_import_the_trainer_or_peft():
    """A notebook without trl or peft imports (02, 03, 09, 13) should not pay ~3.5 s at every start for them through
    labhelpers (transformers.trainer_utils imports peft), neither on import nor in its setup call."""
    import re
    import subprocess
    import sys

    modules = set()
    for path in SOLUTIONS:
        code = "\n".join(_code_cells(path))
        if not re.search(r"^\s*(from|import) (trl|peft)\b", code, re.M):
            modules |= set(re.findall(r"^\s*from (labhelpers[\w.]*) import", code, re.M))
    assert {"labhelpers.run.inputs", "labhelpers.run.generation"} <= modules, sorted(modules)
    # and start_lesson called, as every notebook's setup cell does (transformers.set_seed imported peft there: ~1.8 s)
    probe = (f"import sys, tempfile, {', '.join(sorted(modules))}; "
             "labhelpers.run.inputs.start_lesson('ci', run_dir=tempfile.mkdtemp()); "
             "print(sorted(m for m in ('peft', 'trl', 'transformers.trainer_utils') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    assert out.strip() == "[]", f"importing {sorted(modules)} pulls in {out.strip()}"


# ---------------------------------------------------------------------------------------------- papermill
# Students open notebooks in any order. 09 comes before 06 here: it finds no tuned model and trains the reference run
# (recipe.reference_config); 06 must then resume that finished run (same configuration fingerprint) instead of
# refusing it or training again, and 07 reads its curves. One training run serves the whole series.
OUT_OF_ORDER = ["01", "02", "03", "04", "05", "09", "06", "07", "08", "10", "11", "12", "13", "14"]
PAPERMILL_ORDER = sorted(SOLUTIONS, key=lambda p: OUT_OF_ORDER.index(p.name[:2]))
SERIES: dict[str, dict] = {}  # the series executed once, in lanes: {"seconds": ..., "errors": ...}


def test_out_of_order_pass_covers_the_series():
    assert sorted(OUT_OF_ORDER) == EXPECTED_SERIES
    assert OUT_OF_ORDER.index("09") < OUT_OF_ORDER.index("06") < OUT_OF_ORDER.index("07")


@pytest.fixture(scope="module")
def series_pass(request) -> dict[str, dict]:
    """Execute the selected solutions as ``./lab.sh run`` does (two at a time on a CPU with two cores, one torch
    thread each; 09 as soon as 02 is done, as the first of this order to need the reference run, 06, 07 and 13 after
    it; see ``tools.series.execute_in_lanes``), in the ci profile, sharing one run folder; the series' lane check
    compares against the snapshot taken here."""
    from labhelpers.run.folder import write_json
    from tools.series import default_lanes, execute_in_lanes

    if not SERIES:
        if not LANE:
            LANE.update(_lane_snapshot())
        run = Path(os.environ["LAB_RUN_DIR"])
        chosen = {item.callspec.params["path"] for item in request.session.items
                  if getattr(item, "originalname", "") == "test_solution_executes_with_papermill"}
        jobs = [(p, run / "executed" / p.name) for p in PAPERMILL_ORDER if p in chosen]
        (run / "executed").mkdir(parents=True, exist_ok=True)
        lanes, start = default_lanes(), time.perf_counter()
        seconds, errors = execute_in_lanes(jobs, {"PROFILE": "ci", "RUN_DIR": str(run)}, lanes)
        SERIES.update(seconds=seconds, errors=errors)
        write_json(run / "metrics" / "papermill_timings.json", seconds, indent=2)
        write_json(run / "metrics" / "papermill_wall.json", {"wall_s": time.perf_counter() - start, "lanes": lanes})
    return SERIES


@pytest.mark.slow
@pytest.mark.parametrize("path", PAPERMILL_ORDER, ids=lambda p: p.stem)
def test_solution_executes_with_papermill(path, series_pass):
    """Each solution executed without an error in the ci profile, out of series order (09 before 06)."""
    run = Path(os.environ["LAB_RUN_DIR"])
    if path.stem in series_pass["errors"]:
        error = series_pass["errors"][path.stem]
        pytest.fail(f"{path.name}: {type(error).__name__}: {str(error)[:3000]}")
    nb = nbformat.read(run / "executed" / path.name, as_version=4)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert errors == []
    if path.name.startswith("06"):  # after 09's reference run: 06 resumed it, no second run
        checkpoints = sorted(p.name for p in (run / "sft").glob("checkpoint-*"))
        assert "resuming from" in _stdout(nb), f"notebook 06 trained again instead of resuming 09's run ({checkpoints})"
        from labhelpers.model.hardware import detect_recipe

        last = max(int(name.split("-")[1]) for name in checkpoints)  # a finished run is loaded, not trained further
        assert last == detect_recipe("ci").sizes.max_steps, f"the finished run was trained past its end: {checkpoints}"
    print(f"{path.stem}: {series_pass['seconds'][path.stem]:.1f} s")


# The notebooks that run the model outside the Trainer (generation, scoring, checks, demos, the protocol, the custom
# loop, 13's reload in a fresh process), executed under LAB_FORCE_HARDWARE=ampere-cpu: the A100 recipe (bf16 autocast on fp32 weights, flash-attention
# through transformers' own code path, padding-free packing) with a stand-in kernel that raises on fp32 inputs, at
# smoke sizes. A forward outside recipe.autocast() fails here as it would on an A100. Cost: ~40 reference steps.
# 09 runs before 06, as in the series: it trains the reference run (``ensure_tuned_model``: 06's config, watchers and
# samples while training, under the Trainer's autocast), and 06 then loads the finished run instead of training, so
# no Trainer has wrapped the model's forward in autocast (accelerate does that while training) and its sample must
# enter the recipe's autocast itself: the stricter of 06's two paths. 06 used to run twice here, training and then
# loading (44 s + 21 s of the pass's 242 s, measured 2026-12-07); its config is the reference run's (06's check).
AMPERE_CPU = ("02", "05", "09", "06", "10", "11", "12", "13")
AMPERE_CPU_RUNS = [(p, i) for i, n in enumerate(AMPERE_CPU) for p in SOLUTIONS if p.name[:2] == n]
# 12's memory measurement trains 2 steps in two child processes (27 s of the pass's 208 s, measured 2026-12-06): it
# measures this CPU's memory, not the contract, whose training steps 06 (full) and 12's own adapter run already take.
# Its retention runs (a replay mix, a lower learning rate: off by default on a CPU, on by default on a GPU) stay off
# here too (58 s of the pass's 264 s, measured 2026-12-06): they train through the reference run's own config and
# trainer (09 and 06 here) and their one forward outside a Trainer, the replay rows' generation, is checked under the
# contract by tests/test_attention.py::test_the_retention_tables_replay_rows_keep_the_contract.
AMPERE_CPU_PARAMETERS = {"12": {"MEASURE_MEMORY": False, "RETENTION_RUNS": False}}


@pytest.mark.slow
@pytest.mark.parametrize("path,i", AMPERE_CPU_RUNS,
                         ids=[p.stem for p, _ in AMPERE_CPU_RUNS])
def test_solution_keeps_the_ampere_contract(path, i, monkeypatch, tmp_path_factory):
    run = tmp_path_factory.getbasetemp() / "ampere-cpu"  # one run folder: 06, 12 and 13 read the run 09 trained
    out = run / "executed" / f"{i:02d}_{path.name}"
    out.parent.mkdir(parents=True, exist_ok=True)
    monkeypatch.setenv("LAB_FORCE_HARDWARE", "ampere-cpu")  # the kernel papermill starts inherits it
    checkout = _tree(ROOT, REPO_SKIP)
    seconds = execute(path, out, {"RUN_DIR": str(run), **AMPERE_CPU_PARAMETERS.get(path.name[:2], {})})
    # the series' lane check (its home folder included) runs with the series alone; this pass runs beside the unit
    # tests (tools/suite.py), whose tools may write in the home folder meanwhile: the checkout must stay untouched
    changed = _changed(checkout, _tree(ROOT, REPO_SKIP))
    assert changed == [], f"{path.name} under ampere-cpu wrote in the checkout: {changed[:20]}"
    nb = nbformat.read(out, as_version=4)
    errors = [f"{o.ename}: {o.evalue}"[:500] for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.output_type == "error"]
    assert errors == []
    text = _stdout(nb)
    assert "LAB_FORCE_HARDWARE=ampere-cpu" in text and "attention kernels-community/flash-attn2" in text, text[:2000]
    print(f"{path.stem} under ampere-cpu: {seconds:.1f} s")


def _stdout(nb: nbformat.NotebookNode) -> str:
    return "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
                   if o.output_type == "stream")


# ------------------------------------------------------------------------------------------ stays in its lane
# Folders that tools write on their own (kernel connection files, IPython history, matplotlib's font cache) or
# that only hold installed toolchains; the lab's own writes must all land in the run folder or the model cache.
TOOL_OWNED = (".cache/sft-lab", ".cache/matplotlib", ".cache/pip", ".ipython", ".local/share/jupyter", ".jupyter",
              ".config/matplotlib", ".pyenv", ".cargo", ".rustup", ".npm", ".cache/huggingface/hub", ".claude")
LANE: dict[str, dict[str, tuple[int, int]]] = {}


def _tree(root: Path, skip: tuple[str, ...]) -> dict[str, tuple[int, int]]:
    """(size, mtime) of every file under ``root`` except the ``skip`` sub-folders."""
    files = {}
    for folder, dirs, names in os.walk(root):
        rel = os.path.relpath(folder, root)
        dirs[:] = [d for d in dirs if os.path.normpath(os.path.join(rel, d)) not in skip]
        for name in names:
            path = os.path.join(folder, name)
            try:
                info = os.stat(path)
            except OSError:
                continue
            files[os.path.relpath(path, root)] = (info.st_size, info.st_mtime_ns)
    return files


REPO_SKIP = (".git", ".venv", ".venv-ci", "venv", ".pytest_cache")


def _changed(before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]]) -> list[str]:
    """Files added, removed or rewritten between two ``_tree`` snapshots, bytecode caches aside."""
    return sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k) and "__pycache__" not in k)


def _lane_snapshot() -> dict[str, dict[str, tuple[int, int]]]:
    return {"repo": _tree(ROOT, REPO_SKIP), "home": _tree(Path.home(), TOOL_OWNED)}


@pytest.fixture(autouse=False)
def lane_snapshot():
    """Snapshot the checkout and the home folder before the first notebook runs."""
    if not LANE:
        LANE.update(_lane_snapshot())


@pytest.mark.slow
@pytest.mark.usefixtures("lane_snapshot")
def test_series_stayed_in_its_lane():
    """Running every notebook wrote nothing in the checkout or the home folder (outside the model cache)."""
    after = _lane_snapshot()
    for where in ("repo", "home"):
        changed = _changed(LANE[where], after[where])
        assert changed == [], f"the series wrote outside the run folder ({where}): {changed[:20]}"


@pytest.mark.slow
def test_series_command_executes_into_the_run_folder_and_summarises(tmp_path, capsys):
    """``./lab.sh run`` is ``python -m tools.series run``: executed notebooks, timings and a summary."""
    from tools import series

    series.main(["run", "--profile", "ci", "--run-dir", str(tmp_path), "--only", "01", "--no-reference-step"])
    out = capsys.readouterr().out
    assert "01_setup_and_hardware" in out and f"are in {tmp_path}" in out
    assert (tmp_path / "executed" / "01_setup_and_hardware.ipynb").is_file()
    figures = json.loads((tmp_path / "metrics" / "series.json").read_text())
    assert figures["profile"] == "ci" and set(figures["seconds"]) == {"01_setup_and_hardware"}


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.stem)
def test_papermill_parses_every_parameter(path, caplog):
    """papermill reads each parameter (an '=' in a comment makes it skip the line with a warning)."""
    from papermill.translators import PythonTranslator

    cell = next(c for c in nbformat.read(path, as_version=4).cells if "parameters" in c.metadata.get("tags", []))
    names = [line.split("=")[0].strip() for line in cell.source.splitlines() if "=" in line.split("#")[0]]
    with caplog.at_level("WARNING", logger="papermill"):
        parsed = [p.name for p in PythonTranslator.inspect(cell)]
    assert parsed == names and not caplog.records, [r.getMessage() for r in caplog.records]
