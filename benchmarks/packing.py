"""Padding share and trained tokens per second: random batches vs length-grouped batches vs TRL bfd packing.

Two parts, at max_length 256 (ci profile) and 512 (colab profile), batch 4, on the bundled train rows:

1. Padding share (no model): the rows tokenized with the lab's chat template. ``random``: shuffled batches of 4,
   each padded to its longest row (rows truncated to max_length first). ``grouped``: the same with transformers'
   ``get_length_grouped_indices`` (what ``train_sampling_strategy="group_by_length"`` samples: megabatches of
   50 x batch sorted by length). ``packed``: TRL's ``pack_dataset(..., strategy="bfd")`` bins of max_length;
   the share is the unused room in the bins (goal <= 5%). With ``packing=True`` TRL collates padding-free
   (one row per batch, no pad tokens at all), so this is the room a fixed-size packed row would waste.
   Figures are given for all rows (truncated) and for the rows that fit in max_length.
2. Trained tokens per second in real ``SFTTrainer`` runs (the real SmolLM2-135M, ``assistant_only_loss=True``,
   the ci recipe's LR/scheduler, batch 4): ``unpacked`` (random sampler, padded), ``grouped``
   (``train_sampling_strategy="group_by_length"``) and ``packed`` (``packing=True``, bfd, padding-free).
   Rows: those whose whole conversation fits in max_length (as the lab's reference run keeps them,
   ``labhelpers.training.keep_rows_that_fit``), the same rows and seed for every mode. Each mode runs
   ``ROUNDS`` short runs of 1 warm-up + ``TIMED_STEPS`` timed steps; the modes are interleaved round by round
   (unpacked, grouped, packed, unpacked, ...; round r uses seed 42 + r for every mode) so machine load hits all
   of them alike. A step is timed from one ``on_step_begin`` to the next (the last to ``on_train_end``), so
   batch fetching, collation and logging count. Trained tokens (label != -100) and real tokens (not padding)
   are counted from the batches each step trains on. Goal: packed >= 1.5x unpacked trained tokens/s.

Why rows that fit for part 2: with truncation TRL 1.16 drops rows whose answer was cut away completely only
when *not* packing (its packed path keeps them, as all-masked tokens), so the modes would train different rows.

Duration: 36 steps in all plus 12 trainer builds, ~4 minutes on the idle 2-core CPU if steps take the ~3 s
(256) / ~6 s (512) of the team notes (an estimate: not measured idle). With the machine shared by a CI run
(load ~3-4 on 2 cores) steps took ~10x longer; ``--rounds 1 --timed-steps 2`` (18 steps) then took 13 minutes.
Run: ``python -m benchmarks.packing [--rounds N] [--timed-steps N]``.
"""

from __future__ import annotations

import copy
import os
import random
import statistics
import tempfile
import time
from typing import Any, Sequence

from benchmarks.report import format_table, save_json

BATCH = 4
MAX_LENGTHS = (("ci", 256), ("colab", 512))
MODES = ("unpacked", "grouped", "packed")
ROUNDS = 2  # interleaved rounds per mode
TIMED_STEPS = 2  # timed steps per round, after 1 warm-up step: ROUNDS x TIMED_STEPS timed steps per mode
SEED = 42
GOAL_PACKED_SHARE = 0.05
GOAL_SPEEDUP = 1.5


# ----------------------------------------------------------------------------------------------- padding arithmetic
def padding_share(batches: Sequence[Sequence[int]]) -> float:
    """Share of pad tokens when each batch of row lengths is padded to its longest row.

    >>> round(padding_share([[3, 5], [4, 4]]), 6)  # 2 pads in 2 x 5 + 2 x 4 = 18 slots
    0.111111
    """
    slots = sum(max(b) * len(b) for b in batches if b)
    real = sum(sum(b) for b in batches)
    return 1 - real / slots if slots else 0.0


