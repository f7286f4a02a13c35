"""Seconds per optimizer step: the lab's SFTTrainer (recipe + SanityMonitor) vs a plain hand-written SFTTrainer.

``lab``: ``recipe.sft_config(out, assistant_only_loss=True)`` from ``detect_recipe("ci")`` as it
is (logging every step, eval every 5 and saves every 10 steps: the runs stop before either), an eval split of
16 rows, and ``labhelpers.sanity.SanityMonitor()`` attached. ``plain``: an ``SFTConfig`` with the same
hyperparameters written out by hand (batch 4, LR 1e-4, cosine, warmup 0.1, max_length 256, seed 42, CPU, fp32,
assistant-only loss) and TRL's defaults for everything else (logging every 10 steps, no eval, no callback).
Both use the lab's tokenizer (the assistant-only loss needs its ``{% generation %}`` template), the same rows
(train rows that fit in 256 tokens) and the same seed per repeat, so they train the same batches.

The variants alternate A B B A A B ... (``REPEATS`` runs each; each run is 1 warm-up + ``TIMED_STEPS`` timed steps
on a fresh copy of the model); a step is timed from ``on_step_begin`` to ``on_step_end``, or to the end of that
step's ``on_log`` when it logs (the timing callback runs last), so logging and the monitor count. The evaluation and
checkpoint that Trainer runs once at the end of a run with eval/save strategy "steps" (the lab's) are not a per-step
cost and are left out. Printed: median s/step of each, the median of the
per-repeat ratios lab/plain and the ratio of the medians. Goal: <= 1.05.
Duration: 16 steps and 8 trainer builds, ~1-2 minutes on the idle 2-core CPU at ~3 s/step (an estimate).
Run: ``python -m benchmarks.trainer_overhead [--repeats N] [--timed-steps N]``.
"""

from __future__ import annotations

import copy
import os
import statistics
import tempfile
import time
from typing import Any

from benchmarks.report import format_table, save_json, step_clock

VARIANTS = ("lab", "plain")
REPEATS = 4  # runs per variant (a loaded machine: --repeats 3)
TIMED_STEPS = 1  # timed steps per run after 1 warm-up step
MAX_LENGTH = 256
N_TRAIN_ROWS = 64
GOAL_RATIO = 1.05


def abba_order(repeats: int, variants: tuple[str, str] = VARIANTS) -> list[tuple[int, str]]:
    """(repeat, variant) in A B B A A B B A ... order, so a linear drift in machine load cancels out.

    >>> abba_order(3)
    [(0, 'lab'), (0, 'plain'), (1, 'plain'), (1, 'lab'), (2, 'lab'), (2, 'plain')]
    """
    a, b = variants
    return [(r, v) for r in range(repeats) for v in ((a, b) if r % 2 == 0 else (b, a))]


def paired_ratios(lab: list[float], plain: list[float]) -> list[float]:
    """Per-repeat ratios lab / plain.

    >>> paired_ratios([3.0, 3.3], [3.0, 3.0])
    [1.0, 1.1]
    """
    return [round(x / y, 12) for x, y in zip(lab, plain, strict=True)]


def plain_config(output_dir: str, max_steps: int, seed: int) -> Any:
    """The hand-written SFTConfig: the ci recipe's hyperparameters spelled out, TRL defaults otherwise."""
    from trl import SFTConfig

    return SFTConfig(output_dir=output_dir, use_cpu=True, bf16=False, fp16=False, max_length=MAX_LENGTH,
                     per_device_train_batch_size=4, gradient_accumulation_steps=1, learning_rate=1e-4,
                     lr_scheduler_type="cosine", warmup_steps=0.1, max_steps=max_steps, seed=seed,
                     assistant_only_loss=True, save_strategy="no", report_to="none", disable_tqdm=True)


def lab_config(output_dir: str, max_steps: int, seed: int) -> Any:
    """The lab's SFTConfig: ``detect_recipe("ci")`` as the notebooks use it, plus assistant-only loss."""
    from labhelpers.model.hardware import detect_recipe

    recipe = detect_recipe("ci").with_sizes(max_steps=max_steps, max_length=MAX_LENGTH)
    return recipe.sft_config(output_dir, seed=seed, assistant_only_loss=True, disable_tqdm=True)


