"""Hardware recipes: which dtype, attention, precision flags and run sizes to use on this machine, and why.

A ``Recipe`` is plain values (frozen dataclasses) plus a reason for every choice. Build the model and the
``SFTConfig`` from it; the trainer is not wrapped::

    recipe = detect_recipe()                      # profile: argument, else $LAB_PROFILE, else ci (CPU) / colab (GPU)
    print(recipe.explain())
    model = AutoModelForCausalLM.from_pretrained(path, **recipe.model_kwargs())
    args = SFTConfig(output_dir="out", **recipe.sft_config_kwargs())

Device rules (numbers measured on the lab's 2-core CPU, see the team notes):

* ``cpu``: fp32 weights, no AMP, ``use_cpu=True``, sdpa. bf16 on this CPU runs only with ``use_cpu=True`` and is
  ~12x slower; ``fp16=True`` is silently ignored on CPU; TRL's SFTConfig defaults to bf16 and refuses a CPU
  unless ``use_cpu=True``.
* ``t4`` (NVIDIA T4, compute capability 7.5) and ``cuda-old`` (any other CUDA card with cc < 8, e.g. V100, P100):
  fp32 weights + ``fp16=True`` AMP (fp16 *weights* with fp16 AMP fail: "Attempting to unscale FP16 gradients"),
  no bf16, sdpa (flash-attention needs cc >= 8).
* ``ampere`` (cc >= 8: A100, H100, L4, RTX 30xx/40xx): bf16 weights + ``bf16=True``; ``flash_attention_2`` when
  the ``flash_attn`` package is importable, else sdpa.
"""

from __future__ import annotations

import dataclasses
import difflib
import html
import importlib.util
import math
import os
from dataclasses import dataclass, field
from typing import Any, Iterable

import torch
from transformers.trainer_utils import SchedulerType

PROFILES = ("ci", "colab", "full")
HARDWARE = ("cpu", "t4", "cuda-old", "ampere")
SCHEDULERS = tuple(s.value for s in SchedulerType)
COMMON_BATCH_CONFIGS = ((2, 16, 1), (4, 8, 1), (4, 4, 4), (8, 2, 8))  # (per_device, grad_accum, n_gpus)
BIG_GPU_GIB = 20.0  # at or above this much GPU memory, an Ampere card gets the large per-device batch
_GIB = 1024**3


# ----------------------------------------------------------------------------------------------- run sizes
@dataclass(frozen=True)
class RunSizes:
    """How much data, how long, and how big each step is; every field is validated on construction."""

    n_train_examples: int | None = field(
        metadata={"help": "training rows taken from the train split (count); None = all rows. Small counts keep CPU runs to minutes."}
    )
    n_eval_examples: int | None = field(
        metadata={"help": "eval rows (count); None = the whole eval split. A fixed few keep each evaluation cheap."}
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
    eval_steps: int = field(metadata={"help": "optimizer steps between evaluations; each costs a pass over the eval rows."})
    logging_steps: int = field(metadata={"help": "optimizer steps between log lines (loss, grad_norm, learning_rate)."})
    save_steps: int = field(metadata={"help": "optimizer steps between checkpoints; each writes ~0.5-1.6 GB for a 135M model with optimizer state."})
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
    if name in ("n_train_examples", "n_eval_examples"):
        if value is not None and not (is_int and value > 0):
            raise bad("must be a positive int or None", "pass e.g. 500, or None to use every row")
    elif name == "max_steps":
        if not (is_int and (value == -1 or value > 0)):
            raise bad("must be -1 or a positive int", "pass -1 to train for num_train_epochs, or e.g. 8 steps")
    elif name in ("max_length", "per_device_train_batch_size", "per_device_eval_batch_size",
                  "gradient_accumulation_steps", "eval_steps", "logging_steps", "save_steps"):
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
        n_train_examples=(80, "20 steps of 4 without repeats, small enough to tokenize in seconds"),
        n_eval_examples=(16, "two eval batches, a loss estimate in seconds on 2 CPU cores"),
        num_train_epochs=(1.0, "unused: max_steps ends the run first"),
        max_steps=(20, "~3 s/step x 20 on the 2-core CPU ~ a minute; enough for the house format to start showing"),
        max_length=(256, "holds most single-turn rows (longer ones are dropped, not cut) and keeps a CPU step ~3 s"),
        learning_rate=(1e-4, "a 135M full fine-tune needs a high LR to show change in only 20 steps (2e-5 barely moves)"),
        warmup_ratio=(0.1, "2 of 20 steps; avoids a full-size first update on fresh AdamW statistics"),
        lr_scheduler_type=("cosine", "as in the colab run, so the LR curve has the same shape"),
        eval_steps=(5, "evaluates at steps 5, 10, 15, 20: enough points to compare with the training loss"),
        logging_steps=(1, "a short run needs every point to show a trend"),
        save_steps=(10, "checkpoints at steps 10 and 20 so resume-from-checkpoint can be exercised"),
    ),
    "colab": dict(
        n_train_examples=(500, "as in the seed lab: a visible change in ~10 minutes on a T4"),
        n_eval_examples=(50, "a stable eval loss at a few seconds per evaluation"),
        num_train_epochs=(3.0, "as in the seed lab: 500 rows need repeats to change behaviour; more overfits"),
        max_steps=(-1, "the run length comes from num_train_epochs"),
        max_length=(512, "fits most single-turn chat rows without truncating the answer"),
        learning_rate=(2e-5, "as in the seed lab and TRL's default: a gentle full fine-tune over ~96 steps"),
        warmup_ratio=(0.1, "~10 of ~96 steps before the cosine decay"),
        lr_scheduler_type=("cosine", "decays to 0, as in the seed lab"),
        eval_steps=(25, "~4 evaluation points over the run"),
        logging_steps=(5, "~20 points, a readable loss curve"),
        save_steps=(50, "a mid-run and a final checkpoint, little Colab disk"),
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
        eval_steps=(100, "a curve without eval dominating the run time"),
        logging_steps=(10, "TRL's default; a readable curve over a long run"),
        save_steps=(200, "each save is ~1.6 GB with optimizer state"),
    ),
}

