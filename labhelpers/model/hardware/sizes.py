"""Run sizes per profile: how much data, how long, how big each step is (``RunSizes``), and the notebooks' demo,
generation and mini-run sizes (``LessonSizes``), each value with the reason it was chosen.

>>> profile_sizes("ci")[0].max_steps
30
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass, field
from typing import Any

PROFILES = ("ci", "colab", "full")
HARDWARE = ("cpu", "t4", "cuda-old", "ampere")
# transformers' SchedulerType values, spelled out: importing transformers.trainer_utils pulls in peft (~3 s), which a
# notebook that never trains should not pay for; tests/test_hardware.py fails when transformers adds or drops one.
SCHEDULERS = ("linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup",
              "inverse_sqrt", "reduce_lr_on_plateau", "cosine_with_min_lr", "cosine_warmup_with_min_lr",
              "warmup_stable_decay", "greedy")
BIG_GPU_GIB = 20.0  # at or above this much GPU memory, an Ampere card gets the large per-device batch


# ----------------------------------------------------------------------------------------------- run sizes
@dataclass(frozen=True)
class RunSizes:
    """How much data, how long, and how big each step is; every field is validated on construction."""

    n_train_examples: int | None = field(
        metadata={"help": "training rows taken from the train split (count); None = all rows. Small counts keep CPU runs to minutes."}
    )
    n_eval_examples: int = field(
        metadata={"help": "eval rows (count), carved from the train split; a fixed few keep each evaluation cheap."}
    )
    num_train_epochs: float = field(
        metadata={"help": "passes over the training rows; ignored when max_steps > 0. SFT rarely needs more than 3 before it overfits."}
    )
    max_steps: int = field(
        metadata={"help": "optimizer steps to run; -1 = derive from num_train_epochs. Caps CI runs at a known cost."}
    )
    max_length: int = field(
        metadata={"help": "tokens per sequence after truncation; longer rows are cut. Activation memory and step time grow with it."}
    )
    per_device_train_batch_size: int = field(
        metadata={"help": "sequences per forward pass on each device; bounded by memory (activations grow with batch x max_length)."}
    )
    per_device_eval_batch_size: int = field(
        metadata={"help": "sequences per eval forward pass on each device; eval keeps no gradients, so it can be ~2x the train batch."}
    )
    gradient_accumulation_steps: int = field(
        metadata={"help": "forward/backward passes summed before one optimizer step; raises the effective batch without more memory."}
    )
    learning_rate: float = field(
        metadata={"help": "peak AdamW learning rate (per step, after warmup); full fine-tunes of small models use 1e-5..1e-4."}
    )
    warmup_ratio: float = field(
        metadata={"help": "fraction of total optimizer steps spent ramping the LR up from 0 (0 <= r < 1); passed as SFTConfig(warmup_steps=r)."}
    )
    lr_scheduler_type: str = field(
        metadata={"help": "LR shape after warmup, a transformers SchedulerType name ('cosine', 'linear', 'constant', ...)."}
    )
    eval_steps: int | float = field(
        metadata={"help": "optimizer steps between evaluations (int), or a share of the run's steps (float < 1, "
                          "counted by the trainer after packing); each costs a pass over the eval rows."})
    logging_steps: int | float = field(
        metadata={"help": "optimizer steps between log lines (loss, grad_norm, learning_rate); int, or a share < 1."})
    save_steps: int | float = field(
        metadata={"help": "optimizer steps between checkpoints (int, or a share < 1: a multiple of eval_steps); "
                          "each writes ~0.5-1.6 GB for a 135M model with optimizer state."})
    gradient_checkpointing: bool = field(
        metadata={"help": "recompute activations in backward: ~30% less activation memory for ~20% more time per step."}
    )

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            _check_size(f.name, getattr(self, f.name))


def _check_size(name: str, value: Any) -> None:
    """Raise ValueError naming the field, the bad value and the fix when ``value`` is not valid for ``name``."""
    def bad(rule: str, fix: str) -> ValueError:
        return ValueError(f"RunSizes.{name} = {value!r}: {rule}; {fix}")

    is_int = isinstance(value, int) and not isinstance(value, bool)
    is_num = isinstance(value, (int, float)) and not isinstance(value, bool)
    if name == "n_train_examples":
        if value is not None and not (is_int and value > 0):
            raise bad("must be a positive int or None", "pass e.g. 500, or None to use every row")
    elif name in ("eval_steps", "logging_steps", "save_steps"):
        if not ((is_int and value > 0) or (isinstance(value, float) and 0 < value < 1)):
            raise bad("must be a positive int (steps) or a float between 0 and 1 (share of the run's steps)",
                      "pass e.g. 10, or 0.125 for every eighth of the run")
    elif name == "max_steps":
        if not (is_int and (value == -1 or value > 0)):
            raise bad("must be -1 or a positive int", "pass -1 to train for num_train_epochs, or e.g. 8 steps")
    elif name in ("n_eval_examples", "max_length", "per_device_train_batch_size", "per_device_eval_batch_size",
                  "gradient_accumulation_steps"):
        if not (is_int and value > 0):
            raise bad("must be a positive int", "pass a whole number >= 1")
    elif name == "num_train_epochs":
        if not (is_num and value > 0):
            raise bad("must be > 0", "pass e.g. 1 or 3 (fractions such as 0.5 are allowed)")
    elif name == "learning_rate":
        if not (is_num and 0 < value < 1):
            raise bad("must be > 0 (and < 1)", "pass e.g. 2e-5 or 1e-4")
    elif name == "warmup_ratio":
        if not (is_num and 0 <= value < 1):
            raise bad("must satisfy 0 <= ratio < 1 (SFTConfig reads warmup_steps >= 1 as a step count)",
                      "pass e.g. 0.1 for 10% of the steps, or 0 for no warmup")
    elif name == "lr_scheduler_type":
        if value not in SCHEDULERS:
            hint = difflib.get_close_matches(str(value), SCHEDULERS, n=1)
            did = f"did you mean {hint[0]!r}? " if hint else ""
            raise bad("is not a transformers SchedulerType", f"{did}choose one of {', '.join(map(repr, SCHEDULERS))}")
    elif name == "gradient_checkpointing":
        if not isinstance(value, bool):
            raise bad("must be True or False", "pass a bool")


# A recipe's sizes: (profile, split) -> values + reasons. "split" is how the batch is laid out on the device.
_SHARED = {
    "ci": dict(
        n_train_examples=(160, "the rows the 30 steps of 4 draw from (length-grouped batches pick 120 of them)"),
        n_eval_examples=(16, "two eval batches, a loss estimate in seconds on 2 CPU cores"),
        num_train_epochs=(1.0, "unused: max_steps ends the run first"),
        max_steps=(30, "measured on the 2-core CPU (20 held-out prompts): 30 steps at lr 2e-4 put 85% in the house "
                       "layout with 5% cut and none looping (36 at 1.5e-4 also 85%, 16% dearer; 30 at 1.5e-4 80%; 40 "
                       "at 1e-4 70%), the cheapest run measured that teaches the layout; half of those replies repeat "
                       "a line, so the strict house-format score (labhelpers.measure.behaviour) is 45%"),
        max_length=(160, "keeps the short single-turn rows (about half): a CPU step costs what its tokens cost; 40 "
                         "steps at <= 160 trained in 223 s vs ~430 s at <= 256, and 30 steps in ~175-210 s"),
        learning_rate=(2e-4, "a 135M full fine-tune needs a high LR to change behaviour in 30 steps (below the "
                             "preflight's 3e-4 warning; 1e-4 needed 40+ steps of longer rows)"),
        warmup_ratio=(0.1, "3 of 30 steps; avoids a full-size first update on fresh AdamW statistics"),
        lr_scheduler_type=("cosine", "as in the colab run, so the LR curve has the same shape"),
        eval_steps=(5, "7 evaluation points (the base model, then steps 5..30): enough to see the eval curve turn"),
        logging_steps=(1, "a short run needs every point to show a trend"),
        save_steps=(15, "checkpoints at steps 15 and 30 (a multiple of eval_steps): resume is exercised, and each "
                        "save of weights + AdamW state (~1.6 GB) is paid twice only"),
    ),
    "colab": dict(
        n_train_examples=(500, "as in the seed lab: a visible change in ~10 minutes on a T4"),
        n_eval_examples=(50, "a stable eval loss at a few seconds per evaluation"),
        num_train_epochs=(3.0, "as in the seed lab: 500 rows need repeats to change behaviour; more overfits"),
        max_steps=(-1, "the run length comes from num_train_epochs"),
        max_length=(512, "fits most single-turn chat rows without truncating the answer"),
        learning_rate=(2e-5, "as in the seed lab and TRL's default; measured (benchmarks/colab_profile, 96 steps on "
                             "CPU): house format 0% -> 93%, replies cut 50% -> 0%; natural replies: cut 50% -> 7%"),
        warmup_ratio=(0.1, "~10 of ~96 steps before the cosine decay"),
        lr_scheduler_type=("cosine", "decays to 0, as in the seed lab"),
        eval_steps=(0.125, "every eighth of the run: 8 evaluation points however many steps packing leaves"),
        logging_steps=(0.02, "every 2% of the run: ~50 points, a readable loss curve at any step count"),
        save_steps=(0.125, "with every evaluation, so the best evaluated model is always on disk (save_total_limit=2 keeps the disk small)"),
    ),
    "full": dict(
        n_train_examples=(None, "every training row"),
        n_eval_examples=(500, "eval loss noise well under the differences worth seeing, without a full-split pass each time"),
        num_train_epochs=(3.0, "as in the colab run; watch the eval loss for overfitting after epoch 2"),
        max_steps=(-1, "the run length comes from num_train_epochs over all rows"),
        max_length=(1024, "keeps long multi-turn rows whole; sized for A100/H100 (smaller cards add gradient checkpointing)"),
        learning_rate=(2e-5, "the standard full-fine-tune LR for this size, same as colab"),
        warmup_ratio=(0.1, "as in colab, so the LR curve has the same shape at every size"),
        lr_scheduler_type=("cosine", "decays to 0, as in colab"),
        eval_steps=(0.1, "every tenth of the run: 10 points, a curve without eval dominating the run time"),
        logging_steps=(0.01, "every 1% of the run: 100 points over a long run"),
        save_steps=(0.1, "with every evaluation, so the best evaluated model is on disk (each save is ~1.6 GB with optimizer state)"),
    ),
}

# (per_device_train, per_device_eval, grad_accum, gradient_checkpointing) with one reason each
_SPLITS = {
    # ci is the same on every device so CI numbers compare across machines
    ("ci", "any"): ((4, 8, 1, False), (
        "~5 s/step at <= 160 tokens on the 2-core CPU (same on every device so CI runs compare)",
        "eval keeps no gradients; two batches cover the 16 eval rows",
        "effective batch 4 keeps each of the 30 steps cheap (batch 2 x 40 steps taught only 40% of the format)",
        "a 135M model at batch 4 x 256 fits easily; checkpointing would add ~20% per step")),
    ("colab", "cpu"): ((4, 8, 4, False), (
        "as on the T4, so the effective batch matches the Colab run",
        "eval keeps no gradients, so twice the train batch fits",
        "4 x 4 = effective 16, as on the T4",
        "CPU RAM is plentiful and checkpointing costs ~20% more time (3.7 vs 3.1 s/step measured)")),
    ("colab", "small"): ((4, 8, 4, True), (
        "fits a 15 GB T4 at 512 tokens with fp32 weights and fp16 AMP",
        "eval keeps no gradients, so twice the train batch fits",
        "4 passes per step: effective batch 16, as in the seed lab",
        "as in the seed lab: frees activation memory on a 15 GB card for ~20% more time")),
    ("colab", "big"): ((16, 32, 1, False), (
        "a >= 20 GB Ampere card holds the whole effective batch at 512 tokens",
        "eval keeps no gradients, so twice the train batch fits",
        "16 x 1 = effective 16, same as the T4's 4 x 4, so the LR means the same",
        "memory is plentiful, so skip the ~20% recompute cost")),
    ("full", "cpu"): ((4, 8, 8, False), (
        "small passes (a full run on CPU takes days; this profile is for reading the numbers, not running)",
        "eval keeps no gradients, so twice the train batch fits",
        "4 x 8 = effective 32, as on the GPUs",
        "CPU RAM is plentiful; checkpointing only adds time")),
    ("full", "small"): ((4, 8, 8, True), (
        "fits a <= 16 GB card at 1024 tokens with checkpointing",
        "eval keeps no gradients, so twice the train batch fits",
        "4 x 8 = effective 32, the same as the big-GPU split",
        "1024-token activations would crowd a 15 GB card")),
    ("full", "big"): ((16, 32, 2, False), (
        "at 1024 tokens this fits a 40/80 GB A100/H100",
        "eval keeps no gradients, so twice the train batch fits",
        "16 x 2 = effective 32: over the whole dataset a larger batch halves the optimizer steps with smoother gradients",
        "memory is plentiful, so skip the ~20% recompute cost")),
}
_SPLIT_FIELDS = ("per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps",
                 "gradient_checkpointing")


def _split_kind(hardware: str, total_memory_gib: float | None) -> str:
    """'cpu', 'big' (Ampere with >= BIG_GPU_GIB) or 'small' (every other GPU)."""
    if hardware == "cpu":
        return "cpu"
    if hardware == "ampere" and (total_memory_gib or 0) >= BIG_GPU_GIB:
        return "big"
    return "small"


def profile_sizes(profile: str, hardware: str = "cpu", total_memory_gib: float | None = None) -> tuple[RunSizes, tuple[tuple[str, str], ...]]:
    """Run sizes for a profile on a hardware class, with a reason per field.

    >>> sizes, why = profile_sizes("colab", "t4", 15.0)
    >>> sizes.per_device_train_batch_size, sizes.gradient_accumulation_steps, sizes.gradient_checkpointing
    (4, 4, True)
    >>> profile_sizes("colab", "ampere", 80.0)[0].per_device_train_batch_size
    16
    """
    _check_choice("profile", profile, PROFILES)
    _check_choice("hardware", hardware, HARDWARE)
    kind = "any" if profile == "ci" else _split_kind(hardware, total_memory_gib)
    split_values, split_reasons = _SPLITS[(profile, kind)]
    values = {k: v for k, (v, _) in _SHARED[profile].items()}
    reasons = {k: why for k, (_, why) in _SHARED[profile].items()}
    values.update(zip(_SPLIT_FIELDS, split_values))
    reasons.update(zip(_SPLIT_FIELDS, split_reasons))
    order = [f.name for f in dataclasses.fields(RunSizes)]
    return RunSizes(**values), tuple((k, reasons[k]) for k in order)


def _check_choice(what: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        hint = difflib.get_close_matches(str(value), choices, n=1)
        did = f"; did you mean {hint[0]!r}?" if hint else ""
        raise ValueError(f"unknown {what} {value!r}: choose one of {', '.join(map(repr, choices))}{did}")


# ----------------------------------------------------------------------------------------------- lesson sizes
@dataclass(frozen=True)
class LessonSizes:
    """The sizes the notebooks need besides the main run (demos, generation, mini-runs), per profile."""

    n_heldout_prompts: int = field(metadata={"help": "held-out test prompts answered before (02) and after (09) tuning"})
    max_new_tokens: int = field(metadata={"help": "generation budget per reply; a house-format reply needs ~60-80 tokens"})
    n_retention_prompts: int = field(metadata={"help": "general and code prompts outside the data, asked before and after (09)"})
    generation_batch_size: int = field(metadata={"help": "prompts per generate() call (left-padded batch)"})
    overfit_steps: int = field(metadata={"help": "steps of notebook 07's deliberate overfitting run (4 rows, high LR)"})
    compare_steps: int = field(metadata={"help": "optimizer steps per mini-run of notebook 08 (schedules and LRs)"})
    compare_batch_size: int = field(metadata={"help": "sequences per step in notebook 08's mini-runs"})
    compare_max_length: int = field(metadata={"help": "tokens per row in notebook 08's mini-runs"})
    protocol_overfit_steps: int = field(metadata={"help": "steps of the protocol's overfit test (notebook 10)"})
    protocol_short_steps: int = field(metadata={"help": "steps of the protocol's short run with eval (notebook 10)"})
    loop_micro_batches: int = field(metadata={"help": "micro-batches the custom Accelerate loop runs (notebook 11)"})
    loop_micro_batch_size: int = field(metadata={"help": "sequences per micro-batch in notebook 11"})
    loop_grad_accum: int = field(metadata={"help": "micro-batches per optimizer step in notebook 11"})
    samples_every: int = field(metadata={"help": "LiveSamples answers its held-out prompts at every n-th evaluation "
                                                 "and the last (notebook 06 and the reference run)"})

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if not (isinstance(value, int) and not isinstance(value, bool) and value > 0):
                raise ValueError(f"LessonSizes.{f.name} = {value!r}: must be a positive int; pass a whole number >= 1")


def lesson_sizes(profile: str, sizes: RunSizes) -> tuple[LessonSizes, tuple[tuple[str, str], ...]]:
    """The notebooks' demo, generation and mini-run sizes for a profile, with a reason per field.

    >>> lesson, why = lesson_sizes("ci", profile_sizes("ci")[0])
    >>> lesson.n_heldout_prompts, lesson.compare_steps, lesson.loop_micro_batches
    (20, 5, 6)
    >>> lesson_sizes("colab", profile_sizes("colab", "t4", 15.0)[0])[0].loop_micro_batch_size
    4
    """
    _check_choice("profile", profile, PROFILES)
    per_device, accum, length = sizes.per_device_train_batch_size, sizes.gradient_accumulation_steps, sizes.max_length
    if profile == "ci":
        table = dict(
            n_heldout_prompts=(20, "enough held-out prompts for a headline rate (one prompt = 5 points)"),
            max_new_tokens=(96, "a house-format reply fits with room to spare; a runaway reply is cut early"),
            n_retention_prompts=(10, "5 general + 5 code prompts: what tuning cost, at two generation batches"),
            generation_batch_size=(12, "measured on the 2-core CPU, 23 prompts x 96 new tokens: 45 s in batches of 8, "
                                       "34 s of 12, 37 s of 23 (one by one: ~4x slower)"),
            overfit_steps=(6, "4 rows at lr 1e-3: train loss 3.03 -> 0.20 in 6 steps while eval loss is best at step 2 "
                              "(2.47) and rises to 3.15, so early stopping (patience 2) stops at step 6 (measured "
                              "2026-12-07; 8 steps: the same turn, 0.09 and 3.74); eval at the start and every 2 steps "
                              "gives 4 points"),
            compare_steps=(5, "one warmup step at LR 0 and four real ones per mini-run: the final losses part "
                              "(constant_with_warmup 2.13, cosine 2.30, linear 2.31; lr 1e-5..2e-4: 3.19, 2.86, 2.63, "
                              "2.30; measured 2026-12-07), at 4 steps they did not yet (2.42-2.45)"),
            compare_batch_size=(2, "small batches keep the six mini-runs cheap"),
            compare_max_length=(128, "short rows keep the six mini-runs cheap"),
            protocol_overfit_steps=(8, "enough for 20 rows to fall well below half their first loss: 3.67 -> 0.71, an "
                                       "81% drop at step 8 (62-65% at steps 6-7, 75% at 10; measured 2026-12-07)"),
            protocol_short_steps=(2, "eval loss before, after step 1 and after step 2 (3.50 -> 3.03, GO; measured "
                                     "2026-12-07): the short run's check at its least cost"),
            loop_micro_batches=(6, "three optimizer steps of 2 micro-batches: the accumulation is visible"),
            loop_micro_batch_size=(2, "small micro-batches keep the hand-written loop cheap on a CPU"),
            loop_grad_accum=(2, "two micro-batches per step show the accumulation normalisation"),
            samples_every=(6, "the first and the last of the run's 7 evaluations: greedy decoding on the 2-core CPU "
                              "costs ~0.1 s per new token at any batch (memory-bound), so three prompts cost 4.3 s "
                              "on the base model and 10.6 s after training; every third evaluation (3 samplings) "
                              "cost 26 s, 13% of the ~205 s reference run, first and last ~15 s, 7% (measured "
                              "2026-12-06)"),
        )
    else:
        big = profile == "full"
        table = dict(
            n_heldout_prompts=(30, "30 held-out prompts: a rate with ~3-point resolution"),
            max_new_tokens=(256, "long enough for the base model's free-form replies to finish"),
            n_retention_prompts=(20, "10 general + 10 code prompts: what tuning cost"),
            generation_batch_size=(32, "a GPU generates 32 short replies as fast as one"),
            overfit_steps=(60, "4 rows memorised with room to show the eval curve turn"),
            compare_steps=(60 if big else 30, "long enough for the schedules' decay to separate the curves"),
            compare_batch_size=(per_device, "the run's per-device batch"),
            compare_max_length=(length, "the run's max_length"),
            protocol_overfit_steps=(50, "the classic overfit test: 20 rows, 50 steps"),
            protocol_short_steps=(40, "a short run with several evaluations"),
            loop_micro_batches=(256 if big else 64, "enough optimizer steps for a falling loss"),
            loop_micro_batch_size=(per_device, "the run's per-device batch"),
            loop_grad_accum=(accum, "the run's gradient accumulation"),
            samples_every=(3, "the first, every third and the last of the run's 8-10 evaluations: replies appear "
                              "step by step (not yet timed on a GPU)"),
        )
    return (LessonSizes(**{k: v for k, (v, _) in table.items()}),
            tuple((k, why) for k, (_, why) in table.items()))
