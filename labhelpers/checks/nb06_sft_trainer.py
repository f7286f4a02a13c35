"""TODO checks of notebook 06 (SFTTrainer): the student's ``SFTConfig`` against the recipe's reference run, and
the optional prediction of the run's steps, evaluations, checkpoints and warmup."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from labhelpers.base.batching import rows_per_step
from labhelpers.checks.core import NOT_IMPLEMENTED, TodoCheckError, call_student, passed, require, student_code

if TYPE_CHECKING:
    from labhelpers.model.hardware import Recipe


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
    from labhelpers.model.hardware import REFERENCE_RUN_SETTINGS

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
    effective = rows_per_step(config)
    passed(f"SFTConfig fits the {recipe.profile} recipe's run: max_length {config.max_length}, "
           f"lr {config.learning_rate}, effective batch {effective}, assistant-only loss, {batching}"
           + ("".join(f"\n  note: {n}" for n in notes)))


def predict_run_cases() -> list[tuple[dict, int]]:
    """(config fields, train batches per epoch) for :func:`check_predict_run`, in the order that names the mistake:
    max_steps with eval_on_start; max_steps below what 3 epochs make, a run not a multiple of eval_steps/save_steps and
    warmup as a step count; epochs with gradient accumulation that does not divide the batches and shares of the run;
    a share that is not a whole number of steps; max_steps beyond one epoch and a warmup of exactly 1 step.

    >>> [batches for _, batches in predict_run_cases()]
    [40, 40, 125, 10, 40]
    """
    base = {"gradient_accumulation_steps": 1, "max_steps": -1, "num_train_epochs": 1.0, "eval_strategy": "steps",
            "save_strategy": "steps", "logging_strategy": "steps", "logging_steps": 1, "eval_on_start": False}
    return [
        ({**base, "max_steps": 40, "eval_steps": 5, "save_steps": 20, "warmup_steps": 0.1, "eval_on_start": True}, 40),
        ({**base, "max_steps": 30, "num_train_epochs": 3.0, "eval_steps": 7, "save_steps": 14, "warmup_steps": 3}, 40),
        ({**base, "num_train_epochs": 3.0, "gradient_accumulation_steps": 4, "eval_steps": 0.125, "save_steps": 0.125,
          "warmup_steps": 0.1}, 125),
        ({**base, "gradient_accumulation_steps": 4, "eval_steps": 0.5, "save_steps": 2, "warmup_steps": 0.1}, 10),
        ({**base, "max_steps": 50, "eval_steps": 10, "save_steps": 25, "warmup_steps": 1}, 40),
    ]


PREDICT_KEYS = ("steps", "evaluations", "checkpoints", "warmup_steps")
PREDICT_FIELDS = ("max_steps", "num_train_epochs", "gradient_accumulation_steps", "eval_steps", "eval_on_start",
                  "save_steps", "warmup_steps")


def _number(value: object) -> float | None:
    """``value`` as a float (ints, floats, numpy and torch scalars), or None when it is no number (text, None, bool).

    >>> _number(3), _number(2.5), _number("3"), _number(None), _number(True)
    (3.0, 2.5, None, None, None)
    """
    if value is None or isinstance(value, (str, bytes, bool)):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _shown(number: float) -> str:
    """A number as the message shows it: whole numbers without ``.0``, others short (9.600000000000001 is 9.6)."""
    return str(int(number)) if number.is_integer() else f"{number:g}"


def _steps_problem(got: float, config: dict, batches: int, want: dict) -> str:
    accum, epochs, max_steps = config["gradient_accumulation_steps"], config["num_train_epochs"], config["max_steps"]
    per_epoch = math.ceil(batches / accum)
    from_epochs = math.ceil(epochs * per_epoch)
    if max_steps > 0:
        epochs_answers = (from_epochs, math.ceil(epochs * (batches // accum)), math.ceil(epochs * batches), per_epoch,
                          batches)  # the epochs' steps, right or with an accumulation mistake, or one epoch's
        if got in epochs_answers:
            how = ("it stops before the epochs end" if max_steps < from_epochs else
                   "the Trainer runs extra epochs to reach them")
            return (f"max_steps={max_steps} is set: it overrides num_train_epochs={epochs}, so the run makes exactly "
                    f"{max_steps} steps ({how}). Fix: steps = max_steps when max_steps > 0, else the epochs' steps")
        if epochs != 1 and got == math.ceil(epochs * max_steps):
            return (f"max_steps={max_steps} counts the whole run's optimizer steps, not steps per epoch: the Trainer "
                    f"stops at step {max_steps} whatever num_train_epochs says. Fix: steps = max_steps, not x epochs")
        return "Fix: steps = max_steps when max_steps > 0 (the epochs do not matter then)"
    if got == max_steps:
        return (f"max_steps={max_steps} means not set (the Trainer uses max_steps only when it is > 0), so the "
                f"{_shown(epochs)} epoch(s) decide. Fix: test config.max_steps > 0, not just config.max_steps")
    if batches % accum and got == math.ceil(epochs * (batches // accum)):
        return (f"{batches} batches with gradient_accumulation_steps={accum} make {per_epoch} optimizer steps per "
                f"epoch, not {batches // accum}: the last, partial group still steps. Fix: ceil(batches / accum) per "
                "epoch")
    if accum > 1 and got == math.ceil(epochs * batches):
        return (f"one optimizer step consumes gradient_accumulation_steps={accum} batches, so {batches} batches make "
                f"ceil({batches} / {accum}) = {per_epoch} steps per epoch, not {batches}. Fix: ceil(batches / "
                "accumulation) steps per epoch")
    if epochs != 1 and got == per_epoch:
        return (f"num_train_epochs={epochs} repeats the epoch: ceil({_shown(epochs)} x {per_epoch}) = {from_epochs} "
                f"steps, not {per_epoch}. Fix: ceil(num_train_epochs x steps per epoch)")
    return "Fix: steps = max_steps if > 0, else ceil(num_train_epochs x ceil(batches / gradient_accumulation_steps))"


def _points_problem(key: str, got: float, config: dict, want: dict) -> str:
    kind = "eval" if key == "evaluations" else "save"
    name, what = f"{kind}_steps", "evaluation" if kind == "eval" else "checkpoint"
    total, every = want["steps"], config[f"{kind}_steps"]
    interval = _steps_of(every, total)
    start = int(key == "evaluations" and bool(config["eval_on_start"]))
    multiple = total % interval == 0

    def count(each: int, final: bool = True, always: bool = False) -> int:
        return total // each + (1 if always else int(final and total % each != 0)) + start

    if key == "evaluations" and start and got == want[key] - 1:
        return "eval_on_start=True adds one evaluation before the first step. Fix: count it (+1 when eval_on_start)"
    floored = max(1, math.floor(total * every)) if every < 1 else interval
    if floored != interval and got == count(floored):
        return (f"{name}={every} is a share of the run and the Trainer rounds the share up: every ceil({total} x "
                f"{every}) = {interval} steps, not {floored}. Fix: math.ceil(steps x {name})")
    if key == "evaluations" and not start and not multiple and got == want[key] + 1:
        return ("eval_on_start is False in this config: no evaluation before the first step. Fix: add one only when "
                "config.eval_on_start is True")
    if not multiple and got == count(interval, final=False):
        return (f"every {interval} steps in {total} gives {total // interval}, plus one at the last step ({total}), "
                f"which the Trainer adds when it is not a multiple of {interval}. Fix: count the final one")
    if multiple and got == count(interval, always=True):
        return (f"step {total} is already a multiple of {interval}: the {what} there is the last one, not an extra. "
                f"Fix: add the final one only when steps % {interval} != 0 (that is ceil(steps / {interval}))")
    if every < 1:
        return (f"{name}={every} is below 1: a share of the run, every ceil({total} x {every}) = {interval} steps. "
                "Fix: convert shares to steps first")
    return (f"Fix: one {what} every {interval} steps, plus the final step when {total} is not a multiple of {interval}"
            + (", plus one before the first step (eval_on_start)" if start else ""))


def _warmup_problem(got: float, config: dict, want: dict) -> str:
    total, warmup = want["steps"], config["warmup_steps"]
    if warmup < 1 and got == math.floor(total * warmup):
        return (f"warmup_steps={warmup} is a share: the Trainer rounds it up, ceil({total} x {warmup}) = "
                f"{want['warmup_steps']}. Fix: use math.ceil")
    if warmup >= 1 and got in (math.ceil(total * warmup), total * warmup):
        steps = f"{want['warmup_steps']} step" + ("s" if want["warmup_steps"] != 1 else "")
        return (f"warmup_steps={warmup} is a step count: the Trainer reads a value >= 1 as steps (only one below 1 as "
                f"a share of the run), so the warmup is {steps}, not {_shown(got)}. Fix: "
                "int(warmup_steps) if warmup_steps >= 1 else math.ceil(steps x warmup_steps)")
    return "Fix: warmup_steps >= 1 is a step count; below 1, ceil(total steps x warmup_steps)"


def _not_whole(key: str, config: dict, want: dict) -> str:
    """The fix for a value that is not a whole number of steps."""
    if key == "steps":
        return ("a partial accumulation group still makes a step: ceil(batches / gradient_accumulation_steps) per "
                "epoch, then ceil(num_train_epochs x that)")
    if key == "warmup_steps":
        return (f"warmup_steps={config['warmup_steps']} is a share of the run: the Trainer takes ceil({want['steps']} "
                f"x {config['warmup_steps']}) = {want['warmup_steps']} steps (math.ceil)")
    return "count whole points: steps // interval, plus one for the last step when it is not a multiple"


def _dict_problem(got: object) -> str | None:
    """What is wrong with the shape of predict_run's result (not a dict, a key missing or misspelled), or None."""
    import difflib

    wanted = "{" + ", ".join(f"{k!r}: ..." for k in PREDICT_KEYS) + "}"
    if not isinstance(got, dict):
        what = "None (no return statement?)" if got is None else f"a {type(got).__name__} {str(got)[:60]}"
        return f"predict_run returned {what}, not a dict. Fix: return a dict, {wanted}"
    missing = [k for k in PREDICT_KEYS if k not in got]
    if not missing:
        return None
    others = {str(k).lower(): k for k in got if k not in PREDICT_KEYS}
    parts = []
    for key in missing:
        close = difflib.get_close_matches(key, list(others), n=1, cutoff=0.5)
        parts.append(f"no key {key!r}" + (f" (you wrote {others.pop(close[0])!r}: misspelled?)" if close else ""))
    return (f"predict_run's dict has {', '.join(parts)}. Fix: use exactly the keys "
            + ", ".join(repr(k) for k in PREDICT_KEYS))


