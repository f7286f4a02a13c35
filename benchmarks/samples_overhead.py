"""What ``labhelpers.sanity.samples.LiveSamples`` costs a ci run: a short real training with and without it (goal <= 5%).

Runs, on the offline SmolLM2 with the ci recipe's sizes and rows (notebook 06's reference run: ``keep_rows_that_fit``,
``select_splits(160, 16)``, ``recipe.reference_config``, max_length 160, batch 4, eval every 5 steps and at the start),
shortened to ``--steps`` (10: evaluations at steps 0, 5, 10) with no checkpoints:

- ``none``: no callback (the reference);
- ``samples``: ``LiveSamples(test, recipe, run, tensorboard=...)`` with its defaults, headless, writing its file and
  TensorBoard text as in the notebook.

Variants rotate over ``--repeats``; each run trains a fresh copy of the model from the same seed, so the losses of both
must be identical (printed). The overhead that matters is the ci run's: 30 steps, 7 evaluations (steps 0, 5, ..., 30).
It is projected from the measured parts: ``sampled evaluations x seconds per sampled evaluation (the callback's own
clock) / (30 x s/step + 7 x s/evaluation of the 'none' runs)``. Checkpoint saves are left out of that run time, and the
replies of a few-step run run to the token budget (the base model does not stop early; a tuned one ends at ~70
tokens), so the share is an upper bound. A second table projects other settings (every evaluation, fewer new tokens)
from direct ``sample()`` calls on the same model: what the defaults save. The short run's wall-time ratio is printed
too; on a shared 2-core machine its spread between runs is larger than the effect. The reference step
(``benchmarks.reference_step``) is measured in the same run; every duration is also given in reference steps.
Duration: measured 14-20 minutes on the 2-core CPU shared with other work (load average 2-6: 20-40 s per step);
idle, an estimated 4-6 (2 runs of 10 steps and 3 evaluations, the reference step, 7 sampling calls).
Measured 2026-12-06 (load 2.3-3.8, reference step 27.5 s): defaults 1.9% of the ci run (2.5% with tuned-length replies),
every evaluation at 96 tokens 5.8%, losses identical; see ``labhelpers/sanity/samples.py`` for the defaults this chose.
Run: ``python -m benchmarks.samples_overhead [--repeats N] [--steps N]``.
"""

from __future__ import annotations

import copy
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.report import format_table, save_json, step_clock

VARIANTS = ("none", "samples")
REPEATS = 1  # runs per variant, in rotated order
STEPS = 10  # optimizer steps per run (evaluations at 0, 5, 10 with the ci recipe's eval_steps)
CI_STEPS, CI_EVAL_STEPS = 30, 5  # the ci run the overhead is projected onto: 7 evaluations
GOAL_SHARE = 0.05
# (every, max_new_tokens, cpu_threads, preview_tokens) projected in table 2 from one sampling call per setting on the
# base model and on the short run's trained model
SETTINGS = ((1, 16, 2, None), (1, 16, 1, None), (1, 96, 1, None), (1, 96, 1, 32), (2, 96, 1, None), (2, 96, 1, 32),
            (3, 96, 1, None), (3, 96, 1, 32))


def rotated_order(repeats: int, variants: tuple[str, ...] = VARIANTS) -> list[tuple[int, str]]:
    """(repeat, variant), the variants' order rotated each repeat so each runs early and late.

    >>> rotated_order(2)
    [(0, 'none'), (0, 'samples'), (1, 'samples'), (1, 'none')]
    """
    n = len(variants)
    return [(r, variants[(r + i) % n]) for r in range(repeats) for i in range(n)]


def ci_evaluation_steps(steps: int = CI_STEPS, eval_steps: int = CI_EVAL_STEPS) -> list[int]:
    """The steps the ci run evaluates at: the start (``eval_on_start``) and every ``eval_steps``.

    >>> ci_evaluation_steps()
    [0, 5, 10, 15, 20, 25, 30]
    """
    return list(range(0, steps + 1, eval_steps))


