"""Run the whole lab series headless: every ``solutions/NN_*.ipynb`` through papermill, in order.

``python -m tools.series run [--profile ci] [--run-dir DIR] [--only 02 06] [--lanes 2]`` executes each notebook
into ``<run>/executed/``, records per-notebook wall time in ``<run>/metrics/series.json`` and prints a
summary of what the notebooks measured.

On a CPU with two cores or more it runs two notebooks at a time (``--lanes``), one torch thread each: measured on
the 2-core CI machine, two one-thread training steps side by side take 1.76x one two-thread step, and kernel starts,
imports, tokenizing and generation leave the second core idler still. The notebooks that share the reference run
(:data:`REFERENCE_RUN_USERS`) wait for the first of them, which trains it; notebook 12 does not wait: it trains its
adapters first and asks for the reference run afterwards (a training in progress holds a lock it waits on). 09
waits for 02, whose baseline replies it reads (:data:`STARTS_AFTER`).
"""

from __future__ import annotations

import argparse
import math
import os
import threading
import time
from pathlib import Path
from typing import Callable

from benchmarks.reference_step import in_reference_steps, reference_step_seconds
from labhelpers.run.folder import load_metrics, project_root, run_dir, save_metrics


def solution_notebooks(folder: Path, only: list[str] | None = None) -> list[Path]:
    """Solution notebooks in series order, optionally only those whose name starts with one of ``only``."""
    notebooks = sorted(folder.glob("[0-9][0-9]_*.ipynb"))
    if only:
        notebooks = [nb for nb in notebooks if any(nb.name.startswith(prefix) for prefix in only)]
    if not notebooks:
        raise SystemExit(f"no solution notebooks matching {only or 'NN_*.ipynb'} in {folder}")
    return notebooks


# The kernel's own startup notices (e.g. "running over TCP without encryption" on a local kernel) are not news.
QUIET_KERNEL = ["--IPKernelApp.log_level=ERROR"]


def execute(notebook: Path, out: Path, parameters: dict, progress: bool = False) -> float:
    """Execute one notebook with papermill (cwd = its folder) and return the wall time in seconds.

    ``progress``: one line for the notebook that counts its cells done / total while it runs.
    """
    import papermill

    bar = {"desc": f"{notebook.stem:<28}", "unit": "cell", "leave": True, "ncols": 100,
           "bar_format": "{desc} {n_fmt}/{total_fmt} cells {elapsed}"} if progress else False
    start = time.perf_counter()
    papermill.execute_notebook(str(notebook), str(out), parameters=parameters, cwd=str(notebook.parent),
                               progress_bar=bar, log_output=False, extra_arguments=QUIET_KERNEL)
    return time.perf_counter() - start


# Notebook 06 trains the reference run in series order; 07, 09 and 13 read it from their first cells and train it only
# when it is missing (a student's runtime without 06's model). Run in lanes, the first of them trains and the others
# wait. 12 reads it too, but after its own adapter run (~60% of its time): it starts when a lane is free, and if the
# reference run is still training when it gets there, `ensure_tuned_model` waits for it (`training_lock`).
REFERENCE_RUN_USERS = ("06", "07", "09", "13")
# Notebook 09 reads 02's baseline replies from the run folder and generates them itself when they are missing (a
# runtime without 02's): started beside 02, it would generate the same replies at the same time (~45 s on one thread).
STARTS_AFTER = {"09": "02"}


def default_lanes() -> int:
    """Notebooks at a time for ``./lab.sh run`` here: 2 on a CPU-only machine with two cores or more (one torch
    thread each), else 1 (a GPU runs one notebook at a time)."""
    import torch

    return 2 if not torch.cuda.is_available() and (os.cpu_count() or 1) >= 2 else 1


