"""Hardware recipes: which dtype, attention, precision flags, batching and run sizes to use on this machine, and why.

A ``Recipe`` is plain values (frozen dataclasses) plus a reason for every choice. Build the model and the
``SFTConfig`` from it; the trainer is not wrapped::

    recipe = detect_recipe()                      # profile: argument, else $LAB_PROFILE, else ci (CPU) / colab (GPU)
    print(recipe.explain())
    model = AutoModelForCausalLM.from_pretrained(path, **recipe.model_kwargs()).to(recipe.device)
    args = recipe.sft_config("out", max_steps=8)  # the one way to build an SFTConfig; unknown keys raise

Device rules (numbers measured on the lab's 2-core CPU by ``benchmarks/``; README, "Performance"):

* ``cpu``: fp32 weights, no AMP, ``use_cpu=True``, sdpa, no packing. bf16 on this CPU runs only with
  ``use_cpu=True`` and is ~12x slower; ``fp16=True`` is silently ignored on CPU; TRL's SFTConfig defaults to bf16
  and refuses a CPU unless ``use_cpu=True``.
* ``t4`` (NVIDIA T4, compute capability 7.5) and ``cuda-old`` (any other CUDA card with cc < 8, e.g. V100, P100):
  fp32 weights + ``fp16=True`` AMP (fp16 *weights* with fp16 AMP fail: "Attempting to unscale FP16 gradients"),
  no bf16, sdpa (flash-attention needs cc >= 8), length-grouped batches instead of packing.
* ``ampere`` (cc >= 8: A100, H100, L4, RTX 30xx/40xx): fp32 master weights + ``bf16=True`` autocast;
  ``flash_attention_2`` when ``flash_attn`` or ``kernels`` can serve it (then padding-free packing), else sdpa.
"""

from __future__ import annotations

import dataclasses
import difflib
import html
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from labhelpers.batching import BatchPlan, effective_batch

PROFILES = ("ci", "colab", "full")
HARDWARE = ("cpu", "t4", "cuda-old", "ampere")
# transformers' SchedulerType values, spelled out: importing transformers.trainer_utils pulls in peft (~3 s), which a
# notebook that never trains should not pay for; tests/test_hardware.py fails when transformers adds or drops one.
SCHEDULERS = ("linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup",
              "inverse_sqrt", "reduce_lr_on_plateau", "cosine_with_min_lr", "cosine_warmup_with_min_lr",
              "warmup_stable_decay", "greedy")
BIG_GPU_GIB = 20.0  # at or above this much GPU memory, an Ampere card gets the large per-device batch
_GIB = 1024**3


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
                       "a line, so the strict house-format score (labhelpers.behaviour) is 45%"),
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

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if not (isinstance(value, int) and not isinstance(value, bool) and value > 0):
                raise ValueError(f"LessonSizes.{f.name} = {value!r}: must be a positive int; pass a whole number >= 1")