def bin_waste(bins: Sequence[Sequence[int]], max_length: int) -> float:
    """Unused share of packed rows of ``max_length`` slots, each holding the row lengths listed.

    >>> round(bin_waste([[3, 1], [4], [2]], 4), 6)  # 10 tokens in 3 x 4 slots
    0.166667
    """
    slots = len(bins) * max_length
    return 1 - sum(sum(b) for b in bins) / slots if slots else 0.0


def truncate(lengths: Sequence[int], max_length: int) -> list[int]:
    """Row lengths after truncation to ``max_length``.

    >>> truncate([10, 300, 256], 256)
    [10, 256, 256]
    """
    return [min(n, max_length) for n in lengths]


def chunk(lengths: Sequence[int], order: Sequence[int], batch: int) -> list[list[int]]:
    """Row lengths in ``order``, cut into batches of ``batch`` (the last may be short).

    >>> chunk([5, 6, 7, 8, 9], [4, 3, 2, 1, 0], 2)
    [[9, 8], [7, 6], [5]]
    """
    return [[lengths[i] for i in order[s:s + batch]] for s in range(0, len(order), batch)]


def random_batches(lengths: Sequence[int], batch: int = BATCH, seed: int = SEED) -> list[list[int]]:
    """Batches of a seeded random permutation (what a RandomSampler gives)."""
    order = list(range(len(lengths)))
    random.Random(seed).shuffle(order)
    return chunk(lengths, order, batch)


def grouped_batches(lengths: Sequence[int], batch: int = BATCH, seed: int = SEED) -> list[list[int]]:
    """Batches in transformers' length-grouped order (``train_sampling_strategy="group_by_length"``)."""
    import torch
    from transformers.trainer_pt_utils import get_length_grouped_indices

    order = get_length_grouped_indices(list(lengths), batch, generator=torch.Generator().manual_seed(seed))
    return chunk(lengths, order, batch)


def packed_bins(lengths: Sequence[int], max_length: int, strategy: str = "bfd") -> list[list[int]]:
    """Row lengths in each bin of TRL's ``pack_dataset`` (bfd truncates rows longer than ``max_length``).

    >>> sorted(packed_bins([3, 1, 2, 2, 4], 4))
    [[2, 2], [3, 1], [4]]
    """
    from datasets import Dataset
    from trl.data_utils import pack_dataset

    rows = Dataset.from_dict({"input_ids": [[1] * n for n in lengths]})
    return [list(b) for b in pack_dataset(rows, max_length, strategy)["seq_lengths"]]


def padding_figures(lengths: Sequence[int], max_length: int, batch: int = BATCH, seed: int = SEED) -> dict[str, float]:
    """Padding shares of random, length-grouped and bfd-packed batches of ``lengths`` truncated to ``max_length``."""
    cut = truncate(lengths, max_length)
    bins = packed_bins(cut, max_length)
    return {
        "rows": len(cut),
        "tokens": sum(cut),
        "random": padding_share(random_batches(cut, batch, seed)),
        "grouped": padding_share(grouped_batches(cut, batch, seed)),
        "packed": bin_waste(bins, max_length),
        "packed_rows": len(bins),
        "rows_per_packed_row": len(cut) / len(bins) if bins else 0.0,
    }


def tokens_per_second(tokens: Sequence[int], seconds: Sequence[float]) -> float:
    """Total tokens over total seconds (not a mean of per-step rates, which would overweight short steps).

    >>> tokens_per_second([100, 300], [1.0, 3.0])
    100.0
    """
    return sum(tokens) / sum(seconds)