def sampled_evaluations(every: int, steps: int = CI_STEPS, eval_steps: int = CI_EVAL_STEPS) -> int:
    """How many of the ci run's evaluations ``LiveSamples(every=every)`` samples (every n-th, and the last).

    >>> sampled_evaluations(1), sampled_evaluations(2), sampled_evaluations(3)
    (7, 4, 3)
    """
    evals = ci_evaluation_steps(steps, eval_steps)
    return sum(i % every == 0 or step >= steps for i, step in enumerate(evals))


def projected_share(sample_s: float, n_sampled: int, step_s: float, eval_s: float, steps: int = CI_STEPS,
                    n_evals: int = 7) -> float:
    """Sampling's share of the ci run: ``n_sampled x sample_s`` over the run's steps and evaluations.

    >>> round(projected_share(2.0, 4, 5.0, 3.0), 4)
    0.0468
    """
    run_s = steps * step_s + n_evals * eval_s
    return n_sampled * sample_s / run_s


def ci_data(tokenizer: Any, recipe: Any) -> tuple[Any, Any, Any]:
    """(train, eval, test) rows as notebook 06's reference run selects them (train/eval from the train split)."""
    import contextlib
    import io

    from labhelpers.data.datasets import load_chat_dataset
    from labhelpers.run.training import keep_rows_that_fit, select_splits

    data = load_chat_dataset(source="bundled")
    with contextlib.redirect_stdout(io.StringIO()):  # keep_rows_that_fit prints its count
        data["train"] = keep_rows_that_fit(data["train"], tokenizer, recipe.sizes.max_length)
    train, evaluation = select_splits(data, recipe.sizes.n_train_examples, recipe.sizes.n_eval_examples)
    return train.select_columns(["messages"]), evaluation.select_columns(["messages"]), data["test"]


def timed_run(variant: str, model: Any, tokenizer: Any, rows: tuple[Any, Any, Any], recipe: Any,
              steps: int = STEPS) -> tuple[dict[str, Any], Any]:
    """One short ci-size run of ``variant`` on a fresh copy of ``model``: its figures (wall time, step and eval
    seconds, losses, the callback's own seconds per sampled evaluation) and the trained model."""
    import transformers
    from transformers import PrinterCallback
    from trl import SFTTrainer

    from labhelpers.sanity.samples import LiveSamples
    from labhelpers.run.tracking import tensorboard_dir

    train, evaluation, test = rows
    clock = step_clock()
    with tempfile.TemporaryDirectory(prefix=f"bench-samples-{variant}-") as out:
        config = recipe.reference_config(Path(out) / "sft", max_steps=steps, save_strategy="no",
                                         load_best_model_at_end=False, disable_tqdm=True)
        samples = (LiveSamples(test, recipe, out, tensorboard=tensorboard_dir(out, "sft"), live=False)
                   if variant == "samples" else None)
        transformers.set_seed(42)
        trainer = SFTTrainer(model=copy.deepcopy(model), args=config, train_dataset=train, eval_dataset=evaluation,
                             processing_class=tokenizer, callbacks=[samples] if samples else None)
        trainer.remove_callback(PrinterCallback)  # no log lines between the tables
        trainer.add_callback(clock)
        started = time.perf_counter()
        trainer.train()
        train_s = time.perf_counter() - started
        written = len((Path(out) / "samples.jsonl").read_text().splitlines()) if samples else 0
    history = trainer.state.log_history
    figures = {"train_s": train_s, "step_s": clock.step_seconds(),
               "eval_s": [e["eval_runtime"] for e in history if "eval_runtime" in e],
               "losses": [e["loss"] for e in history if "loss" in e], "rows_written": written}
    if samples:
        figures.update({
            "timings": samples.timings, "failures": samples.failures,
            "replies": [{k: r[k] for k in ("step", "new_tokens", "cut", "stopped_off_format", "follows_house_format")}
                        for rs in samples.history for r in rs],
            "settings": {"every": samples.every, "max_new_tokens": samples.max_new_tokens,
                         "cpu_threads": samples.cpu_threads, "preview_tokens": samples.preview_tokens}})
    return figures, trainer.model


