"""What a student does, replayed in a live kernel: Run All on the untouched copy, fill the TODO, re-run a cell.

Notebook 11's loop cell mutates an Accelerator, a loader, an optimizer and the weights. Run before the TODO, it fails;
re-run after the fix, it must repeat exactly the run a fresh kernel would do (it once kept the failed run's
accumulation counter and silently ended one micro-batch late). Run twice, it must give the same steps and losses.
"""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = "11_custom_accelerate_loop.ipynb"
PROBE = ("import json; print('RUN=' + json.dumps({'steps': [(h['step'], round(h['loss'], 6)) for h in history], "
         "'n_steps': n_steps, 'micro_batches_seen': accelerator.step, 'grad_accum': grad_accum, "
         "'optimizer_steps': int(next(iter(optimizer.optimizer.state.values()))['step'])}))")


# Two optimizer steps of 2 micro-batches of one row each: enough for the accumulation counters this test checks, at
# a third of the ci profile's loop (6 micro-batches of 2 rows), which notebook 11's papermill run already executes.
SMALL_LOOP = {"MICRO_BATCHES": 4, "MICRO_BATCH_SIZE": 1, "GRAD_ACCUM": 2}


def _solution_of_first_todo() -> str:
    cells = nbformat.read(ROOT / "solutions" / NOTEBOOK, as_version=4).cells
    return next(c.source for c in cells if c.cell_type == "code" and "### BEGIN SOLUTION" in c.source)


def _stdout(cell: nbformat.NotebookNode) -> str:
    return "".join(o.get("text", "") for o in cell.get("outputs", []) if o.output_type == "stream")


def _errors(cell: nbformat.NotebookNode) -> list[str]:
    return [o.ename for o in cell.get("outputs", []) if o.output_type == "error"]


@pytest.mark.slow
def test_loop_cell_rerun_after_the_fix_repeats_a_fresh_run():
    nb = nbformat.read(ROOT / "notebooks" / NOTEBOOK, as_version=4)
    code = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    parameters = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    for name, value in SMALL_LOOP.items():  # the counters under test need two steps, not the lesson's sizes
        assert f"{name} = None" in parameters.source, f"{NOTEBOOK}'s parameters cell lost {name}"
        parameters.source = parameters.source.replace(f"{name} = None", f"{name} = {value}")
    todo = next(i for i in code if "raise NotImplementedError" in nb.cells[i].source)
    loop = next(i for i in code if "fresh_run()" in nb.cells[i].source and "accelerator.backward" in nb.cells[i].source)
    client = NotebookClient(nb, kernel_name="python3", timeout=900, allow_errors=True,
                            resources={"metadata": {"path": str(ROOT / "notebooks")}})
    probe = nbformat.v4.new_code_cell(PROBE)
    nb.cells.append(probe)  # nbclient writes outputs through nb.cells[index]

    def probe_run() -> dict:
        client.execute_cell(probe, len(nb.cells) - 1)
        line = next(x for x in _stdout(probe).splitlines() if x.startswith("RUN="))
        probe.outputs = []
        return json.loads(line.removeprefix("RUN="))

    with client.setup_kernel():
        for i in code:  # Run All on the untouched student copy: the TODO-dependent cells stop with one line
            client.execute_cell(nb.cells[i], i)
        assert _errors(nb.cells[loop]) == ["TodoNotDoneError"], nb.cells[loop].outputs  # one line, no traceback soup

        nb.cells[todo].source = _solution_of_first_todo()  # the student fills the TODO ...
        client.execute_cell(nb.cells[todo], todo)
        assert _errors(nb.cells[todo]) == []
        client.execute_cell(nb.cells[loop], loop)  # ... and re-runs only the loop cell
        assert _errors(nb.cells[loop]) == [], nb.cells[loop].outputs
        first = probe_run()
        client.execute_cell(nb.cells[loop], loop)  # and once more
        second = probe_run()

    n_steps = first["n_steps"]
    assert [step for step, _ in first["steps"]] == list(range(1, n_steps + 1)), first
    # a fresh Accelerator counted exactly this run's micro-batches (the failed run's counter did not shift the groups),
    # and the optimizer stepped once per group, also when the run ends with the loader's last batch (the loop fetches a
    # group ahead: Accelerate's default end-of-loader sync would split the last group into two steps)
    assert first["micro_batches_seen"] == n_steps * first["grad_accum"], first
    assert first["optimizer_steps"] == n_steps, first
    assert second == first, f"re-running the loop cell changed the run: {first} then {second}"