# ----------------------------------------------------------------------------------------------- timed SFT runs
def _trainer_class():
    from transformers import TrainerCallback
    from trl import SFTTrainer

    class Clock(TrainerCallback):
        """Time from each on_step_begin to the next (the last to on_train_end)."""

        def __init__(self) -> None:
            self.starts: list[float] = []
            self.end: float | None = None

        def on_step_begin(self, *args: Any, **kwargs: Any) -> None:
            self.starts.append(time.perf_counter())

        def on_train_end(self, *args: Any, **kwargs: Any) -> None:
            self.end = time.perf_counter()

        def step_seconds(self) -> list[float]:
            marks = self.starts + [self.end]
            return [b - a for a, b in zip(marks, marks[1:])]

    class CountingSFTTrainer(SFTTrainer):
        """SFTTrainer that records trained (label != -100) and real (non-pad) tokens of every batch it trains on."""

        def training_step(self, model, inputs, num_items_in_batch=None):  # noqa: D102
            labels = inputs["labels"]
            mask = inputs.get("attention_mask")
            real = int(mask.sum()) if mask is not None else int(inputs["input_ids"].numel())  # padding-free: no pads
            self.token_counts.append((int((labels != -100).sum()), real, int(inputs["input_ids"].numel())))
            return super().training_step(model, inputs, num_items_in_batch)

    return CountingSFTTrainer, Clock


def timed_run(model: Any, tokenizer: Any, rows: Any, max_length: int, mode: str, seed: int,
              timed_steps: int = TIMED_STEPS) -> dict:
    """1 warm-up + ``timed_steps`` steps of one mode on a fresh copy of ``model``; step seconds and token counts."""
    from trl import SFTConfig

    from labhelpers.hardware import recipe_for

    CountingSFTTrainer, Clock = _trainer_class()
    recipe = recipe_for("cpu", "ci").with_sizes(max_length=max_length, per_device_train_batch_size=BATCH,
                                                gradient_accumulation_steps=1, max_steps=1 + timed_steps)
    kwargs = {**recipe.sft_config_kwargs(), "assistant_only_loss": True, "eval_strategy": "no", "save_strategy": "no",
              "logging_steps": 1000, "disable_tqdm": True, "seed": seed, "data_seed": seed,
              "packing": mode == "packed"}
    if mode == "grouped":
        kwargs["train_sampling_strategy"] = "group_by_length"
    with tempfile.TemporaryDirectory(prefix="bench-packing-") as out:
        config = SFTConfig(output_dir=out, **kwargs)
        trainer = CountingSFTTrainer(model=copy.deepcopy(model), args=config, train_dataset=rows, processing_class=tokenizer)
        trainer.token_counts = []
        clock = Clock()
        trainer.add_callback(clock)
        trainer.train()
    seconds = clock.step_seconds()[1:]  # drop the warm-up step
    counts = trainer.token_counts[1:]
    return {"mode": mode, "seed": seed, "step_s": seconds, "trained_tokens": [c[0] for c in counts],
            "real_tokens": [c[1] for c in counts], "slots": [c[2] for c in counts]}


def _silence() -> None:
    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.logging.set_verbosity_error()