def execute_in_lanes(jobs: list[tuple[Path, Path]], parameters: dict, lanes: int = 2,
                     report: Callable[[str], None] = print) -> tuple[dict[str, float], dict[str, BaseException]]:
    """Execute ``jobs`` (notebook, executed copy) ``lanes`` at a time, in their order except that the first notebook
    of :data:`REFERENCE_RUN_USERS` starts first once it can (it trains the reference run: the longest chain), the
    others of that group wait until it is done, and a notebook of :data:`STARTS_AFTER` waits for the one it reads
    when that one is among the jobs. With more than one lane each kernel gets one torch thread. Returns each
    notebook's own seconds and the errors raised (a failed notebook does not stop the others).

    >>> execute_in_lanes([], {}, lanes=2)
    ({}, {})
    """
    pending = list(jobs)
    trainer = next((nb for nb, _ in pending if nb.name[:2] in REFERENCE_RUN_USERS), None)
    seconds: dict[str, float] = {}
    errors: dict[str, BaseException] = {}
    done: set[Path] = set()
    changed = threading.Condition()

    by_number = {nb.name[:2]: nb for nb, _ in jobs}

    def ready(notebook: Path) -> bool:
        before = by_number.get(STARTS_AFTER.get(notebook.name[:2], ""))
        if before is not None and before not in done:
            return False
        return notebook.name[:2] not in REFERENCE_RUN_USERS or notebook == trainer or trainer in done

    def take() -> tuple[Path, Path] | None:
        with changed:
            while pending:
                job = next((j for j in pending if j[0] == trainer and ready(trainer)), None) or next(
                    (j for j in pending if ready(j[0])), None)
                if job:
                    pending.remove(job)
                    return job
                changed.wait()
            return None

    def lane() -> None:
        while (job := take()) is not None:
            notebook, out = job
            start = time.perf_counter()
            try:
                execute(notebook, out, parameters)
            except BaseException as error:  # noqa: BLE001  (reported with its notebook; the others go on)
                errors[notebook.stem] = error
            seconds[notebook.stem] = time.perf_counter() - start
            failed = "  FAILED" if notebook.stem in errors else ""
            report(f"{notebook.stem:<32} {seconds[notebook.stem]:7.1f} s{failed}")
            with changed:
                done.add(notebook)
                changed.notify_all()

    threads_before = os.environ.get("OMP_NUM_THREADS")
    if lanes > 1:
        os.environ["OMP_NUM_THREADS"] = "1"  # the kernels papermill starts inherit it
    try:
        workers = [threading.Thread(target=lane, name=f"lane-{i + 1}") for i in range(max(1, lanes))]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    finally:
        if lanes > 1 and threads_before is None:
            del os.environ["OMP_NUM_THREADS"]
        elif lanes > 1:
            os.environ["OMP_NUM_THREADS"] = threads_before
    order = [nb.stem for nb, _ in jobs]
    return dict(sorted(seconds.items(), key=lambda item: order.index(item[0]))), errors


def summary_lines(run: Path, timings: dict[str, float], reference_s: float | None = None,
                  wall_s: float | None = None, lanes: int = 1) -> list[str]:
    """Human summary: time per notebook (also in reference steps when measured), then the notebooks' numbers.
    Run in lanes, the total is the series' wall time (``wall_s``) beside the notebooks' own times added up."""
    def row(name: str, seconds: float) -> str:
        steps = f"  = {in_reference_steps(seconds, reference_s)}" if reference_s else ""
        return f"{name:<32} {seconds:7.1f} s{steps}"

    lines = [row(name, seconds) for name, seconds in timings.items()]
    if wall_s is not None and lanes > 1 and not math.isclose(wall_s, sum(timings.values())):
        lines.append(row(f"total, {lanes} lanes (wall)", wall_s))
        lines.append(f"(the notebooks' own times add up to {sum(timings.values()):.1f} s: each ran beside another)")
    else:
        lines.append(row("total", sum(timings.values())))
    if reference_s:
        lines.append(f"(reference step on this machine, measured now: {reference_s:.2f} s; "
                     "python -m benchmarks.reference_step)")
    training = load_metrics(run, "training") or {}
    comparison = load_metrics(run, "before_after") or {}
    if training:
        lines.append(f"train loss {training.get('first_train_loss')} -> {training.get('last_train_loss')}, "
                     f"eval loss {training.get('first_eval_loss')} -> {training.get('last_eval_loss')}")
    if comparison:
        lines += comparison_lines(comparison)
    boards = sorted(p.name for p in (run / "tensorboard").glob("*") if p.is_dir())
    if boards:
        lines.append(f"TensorBoard runs ({', '.join(boards)}): tensorboard --logdir {run / 'tensorboard'}")
    return lines