def settings_seconds(models: dict[str, Any], tokenizer: Any, test: Any, recipe: Any) -> dict[tuple, float]:
    """Seconds of one ``LiveSamples.sample`` per (model, max_new_tokens, cpu_threads, preview_tokens) of
    :data:`SETTINGS` (2 threads: on the base model only, it is the slow one)."""
    from labhelpers.sanity.samples import LiveSamples

    seconds = {}
    for name, model in models.items():
        for tokens, threads, preview in sorted({s[1:] for s in SETTINGS}, key=str):
            if threads > 1 and name != "base":
                continue
            samples = LiveSamples(test, recipe, None, max_new_tokens=tokens, cpu_threads=threads,
                                  preview_tokens=preview, live=False)
            rows = samples.sample(model, tokenizer, 0)
            seconds[name, tokens, threads, preview] = rows[0]["seconds"]
            print(f"  {name} model: {tokens} new tokens, {threads} thread(s), preview {preview}: "
                  f"{rows[0]['seconds']:.1f} s, new tokens {[r['new_tokens'] for r in rows]}", flush=True)
    return seconds


def projected(first_s: float, later_s: float, every: int, step_s: float, eval_s: float) -> tuple[int, float]:
    """(sampled evaluations, share of the ci run): the first sampled on the base model, the others later.

    >>> projected(1.0, 2.0, 2, 5.0, 3.0)
    (4, 0.04093567251461988)
    """
    n = sampled_evaluations(every)
    return n, projected_share((first_s + (n - 1) * later_s) / n, n, step_s, eval_s)


def reference_reply_tokens(tokenizer: Any, test: Any) -> int:
    """Tokens (with the stop token) of the longest reference reply to the sample prompts: what a tuned model writes."""
    from labhelpers.run.generation import heldout_pairs

    return max(len(tokenizer(reply, add_special_tokens=False)["input_ids"]) + 1 for _, reply in heldout_pairs(test, 3))


def summarize(runs: dict[str, list[dict[str, Any]]], by_setting: dict[tuple, float],
              reference_s: float, tuned_tokens: int) -> dict[str, Any]:
    """Print both tables and the verdict; return the figures. ``tuned_tokens``: :func:`reference_reply_tokens`."""
    none, samples = runs["none"], runs["samples"]
    step_s = statistics.median(s for run in none for s in run["step_s"][1:])  # the first step warms up
    eval_s = statistics.median(e for run in none for e in run["eval_s"])
    first_s = statistics.median(run["timings"][0][1] for run in samples)
    later_s = statistics.median(s for run in samples for _, s in run["timings"][1:])
    settings = samples[0]["settings"]
    n_sampled, share = projected(first_s, later_s, settings["every"], step_s, eval_s)
    median_train = {v: statistics.median(r["train_s"] for r in runs[v]) for v in VARIANTS}
    identical = all(run["losses"] == none[0]["losses"] for run in none + samples)
    rows = [[v, len(runs[v]), round(median_train[v], 1), f"{median_train[v] / reference_s:.1f}",
             ",".join(str(step) for step, _ in runs[v][0].get("timings", [])) or "-",
             " / ".join(f"{s:.1f}" for _, s in runs[v][0].get("timings", [])) or "-",
             f"{median_train[v] / median_train['none']:.3f}"] for v in VARIANTS]
    print(format_table(["variant", "runs", "train() s", "ref. steps", "sampled at steps", "s per sampled eval",
                        "vs none"], rows))
    replies = samples[0]["replies"]
    print(f"losses with and without LiveSamples identical: {'yes' if identical else 'NO'}; sampling failures: "
          f"{sum(len(r['failures']) for r in samples)}; new tokens per reply by step: "
          + ", ".join(f"{step}: {[r['new_tokens'] for r in replies if r['step'] == step]}"
                      for step, _ in samples[0]["timings"]))
    ci_run_s = CI_STEPS * step_s + len(ci_evaluation_steps()) * eval_s
    print(f"\nprojected on the ci run (30 steps at {step_s:.2f} s + 7 evaluations at {eval_s:.2f} s = {ci_run_s:.0f} s "
          f"= {ci_run_s / reference_s:.0f} ref. steps; reference step {reference_s:.2f} s); first sample on the base "
          f"model, the others on the {STEPS}-step model:")
    table = []
    for every, tokens, threads, preview in SETTINGS:
        base = by_setting.get(("base", tokens, threads, preview))
        tuned = by_setting.get(("trained", tokens, threads, preview), base)
        n, part = projected(base, tuned, every, step_s, eval_s)
        table.append([every, tokens, threads, preview or "-", f"{base:.1f} / {tuned:.1f}",
                      f"{base / reference_s:.2f} / {tuned / reference_s:.2f}", n, f"{part:.1%}"])
    print(format_table(["every n-th eval", "max_new_tokens", "cpu threads", "preview tokens",
                        "s per sample (base / trained)", "ref. steps", "sampled evals", "share of the ci run"], table))
    # the short run's model ends its replies early; a tuned one writes the references' length: scale the later samples
    written = max(r["new_tokens"] for r in replies if r["step"] > 0)
    scale = max(1.0, tuned_tokens / written)
    _, tuned_share = projected(first_s, later_s * scale, settings["every"], step_s, eval_s)
    verdict = "meets" if max(share, tuned_share) <= GOAL_SHARE else "MISSES"
    print(f"defaults ({', '.join(f'{k}={v}' for k, v in settings.items())}): {n_sampled} of 7 evaluations sampled, "
          f"{first_s:.1f} s on the base model and {later_s:.1f} s later (callback's clock, in training) = {share:.1%} "
          f"of the ci run; {tuned_share:.1%} with tuned-length replies (the later samples x {scale:.2f}: "
          f"{tuned_tokens} tokens for the longest reference reply, {written} written at step {STEPS}): {verdict} the "
          f"<= {GOAL_SHARE:.0%} goal; the short run's wall time {median_train['samples'] / median_train['none']:.3f}x "
          f"(on a shared machine mostly noise)")
    return {"step_s": step_s, "eval_s": eval_s, "first_sample_s": first_s, "later_sample_s": later_s,
            "sampled": n_sampled, "share": share, "tuned_share": tuned_share, "tuned_scale": scale,
            "wall_ratio": median_train["samples"] / median_train["none"],
            "losses_identical": identical, "ci_run_s": ci_run_s,
            "by_setting": {"{}: tokens={}, threads={}, preview={}".format(*k): v for k, v in by_setting.items()}}


