"""Padding share and trained tokens per second: random vs length-grouped batches vs two ways of packing.

Two parts, at max_length 256 (ci profile) and 512 (colab profile), batch 4, on the bundled train rows:

1. Padding share (no model): the rows tokenized with the lab's chat template. ``random``: shuffled batches of 4,
   each padded to its longest row (rows truncated to max_length first). ``grouped``: the same with transformers'
   ``get_length_grouped_indices`` (what ``train_sampling_strategy="group_by_length"`` samples: megabatches of
   50 x batch sorted by length). ``packed``: TRL's ``pack_dataset(..., strategy="bfd")`` bins of max_length;
   the share is the unused room in the bins (goal <= 5%). With ``packing=True`` TRL collates padding-free
   (one row per batch, no pad tokens at all), so this is the room a fixed-size packed row would waste.
   Figures are given for all rows (truncated) and for the rows that fit in max_length.
2. Trained tokens per second in real ``SFTTrainer`` runs (the real SmolLM2-135M, ``assistant_only_loss=True``,
   the ci recipe's LR/scheduler, batch 4), every mode training **the same rows**: one epoch over ``SAME_ROWS``
   rows drawn (seeded) from those whose whole conversation fits in max_length, so every mode trains exactly
   the same tokens and the ratio of trained tokens/s is the ratio of epoch times. Modes:
   ``unpacked`` (random sampler, each batch padded to its longest row), ``grouped`` (the rows sorted by length,
   longest first, and fed in that order: what ``train_sampling_strategy="group_by_length"`` does within its
   megabatches of 50 x 4 rows on the whole set; on 24 rows Trainer's own sampler would use megabatches of
   4 rows, i.e. no grouping at all), ``packed`` (``packing=True``: TRL's bfd bins collated
   padding-free, the 4 bins of a batch flattened into one row, examples isolated by restarting position ids)
   and ``packed rows`` (the same bfd bins kept as 4 rows of max_length, position ids restarting per example and
   no attention mask, so transformers builds a block-diagonal mask per row: ``PackedRowsCollator``).
   ``slot ceiling`` is unpacked's token slots (batch x padded length, summed) over the mode's: the speed-up
   if a step cost were proportional to its slots, i.e. all that removing padding can give on these rows.
   One warm-up step runs before any timing (the process's first step is several times slower); a step is
   timed from one ``on_step_begin`` to the next (the last to ``on_train_end``), so batch fetching, collation
   and logging count. With ``--rounds N`` each round draws new rows and runs the modes in turn.
   Goal: packed >= 1.5x unpacked trained tokens/s.

Why the padding-free row is slow without flash-attention: sdpa (CPU, T4) computes attention over the whole
flattened row, 4 x max_length tokens, and masks it afterwards, so attention costs 4x what the 4 separate rows
cost; flash-attention's variable-length kernels (Ampere+) compute only the diagonal blocks.

Duration: 4.6 minutes on the idle 2-core CPU (one round); `--rounds 3` took 16 minutes.
Run: ``python -m benchmarks.packing [--rounds N]``.
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
MODES = ("unpacked", "grouped", "packed", "packed rows")
PACKED_MODES = ("packed", "packed rows")
SAME_ROWS = 24  # rows every mode trains on, per round (6 unpacked steps of batch 4)
ROUNDS = 1
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
def slot_ceiling(unpacked_slots: int, mode_slots: int) -> float:
    """Speed-up a mode could reach if a step cost were proportional to its token slots (batch x padded length).

    >>> slot_ceiling(8672, 6406)  # the same rows, 27% padding removed
    1.3537
    """
    return round(unpacked_slots / mode_slots, 4)


class PackedRowsCollator:
    """Collate TRL's bfd bins as fixed rows: position ids restart at each example, no attention mask.

    Without an attention mask transformers derives a block-diagonal causal mask from the restarting position
    ids (``masking_utils.find_packed_sequence_indices``), so packed examples do not see each other; the first
    token of every example gets no label (it would be predicted from the previous example's last token).

    >>> batch = PackedRowsCollator(pad_token_id=0)([{"input_ids": [5, 6, 7], "labels": [5, 6, 7], "seq_lengths": [2, 1]},
    ...                                             {"input_ids": [8, 9], "labels": [8, 9], "seq_lengths": [2]}])
    >>> batch["position_ids"].tolist(), batch["labels"].tolist(), "attention_mask" in batch
    ([[0, 1, 0], [0, 1, 0]], [[-100, 6, -100], [-100, 9, -100]], False)
    """

    def __init__(self, pad_token_id: int) -> None:
        from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

        self.collate = DataCollatorForLanguageModeling(pad_token_id=pad_token_id, return_position_ids=True)

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        batch = self.collate(examples)
        del batch["attention_mask"]  # an all-ones mask would let packed examples attend to each other
        batch["labels"][batch["position_ids"] == 0] = -100
        return batch


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
            # packed batches carry no attention mask; their only pads (packed rows: after a row's last example) are pad ids
            real = int(mask.sum()) if mask is not None else int((inputs["input_ids"] != self.pad_id).sum())
            self.token_counts.append((int((labels != -100).sum()), real, int(inputs["input_ids"].numel())))
            return super().training_step(model, inputs, num_items_in_batch)

    return CountingSFTTrainer, Clock


def epoch_run(model: Any, tokenizer: Any, rows: Any, max_length: int, mode: str, seed: int, max_steps: int = -1) -> dict:
    """One epoch over ``rows`` in one mode on a fresh copy of ``model``: step seconds and token counts."""
    from labhelpers.model.hardware import recipe_for

    CountingSFTTrainer, Clock = _trainer_class()
    recipe = recipe_for("cpu", "ci").with_sizes(max_length=max_length, per_device_train_batch_size=BATCH,
                                                gradient_accumulation_steps=1, max_steps=max_steps)
    # "grouped": the caller passes the rows sorted longest first, so a sequential sampler keeps them grouped
    sampling = "sequential" if mode == "grouped" else "random"
    with tempfile.TemporaryDirectory(prefix="bench-packing-") as out:
        config = recipe.sft_config(out, num_train_epochs=1, assistant_only_loss=True, eval_strategy="no",
                                   save_strategy="no", logging_steps=1000, disable_tqdm=True, seed=seed, data_seed=seed,
                                   packing=mode in PACKED_MODES, train_sampling_strategy=sampling)
        trainer = CountingSFTTrainer(model=copy.deepcopy(model), args=config, train_dataset=rows, processing_class=tokenizer)
        if mode == "packed rows":  # TRL refuses a custom collator with bfd packing at construction, not after
            trainer.data_collator = PackedRowsCollator(tokenizer.pad_token_id)
        trainer.token_counts, trainer.pad_id = [], tokenizer.pad_token_id
        clock = Clock()
        trainer.add_callback(clock)
        loss = trainer.train().training_loss
    counts = trainer.token_counts
    return {"mode": mode, "seed": seed, "train_loss": loss, "step_s": clock.step_seconds(), "trained_tokens": [c[0] for c in counts],
            "real_tokens": [c[1] for c in counts], "slots": [c[2] for c in counts]}


def mode_figures(runs: Sequence[dict]) -> dict[str, Any]:
    """Totals of one mode over its runs: steps, seconds, trained/real tokens and slots, rates and padding share.

    >>> f = mode_figures([{"train_loss": 2.5, "step_s": [1.0, 3.0], "trained_tokens": [50, 150], "real_tokens": [90, 270], "slots": [100, 300]}])
    >>> f["trained_tok_s"], round(f["padding_share"], 6), f["steps"]
    (50.0, 0.1, 2)
    """
    step_s = [s for run in runs for s in run["step_s"]]
    trained = [t for run in runs for t in run["trained_tokens"]]
    real = [t for run in runs for t in run["real_tokens"]]
    slots = [t for run in runs for t in run["slots"]]
    return {"steps": len(step_s), "seconds": sum(step_s), "train_loss": statistics.mean(r["train_loss"] for r in runs),
            "trained_tokens": sum(trained), "real_tokens": sum(real),
            "slots": sum(slots), "trained_tok_s": tokens_per_second(trained, step_s),
            "real_tok_s": tokens_per_second(real, step_s), "padding_share": 1 - sum(real) / sum(slots)}


def _silence() -> None:
    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.logging.set_verbosity_error()


def main(rounds: int = ROUNDS) -> dict:
    """Print both tables and save ``benchmarks/results/packing.json``."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    _silence()
    from labhelpers.data.datasets import load_chat_dataset
    from labhelpers.model.hardware import detect_recipe
    from labhelpers.model.loading import load_model_and_tokenizer
    from labhelpers.run.training import conversation_lengths

    started = time.perf_counter()
    load_start = os.getloadavg()[0]
    model, tokenizer = load_model_and_tokenizer(recipe=detect_recipe("ci"), verbose=False)
    model.config.use_cache = False  # packed rows need it off (a cache breaks the block-diagonal mask: notebook 05); the same for every mode
    train = load_chat_dataset(source="bundled")["train"].select_columns(["messages"])
    lengths = conversation_lengths(train, tokenizer)
    print("warm-up step (not timed) ...", flush=True)
    epoch_run(model, tokenizer, train.select(range(BATCH)), MAX_LENGTHS[0][1], "unpacked", SEED, max_steps=1)

    padding_rows, speed_rows, figures = [], [], {"batch": BATCH, "rounds": rounds, "same_rows": SAME_ROWS, "settings": {}}
    for profile, max_length in MAX_LENGTHS:
        fits = [i for i, n in enumerate(lengths) if n <= max_length]
        pad_all = padding_figures(lengths, max_length)
        pad_fit = padding_figures([lengths[i] for i in fits], max_length)
        for label, p in (("all rows, truncated", pad_all), ("rows that fit", pad_fit)):
            padding_rows.append([f"{max_length} ({profile})", label, p["rows"], f"{p['random']:.1%}", f"{p['grouped']:.1%}",
                                 f"{p['packed']:.1%}", round(p["rows_per_packed_row"], 2),
                                 "yes" if p["packed"] <= GOAL_PACKED_SHARE else "NO"])

        runs: dict[str, list[dict]] = {m: [] for m in MODES}
        for r in range(rounds):
            picked = random.Random(SEED + r).sample(fits, SAME_ROWS)
            longest_first = sorted(picked, key=lambda i: -lengths[i])  # a length-grouped megabatch
            for mode in MODES:
                print(f"max_length {max_length}, round {r + 1}/{rounds}: {mode} ...", flush=True)
                rows = train.select(longest_first if mode == "grouped" else sorted(picked))
                runs[mode].append(epoch_run(model, tokenizer, rows, max_length, mode, SEED + r))
        speed = {mode: {**mode_figures(runs[mode]), "runs": runs[mode]} for mode in MODES}
        base = speed["unpacked"]
        for mode in MODES:
            s = speed[mode]
            s["vs_unpacked"] = s["trained_tok_s"] / base["trained_tok_s"]
            s["slot_ceiling"] = slot_ceiling(base["slots"], s["slots"])
            speed_rows.append([f"{max_length} ({profile})", mode, s["steps"], round(s["seconds"] / s["steps"], 2),
                               s["trained_tokens"], f"{s['padding_share']:.1%}", round(s["real_tok_s"], 1),
                               round(s["trained_tok_s"], 1), round(s["vs_unpacked"], 2), round(s["slot_ceiling"], 2),
                               round(s["train_loss"], 4)])
        figures["settings"][str(max_length)] = {"profile": profile, "padding_all_rows": pad_all,
                                                "padding_rows_that_fit": pad_fit, "speed": speed,
                                                **{f"{m.replace(' ', '_')}_vs_unpacked": speed[m]["vs_unpacked"]
                                                   for m in MODES[1:]}}

    print("\nPadding share (batch 4, padded to the longest row of each batch; packed = unused room in bfd bins)")
    print(format_table(["max_length", "rows", "n", "random", "grouped", "packed", "rows/packed row",
                        f"packed <= {GOAL_PACKED_SHARE:.0%}"], padding_rows))
    print(f"\nTrained tokens/s in SFTTrainer runs: every mode trains the same {rounds} x {SAME_ROWS} rows "
          "(one epoch per round), assistant-only loss")
    print(format_table(["max_length", "mode", "steps", "s/step", "trained tok", "pad share", "real tok/s",
                        "trained tok/s", "x unpacked", "slot ceiling", "train loss"], speed_rows))
    for max_length, s in figures["settings"].items():
        gap = abs(s["speed"]["packed"]["train_loss"] - s["speed"]["packed rows"]["train_loss"])
        print(f"max_length {max_length}: packed rows vs packed train loss differ by {gap:.1e} (same bins, both isolated)")
        best = max(PACKED_MODES, key=lambda m: s["speed"][m]["vs_unpacked"])
        ratio = s["speed"][best]["vs_unpacked"]
        verdict = "meets" if ratio >= GOAL_SPEEDUP else "MISSES"
        print(f"max_length {max_length}: best packing ({best}) {ratio:.2f}x unpacked trained tokens/s of a "
              f"{s['speed'][best]['slot_ceiling']:.2f}x slot ceiling: {verdict} the >= {GOAL_SPEEDUP}x goal")
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
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="rounds, each on newly drawn rows")
    main(parser.parse_args().rounds)
