"""TODO checks of notebook 06 (SFTTrainer): the student's ``SFTConfig`` against the recipe's reference run, and
the optional prediction of the run's steps, evaluations, checkpoints and warmup."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from labhelpers.checks.core import TodoCheckError, passed, require, student_code

if TYPE_CHECKING:
    from labhelpers.hardware import Recipe


# Why notebook 06's run needs each setting beyond the recipe's sizes (the values live in REFERENCE_RUN_SETTINGS
# and the recipe, so the check, the reference run and the sanity protocol cannot disagree).
WHY_SETTING: dict[str, str] = {
    "fp16": "train in the recipe's precision for this hardware (recipe.fp16)",
    "bf16": "train in the recipe's precision for this hardware (recipe.bf16; TRL's SFTConfig turns bf16 on whenever "
            "fp16 is off, so leaving it out is not False)",
    "use_cpu": "run where the recipe runs (recipe.use_cpu)",
    "assistant_only_loss": "train on the assistant replies only (notebook 04)",
    "packing": "pack rows only where a variable-length attention kernel makes it pay (notebook 05; recipe.packing)",
    "train_sampling_strategy": "batch rows of similar length where packing does not pay (recipe.train_sampling_strategy)",
    "load_best_model_at_end": "keep the checkpoint with the lowest eval loss",
    "eval_on_start": "evaluate the untouched model first, so the eval curve starts at the base model's loss",
    "metric_for_best_model": "judge 'best' by the eval loss ('loss' is the same: the Trainer adds the eval_ prefix)",
    "greater_is_better": "say that a lower eval loss is better",
    "save_total_limit": "keep the best and the newest checkpoint, not every one",
    "logging_nan_inf_filter": "see a NaN loss (the default replaces it by a running average, hiding it)",
    "eval_strategy": "evaluate every eval_steps steps",
    "save_strategy": "save every save_steps steps",
}

# Settings the TODO gives from recipe.sizes that a student may tune on purpose: another value than the recipe's is a
# note (what it changes), not a failure; the value SFTConfig has when the field is left out is a failure (forgotten).
# field -> (where the TODO takes it from, what another value changes)
TUNABLE: dict[str, tuple[str, str]] = {
    "max_length": ("sizes.max_length", "the rows were filtered to fit sizes.max_length: a shorter limit cuts the end "
                   "of long replies, their stop token included; a longer one only costs memory"),
    "per_device_train_batch_size": ("sizes.per_device_train_batch_size", "the effective batch sets how far each step "
                                    "moves and how many steps the rows make; memory grows with the batch"),
    "per_device_eval_batch_size": ("sizes.per_device_eval_batch_size", "only evaluation's memory and speed change"),
    "gradient_accumulation_steps": ("sizes.gradient_accumulation_steps", "the effective batch sets how far each step "
                                    "moves and how many steps the rows make"),
    "learning_rate": ("sizes.learning_rate", "the notebook's numbers were measured at the recipe's rate; the sanity "
                      "preflight below judges yours"),
    "lr_scheduler_type": ("sizes.lr_scheduler_type", "the learning rate takes another shape over the run (notebook 08)"),
    "num_train_epochs": ("sizes.num_train_epochs", "the run gets longer or shorter, and so does its cost"),
    "max_steps": ("sizes.max_steps", "the run gets longer or shorter, and so does its cost"),
    "warmup_steps": ("sizes.warmup_ratio", "another number of first steps ramps the learning rate up"),
    "eval_steps": ("sizes.eval_steps", "the eval curve gets another number of points, and evaluation another cost"),
    "save_steps": ("sizes.save_steps", "other checkpoints exist to resume from and to pick the best from"),
    "logging_steps": ("sizes.logging_steps", "the training-loss curve gets another number of points"),
    "save_total_limit": ("2", "another number of checkpoints stays on disk (each is ~0.5-1.6 GB)"),
}
UNCOMPARED = {"report_to", "seed"}  # either value is fine: tensorboard or none; the seed is 42 by default


def _config_value(config: object, name: str) -> object:
    value = getattr(config, name)
    return value.value if hasattr(value, "value") else value


def _same(have: object, want: object) -> bool:
    if isinstance(have, bool) or isinstance(want, bool):
        return have is want or have == want and type(have) is type(want)
    if isinstance(have, (int, float)) and isinstance(want, (int, float)):
        return abs(have - want) <= 1e-12 * max(1.0, abs(want))
    return have == want


def _steps_of(value: object, total: int) -> int | None:
    """A ``*_steps`` value as a step count in a run of ``total`` steps (a float below 1 is a share, rounded up)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool) or total <= 0:
        return None
    return math.ceil(total * value) if value < 1 else int(value)


def _left_out(config: object, name: str, have: object) -> bool:
    """True when ``have`` is what SFTConfig gives ``name`` when it is not passed (so most likely forgotten)."""
    import dataclasses

    from trl import SFTConfig

    default = {f.name: f.default for f in dataclasses.fields(SFTConfig)}.get(name, dataclasses.MISSING)
    if name == "eval_steps" and default is None:  # unset, the Trainer evaluates every logging_steps steps
        return _same(have, _config_value(config, "logging_steps"))
    if default is dataclasses.MISSING:
        return False
    return _same(have, default.value if hasattr(default, "value") else default)