def timed_run(variant: str, model: Any, tokenizer: Any, train: Any, evaluation: Any, seed: int,
              timed_steps: int = TIMED_STEPS) -> list[float]:
    """Seconds of each timed step of one run (after 1 warm-up step) on a fresh copy of ``model``."""
    from trl import SFTTrainer

    from labhelpers.sanity import SanityMonitor

    clock = step_clock()

    with tempfile.TemporaryDirectory(prefix=f"bench-overhead-{variant}-") as out:
        if variant == "lab":
            trainer = SFTTrainer(model=copy.deepcopy(model), args=lab_config(out, 1 + timed_steps, seed),
                                 train_dataset=train, eval_dataset=evaluation, processing_class=tokenizer,
                                 callbacks=[SanityMonitor()])
        else:
            trainer = SFTTrainer(model=copy.deepcopy(model), args=plain_config(out, 1 + timed_steps, seed),
                                 train_dataset=train, processing_class=tokenizer)
        trainer.add_callback(clock)  # last, so the other callbacks' work between steps is inside the interval
        trainer.train()
    return clock.step_seconds()[1:]  # drop the warm-up step


def main(repeats: int = REPEATS, timed_steps: int = TIMED_STEPS) -> dict:
    """Print the table and ratio; save ``benchmarks/results/trainer_overhead.json``."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.logging.set_verbosity_error()
    from labhelpers.data.datasets import load_chat_dataset
    from labhelpers.model.hardware import detect_recipe
    from labhelpers.model.loading import load_model_and_tokenizer
    from labhelpers.run.training import conversation_lengths

    started, load_start = time.perf_counter(), os.getloadavg()[0]
    model, tokenizer = load_model_and_tokenizer(recipe=detect_recipe("ci"), verbose=False)
    data = load_chat_dataset(source="bundled")
    train = data["train"].select_columns(["messages"])
    fits = [i for i, n in enumerate(conversation_lengths(train, tokenizer)) if n <= MAX_LENGTH]
    rows = train.select(fits[:N_TRAIN_ROWS])
    evaluation = data["test"].select_columns(["messages"]).select(range(16))

    step_s: dict[str, dict[int, list[float]]] = {v: {} for v in VARIANTS}
    for r, variant in abba_order(repeats):
        print(f"repeat {r + 1}/{repeats}: {variant} ...", flush=True)
        step_s[variant][r] = timed_run(variant, model, tokenizer, rows, evaluation, 42 + r, timed_steps)
    per_run = {v: [statistics.mean(step_s[v][r]) for r in range(repeats)] for v in VARIANTS}
    medians = {v: statistics.median(per_run[v]) for v in VARIANTS}
    ratios = paired_ratios(per_run["lab"], per_run["plain"])
    median_ratio = statistics.median(ratios)
    rows_out = [[v, repeats, round(medians[v], 2), round(min(per_run[v]), 2), round(max(per_run[v]), 2)] for v in VARIANTS]
    print(format_table(["trainer", "runs", "median s/step", "min", "max"], rows_out))
    ratio_of_medians = medians["lab"] / medians["plain"]
    verdict = "meets" if median_ratio <= GOAL_RATIO else "MISSES"
    print(f"lab / plain: median of paired ratios {median_ratio:.3f} (each: {', '.join(f'{x:.3f}' for x in ratios)}), "
          f"ratio of medians {ratio_of_medians:.3f}: {verdict} the <= {GOAL_RATIO} goal")
    elapsed = time.perf_counter() - started
    print(f"took {elapsed:.0f} s; load average {load_start:.1f} at the start, {os.getloadavg()[0]:.1f} at the end, "
          f"on {os.cpu_count()} cores")
    figures = {"repeats": repeats, "timed_steps": timed_steps, "max_length": MAX_LENGTH, "train_rows": len(rows),
               "step_s": step_s, "per_run_s": per_run, "median_s": medians, "paired_ratios": ratios,
               "median_ratio": median_ratio, "ratio_of_medians": ratio_of_medians, "goal_ratio": GOAL_RATIO,
               "seconds": elapsed, "load_average_start": load_start, "load_average_end": os.getloadavg()[0]}
    save_json("trainer_overhead", figures)
    return figures


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=REPEATS, help="runs per variant, in ABBA order")
    parser.add_argument("--timed-steps", type=int, default=TIMED_STEPS, help="timed steps per run (after 1 warm-up)")
    cli = parser.parse_args()
    main(cli.repeats, cli.timed_steps)