def main(repeats: int = REPEATS, steps: int = STEPS) -> dict:
    """Print the tables; save ``benchmarks/results/samples_overhead.json``."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("MPLBACKEND", "Agg")
    import datasets
    import transformers

    from benchmarks.reference_step import reference_step_seconds
    from labhelpers.model.hardware import recipe_for
    from labhelpers.model.loading import load_model_and_tokenizer

    datasets.disable_progress_bars()
    transformers.logging.set_verbosity_error()
    started, load_start = time.perf_counter(), os.getloadavg()[0]
    reference_s = reference_step_seconds()
    print(f"reference step: {reference_s:.2f} s", flush=True)
    recipe = recipe_for("cpu", "ci")
    model, tokenizer = load_model_and_tokenizer(recipe=recipe, verbose=False)
    rows = ci_data(tokenizer, recipe)
    runs: dict[str, list[dict[str, Any]]] = {v: [] for v in VARIANTS}
    trained = None
    for r, variant in rotated_order(repeats):
        print(f"repeat {r + 1}/{repeats}: {variant} ...", flush=True)
        figures, trained = timed_run(variant, model, tokenizer, rows, recipe, steps)
        runs[variant].append(figures)
    by_setting = settings_seconds({"base": model, "trained": trained}, tokenizer, rows[2], recipe)
    summary = summarize(runs, by_setting, reference_s, reference_reply_tokens(tokenizer, rows[2]))
    elapsed = time.perf_counter() - started
    print(f"took {elapsed:.0f} s; load average {load_start:.1f} at the start, {os.getloadavg()[0]:.1f} at the end, "
          f"on {os.cpu_count()} cores")
    figures = {"repeats": repeats, "steps": steps, "reference_step_s": reference_s, "runs": runs, **summary,
               "goal_share": GOAL_SHARE, "seconds": elapsed, "load_average_start": load_start,
               "load_average_end": os.getloadavg()[0]}
    save_json("samples_overhead", figures)
    return figures


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=REPEATS, help="runs per variant, in rotated order")
    parser.add_argument("--steps", type=int, default=STEPS, help="optimizer steps per run (ci eval every 5 steps)")
    cli = parser.parse_args()
    main(cli.repeats, cli.steps)
