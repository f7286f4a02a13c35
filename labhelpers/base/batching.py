"""Batch arithmetic, the lesson of notebook 01: effective batch, steps per epoch, warmup, tokens per step.

Counted the way transformers' Trainer counts them, so a plan printed before a run matches the run::

    print(effective_batch(4, 4, n_examples=500, epochs=3, warmup_ratio=0.1, max_length=512))
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable

COMMON_BATCH_CONFIGS = ((2, 16, 1), (4, 8, 1), (4, 4, 4), (8, 2, 8))  # (per_device, grad_accum, n_gpus)


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


def updates_per_epoch(n_examples: int, per_device: int, grad_accum: int = 1, n_gpus: int = 1) -> int:
    """Optimizer steps in one epoch, as Trainer counts them: each device gets ``ceil(n / (per_device x n_gpus))``
    batches (the sampler pads the last one), and every ``grad_accum`` of them (the last group may be short) is a step.

    >>> updates_per_epoch(500, 4, 4), updates_per_epoch(3, 4), updates_per_epoch(0, 4)
    (32, 1, 1)
    """
    return steps_from_batches(math.ceil(n_examples / (per_device * n_gpus)), grad_accum)


def steps_from_batches(batches: int, grad_accum: int = 1) -> int:
    """Optimizer steps of an epoch of ``batches`` dataloader batches (a partial accumulation is a step; at least 1).

    >>> steps_from_batches(40, 4), steps_from_batches(41, 4), steps_from_batches(0, 4)
    (10, 11, 1)
    """
    return max(math.ceil(batches / max(1, grad_accum)), 1)


def total_steps(max_steps: int | None, epochs: float, per_epoch: int) -> int:
    """The run's optimizer steps: ``max_steps`` when > 0 (it overrides the epochs), else ``ceil(epochs x per_epoch)``.

    >>> total_steps(30, 3.0, 40), total_steps(-1, 3.0, 32), total_steps(None, 0.5, 5)
    (30, 96, 3)
    """
    return max_steps if max_steps and max_steps > 0 else math.ceil(epochs * per_epoch)


def warmup_steps(total: int, warmup: float) -> int:
    """Warmup steps as ``TrainingArguments.get_warmup_steps``: ``ceil(warmup x total)`` for a ratio < 1, else ``warmup``.

    >>> warmup_steps(96, 0.1), warmup_steps(96, 5), warmup_steps(30, 0)
    (10, 5, 0)
    """
    return int(warmup) if warmup >= 1 else math.ceil(total * warmup)


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
    per_epoch = None if n_examples is None else updates_per_epoch(n_examples, per_device, grad_accum, n_gpus)
    total = max_steps if max_steps > 0 else None if per_epoch is None else total_steps(max_steps, epochs, per_epoch)
    warmup = None if total is None else warmup_steps(total, warmup_ratio)
    tokens = None if max_length is None else eff * max_length
    return BatchPlan(per_device, grad_accum, n_gpus, n_examples, eff, per_epoch, total, warmup, tokens)


def rows_per_step(args: Any) -> int:
    """Sequences per optimizer step of a ``TrainingArguments``/``SFTConfig`` (or anything with its batch fields):
    per-device batch x gradient accumulation x devices (``world_size``, 1 when absent).

    >>> from types import SimpleNamespace as NS
    >>> two_gpus = NS(per_device_train_batch_size=4, gradient_accumulation_steps=2, world_size=2)
    >>> rows_per_step(NS(per_device_train_batch_size=4, gradient_accumulation_steps=4)), rows_per_step(two_gpus)
    (16, 16)
    """
    world = max(1, int(getattr(args, "world_size", 1) or 1))
    return effective_batch(args.per_device_train_batch_size, args.gradient_accumulation_steps, world).effective_batch_size


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