def _as_trainer_reads(config: object, name: str, value: object) -> object:
    """``value`` of field ``name`` as the Trainer uses it: it reads metric_for_best_model "loss" as "eval_loss" (it adds
    the eval_ prefix) and judges by the loss when none is set; greater_is_better unset means lower is better for a loss.

    >>> from types import SimpleNamespace
    >>> _as_trainer_reads(SimpleNamespace(), "metric_for_best_model", "loss"), _as_trainer_reads(
    ...     SimpleNamespace(metric_for_best_model=None), "greater_is_better", None)
    ('eval_loss', False)
    """
    if name == "metric_for_best_model":
        value = value or "loss"
        return value if value.startswith("eval_") else f"eval_{value}"
    if name == "greater_is_better" and value is None:
        metric = _as_trainer_reads(config, "metric_for_best_model", getattr(config, "metric_for_best_model", None))
        return not metric.endswith("loss")
    return value


def _sft_config_findings(config: object, recipe: Recipe) -> tuple[list[str], list[str]]:
    """(problems, notes) of the student's SFTConfig against notebook 06's run."""
    from labhelpers.hardware import REFERENCE_RUN_SETTINGS

    reference = recipe.reference_config(config.output_dir)
    total = _config_value(config, "max_steps")
    run_steps = total if total > 0 and total == _config_value(reference, "max_steps") else 0
    problems, notes = [], []
    for name in {**recipe.sft_config_kwargs(), **REFERENCE_RUN_SETTINGS}:
        if name in UNCOMPARED:
            continue
        have, want = _config_value(config, name), _config_value(reference, name)
        if _same(_as_trainer_reads(config, name, have), _as_trainer_reads(reference, name, want)):
            continue
        if name == "num_train_epochs" and total > 0:
            continue  # max_steps ends the run first: the epochs do not matter
        if name in TUNABLE:
            source, effect = TUNABLE[name]
            if run_steps and name.endswith("_steps") and name not in ("max_steps", "gradient_accumulation_steps") \
                    and _steps_of(have, run_steps) == _steps_of(want, run_steps):
                continue  # a share and a step count that come to the same steps
            if _left_out(config, name, have):
                unset = (f"not set, so the Trainer evaluates every logging_steps ({have!r}) steps"
                         if name == "eval_steps" else f"{have!r}, SFTConfig's default (left out?)")
                problems.append(f"{name} is {unset}; set {name}={source}" + ("" if source == repr(want) else
                                                                                  f" ({want!r})"))
            else:
                notes.append(f"{name} is {have!r}, the recipe's is {want!r} ({source}): kept as your choice ({effect})")
            continue
        if name == "activation_checkpointing":  # not in the TODO's list; TRL turns it on by default
            notes.append(
                f"activation_checkpointing is {have!r} (TRL's SFTConfig turns it on unless told otherwise), the recipe "
                f"says {want!r}: " + ("it recomputes activations in the backward, ~20% more time per step, which this "
                                      "recipe's memory does not need" if have else
                                      "this recipe needs the memory it saves (the run may run out of memory)")
                + ". Add activation_checkpointing=sizes.gradient_checkpointing to follow the recipe (it also silences "
                "the FutureWarning about gradient_checkpointing, the field's old name)")
            continue
        why = WHY_SETTING.get(name)
        if why is None:  # a setting the TODO does not ask for: say what the recipe would use, fail nothing
            notes.append(f"{name} is {have!r}, the recipe's run uses {want!r}")
            continue
        shown = "'eval_loss'" if name == "metric_for_best_model" else repr(want)
        problems.append(f"{name} is {have!r}; set {name}={shown}, to {why}")
    return sorted(problems), notes


def check_sft_config(config: object, recipe: Recipe) -> None:
    """Compare the student's ``SFTConfig`` with notebook 06's run (``recipe.reference_config``), on the fields the TODO
    lists. A setting the run needs (precision, what is trained, batching, evaluation and best model) must match; a size
    the recipe suggests (learning rate, lengths, batch, steps) may be the student's own choice, which is noted, unless
    it is SFTConfig's default (left out); a setting the TODO does not list (``activation_checkpointing``) only gets a
    note.
    """
    from trl import SFTConfig

    require(isinstance(config, SFTConfig), f"config is a {type(config).__name__}, not an SFTConfig",
            "build it with SFTConfig(output_dir=..., ...)")
    problems, notes = _sft_config_findings(config, recipe)
    require(not problems, "your SFTConfig differs from what this run needs:\n  - " + "\n  - ".join(problems),
            "change those fields and re-run the cell")
    batching = "packing" if config.packing else f"{config.train_sampling_strategy} batches"
    effective = config.per_device_train_batch_size * config.gradient_accumulation_steps
    passed(f"SFTConfig fits the {recipe.profile} recipe's run: max_length {config.max_length}, "
           f"lr {config.learning_rate}, effective batch {effective}, assistant-only loss, {batching}"
           + ("".join(f"\n  note: {n}" for n in notes)))


