"""What the run will really do, beside what the configuration says: the facts of the plan in one block, the settings
that another one silently overrides, and the disk its checkpoints will take against the free space where they go.

    findings = run_fact_findings(trainer.args, plan, n_rows, checkpoint_bytes(trainer.model, trainer.args))

``preflight`` reports these before any other schedule finding, so the student reads the run's facts before training.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Any

from labhelpers.base.batching import rows_per_step
from labhelpers.sanity.config import RunPlan, strategy
from labhelpers.sanity.report import Finding

GB = 1e9
TRAINER_DEFAULT_EPOCHS = 3.0  # TrainingArguments.num_train_epochs when nobody set it
DISK_WARN_SHARE = 0.8  # checkpoints at their peak above this share of the free space: warn


def run_epochs(plan: RunPlan) -> float:
    """Epochs the run covers (optimizer steps over updates per epoch).

    >>> run_epochs(RunPlan(30, 40, 7, 2, 30, 3, 2))
    0.75
    """
    return plan.total_steps / max(1, plan.updates_per_epoch)


def _count(n: int, noun: str) -> str:
    """``n`` and the noun, plural when it should be.

    >>> _count(1, "evaluation"), _count(0, "step")
    ('1 evaluation', '0 steps')
    """
    return f"{n} {noun}{'' if n == 1 else 's'}"


def facts_finding(args: Any, plan: RunPlan, n_rows: int) -> Finding:
    """``run_facts``: steps, epochs, evaluations, checkpoints and warmup of this run, in one line.

    >>> from types import SimpleNamespace as NS
    >>> args = NS(per_device_train_batch_size=4, gradient_accumulation_steps=1, save_total_limit=2, eval_on_start=True,
    ...           eval_strategy="steps", learning_rate=2e-4, lr_scheduler_type="cosine", max_steps=30)
    >>> print(facts_finding(args, RunPlan(30, 40, 7, 2, 30, 3, 2), 160).message)
    30 optimizer steps of 4 rows = 0.75 epoch of 160 rows (max_steps=30 ends it); 7 evaluations (one before the first step); 2 checkpoints written, up to 2 kept; warmup 3 steps to lr 0.0002, then cosine
    """
    rows = rows_per_step(args)
    limit = getattr(args, "save_total_limit", None)
    kept = plan.save_points if not limit else min(plan.save_points, limit)
    start = " (one before the first step)" if getattr(args, "eval_on_start", False) and plan.eval_points else ""
    epochs = run_epochs(plan)
    ends = f" (max_steps={args.max_steps} ends it)" if (getattr(args, "max_steps", -1) or -1) > 0 else ""
    saves = (f"{_count(plan.save_points, 'checkpoint')} written, up to {kept} kept" if plan.save_points
             else "no checkpoint written")
    text = (f"{_count(plan.total_steps, 'optimizer step')} of {rows} rows = {epochs:.2g} epoch{'s' if epochs >= 2 else ''}"
            f" of {n_rows:,} rows{ends}; {_count(plan.eval_points, 'evaluation')}{start}; {saves}; warmup "
            f"{_count(plan.warmup_steps, 'step')} to lr {args.learning_rate:g}, then {strategy(args, 'lr_scheduler_type')}")
    return Finding("run_facts", "pass", text, "")


def overridden_findings(args: Any, plan: RunPlan, has_eval: bool) -> list[Finding]:
    """Settings that another setting silently overrides or that do nothing in this run (``overridden_settings``).

    >>> from types import SimpleNamespace as NS
    >>> args = NS(max_steps=30, num_train_epochs=5.0, eval_strategy="no", eval_steps=5, save_strategy="steps",
    ...           save_steps=15, logging_strategy="steps", logging_steps=1)
    >>> [f.message.split(":")[0] for f in overridden_findings(args, RunPlan(30, 40, 0, 2, 30, 3, 0), has_eval=True)]
    ['max_steps=30 overrides num_train_epochs=5', "eval_steps=5 is ignored with eval_strategy='no'"]
    """
    out = []
    epochs = run_epochs(plan)
    wanted = float(getattr(args, "num_train_epochs", 1.0) or 1.0)
    written = wanted != TRAINER_DEFAULT_EPOCHS  # the default is what a user who sets max_steps leaves alone
    if (getattr(args, "max_steps", -1) or -1) > 0 and written and not wanted / 2 <= epochs <= wanted * 2:
        out.append(Finding("overridden_settings", "warn",
                           f"max_steps={args.max_steps} overrides num_train_epochs={wanted:g}: the run is "
                           f"{plan.total_steps} steps = {epochs:.2g} epochs, not {wanted:g}",
                           f"for {wanted:g} epochs set max_steps=-1 (the default); to keep {args.max_steps} steps, "
                           "leave num_train_epochs out"))
    for kind, needs in (("eval", has_eval), ("save", True), ("logging", True)):
        every = getattr(args, f"{kind}_steps", None)
        when = strategy(args, f"{kind}_strategy")
        default = {"eval": None, "save": 500, "logging": 500}[kind]
        # an explicit 'no' for saving or logging is a choice; eval's 'no' is the default a set eval_steps forgot
        ignored = when == "epoch" or (when == "no" and kind == "eval")
        if needs and every not in (None, default) and ignored:
            out.append(Finding("overridden_settings", "warn",
                               f"{kind}_steps={every!r} is ignored with {kind}_strategy={when!r}: "
                               + ("no evaluation runs" if when == "no" else
                                  f"the run {'evaluates' if kind == 'eval' else 'saves' if kind == 'save' else 'logs'}"
                                  " once per epoch"),
                               f"set {kind}_strategy='steps' to act every {every} steps"))
    return out


def checkpoint_bytes(model: Any, args: Any) -> int:
    """Bytes one checkpoint takes: the saved weights (an adapter only, for a PEFT model) and the optimizer state of the
    trainable parameters (AdamW: two fp32 moments each, 8-bit optimizers two bytes, SGD/Lion/Adafactor about four);
    about 1.6 GB for the 135M model, fully fine-tuned in fp32.

    >>> import torch; from types import SimpleNamespace as NS
    >>> checkpoint_bytes(torch.nn.Linear(10, 10), NS(optim="adamw_torch_fused"))  # 110 fp32 weights + 2 moments each
    1320
    """
    unique = {p.data_ptr(): p for p in model.parameters()}.values()  # tied weights are saved once
    trainable = sum(p.numel() for p in unique if p.requires_grad)
    if hasattr(model, "peft_config"):
        weights = sum(p.numel() * p.element_size() for p in unique if p.requires_grad)
    else:
        weights = sum(p.numel() * p.element_size() for p in unique)
    optim = str(getattr(getattr(args, "optim", ""), "value", getattr(args, "optim", ""))).lower()
    per_param = 2 if "8bit" in optim else 4 if any(k in optim for k in ("adafactor", "sgd", "lion")) else 8
    return int(weights + trainable * per_param)


def free_bytes(folder: str | Path) -> tuple[Path, int]:
    """(the existing folder measured, its free bytes): ``folder`` or its nearest existing parent."""
    path = Path(folder).expanduser().absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path, shutil.disk_usage(path).free


def disk_finding(args: Any, plan: RunPlan, per_checkpoint: int, free: int, where: Path) -> Finding:
    """``checkpoint_disk``: the checkpoints at their peak (one more than kept while rotating) against the free space.

    >>> from types import SimpleNamespace as NS
    >>> plan = RunPlan(30, 40, 7, 2, 30, 3, 2)
    >>> disk_finding(NS(save_total_limit=2), plan, int(1.6e9), int(50e9), Path("/runs")).status
    'pass'
    >>> f = disk_finding(NS(save_total_limit=None), RunPlan(3000, 40, 7, 30, 30, 3, 2), int(1.6e9), int(30e9), Path("/c"))
    >>> f.status, f.message.split(";")[0]
    ('fail', '30 checkpoints x 1.6 GB = 48 GB at the peak')
    """
    limit = getattr(args, "save_total_limit", None)
    peak_count = plan.save_points if not limit else min(plan.save_points, limit + 1)
    peak = peak_count * per_checkpoint
    message = (f"{_count(peak_count, 'checkpoint')} x {per_checkpoint / GB:.2g} GB = "
               f"{peak / GB:.3g} GB at the peak; {free / GB:.3g} GB free in {where}")
    if peak > free or peak > DISK_WARN_SHARE * free:
        fits = max(1, math.floor(DISK_WARN_SHARE * free / per_checkpoint) - 1) if per_checkpoint else 1
        status = "fail" if peak > free else "warn"
        return Finding("checkpoint_disk", status, message + (": the run fails when the disk fills (a checkpoint "
                                                             "half written)" if status == "fail" else ""),
                       f"keep fewer checkpoints (save_total_limit={fits}), save less often (save_steps), or point "
                       "output_dir at a disk with more room (Colab: Drive holds what a runtime loses, its quota too)")
    return Finding("checkpoint_disk", "pass", message, "")


def run_fact_findings(args: Any, plan: RunPlan, n_rows: int, has_eval: bool, per_checkpoint: int | None) -> list[Finding]:
    """The run's facts, overridden settings and checkpoint disk (``per_checkpoint`` None: not measured)."""
    out = [facts_finding(args, plan, n_rows)] + overridden_findings(args, plan, has_eval)
    if per_checkpoint is not None and strategy(args, "save_strategy") != "no" and plan.save_points:
        where, free = free_bytes(getattr(args, "output_dir", ".") or ".")
        out.append(disk_finding(args, plan, per_checkpoint, free, where))
    return out
