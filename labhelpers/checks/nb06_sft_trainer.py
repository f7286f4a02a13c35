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
    "assistant_only_loss": "train on the assistant replies only (notebook 04)",
    "packing": "pack rows only where a variable-length attention kernel makes it pay (notebook 05; recipe.packing)",
    "train_sampling_strategy": "batch rows of similar length where packing does not pay (recipe.train_sampling_strategy)",
    "load_best_model_at_end": "keep the checkpoint with the lowest eval loss",
    "eval_on_start": "evaluate the untouched model first, so the eval curve starts at the base model's loss",
    "metric_for_best_model": "judge 'best' by the eval loss",
    "greater_is_better": "a lower eval loss is better",
    "save_total_limit": "keep the best and the newest checkpoint, not every one",
    "logging_nan_inf_filter": "the default replaces a NaN loss by a running average, hiding it",
    "eval_strategy": "evaluate every eval_steps steps",
    "save_strategy": "save every save_steps steps",
}


def _config_value(config: object, name: str) -> object:
    value = getattr(config, name)
    return value.value if hasattr(value, "value") else value


def check_sft_config(config: object, recipe: Recipe) -> None:
    """Compare the student's ``SFTConfig`` with notebook 06's run (``recipe.reference_config``), field by field."""
    from trl import SFTConfig

    from labhelpers.hardware import REFERENCE_RUN_SETTINGS

    require(isinstance(config, SFTConfig), f"config is a {type(config).__name__}, not an SFTConfig",
            "build it with SFTConfig(output_dir=..., ...)")
    reference = recipe.reference_config(config.output_dir)
    problems = []
    for name in {**recipe.sft_config_kwargs(), **REFERENCE_RUN_SETTINGS}:
        if name in {"report_to", "seed"}:
            continue
        have, want = _config_value(config, name), _config_value(reference, name)
        if have == want or (isinstance(want, float) and isinstance(have, float) and abs(have - want) < 1e-12):
            continue
        why = WHY_SETTING.get(name)
        problems.append(f"{name} is {have!r}; set {name}={want!r} to {why}" if why else
                        f"{name} is {have!r}, the recipe says {want!r}")
    require(not problems, "your SFTConfig differs from what this run needs:\n  - " + "\n  - ".join(sorted(problems)),
            "change those fields and re-run the cell")
    batching = "packing" if config.packing else f"{config.train_sampling_strategy} batches"
    passed(f"SFTConfig matches the {recipe.profile} recipe: max_length {config.max_length}, "
           f"lr {config.learning_rate}, effective batch {recipe.plan().effective_batch_size}, assistant-only loss, "
           f"{batching}")


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