# (per_device_train, per_device_eval, grad_accum, gradient_checkpointing) with one reason each
_SPLITS = {
    # ci is the same on every device so CI numbers compare across machines
    ("ci", "any"): ((4, 8, 1, False), (
        "~3 s/step at 256 tokens on the 2-core CPU (same on every device so CI runs compare)",
        "eval keeps no gradients; two batches cover the 16 eval rows",
        "effective batch 4 keeps each of the 20 steps cheap",
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


# ----------------------------------------------------------------------------------------------- batch plan
@dataclass(frozen=True)
class BatchPlan:
    """Batch arithmetic of one run, computed the way transformers' Trainer does it."""

    per_device: int = field(metadata={"help": "sequences per forward pass per device"})
    grad_accum: int = field(metadata={"help": "passes accumulated per optimizer step"})
    n_gpus: int = field(metadata={"help": "data-parallel devices"})
    n_examples: int | None = field(metadata={"help": "training rows; None = unknown"})
    effective_batch_size: int = field(metadata={"help": "sequences per optimizer step = per_device x grad_accum x n_gpus"})
    optimizer_steps_per_epoch: int | None = field(metadata={"help": "ceil(ceil(n / (per_device x n_gpus)) / grad_accum), as Trainer"})
    total_steps: int | None = field(metadata={"help": "max_steps if > 0, else ceil(epochs x steps_per_epoch), as Trainer"})
    warmup_steps: int | None = field(metadata={"help": "ceil(warmup_ratio x total_steps), as TrainingArguments.get_warmup_steps"})
    tokens_per_step: int | None = field(metadata={"help": "upper bound: effective_batch_size x max_length (padding/short rows make it less)"})

    def __str__(self) -> str:
        parts = [f"effective batch {self.per_device} x {self.grad_accum} accum x {self.n_gpus} GPU = {self.effective_batch_size}"]
        if self.tokens_per_step is not None:
            parts.append(f"<= {self.tokens_per_step:,} tokens/step")
        if self.total_steps is not None:
            per_epoch = "" if self.optimizer_steps_per_epoch is None else f" ({self.optimizer_steps_per_epoch}/epoch)"
            parts.append(f"{self.total_steps} steps{per_epoch}, warmup {self.warmup_steps}")
        return "; ".join(parts)


def _positive_int(name: str, value: Any, allow_none: bool = False) -> None:
    if allow_none and value is None:
        return
    if not (isinstance(value, int) and not isinstance(value, bool) and value > 0):
        raise ValueError(f"{name} = {value!r}: must be a positive int" + (" or None" if allow_none else "") + "; pass e.g. 4")


def effective_batch(per_device: int, grad_accum: int, n_gpus: int = 1, n_examples: int | None = None,
                    epochs: float = 1.0, warmup_ratio: float = 0.0, max_length: int | None = None,
                    max_steps: int = -1) -> BatchPlan:
    """Effective batch, steps per epoch, total and warmup steps, tokens per step, as HF Trainer counts them.

    >>> p = effective_batch(4, 4, n_examples=500, epochs=3, warmup_ratio=0.1, max_length=512)
    >>> p.effective_batch_size, p.optimizer_steps_per_epoch, p.total_steps, p.warmup_steps, p.tokens_per_step
    (16, 32, 96, 10, 8192)
    >>> print(effective_batch(4, 1, n_examples=64, max_steps=8, warmup_ratio=0.1, max_length=256))
    effective batch 4 x 1 accum x 1 GPU = 4; <= 1,024 tokens/step; 8 steps (16/epoch), warmup 1
    """
    _positive_int("per_device", per_device)
    _positive_int("grad_accum", grad_accum)
    _positive_int("n_gpus", n_gpus)
    _positive_int("n_examples", n_examples, allow_none=True)
    _positive_int("max_length", max_length, allow_none=True)
    if not (isinstance(epochs, (int, float)) and not isinstance(epochs, bool) and epochs > 0):
        raise ValueError(f"epochs = {epochs!r}: must be > 0; pass e.g. 1 or 3")
    if not (isinstance(warmup_ratio, (int, float)) and 0 <= warmup_ratio < 1):
        raise ValueError(f"warmup_ratio = {warmup_ratio!r}: must satisfy 0 <= ratio < 1; pass e.g. 0.1")
    if not (isinstance(max_steps, int) and (max_steps == -1 or max_steps > 0)):
        raise ValueError(f"max_steps = {max_steps!r}: must be -1 (use epochs) or a positive int")
    eff = per_device * grad_accum * n_gpus
    per_epoch = None
    if n_examples is not None:
        # Trainer: each device sees ceil(n / (per_device * n_gpus)) batches (the sampler pads the last one),
        # then an epoch has ceil(batches / grad_accum) optimizer steps (the last step may accumulate fewer).
        batches = math.ceil(n_examples / (per_device * n_gpus))
        per_epoch = max(math.ceil(batches / grad_accum), 1)
    if max_steps > 0:
        total = max_steps
    elif per_epoch is not None:
        total = math.ceil(epochs * per_epoch)
    else:
        total = None
    # Same expression as TrainingArguments.get_warmup_steps for a ratio < 1 (float product, then ceil).
    warmup = None if total is None else math.ceil(total * warmup_ratio)
    tokens = None if max_length is None else eff * max_length
    return BatchPlan(per_device, grad_accum, n_gpus, n_examples, eff, per_epoch, total, warmup, tokens)


def batch_plan_table(configs: Iterable[tuple[int, int, int]] = COMMON_BATCH_CONFIGS, n_examples: int = 500,
                     epochs: float = 3.0, warmup_ratio: float = 0.1, max_length: int | None = None) -> str:
    """A text table of effective batch and step counts for (per_device, grad_accum, n_gpus) configs.

    >>> print(batch_plan_table(COMMON_BATCH_CONFIGS, n_examples=500, epochs=3, warmup_ratio=0.1))
    per_device  accum  gpus  effective  steps/epoch  total  warmup
             2     16     1         32           16     48       5
             4      8     1         32           16     48       5
             4      4     4         64            8     24       3
             8      2     8        128            4     12       2
    """
    header = ["per_device", "accum", "gpus", "effective", "steps/epoch", "total", "warmup"]
    if max_length is not None:
        header.append("tokens/step")
    rows = []
    for per_device, accum, gpus in configs:
        p = effective_batch(per_device, accum, gpus, n_examples, epochs, warmup_ratio, max_length)
        row = [p.per_device, p.grad_accum, p.n_gpus, p.effective_batch_size, p.optimizer_steps_per_epoch,
               p.total_steps, p.warmup_steps]
        if max_length is not None:
            row.append(f"{p.tokens_per_step:,}")
        rows.append([str(v) for v in row])
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(header, widths))]
    lines += ["  ".join(v.rjust(w) for v, w in zip(r, widths)) for r in rows]
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------- recipe
_PRECISION_FIELDS = ("hardware", "profile", "torch_dtype", "attn_implementation", "fp16", "bf16", "use_cpu")


@dataclass(frozen=True)
class Recipe:
    """Everything hardware-dependent for one run: load kwargs, precision flags, run sizes, and a reason for each."""

    hardware: str = field(metadata={"help": "'cpu', 't4' (T4, cc 7.5), 'cuda-old' (other cc < 8) or 'ampere' (cc >= 8)"})
    device_name: str = field(metadata={"help": "what torch reports, e.g. 'Tesla T4', or 'cpu'"})
    profile: str = field(metadata={"help": "one of PROFILES: 'ci' (tiny, CPU/CI), 'colab' (seed lab), 'full' (all rows)"})
    torch_dtype: torch.dtype = field(metadata={"help": "dtype the weights are loaded in (from_pretrained(dtype=...))"})
    attn_implementation: str = field(metadata={"help": "'sdpa' or 'flash_attention_2'"})
    fp16: bool = field(metadata={"help": "fp16 autocast + loss scaling (CUDA only; needs fp32 weights)"})
    bf16: bool = field(metadata={"help": "bf16 autocast (cc >= 8 on CUDA)"})
    use_cpu: bool = field(metadata={"help": "force the CPU even if an accelerator is visible"})
    sizes: RunSizes = field(metadata={"help": "how much data, how long, batch layout"})
    reasons: tuple[tuple[str, str], ...] = field(metadata={"help": "(field, one-sentence why) for every choice"})

    def model_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``AutoModelForCausalLM.from_pretrained``.

        >>> recipe_for("cpu", "ci").model_kwargs()
        {'dtype': torch.float32, 'attn_implementation': 'sdpa'}
        """
        return {"dtype": self.torch_dtype, "attn_implementation": self.attn_implementation}

    def sft_config_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``trl.SFTConfig`` (precision, run sizes, logging); add ``output_dir`` yourself.

        >>> kw = recipe_for("cpu", "ci").sft_config_kwargs()
        >>> kw["use_cpu"], kw["bf16"], kw["warmup_steps"], kw["max_steps"], kw["logging_nan_inf_filter"]
        (True, False, 0.1, 20, False)
        """
        s = self.sizes
        return {
            "fp16": self.fp16,
            "bf16": self.bf16,
            "use_cpu": self.use_cpu,
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
        for name in _PRECISION_FIELDS:
            value = getattr(self, name)
            lines.append(f"  {name} = {value!r}: {why.get(name, '')}")
        lines.append("  sizes:")
        for f in dataclasses.fields(RunSizes):
            lines.append(f"    {f.name} = {getattr(self.sizes, f.name)!r}: {why.get(f.name, '')}")
        p = self.plan()
        s = self.sizes
        lines.append(f"  effective batch = {s.per_device_train_batch_size} per device x {s.gradient_accumulation_steps} "
                     f"accum x 1 device = {p.effective_batch_size} sequences per optimizer step")
        lines.append(f"  tokens per optimizer step <= {p.effective_batch_size} x {s.max_length} = {p.tokens_per_step:,} "
                     "(padding and short rows make it less)")
        if p.total_steps is not None:
            lines.append(f"  optimizer steps = {p.total_steps}, warmup steps = {p.warmup_steps}")
        else:
            lines.append(f"  optimizer steps: {s.num_train_epochs:g} epochs x ceil(rows / {p.effective_batch_size}) "
                         "(row count known once the dataset is loaded)")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.explain()

    def _repr_html_(self) -> str:
        return f"<pre>{html.escape(self.explain())}</pre>"


def recipe_for(hardware: str, profile: str, device_name: str | None = None, capability: tuple[int, int] | None = None,
               total_memory_gib: float | None = None, flash_attn: bool = False,
               profile_source: str = "argument") -> Recipe:
    """The recipe for a hardware class and profile, without looking at this machine (see ``detect_recipe``).

    >>> r = recipe_for("t4", "colab", total_memory_gib=15.0)
    >>> r.torch_dtype, r.fp16, r.bf16, r.attn_implementation
    (torch.float32, True, False, 'sdpa')
    >>> r = recipe_for("ampere", "colab", "NVIDIA A100-SXM4-80GB", (8, 0), 80.0, flash_attn=True)
    >>> r.torch_dtype, r.bf16, r.attn_implementation, r.sizes.per_device_train_batch_size
    (torch.bfloat16, True, 'flash_attention_2', 16)
    """
    _check_choice("hardware", hardware, HARDWARE)
    _check_choice("profile", profile, PROFILES)
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
    if hardware == "cpu":
        dtype, fp16, bf16, use_cpu, attn = torch.float32, False, False, True, "sdpa"
        why["hardware"] = "no CUDA device visible (torch.cuda.is_available() is False), so training runs on the CPU"
        why["torch_dtype"] = "bf16 on this CPU runs only with use_cpu=True and is ~12x slower; fp16 is no faster"
        why["fp16"] = "fp16 AMP is a no-op on CPU (Trainer silently ignores fp16=True there)"
        why["bf16"] = "bf16 on this CPU is ~12x slower than fp32; set explicitly because TRL's SFTConfig defaults to bf16"
        why["use_cpu"] = "TRL's SFTConfig refuses a CPU without it, and it keeps Apple MPS out of the way"
        why["attn_implementation"] = "PyTorch's built-in attention, always available; flash-attn is CUDA-only"
    elif hardware in ("t4", "cuda-old"):
        dtype, fp16, bf16, use_cpu, attn = torch.float32, True, False, False, "sdpa"
        card = "NVIDIA T4" if hardware == "t4" else name
        why["hardware"] = (f"{card}{facts}: compute capability < 8, so fp16 tensor cores but no bf16 and no flash-attention")
        why["torch_dtype"] = ("fp32 master weights for AMP: fp16 weights with fp16=True fail with "
                              "'Attempting to unscale FP16 gradients'")
        why["fp16"] = "fp16 autocast with loss scaling uses the tensor cores of a cc < 8 card"
        why["bf16"] = "bf16 needs compute capability >= 8"
        why["use_cpu"] = "train on the GPU"
        why["attn_implementation"] = "flash-attention needs compute capability >= 8; sdpa uses its memory-efficient kernel here"
    else:  # ampere
        dtype, fp16, bf16, use_cpu = torch.bfloat16, False, True, False
        why["hardware"] = f"{name}{facts}: compute capability >= 8, so bf16 and flash-attention are supported"
        why["torch_dtype"] = ("half the memory of fp32 and what flash-attention expects; note bf16 keeps 8 mantissa bits, "
                              "so an AdamW update below ~0.2-0.4% of a weight rounds away (keep lr >= ~2e-5)")
        why["fp16"] = "bf16 has fp32's range, so no loss scaling is needed"
        why["bf16"] = "bf16 autocast on a cc >= 8 card"
        why["use_cpu"] = "train on the GPU"
        if flash_attn:
            attn = "flash_attention_2"
            why["attn_implementation"] = "flash_attn is installed and the card has cc >= 8; exact and padding-free-safe"
        else:
            attn = "sdpa"
            why["attn_implementation"] = ("flash_attn is not installed (pip install flash-attn builds from source "
                                          "unless a wheel matches); sdpa is built in and uses a flash kernel itself on cc >= 8")
    sizes, size_reasons = profile_sizes(profile, hardware, total_memory_gib)
    reasons = tuple((k, why[k]) for k in _PRECISION_FIELDS) + size_reasons
    return Recipe(hardware, name, profile, dtype, attn, fp16, bf16, use_cpu, sizes, reasons)


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


def detect_recipe(profile: str | None = None) -> Recipe:
    """The recipe for this machine: profile from the argument, else $LAB_PROFILE, else 'ci' (CPU) / 'colab' (GPU).

    >>> detect_recipe("nope")
    Traceback (most recent call last):
    ...
    ValueError: unknown profile 'nope' (from the profile argument): choose one of 'ci', 'colab', 'full'; pass one of them.
    """
    on_gpu = bool(torch.cuda.is_available())
    name, source = _resolve_profile(profile, on_gpu)
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
    flash = hardware == "ampere" and importlib.util.find_spec("flash_attn") is not None
    return recipe_for(hardware, name, device_name, (major, minor), mem_gib, flash, source)

from labhelpers.memory import MemoryBreakdown, estimate_memory  # noqa: E402
