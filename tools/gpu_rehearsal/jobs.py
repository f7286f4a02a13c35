"""The rehearsal's jobs: each solution notebook once per recipe, capped in steps, in dependency order, with its time estimate.
"""

from __future__ import annotations

import ast
import dataclasses
import json
from pathlib import Path
from typing import Any

from tools.gpu_rehearsal.common import PROFILE, RECIPES


# --------------------------------------------------------------------------------------------- notebooks
def steps_caps(steps: int) -> dict[str, dict[str, Any]]:
    """Per notebook prefix: the parameters that cap its work (``steps`` optimizer steps per training run).

    >>> steps_caps(4)["06"], steps_caps(4)["11"]
    ({'MAX_STEPS': 4}, {'MICRO_BATCHES': 8, 'MICRO_BATCH_SIZE': 4, 'GRAD_ACCUM': 2})
    """
    return {
        "02": {"N_HELDOUT": 4, "MAX_NEW_TOKENS": 16, "BATCH_SIZE": 8},  # 7 prompts x 16 new tokens
        "06": {"MAX_STEPS": steps},  # the main run: its evals and checkpoints follow (shares of the steps)
        "07": {"OVERFIT_STEPS": steps},
        "08": {"COMPARE_STEPS": steps, "COMPARE_BATCH": 4, "COMPARE_MAX_LENGTH": 256},  # six mini-runs
        "09": {"N_HELDOUT": 4, "MAX_NEW_TOKENS": 16},  # used only if 02's baseline is missing
        "10": {"OVERFIT_STEPS": steps, "SHORT_STEPS": steps},
        "11": {"MICRO_BATCHES": 2 * steps, "MICRO_BATCH_SIZE": 4, "GRAD_ACCUM": 2},  # `steps` optimizer steps
        # MEASURE_MEMORY stays on: its two child processes time 3 steps. RETENTION_RUNS off: on a GPU they are two
        # reference-length runs (not cut by MAX_STEPS); the CI's Ampere pass trains them at smoke size instead
        "12": {"MAX_STEPS": steps, "N_HELDOUT": 4, "RETENTION_RUNS": False},
        "13": {"MAX_NEW_TOKENS": 16},  # PUSH_TO_HUB stays False (no hub from the machine)
    }


# Notebooks that need another's artifacts; without them they would train the uncapped reference run (skipped then).
DEPENDS = {"07": ("06",), "09": ("02", "06"), "12": ("06",), "13": ("06",)}
# Notebooks that read another's metrics when present (else they measure again or say "not measured"): wait for it.
AFTER = {"12": ("09",), "13": ("09", "10")}
# Estimated seconds per notebook on an H200 with 4 steps (kernel start and imports ~8 s included). No GPU has run
# the rehearsal yet: these are guesses, to be replaced by the first run's figures (gpu_rehearsal.json).
ESTIMATE_S = {"01": 12, "02": 20, "03": 10, "04": 15, "05": 20, "06": 45, "07": 20, "08": 40, "09": 35, "10": 40,
              "11": 18, "12": 45, "13": 25, "14": 30}
DEFAULT_ESTIMATE_S = 40  # a notebook added since (said in the plan)
ESTIMATE_OTHER_S = {"install": 45, "model": 10, "gpu_check": 60, "pytest_gpu": 40, "archive": 10}


def declared_parameters(notebook: Path) -> set[str]:
    """Names assigned in the notebook's cell tagged ``parameters`` (empty when it has none)."""
    cells = json.loads(notebook.read_text())["cells"]
    for cell in cells:
        if cell["cell_type"] == "code" and "parameters" in cell.get("metadata", {}).get("tags", []):
            tree = ast.parse("".join(cell["source"]))
            return {t.id for node in tree.body if isinstance(node, (ast.Assign, ast.AnnAssign))
                    for t in (node.targets if isinstance(node, ast.Assign) else [node.target]) if isinstance(t, ast.Name)}
    return set()


def parameter_problems(notebook: Path, parameters: dict[str, Any]) -> list[str]:
    """One line per parameter that ``notebook``'s parameters cell does not declare (papermill would add it unseen)."""
    declared = declared_parameters(notebook)
    if not declared:
        return [f"{notebook.name}: no cell tagged 'parameters'; papermill cannot set {', '.join(sorted(parameters))}"]
    return [f"{notebook.name}: parameter {name!r} is not declared in its parameters cell (declared: "
            f"{', '.join(sorted(declared))}); drop it from tools/gpu_rehearsal/jobs.py's caps or declare it"
            for name in sorted(set(parameters) - declared)]


@dataclasses.dataclass
class Job:
    """One notebook under one recipe."""

    recipe: str
    notebook: Path
    parameters: dict[str, Any]
    status: str = "pending"  # pending, running, ok, failed, timeout, skipped
    seconds: float | None = None
    error: str = ""
    peak: dict[str, Any] = dataclasses.field(default_factory=dict)
    started: float | None = None
    ended: float | None = None
    pid: int | None = None

    @property
    def prefix(self) -> str:
        return self.notebook.name[:2]

    @property
    def name(self) -> str:
        return f"{self.recipe}/{self.notebook.stem}"


def plan_jobs(solutions: Path, steps: int, run_root: Path, model: str) -> list[Job]:
    """Every solution notebook for each recipe, with PROFILE, RUN_DIR, MODEL_ID and the caps it declares."""
    from tools.series import solution_notebooks

    caps = steps_caps(steps)
    jobs = []
    for recipe in RECIPES:
        for notebook in solution_notebooks(solutions):
            parameters = {"PROFILE": PROFILE, "RUN_DIR": str(run_root / recipe), "MODEL_ID": model,
                          **caps.get(notebook.name[:2], {})}
            jobs.append(Job(recipe, notebook, parameters))
    return jobs


def notebook_problems(solutions: Path, steps: int) -> list[str]:
    """Every notebook exists and declares every parameter passed; every capped prefix has its notebook."""
    from tools.series import solution_notebooks

    problems = []
    try:
        notebooks = solution_notebooks(solutions)
    except SystemExit as error:
        return [str(error)]
    prefixes = {nb.name[:2] for nb in notebooks}
    named = set(steps_caps(steps)) | set(DEPENDS) | set(AFTER) | {d for ds in [*DEPENDS.values(), *AFTER.values()] for d in ds}
    for prefix in sorted(named):
        if prefix not in prefixes:
            problems.append(f"caps or dependencies name notebook {prefix}, but there is no {solutions.name}/{prefix}_*.ipynb")
    for job in plan_jobs(solutions, steps, Path("/tmp/runs"), "/tmp/model")[: len(notebooks)]:
        problems += parameter_problems(job.notebook, job.parameters)
    return problems