def lesson_sizes(profile: str, sizes: RunSizes) -> tuple[LessonSizes, tuple[tuple[str, str], ...]]:
    """The notebooks' demo, generation and mini-run sizes for a profile, with a reason per field.

    >>> lesson, why = lesson_sizes("ci", profile_sizes("ci")[0])
    >>> lesson.n_heldout_prompts, lesson.compare_steps, lesson.loop_micro_batches
    (20, 6, 6)
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
            overfit_steps=(12, "4 rows at lr 1e-3 are memorised in ~10 steps; eval at the start and every 2 steps "
                                   "gives 7 points"),
            compare_steps=(6, "six ~1 s steps per mini-run: the curves part within a CPU minute"),
            compare_batch_size=(2, "small batches keep the six mini-runs cheap"),
            compare_max_length=(128, "short rows keep the six mini-runs cheap"),
            protocol_overfit_steps=(10, "enough for 4 rows to fall well below half their first loss"),
            protocol_short_steps=(4, "two evaluations in a CPU minute"),
            loop_micro_batches=(6, "three optimizer steps of 2 micro-batches: the accumulation is visible"),
            loop_micro_batch_size=(2, "small micro-batches keep the hand-written loop cheap on a CPU"),
            loop_grad_accum=(2, "two micro-batches per step show the accumulation normalisation"),
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
        )
    return (LessonSizes(**{k: v for k, (v, _) in table.items()}),
            tuple((k, why) for k, (_, why) in table.items()))


# ----------------------------------------------------------------------------------------------- recipe
_CHOICE_FIELDS = ("hardware", "profile", "torch_dtype", "attn_implementation", "fp16", "bf16", "use_cpu", "packing",
                  "train_sampling_strategy")
# What notebook 06's run adds to the recipe, named once: its check, the reference run (``ensure_tuned_model``)
# and every notebook that needs "the tuned model" read it here, so the notebooks can run in any order.
REFERENCE_RUN_SETTINGS: dict[str, Any] = {
    "assistant_only_loss": True,  # train on the replies (and their <|im_end|>) only: notebook 04
    "eval_on_start": True,  # one evaluation before the first step: the eval curve starts at the base model's loss
    "load_best_model_at_end": True,  # keep the best evaluated checkpoint, not the last: notebook 07
    "metric_for_best_model": "eval_loss",
    "greater_is_better": False,
    "save_total_limit": 2,  # the best and the newest checkpoint
}


def _check_config_keys(overrides: dict[str, Any]) -> None:
    """Raise ValueError naming an unknown SFTConfig key, its likely replacement and the valid keys' source.

    >>> _check_config_keys({"max_seq_length": 512})
    Traceback (most recent call last):
    ...
    ValueError: SFTConfig has no field 'max_seq_length': use max_length=... (TRL 1.x renamed it)
    """
    from trl import SFTConfig

    from labhelpers.drift import REMOVED_ARGUMENTS

    valid = {f.name for f in dataclasses.fields(SFTConfig)}
    for key in overrides:
        if key in valid:
            continue
        if key in REMOVED_ARGUMENTS:
            raise ValueError(f"SFTConfig has no field {key!r}: {REMOVED_ARGUMENTS[key]}")
        hint = difflib.get_close_matches(key, sorted(valid), n=1)
        did = f"did you mean {hint[0]!r}?" if hint else "see trl.SFTConfig for the valid fields."
        raise ValueError(f"SFTConfig has no field {key!r}: {did}")


@dataclass(frozen=True)
class Recipe:
    """Everything hardware-dependent for one run: load kwargs, precision flags, run sizes, and a reason for each."""

    hardware: str = field(metadata={"help": "'cpu', 't4' (T4, cc 7.5), 'cuda-old' (other cc < 8) or 'ampere' (cc >= 8)"})
    device_name: str = field(metadata={"help": "what torch reports, e.g. 'Tesla T4', or 'cpu'"})
    profile: str = field(metadata={"help": "one of PROFILES: 'ci' (tiny, CPU/CI), 'colab' (seed lab), 'full' (all rows)"})
    torch_dtype: torch.dtype = field(metadata={"help": "dtype the weights are loaded in (fp32 master weights everywhere)"})
    attn_implementation: str = field(metadata={"help": "'sdpa' or 'flash_attention_2'"})
    fp16: bool = field(metadata={"help": "fp16 autocast + loss scaling (CUDA only; needs fp32 weights)"})
    bf16: bool = field(metadata={"help": "bf16 autocast (cc >= 8 on CUDA)"})
    use_cpu: bool = field(metadata={"help": "force the CPU even if an accelerator is visible"})
    packing: bool = field(metadata={"help": "TRL's padding-free packing (bfd): only with a variable-length attention kernel"})
    train_sampling_strategy: str = field(metadata={"help": "'random' or 'group_by_length' (batches of similar length)"})
    sizes: RunSizes = field(metadata={"help": "how much data, how long, batch layout"})
    lesson: LessonSizes = field(metadata={"help": "demo, generation and mini-run sizes of the notebooks"})
    reasons: tuple[tuple[str, str], ...] = field(metadata={"help": "(field, one-sentence why) for every choice"})

    @property
    def device(self) -> torch.device:
        """Where the model goes at load: ``cpu`` or ``cuda``; every tensor that meets the model follows it.

        >>> recipe_for("cpu", "ci").device
        device(type='cpu')
        """
        return torch.device("cpu" if self.use_cpu else "cuda")

    @property
    def emulated(self) -> bool:
        """True under ``LAB_FORCE_HARDWARE=ampere-cpu``: the Ampere recipe kept on the CPU (see :func:`emulated_ampere_recipe`).

        >>> recipe_for("cpu", "ci").emulated
        False
        """
        return self.hardware == "ampere" and self.use_cpu

    def autocast(self) -> Any:
        """The mixed-precision context of this recipe (also for generation with flash-attention), or a no-op.

        >>> with recipe_for("cpu", "ci").autocast(): pass
        """
        import contextlib

        if not (self.fp16 or self.bf16):
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.float16 if self.fp16 else torch.bfloat16)

    def model_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``AutoModelForCausalLM.from_pretrained``.

        >>> recipe_for("cpu", "ci").model_kwargs()
        {'dtype': torch.float32, 'attn_implementation': 'sdpa'}
        """
        return {"dtype": self.torch_dtype, "attn_implementation": self.attn_implementation}

    def sft_config_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``trl.SFTConfig`` (precision, batching, run sizes, logging); see :meth:`sft_config`.

        >>> kw = recipe_for("cpu", "ci").sft_config_kwargs()
        >>> kw["use_cpu"], kw["bf16"], kw["warmup_steps"], kw["max_steps"], kw["logging_nan_inf_filter"], kw["packing"]
        (True, False, 0.1, 30, False, False)
        """
        s = self.sizes
        return {
            "fp16": self.fp16,
            "bf16": self.bf16,
            "use_cpu": self.use_cpu,
            "packing": self.packing,
            "train_sampling_strategy": self.train_sampling_strategy,
            "max_length": s.max_length,
            "per_device_train_batch_size": s.per_device_train_batch_size,
            "per_device_eval_batch_size": s.per_device_eval_batch_size,
            "gradient_accumulation_steps": s.gradient_accumulation_steps,
            "learning_rate": s.learning_rate,
            "warmup_steps": s.warmup_ratio,  # TRL 1.x: a float < 1 is a ratio of the total steps
            "lr_scheduler_type": s.lr_scheduler_type,
            "num_train_epochs": s.num_train_epochs,
            "max_steps": s.max_steps,
            "eval_strategy": "steps",
            "eval_steps": s.eval_steps,
            "logging_steps": s.logging_steps,
            "save_strategy": "steps",
            "save_steps": s.save_steps,
            # transformers 5 renamed gradient_checkpointing (deprecated, warns) to activation_checkpointing
            "activation_checkpointing": s.gradient_checkpointing,
            "logging_nan_inf_filter": False,  # Trainer's default True hides a NaN loss behind a running average
            "seed": 42,
            "report_to": "none",
        }

    def sft_config(self, output_dir: str | Path, **overrides: Any) -> Any:
        """The one way to build an ``SFTConfig`` from the recipe; ``overrides`` replace fields (unknown keys raise).

        >>> recipe_for("cpu", "ci").sft_config("/tmp/out", max_steps=3).max_steps
        3
        >>> recipe_for("cpu", "ci").sft_config("/tmp/out", evaluation_strategy="no")
        Traceback (most recent call last):
        ...
        ValueError: SFTConfig has no field 'evaluation_strategy': use eval_strategy="steps" or "epoch"
        """
        from trl import SFTConfig

        _check_config_keys(overrides)
        return SFTConfig(output_dir=str(output_dir), **{**self.sft_config_kwargs(), **overrides})

    def reference_config(self, output_dir: str | Path, **overrides: Any) -> Any:
        """The ``SFTConfig`` of notebook 06's run: the recipe plus :data:`REFERENCE_RUN_SETTINGS`.

        >>> recipe_for("cpu", "ci").reference_config("/tmp/out").assistant_only_loss
        True
        """
        return self.sft_config(output_dir, **{**REFERENCE_RUN_SETTINGS, **overrides})

    def with_sizes(self, **overrides: Any) -> Recipe:
        """A copy with some RunSizes fields replaced; unknown keys and bad values raise ValueError.

        >>> r = recipe_for("cpu", "ci").with_sizes(max_steps=5, n_train_examples=16)
        >>> r.sizes.max_steps, dict(r.reasons)["max_steps"]
        (5, 'set by with_sizes(max_steps=5)')
        >>> recipe_for("cpu", "ci").with_sizes(lerning_rate=1e-4)
        Traceback (most recent call last):
        ...
        ValueError: unknown size 'lerning_rate'; did you mean 'learning_rate'? Valid keys: n_train_examples, n_eval_examples, num_train_epochs, max_steps, max_length, per_device_train_batch_size, per_device_eval_batch_size, gradient_accumulation_steps, learning_rate, warmup_ratio, lr_scheduler_type, eval_steps, logging_steps, save_steps, gradient_checkpointing
        """
        valid = [f.name for f in dataclasses.fields(RunSizes)]
        for key in overrides:
            if key not in valid:
                hint = difflib.get_close_matches(key, valid, n=1)
                did = f"; did you mean {hint[0]!r}?" if hint else ";"
                raise ValueError(f"unknown size {key!r}{did} Valid keys: {', '.join(valid)}")
        sizes = dataclasses.replace(self.sizes, **overrides)  # RunSizes.__post_init__ validates each value
        reasons = tuple((k, f"set by with_sizes({k}={overrides[k]!r})") if k in overrides else (k, why)
                        for k, why in self.reasons)
        return dataclasses.replace(self, sizes=sizes, reasons=reasons)

    def plan(self, n_examples: int | None = None, n_gpus: int = 1) -> BatchPlan:
        """The BatchPlan of this recipe; ``n_examples`` defaults to ``sizes.n_train_examples``.

        Under packing, pass the number of packed rows (``len(trainer.train_dataset)``): that is what the
        trainer batches, so that is what the step count follows.

        >>> recipe_for("t4", "colab", total_memory_gib=15.0).plan().total_steps
        96
        """
        s = self.sizes
        n = s.n_train_examples if n_examples is None else n_examples
        return effective_batch(s.per_device_train_batch_size, s.gradient_accumulation_steps, n_gpus, n,
                               s.num_train_epochs, s.warmup_ratio, s.max_length, s.max_steps)

    def explain(self) -> str:
        """A short human explanation: device, each choice with its reason, effective batch and tokens per step.

        >>> print(recipe_for("cpu", "ci").explain().splitlines()[0])
        Recipe 'ci' on cpu (cpu)
        """
        why = dict(self.reasons)
        lines = [f"Recipe {self.profile!r} on {self.hardware} ({self.device_name})"]
        for name in _CHOICE_FIELDS:
            lines.append(f"  {name} = {getattr(self, name)!r}: {why.get(name, '')}")
        for title, values in (("sizes", self.sizes), ("lesson sizes", self.lesson)):
            lines.append(f"  {title}:")
            for f in dataclasses.fields(values):
                lines.append(f"    {f.name} = {getattr(values, f.name)!r}: {why.get(f.name, '')}")
        p = self.plan()
        s = self.sizes
        lines.append(f"  effective batch = {s.per_device_train_batch_size} per device x {s.gradient_accumulation_steps} "
                     f"accum x 1 device = {p.effective_batch_size} sequences per optimizer step")
        lines.append(f"  tokens per optimizer step <= {p.effective_batch_size} x {s.max_length} = {p.tokens_per_step:,} "
                     "(padding and short rows make it less)")
        packed = " before packing (packing merges rows, so the trainer counts fewer)" if self.packing else ""
        if p.total_steps is not None:
            lines.append(f"  optimizer steps = {p.total_steps}{packed if s.max_steps < 0 else ''}, "
                         f"warmup steps = {p.warmup_steps}")
        else:
            lines.append(f"  optimizer steps: {s.num_train_epochs:g} epochs x ceil(rows / {p.effective_batch_size})"
                         f"{packed} (row count known once the dataset is loaded)")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.explain()

    def _repr_html_(self) -> str:
        return f"<pre>{html.escape(self.explain())}</pre>"


# Measured on the lab's 2-core CPU (benchmarks/packing.py), trained tokens/s vs random padded batches, 256 / 512:
# length-grouped 1.29x / 1.55x, TRL padding-free packing 1.16x / 1.10x (sdpa attends over the whole flattened row).
_NO_VARLEN_PACKING = ("sdpa has no variable-length kernel: TRL's padding-free packing flattens a batch into one row "
                      "and attention then costs the square of the batch's tokens; measured on CPU, packed 21.5 s/step "
                      "for ~880 tokens vs unpacked 12.1 s/step for ~505: the same cost per token, no gain")
_GROUPED = ("rows of similar length share a batch, so almost no padding is computed (1.29x / 1.55x tokens/s at "
            "256 / 512 measured) while each row stays short, where attention is cheap")


def _batching_choice(hardware: str, attn: str) -> tuple[bool, str, str, str]:
    """(packing, sampling, why packing, why sampling) for a hardware class and attention kernel."""
    if attn == "flash_attention_2":
        return (True, "random", "flash-attention's variable-length kernel attends within each packed example only: "
                "padding-free packing removes all padding without cross-contamination",
                "packing already removes the padding; random order keeps batches unbiased")
    if hardware == "cpu":
        return (False, "random", _NO_VARLEN_PACKING,
                "the CPU runs are a few dozen rows: length grouping would order the whole run longest-first "
                "(a curriculum nobody asked for) to save little padding")
    return False, "group_by_length", _NO_VARLEN_PACKING, _GROUPED


def recipe_for(hardware: str, profile: str, device_name: str | None = None, capability: tuple[int, int] | None = None,
               total_memory_gib: float | None = None, flash_backend: str | None = None,
               profile_source: str = "argument", flash_reason: str | None = None) -> Recipe:
    """The recipe for a hardware class and profile, without looking at this machine (see ``detect_recipe``).

    ``flash_backend``: what can serve flash-attention on an Ampere+ card: ``"flash_attn"`` (the compiled package),
    ``"kernels"`` (transformers loads the hub kernel ``kernels-community/flash-attn2``) or None; ``flash_reason``: what
    the probe (``labhelpers.attention.probe_flash_attention``) found, said in the attention reason.

    >>> r = recipe_for("t4", "colab", total_memory_gib=15.0)
    >>> r.torch_dtype, r.fp16, r.bf16, r.attn_implementation, r.packing, r.train_sampling_strategy
    (torch.float32, True, False, 'sdpa', False, 'group_by_length')
    >>> r = recipe_for("ampere", "colab", "NVIDIA A100-SXM4-80GB", (8, 0), 80.0, flash_backend="kernels")
    >>> r.torch_dtype, r.bf16, r.attn_implementation, r.packing, r.sizes.per_device_train_batch_size
    (torch.float32, True, 'flash_attention_2', True, 16)
    """
    _check_choice("hardware", hardware, HARDWARE)
    _check_choice("profile", profile, PROFILES)
    if flash_backend not in (None, "flash_attn", "kernels"):
        raise ValueError(f"unknown flash_backend {flash_backend!r}: choose 'flash_attn', 'kernels' or None")
    cc = "" if capability is None else f"compute capability {capability[0]}.{capability[1]}"
    mem = "" if total_memory_gib is None else f"{total_memory_gib:.1f} GiB"
    facts = ", ".join(x for x in (cc, mem) if x)
    facts = f" ({facts})" if facts else ""
    default_name = {"cpu": "cpu", "t4": "Tesla T4", "cuda-old": "CUDA GPU", "ampere": "CUDA GPU"}[hardware]
    name = device_name or default_name
    why: dict[str, str] = {"profile": {
        "argument": f"profile {profile!r} passed as an argument",
        "env": f"profile {profile!r} from the LAB_PROFILE environment variable",
        "default": f"no argument and no LAB_PROFILE: {profile!r} is the default on {'a CPU' if hardware == 'cpu' else 'a GPU'}",
    }.get(profile_source, profile_source)}
    dtype = torch.float32
    if hardware == "cpu":
        fp16, bf16, use_cpu, attn = False, False, True, "sdpa"
        why["hardware"] = "no CUDA device visible (torch.cuda.is_available() is False), so training runs on the CPU"
        why["torch_dtype"] = "bf16 on this CPU runs only with use_cpu=True and is ~12x slower; fp16 is no faster"
        why["fp16"] = "fp16 AMP is a no-op on CPU (Trainer silently ignores fp16=True there)"
        why["bf16"] = "bf16 on this CPU is ~12x slower than fp32; set explicitly because TRL's SFTConfig defaults to bf16"
        why["use_cpu"] = "TRL's SFTConfig refuses a CPU without it, and it keeps Apple MPS out of the way"
        why["attn_implementation"] = "PyTorch's built-in attention, always available; flash-attn is CUDA-only"
    elif hardware in ("t4", "cuda-old"):
        fp16, bf16, use_cpu, attn = True, False, False, "sdpa"
        card = "NVIDIA T4" if hardware == "t4" else name
        why["hardware"] = (f"{card}{facts}: compute capability < 8, so fp16 tensor cores but no bf16 and no flash-attention")
        why["torch_dtype"] = ("fp32 master weights for AMP: fp16 weights with fp16=True fail with "
                              "'Attempting to unscale FP16 gradients'")
        why["fp16"] = "fp16 autocast with loss scaling uses the tensor cores of a cc < 8 card"
        why["bf16"] = "bf16 needs compute capability >= 8"
        why["use_cpu"] = "train on the GPU"
        why["attn_implementation"] = "flash-attention needs compute capability >= 8; sdpa uses its memory-efficient kernel here"
    else:  # ampere
        fp16, bf16, use_cpu = False, True, False
        why["hardware"] = f"{name}{facts}: compute capability >= 8, so bf16 and flash-attention are supported"
        why["torch_dtype"] = ("fp32 master weights with bf16 autocast: bf16 weights keep 8 mantissa bits, so an AdamW "
                              "update below half a bf16 step rounds away (at lr 2e-5, every weight with |w| >~ 0.005); "
                              "the 135M model with fp32 AdamW state needs ~2 GB, which fits any card")
        why["fp16"] = "bf16 has fp32's range, so no loss scaling is needed"
        why["bf16"] = "bf16 autocast on a cc >= 8 card: matmuls and attention run in bf16 on the tensor cores"
        why["use_cpu"] = "train on the GPU"
        if flash_backend is not None:
            attn = "flash_attention_2"
            source = flash_reason or ("the flash_attn package is installed" if flash_backend == "flash_attn" else
                                      "the kernels package serves it (transformers downloads the prebuilt hub kernel "
                                      "kernels-community/flash-attn2; no compiling)")
            why["attn_implementation"] = (f"{source}; cc >= 8; exact, and its variable-length kernel makes packing "
                                          "padding-free without cross-contamination (every forward outside the "
                                          "Trainer runs under recipe.autocast(): the kernel takes only fp16/bf16)")
        else:
            attn = "sdpa"
            why["attn_implementation"] = (f"flash-attention is not usable here: {flash_reason}; sdpa is built in, and "
                                          "packing stays off" if flash_reason else
                                          "neither flash_attn nor kernels is installed (the Colab install cell installs "
                                          "the locked kernels); sdpa is built in")
    packing, sampling, why["packing"], why["train_sampling_strategy"] = _batching_choice(hardware, attn)
    sizes, size_reasons = profile_sizes(profile, hardware, total_memory_gib)
    lesson, lesson_reasons = lesson_sizes(profile, sizes)
    reasons = tuple((k, why[k]) for k in _CHOICE_FIELDS) + size_reasons + lesson_reasons
    return Recipe(hardware=hardware, device_name=name, profile=profile, torch_dtype=dtype, attn_implementation=attn,
                  fp16=fp16, bf16=bf16, use_cpu=use_cpu, packing=packing, train_sampling_strategy=sampling,
                  sizes=sizes, lesson=lesson, reasons=reasons)


def _resolve_profile(profile: str | None, on_gpu: bool) -> tuple[str, str]:
    """(profile, source): the argument, else $LAB_PROFILE, else 'ci' on CPU / 'colab' on GPU."""
    if profile is not None:
        value, source, where = profile, "argument", "from the profile argument"
    elif os.environ.get("LAB_PROFILE", "").strip():
        value, source, where = os.environ["LAB_PROFILE"], "env", "from the LAB_PROFILE environment variable"
    else:
        return ("colab" if on_gpu else "ci"), "default"
    norm = str(value).strip().lower()
    if norm not in PROFILES:
        hint = difflib.get_close_matches(norm, PROFILES, n=1)
        did = f" Did you mean {hint[0]!r}?" if hint else ""
        fix = "pass one of them" if source == "argument" else "set LAB_PROFILE to one of them or unset it"
        raise ValueError(f"unknown profile {value!r} ({where}): choose one of "
                         f"{', '.join(map(repr, PROFILES))}; {fix}.{did}")
    return norm, source


FORCE_HARDWARE_ENV = "LAB_FORCE_HARDWARE"
FORCIBLE_HARDWARE = ("t4", "ampere", "cpu", "ampere-cpu")
NO_CUDA_NEEDED = ("cpu", "ampere-cpu")


def _forced_hardware(on_gpu: bool) -> str | None:
    """``$LAB_FORCE_HARDWARE`` checked: None when unset, else one of FORCIBLE_HARDWARE (t4/ampere need CUDA)."""
    value = os.environ.get(FORCE_HARDWARE_ENV, "").strip().lower()
    if not value:
        return None
    if value not in FORCIBLE_HARDWARE:
        raise ValueError(f"{FORCE_HARDWARE_ENV}={value!r}: choose one of {', '.join(map(repr, FORCIBLE_HARDWARE))}, "
                         "or unset it to detect the hardware")
    if value not in NO_CUDA_NEEDED and not on_gpu:
        raise ValueError(f"{FORCE_HARDWARE_ENV}={value!r} needs a CUDA GPU, and torch.cuda.is_available() is False "
                         f"here: unset {FORCE_HARDWARE_ENV} (or set it to 'cpu', or 'ampere-cpu' to emulate the "
                         "Ampere recipe on this CPU) on this machine")
    return value


def detect_recipe(profile: str | None = None) -> Recipe:
    """The recipe for this machine: profile from the argument, else $LAB_PROFILE, else 'ci' (CPU) / 'colab' (GPU).

    ``$LAB_FORCE_HARDWARE`` (``t4``, ``ampere``, ``cpu`` or ``ampere-cpu``) replaces the detected hardware class, so
    one GPU can rehearse another card's recipe (``tools/gpu_rehearsal.py`` runs the series with ``t4``, the fp16-AMP
    recipe, and ``ampere``, the bf16 one, on the same card). ``t4`` and ``ampere`` need CUDA (ValueError without
    it); ``cpu`` works everywhere, and ``ampere-cpu`` runs the Ampere recipe on the CPU under flash-attention's
    contract at smoke sizes (:func:`emulated_ampere_recipe`). The hardware reason then says it was forced.

    >>> detect_recipe("nope")
    Traceback (most recent call last):
    ...
    ValueError: unknown profile 'nope' (from the profile argument): choose one of 'ci', 'colab', 'full'; pass one of them.
    """
    on_gpu = bool(torch.cuda.is_available())
    forced = _forced_hardware(on_gpu)
    name, source = _resolve_profile(profile, on_gpu)
    if forced is not None:
        return _forced_recipe(forced, name, source)
    if not on_gpu:
        return recipe_for("cpu", name, profile_source=source)
    major, minor = torch.cuda.get_device_capability(0)
    device_name = torch.cuda.get_device_name(0)
    mem_gib = torch.cuda.get_device_properties(0).total_memory / _GIB
    if major >= 8:
        hardware = "ampere"
    elif "T4" in device_name:
        hardware = "t4"
    else:
        hardware = "cuda-old"
    flash, flash_reason = _probe_flash() if hardware == "ampere" else (None, None)
    return recipe_for(hardware, name, device_name, (major, minor), mem_gib, flash, source, flash_reason)


def _probe_flash() -> tuple[str | None, str]:
    from labhelpers.attention import probe_flash_attention

    return probe_flash_attention()


def _forced_recipe(hardware: str, profile: str, profile_source: str) -> Recipe:
    """The recipe of ``hardware`` (from ``$LAB_FORCE_HARDWARE``) on this machine, its hardware reason saying so."""
    if hardware == "cpu":
        recipe, card = recipe_for("cpu", profile, profile_source=profile_source), "this machine"
    elif hardware == "ampere-cpu":
        return emulated_ampere_recipe(profile, profile_source)
    else:
        major, minor = torch.cuda.get_device_capability(0)
        card = f"{torch.cuda.get_device_name(0)} (compute capability {major}.{minor})"
        mem_gib = torch.cuda.get_device_properties(0).total_memory / _GIB
        if hardware == "t4":  # the T4's recipe and sizes; this card's capability and memory would only mislead
            recipe = recipe_for("t4", profile, torch.cuda.get_device_name(0), profile_source=profile_source)
        else:
            flash, flash_reason = _probe_flash()
            recipe = recipe_for("ampere", profile, torch.cuda.get_device_name(0), (major, minor), mem_gib, flash,
                                profile_source, flash_reason)
    note = f"forced by {FORCE_HARDWARE_ENV}={hardware} on {card}: "
    reasons = tuple((k, note + why if k == "hardware" else why) for k, why in recipe.reasons)
    return dataclasses.replace(recipe, reasons=reasons)


# Under LAB_FORCE_HARDWARE=ampere-cpu: bf16 autocast on this CPU is ~12x slower than fp32, so every size shrinks to a
# smoke size: enough to run each code path (training steps, evaluation, checkpoints, generation, the protocol), not
# to learn anything. Notebooks run unchanged; their numbers mean nothing at these sizes, and the load line says so.
SMOKE_SIZES: dict[str, Any] = dict(n_train_examples=16, n_eval_examples=4, max_steps=3, max_length=128,
                                   per_device_train_batch_size=4, per_device_eval_batch_size=4,
                                   gradient_accumulation_steps=1, eval_steps=3, save_steps=3, logging_steps=1)
SMOKE_LESSON: dict[str, int] = dict(n_heldout_prompts=4, max_new_tokens=16, n_retention_prompts=2,
                                    generation_batch_size=4, overfit_steps=2, compare_steps=2, compare_batch_size=2,
                                    compare_max_length=64, protocol_overfit_steps=2, protocol_short_steps=2,
                                    loop_micro_batches=2, loop_micro_batch_size=2, loop_grad_accum=1)
EMULATION_NOTE = ("LAB_FORCE_HARDWARE=ampere-cpu: the Ampere recipe (fp32 master weights, bf16 autocast, "
                  "flash_attention_2, padding-free packing) on this CPU, flash-attention's kernel replaced by a "
                  "stand-in that enforces its contract (fp16/bf16 inputs only, packed rows isolated); smoke sizes, "
                  "so the numbers mean nothing")


def emulated_ampere_recipe(profile: str = "ci", profile_source: str = "argument") -> Recipe:
    """The Ampere recipe on this CPU under flash-attention's contract, at smoke sizes (``LAB_FORCE_HARDWARE=ampere-cpu``).

    Installs the kernel stand-in (``labhelpers.attention``), probes flash-attention through transformers' own loader
    as on a GPU, and keeps the model on the CPU (``use_cpu=True``) with bf16 autocast.

    >>> r = emulated_ampere_recipe()
    >>> r.hardware, r.bf16, r.use_cpu, r.attn_implementation, r.packing, r.sizes.max_steps, str(r.device)
    ('ampere', True, True, 'flash_attention_2', True, 3, 'cpu')
    """
    from labhelpers.attention import install_flash_standin, probe_flash_attention

    install_flash_standin()
    flash, flash_reason = probe_flash_attention()
    recipe = recipe_for("ampere", profile, "cpu (emulating a cc 8.0 GPU)", (8, 0), None, flash, profile_source,
                        flash_reason)
    recipe = recipe.with_sizes(**SMOKE_SIZES)
    lesson = dataclasses.replace(recipe.lesson, **SMOKE_LESSON)
    reasons = tuple((k, f"smoke size under ampere-cpu (bf16 on this CPU is ~12x slower); {why}"
                     if k in SMOKE_SIZES or k in SMOKE_LESSON else
                     f"forced by {FORCE_HARDWARE_ENV}=ampere-cpu: {EMULATION_NOTE}; {why}" if k == "hardware" else
                     "train on this CPU (the emulation keeps the model here)" if k == "use_cpu" else why)
                    for k, why in recipe.reasons)
    return dataclasses.replace(recipe, use_cpu=True, lesson=lesson, reasons=reasons)
