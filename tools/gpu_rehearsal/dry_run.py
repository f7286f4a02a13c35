"""The dry run (CI too): is everything the rehearsal needs ready here, and what would it run, at what estimated cost.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tools.gpu_rehearsal.common import BUDGET_S, MODEL_DIR, PROFILE, RECIPES, ROOT, TREE_LIMIT_MIB, WHEELS_DIR
from tools.gpu_rehearsal.wheels import WHEEL_PINS, check_wheels, folder_bytes, mib
from tools.gpu_rehearsal.model import check_model_files
from tools.gpu_rehearsal.jobs import AFTER, DEFAULT_ESTIMATE_S, DEPENDS, ESTIMATE_OTHER_S, ESTIMATE_S, notebook_problems, steps_caps


# --------------------------------------------------------------------------------------------- dry run
def tree_bytes() -> int | None:
    """Bytes of what the device tool sends besides carried paths (tracked + untracked-not-ignored), or None."""
    try:
        listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True,
                                timeout=30, check=True).stdout.decode().split("\0")
    except (OSError, subprocess.SubprocessError):
        return None
    return sum((ROOT / p).stat().st_size for p in listed if p and (ROOT / p).is_file())


def plan_lines(steps: int, n_parallel: int, wheels: Path, solutions: Path) -> tuple[list[str], float]:
    """The commands a full run makes, each with its estimated seconds on an H200; and the estimated total."""
    from tools.series import solution_notebooks

    caps = steps_caps(steps)
    try:
        prefixes = [nb.name[:2] for nb in solution_notebooks(solutions)]
    except SystemExit:
        prefixes = []
    estimates = {p: ESTIMATE_S.get(p, DEFAULT_ESTIMATE_S) for p in prefixes}
    lines = [f"{ESTIMATE_OTHER_S['install']:>4} s  {sys.executable.split('/')[-1]} -m pip install --no-index "
             f"--find-links {wheels.name} --no-compile {len(WHEEL_PINS)} pins (trl==1.16.0, ...)",
             f"{ESTIMATE_OTHER_S['model']:>4} s  build SmolLM2-135M from {MODEL_DIR.relative_to(ROOT)}/config.json, "
             "random weights (seed 0), marker RANDOM_WEIGHTS",
             f"{ESTIMATE_OTHER_S['gpu_check']:>4} s  python -m benchmarks.gpu_check --out OUT   (alone)",
             f"{ESTIMATE_OTHER_S['pytest_gpu']:>4} s  python -m pytest -m gpu -q tests   (beside the notebooks)"]
    serial = 0.0
    for recipe in RECIPES:
        for prefix, seconds in estimates.items():
            params = " ".join(f"{k}={v}" for k, v in caps.get(prefix, {}).items())
            waits = DEPENDS.get(prefix, ()) + AFTER.get(prefix, ())
            after = f" after {'+'.join(waits)}" if waits else ""
            guess = "" if prefix in ESTIMATE_S else " (no estimate yet: default)"
            words = [f"LAB_FORCE_HARDWARE={recipe} papermill solutions/{prefix}_*.ipynb PROFILE={PROFILE}", params]
            lines.append(f"{seconds:>4} s  " + " ".join(w for w in words if w) + after + guess)
            serial += seconds

    def finish(prefix: str) -> float:  # earliest end of a notebook after everything it waits for
        waits = DEPENDS.get(prefix, ()) + AFTER.get(prefix, ())
        return estimates.get(prefix, 0) + max((finish(p) for p in waits if p in estimates), default=0)

    critical = max([serial / n_parallel] + [finish(p) for p in estimates])
    total = sum(ESTIMATE_OTHER_S[k] for k in ("install", "model", "gpu_check", "archive")) + critical
    lines.append(f"notebooks: {serial:.0f} s in series, ~{critical:.0f} s with {n_parallel} at a time; "
                 f"estimated total ~{total:.0f} s of the {BUDGET_S} s budget (estimates: no GPU has run it yet)")
    return lines, total


def dry_run(steps: int = 4, n_parallel: int = 4, wheels: Path = WHEELS_DIR, solutions: Path | None = None,
            build: bool = True) -> list[str]:
    """Check that a full run would have everything it needs; print notes and the plan; return the problems."""
    problems, notes = check_wheels(wheels)
    size = tree_bytes()
    if size is not None:
        carried = folder_bytes(wheels) if wheels.is_dir() else 0
        notes.append(f"working tree that travels: {mib(size)} MiB + carried wheels {mib(carried)} MiB = "
                     f"{mib(size + carried)} MiB (limit {TREE_LIMIT_MIB:g} MiB)")
        if mib(size + carried) > TREE_LIMIT_MIB:
            problems.append(f"tree + wheels is {mib(size + carried)} MiB, over the device tool's {TREE_LIMIT_MIB:g} MiB")
    model_problems, model_notes = check_model_files(build)
    problems += model_problems
    notes += model_notes
    problems += notebook_problems(solutions or ROOT / "solutions", steps)
    lines, total = plan_lines(steps, n_parallel, wheels, solutions or ROOT / "solutions")
    if total > BUDGET_S:
        problems.append(f"estimated {total:.0f} s is over the {BUDGET_S} s budget: lower --steps or raise --jobs")
    print("\n".join(notes))
    print("plan (estimated seconds on an H200):\n  " + "\n  ".join(lines))
    print("\n".join(problems) if problems else "dry run: ready")
    return problems
