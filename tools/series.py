"""Run the whole lab series headless: every ``solutions/NN_*.ipynb`` through papermill, in order.

``python -m tools.series run [--profile ci] [--run-dir DIR] [--only 02 06]`` executes each notebook
into ``<run>/executed/``, records per-notebook wall time in ``<run>/metrics/series.json`` and prints a
summary of what the notebooks measured.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from labhelpers.runs import load_metrics, project_root, run_dir, save_metrics


def solution_notebooks(folder: Path, only: list[str] | None = None) -> list[Path]:
    """Solution notebooks in series order, optionally only those whose name starts with one of ``only``."""
    notebooks = sorted(folder.glob("[0-9][0-9]_*.ipynb"))
    if only:
        notebooks = [nb for nb in notebooks if any(nb.name.startswith(prefix) for prefix in only)]
    if not notebooks:
        raise SystemExit(f"no solution notebooks matching {only or 'NN_*.ipynb'} in {folder}")
    return notebooks


def execute(notebook: Path, out: Path, parameters: dict) -> float:
    """Execute one notebook with papermill (cwd = its folder) and return the wall time in seconds."""
    import papermill

    start = time.perf_counter()
    papermill.execute_notebook(
        str(notebook), str(out), parameters=parameters, cwd=str(notebook.parent), progress_bar=False, log_output=False
    )
    return time.perf_counter() - start


def summary_lines(run: Path, timings: dict[str, float]) -> list[str]:
    """Human summary: time per notebook, then the headline numbers the notebooks saved."""
    lines = [f"{name:<32} {seconds:7.1f} s" for name, seconds in timings.items()]
    lines.append(f"{'total':<32} {sum(timings.values()):7.1f} s")
    training = load_metrics(run, "training") or {}
    comparison = load_metrics(run, "before_after") or {}
    if training:
        lines.append(f"train loss {training.get('first_train_loss')} -> {training.get('last_train_loss')}, "
                     f"eval loss {training.get('first_eval_loss')} -> {training.get('last_eval_loss')}")
    if comparison:
        lines.append(f"house-format score: base {comparison.get('base_score')} -> tuned {comparison.get('tuned_score')}")
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tools.series", description=__doc__)
    parser.add_argument("command", choices=["run"])
    parser.add_argument("--profile", default=None, help="ci, colab or full (default: $LAB_PROFILE, else by hardware)")
    parser.add_argument("--run-dir", default=None, help="run folder (default: runs/<profile>)")
    parser.add_argument("--only", nargs="*", help="notebook number prefixes to run, e.g. 02 06")
    args = parser.parse_args(argv)

    from labhelpers.hardware import detect_recipe

    profile = detect_recipe(args.profile).profile
    root = project_root() or Path.cwd()
    run = run_dir(profile, args.run_dir).resolve()
    executed = run / "executed"
    executed.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    for notebook in solution_notebooks(root / "solutions", args.only):
        print(f"running {notebook.name} ...", flush=True)
        timings[notebook.stem] = execute(notebook, executed / notebook.name, {"PROFILE": profile, "RUN_DIR": str(run)})
    save_metrics(run, "series", {"profile": profile, "seconds": timings, "total_seconds": sum(timings.values())})
    print("\n".join(summary_lines(run, timings)))
    print(f"executed notebooks, plots and metrics are in {run}")


if __name__ == "__main__":
    main()