def main(rounds: int = ROUNDS, timed_steps: int = TIMED_STEPS) -> dict:
    """Print both tables and save ``benchmarks/results/packing.json``; fewer rounds/steps for a loaded machine."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    _silence()
    from labhelpers.data import load_chat_dataset
    from labhelpers.hardware import detect_recipe
    from labhelpers.models import load_model_and_tokenizer
    from labhelpers.training import conversation_lengths

    started = time.perf_counter()
    load_start = os.getloadavg()[0]
    model, tokenizer = load_model_and_tokenizer(recipe=detect_recipe("ci"), verbose=False)
    model.config.use_cache = False  # packed rows need it off (team notes); the same for every mode
    train = load_chat_dataset(source="bundled")["train"].select_columns(["messages"])
    lengths = conversation_lengths(train, tokenizer)

    padding_rows, speed_rows, figures = [], [], {"batch": BATCH, "rounds": rounds, "timed_steps": timed_steps,
                                                   "settings": {}}
    for profile, max_length in MAX_LENGTHS:
        fits = [i for i, n in enumerate(lengths) if n <= max_length]
        pad_all = padding_figures(lengths, max_length)
        pad_fit = padding_figures([lengths[i] for i in fits], max_length)
        for label, p in (("all rows, truncated", pad_all), ("rows that fit", pad_fit)):
            padding_rows.append([f"{max_length} ({profile})", label, p["rows"], f"{p['random']:.1%}", f"{p['grouped']:.1%}",
                                 f"{p['packed']:.1%}", round(p["rows_per_packed_row"], 2),
                                 "yes" if p["packed"] <= GOAL_PACKED_SHARE else "NO"])

        rows = train.select(fits)
        runs: dict[str, list[dict]] = {m: [] for m in MODES}
        for r in range(rounds):
            for mode in MODES:
                print(f"max_length {max_length}, round {r + 1}/{rounds}: {mode} ...", flush=True)
                runs[mode].append(timed_run(model, tokenizer, rows, max_length, mode, SEED + r, timed_steps))
        speed = {}
        for mode in MODES:
            step_s = [s for run in runs[mode] for s in run["step_s"]]
            trained = [t for run in runs[mode] for t in run["trained_tokens"]]
            real = [t for run in runs[mode] for t in run["real_tokens"]]
            slots = [t for run in runs[mode] for t in run["slots"]]
            speed[mode] = {"median_step_s": statistics.median(step_s), "trained_tok_s": tokens_per_second(trained, step_s),
                           "real_tok_s": tokens_per_second(real, step_s), "trained_tokens_per_step": statistics.mean(trained),
                           "padding_share_in_run": 1 - sum(real) / sum(slots), "runs": runs[mode]}
        base = speed["unpacked"]["trained_tok_s"]
        for mode in MODES:
            s = speed[mode]
            speed_rows.append([f"{max_length} ({profile})", mode, len(rows), round(s["median_step_s"], 2),
                               round(s["trained_tokens_per_step"]), f"{s['padding_share_in_run']:.1%}",
                               round(s["real_tok_s"], 1), round(s["trained_tok_s"], 1), round(s["trained_tok_s"] / base, 2)])
        figures["settings"][str(max_length)] = {"profile": profile, "padding_all_rows": pad_all,
                                                "padding_rows_that_fit": pad_fit, "speed": speed,
                                                "packed_vs_unpacked": speed["packed"]["trained_tok_s"] / base,
                                                "grouped_vs_unpacked": speed["grouped"]["trained_tok_s"] / base}

    print("\nPadding share (batch 4, padded to the longest row of each batch; packed = unused room in bfd bins)")
    print(format_table(["max_length", "rows", "n", "random", "grouped", "packed", "rows/packed row",
                        f"packed <= {GOAL_PACKED_SHARE:.0%}"], padding_rows))
    print(f"\nTrained tokens/s in SFTTrainer runs ({rounds} interleaved rounds x (1 warm-up + {timed_steps} timed steps) "
          "per mode, assistant-only loss)")
    print(format_table(["max_length", "mode", "rows", "s/step", "trained tok/step", "pad share", "real tok/s",
                        "trained tok/s", "x unpacked"], speed_rows))
    for max_length, s in figures["settings"].items():
        ratio = s["packed_vs_unpacked"]
        verdict = "meets" if ratio >= GOAL_SPEEDUP else "MISSES"
        print(f"max_length {max_length}: packed {ratio:.2f}x, grouped {s['grouped_vs_unpacked']:.2f}x unpacked trained "
              f"tokens/s: packed {verdict} the >= {GOAL_SPEEDUP}x goal")
    elapsed = time.perf_counter() - started
    print(f"took {elapsed:.0f} s; load average {load_start:.1f} at the start, {os.getloadavg()[0]:.1f} at the end, "
          f"on {os.cpu_count()} cores (timings compare only within one run)")
    figures.update({"seconds": elapsed, "load_average_start": load_start, "load_average_end": os.getloadavg()[0],
                    "goal_packed_share": GOAL_PACKED_SHARE, "goal_speedup": GOAL_SPEEDUP})
    save_json("packing", figures)
    return figures


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="interleaved rounds per mode")
    parser.add_argument("--timed-steps", type=int, default=TIMED_STEPS, help="timed steps per round (after 1 warm-up)")
    cli = parser.parse_args()
    main(cli.rounds, cli.timed_steps)