def comparison_lines(c: dict) -> list[str]:
    r"""Notebook 09's measures in a few lines: what the run bought and what it cost.

    >>> print("\n".join(comparison_lines({"n_heldout": 20, "data_teaches_house_format": True, "base_score": 0.0,
    ...     "tuned_score": 0.9, "base_hit_limit_rate": 0.6, "tuned_hit_limit_rate": 0.05, "base_looping_rate": 0.1,
    ...     "tuned_looping_rate": 0.0, "base_reply_loss": 2.31, "tuned_reply_loss": 0.98,
    ...     "retention": {"nll_base": 0.8, "nll_tuned": 1.9, "code_base": 1.0, "code_tuned": 0.2, "n_prompts": 10}})))
    20 held-out prompts, base -> tuned: house format 0% -> 90%, cut by max_new_tokens 60% -> 5%, looping 10% -> 0%, reply loss 2.31 -> 0.98 nats
    cost, 10 outside prompts: the base's own replies 0.80 -> 1.90 nats under the tuned model; code kept 100% -> 20%
    """
    fmt = (f"house format {c['base_score']:.0%} -> {c['tuned_score']:.0%}, " if c.get("data_teaches_house_format")
           else "no house format in this data, ")
    lines = [f"{c['n_heldout']} held-out prompts, base -> tuned: {fmt}cut by max_new_tokens "
             f"{c['base_hit_limit_rate']:.0%} -> {c['tuned_hit_limit_rate']:.0%}, looping {c['base_looping_rate']:.0%} -> "
             f"{c['tuned_looping_rate']:.0%}, reply loss {c['base_reply_loss']:.2f} -> {c['tuned_reply_loss']:.2f} nats"]
    r = c.get("retention")
    if r:
        lines.append(f"cost, {r['n_prompts']} outside prompts: the base's own replies {r['nll_base']:.2f} -> "
                     f"{r['nll_tuned']:.2f} nats under the tuned model; code kept {r['code_base']:.0%} -> {r['code_tuned']:.0%}")
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tools.series", description=__doc__)
    parser.add_argument("command", choices=["run"])
    parser.add_argument("--profile", default=None, help="ci, colab or full (default: $LAB_PROFILE, else by hardware)")
    parser.add_argument("--run-dir", default=None, help="run folder (default: runs/<profile>)")
    parser.add_argument("--only", nargs="*", help="notebook number prefixes to run, e.g. 02 06")
    parser.add_argument("--dataset", default=None,
                        help="DATASET for every notebook (default: the notebooks' own, the bundled sft-lab/house-format;"
                             " e.g. HuggingFaceH4/no_robots, offline its natural-reply stand-in, or a .jsonl path)")
    parser.add_argument("--lanes", type=int, default=None,
                        help="notebooks at a time (default: 2 on a CPU with two cores or more, one torch thread each;"
                             " 1 on a GPU)")
    parser.add_argument("--no-reference-step", action="store_true",
                        help="skip timing the reference step (~20 s) that makes the times comparable across machines")
    args = parser.parse_args(argv)

    from labhelpers.model.hardware import detect_recipe

    profile = detect_recipe(args.profile).profile
    root = project_root() or Path.cwd()
    run = run_dir(profile, args.run_dir, args.dataset).resolve()
    executed = run / "executed"
    executed.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    reference_s = None if args.no_reference_step else reference_step_seconds()
    parameters = {"PROFILE": profile, "RUN_DIR": str(run), **({"DATASET": args.dataset} if args.dataset else {})}
    lanes = args.lanes or default_lanes()
    notebooks = solution_notebooks(root / "solutions", args.only)
    start = time.perf_counter()
    if lanes == 1:
        for notebook in notebooks:
            timings[notebook.stem] = execute(notebook, executed / notebook.name, parameters, progress=True)
    else:
        print(f"{len(notebooks)} notebooks, {lanes} at a time (one torch thread each; --lanes 1 runs them in turn)")
        timings, errors = execute_in_lanes([(nb, executed / nb.name) for nb in notebooks], parameters, lanes)
        if errors:
            for name, error in errors.items():
                print(f"{name} failed: {type(error).__name__}: {str(error)[:2000]}")
            raise SystemExit(f"{len(errors)} notebook(s) failed: {', '.join(errors)} (executed copies in {executed})")
    wall = time.perf_counter() - start
    save_metrics(run, "series", {"profile": profile, "seconds": timings, "total_seconds": wall, "lanes": lanes,
                                 "reference_step_s": reference_s, "dataset": args.dataset})
    print("\n".join(summary_lines(run, timings, reference_s, wall, lanes)))
    print(f"executed notebooks, plots and metrics are in {run}")


if __name__ == "__main__":
    main()