def _error_hints(config: dict) -> tuple[tuple[str, str], ...]:
    """call_student's hints for what a predict_run raises on ``config``."""
    shares = ", ".join(f"{k}={config[k]}" for k in ("eval_steps", "save_steps") if config[k] < 1)
    share = (f"a value below 1 ({shares}) is a share of the run, not a step count (int() of it is 0): the interval "
             "is math.ceil(steps x share) steps" if shares else
             "a step interval came out as 0: check what you divide by")
    return (
        ("warmup_ratio", "TRL 1.x's SFTConfig has no warmup_ratio: warmup_steps holds both, a share of the run below "
                         "1 (math.ceil(steps x share)) and a step count from 1"),
        ("object is not subscriptable", "config is an SFTConfig, not a dict: read its fields as attributes, config."
                                        "gradient_accumulation_steps, not config['gradient_accumulation_steps']"),
        ("ZeroDivisionError", share),
        ("must not be zero", share),
        ("cannot be interpreted as an integer", "range() takes whole numbers: turn a *_steps share below 1 into steps "
                                                "first (math.ceil(steps x share)) and float counts into int(...)"),
        ("AttributeError", "read only the fields the TODO names: " + ", ".join(PREDICT_FIELDS)),
    )


@student_code("predict_run")
def check_predict_run(predict_run) -> None:
    """The optional harder TODO of 06: ``predict_run(config, batches_per_epoch)`` returns the run's optimizer steps,
    evaluations, checkpoints and warmup steps as the Trainer will count them (reference:
    :func:`labhelpers.sanity.config.plan_run`), on configs with accumulation, ratios and uneven intervals. The first
    wrong value is named with the mistake that gives it (the steps first: a wrong step count explains the rest); an
    error inside ``predict_run`` is one named failure.
    """
    from types import SimpleNamespace

    from labhelpers.sanity.config import plan_run

    cases = predict_run_cases()
    for n, (fields, batches) in enumerate(cases, start=1):
        plan = plan_run(SimpleNamespace(**fields), batches)
        want = {"steps": plan.total_steps, "evaluations": plan.eval_points, "checkpoints": plan.save_points,
                "warmup_steps": plan.warmup_steps}
        shown = {k: fields[k] for k in PREDICT_FIELDS}
        where = f"case {n} ({shown}, {batches} batches per epoch)"
        try:
            got = call_student(predict_run, SimpleNamespace(**fields), batches, name="predict_run",
                               hints=_error_hints(fields))
        except TodoCheckError as err:
            if NOT_IMPLEMENTED in str(err):
                raise
            raise TodoCheckError(f"{where}: {err}") from None
        problem = _dict_problem(got)
        if problem:
            raise TodoCheckError(f"{where}: {problem}")
        for key in want:  # in order: a wrong step count explains the rest
            number = _number(got[key])
            if number is None:
                raise TodoCheckError(f"{where}: {key} is {got[key]!r} (a {type(got[key]).__name__}), not a number. "
                                     "Fix: return a whole number (int) for each key")
            if not number.is_integer():
                raise TodoCheckError(f"{where}: {key} is {_shown(number)}, not a whole number of steps (the Trainer "
                                     f"makes {want[key]}). Fix: {_not_whole(key, fields, want)}")
            if number != want[key]:
                if key == "steps":
                    why = _steps_problem(number, fields, batches, want)
                elif key == "warmup_steps":
                    why = _warmup_problem(number, fields, want)
                else:
                    why = _points_problem(key, number, fields, want)
                raise TodoCheckError(f"{where}: {key} {_shown(number)} but the Trainer makes {want[key]}. {why}")
    passed("your predictions match the Trainer's own arithmetic: steps, evaluations, checkpoints and warmup on "
           f"{len(cases)} configs")