def predict_run_cases() -> list[tuple[dict, int]]:
    """(config fields, train batches per epoch) for :func:`check_predict_run`: max_steps or epochs, ratios or step
    counts, gradient accumulation with a partial last group, intervals that do not divide the run.

    >>> [batches for _, batches in predict_run_cases()]
    [40, 125, 40, 10]
    """
    base = {"gradient_accumulation_steps": 1, "max_steps": -1, "num_train_epochs": 1, "eval_strategy": "steps",
            "save_strategy": "steps", "logging_strategy": "steps", "logging_steps": 1, "eval_on_start": False}
    return [
        ({**base, "max_steps": 40, "eval_steps": 5, "save_steps": 20, "warmup_steps": 0.1, "eval_on_start": True}, 40),
        ({**base, "num_train_epochs": 3, "gradient_accumulation_steps": 4, "eval_steps": 0.125, "save_steps": 0.125,
          "warmup_steps": 0.1}, 125),
        ({**base, "max_steps": 30, "eval_steps": 7, "save_steps": 14, "warmup_steps": 3}, 40),
        ({**base, "gradient_accumulation_steps": 4, "eval_steps": 0.5, "save_steps": 2, "warmup_steps": 0.1}, 10),
    ]


def _predict_run_problem(key: str, got: int, config: dict, batches: int, want: dict) -> str:
    accum, epochs = config["gradient_accumulation_steps"], config["num_train_epochs"]
    total = want["steps"]
    if key == "steps":
        if config["max_steps"] > 0:
            return f"max_steps={config['max_steps']} is set: it overrides num_train_epochs. Fix: if max_steps > 0, that is the step count"
        if got == math.floor(batches / accum) * epochs:
            return (f"{batches} batches with gradient_accumulation_steps={accum} make {math.ceil(batches / accum)} "
                    f"optimizer steps per epoch, not {batches // accum}: the last, partial group still steps. "
                    "Fix: ceil(batches / accum) per epoch")
        if got == batches * epochs:
            return f"one optimizer step consumes gradient_accumulation_steps={accum} batches. Fix: divide (rounding up)"
        return "Fix: steps = max_steps if > 0, else ceil(num_train_epochs * ceil(batches / accumulation))"
    every = config[f"{'eval' if key == 'evaluations' else 'save'}_steps"]
    if key in ("evaluations", "checkpoints"):
        interval = math.ceil(total * every) if every < 1 else int(every)
        if key == "evaluations" and config["eval_on_start"] and got == want[key] - 1:
            return "eval_on_start=True adds one evaluation before the first step. Fix: count it"
        if every < 1 and got != want[key]:
            return (f"{'eval' if key == 'evaluations' else 'save'}_steps={every} is below 1: a share of the run, "
                    f"every ceil({total} x {every}) = {interval} steps. Fix: convert shares to steps first")
        if got == total // interval:
            return (f"every {interval} steps in {total} gives {total // interval}, plus one at the last step "
                    f"({total}), which the Trainer adds when it is not a multiple of {interval}. Fix: count the final one")
        return f"Fix: one every {interval} steps, plus the final step when {total} is not a multiple of {interval}"
    ratio = config["warmup_steps"]
    if ratio < 1 and got == math.floor(total * ratio):
        return f"warmup_steps={ratio} is a share: the Trainer rounds it up, ceil({total} x {ratio}). Fix: use math.ceil"
    return "Fix: warmup_steps >= 1 is a step count; below 1, ceil(total steps x warmup_steps)"


@student_code("predict_run")
def check_predict_run(predict_run) -> None:
    """The optional harder TODO of 06: ``predict_run(config, batches_per_epoch)`` returns the run's optimizer steps,
    evaluations, checkpoints and warmup steps as the Trainer will count them (reference:
    :func:`labhelpers.sanity.config.plan_run`), on configs with accumulation, ratios and uneven intervals.
    """
    from types import SimpleNamespace

    from labhelpers.sanity.config import plan_run

    for n, (fields, batches) in enumerate(predict_run_cases(), start=1):
        plan = plan_run(SimpleNamespace(**fields), batches)
        want = {"steps": plan.total_steps, "evaluations": plan.eval_points, "checkpoints": plan.save_points,
                "warmup_steps": plan.warmup_steps}
        got = predict_run(SimpleNamespace(**fields), batches)
        require(isinstance(got, dict) and set(want) <= set(got),
                f"predict_run returned {str(got)[:80]!r}", f"return a dict with the keys {sorted(want)}")
        for key in want:  # in order: a wrong step count explains the rest
            if int(got[key]) != want[key]:
                shown = {k: fields[k] for k in fields if k not in ("eval_strategy", "save_strategy", "logging_strategy",
                                                                    "logging_steps")}
                raise TodoCheckError(f"case {n} ({shown}, {batches} batches per epoch): {key} {got[key]} but the "
                                     f"Trainer makes {want[key]}. " + _predict_run_problem(key, int(got[key]), fields,
                                                                                         batches, want))
    passed("your predictions match the Trainer's own arithmetic: steps, evaluations, checkpoints and warmup on "
           f"{len(predict_run_cases())} configs")
