"""The whole configuration, checked against the run it will be: steps counted as the Trainer counts them.

A setting can be valid and still do nothing in *this* run: ``eval_steps=500`` in a 40-step run evaluates once at the
end, ``load_best_model_at_end`` with one checkpoint selects nothing, ``warmup_steps=100`` in a 60-step run never reaches
the learning rate. These checks take the trainer's arguments and the real number of optimizer steps (after packing,
from the train dataloader's length) and say, per setting, what it will do here and how to fix it. Generation settings
of the before/after comparison and the doubled end-of-turn token of pre-rendered text are checked here too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

from labhelpers.base.batching import steps_from_batches, total_steps, warmup_steps
from labhelpers.sanity.report import Finding

MIN_EVAL_POINTS = 3  # fewer evaluations than this draw no curve: overfitting cannot be seen
MIN_LOG_POINTS = 5  # fewer logged training losses than this are not a loss curve
CURVE_MIN_STEPS = 10  # a shorter run is a smoke test (sanity protocol, a 2-step check): no curve is expected of it
DEFAULT_SAMPLING = {"temperature": 1.0, "top_p": 1.0, "top_k": 50, "min_p": None, "typical_p": 1.0}


def strategy(args: Any, name: str) -> str:
    """An ``*_strategy`` / ``lr_scheduler_type`` setting as a plain string (TrainingArguments stores enums).

    >>> from types import SimpleNamespace as NS; from transformers.trainer_utils import IntervalStrategy
    >>> strategy(NS(eval_strategy=IntervalStrategy.STEPS), "eval_strategy"), strategy(NS(), "save_strategy")
    ('steps', 'no')
    """
    value = getattr(args, name, "no")
    return str(getattr(value, "value", value))


def _interval(steps: float | int | None, total: int) -> int:
    """An ``*_steps`` setting as the Trainer applies it: a float < 1 is a share of the total steps (rounded up).

    >>> _interval(0.1, 45), _interval(25, 45), _interval(None, 45)
    (5, 25, 0)
    """
    if not steps:
        return 0
    return math.ceil(total * steps) if steps < 1 else int(steps)


@dataclass(frozen=True)
class RunPlan:
    """What a training run will do, counted as ``transformers.Trainer`` counts it.

    >>> plan = RunPlan(total_steps=40, updates_per_epoch=40, eval_points=8, save_points=2, log_points=8,
    ...                warmup_steps=4, best_model_candidates=2)
    >>> plan.total_steps, plan.eval_points
    (40, 8)
    """

    total_steps: int  # optimizer steps (what the LR schedule spans)
    updates_per_epoch: int
    eval_points: int  # evaluations during the run (eval_strategy steps/epoch, including the one at the end)
    save_points: int  # checkpoints written (including the one at the end)
    log_points: int  # logged training losses
    warmup_steps: int
    best_model_candidates: int  # checkpoints with an evaluation, among which load_best_model_at_end picks


def plan_run(args: Any, batches_per_epoch: int) -> RunPlan:
    """The run ``args`` describe over a train dataloader of ``batches_per_epoch`` batches (after packing).

    >>> from types import SimpleNamespace as NS
    >>> args = NS(gradient_accumulation_steps=1, max_steps=40, num_train_epochs=3, eval_strategy="steps",
    ...           eval_steps=5, save_strategy="steps", save_steps=20, logging_strategy="steps", logging_steps=5,
    ...           warmup_steps=0.1, load_best_model_at_end=False)
    >>> p = plan_run(args, 40)
    >>> p.total_steps, p.eval_points, p.save_points, p.log_points, p.warmup_steps
    (40, 8, 2, 8, 4)
    >>> args.eval_on_start = True; plan_run(args, 40).eval_points  # one more, before the first step
    9
    """
    per_epoch = steps_from_batches(batches_per_epoch, int(getattr(args, "gradient_accumulation_steps", 1) or 1))
    total = total_steps(int(getattr(args, "max_steps", -1) or -1), float(getattr(args, "num_train_epochs", 1) or 1),
                        per_epoch)
    n_epochs = math.ceil(total / per_epoch)

    def points(kind: str, at_end: bool) -> tuple[int, set[int]]:
        when = strategy(args, f"{kind}_strategy")
        if when == "epoch":
            steps = {min(e * per_epoch, total) for e in range(1, n_epochs + 1)}
        elif when == "steps":
            every = _interval(getattr(args, f"{kind}_steps", None), total)
            steps = set(range(every, total + 1, every)) if every else set()
            if at_end and total:
                steps.add(total)
        else:
            steps = set()
        return len(steps), steps

    n_eval, eval_at = points("eval", at_end=True)
    n_eval += int(bool(getattr(args, "eval_on_start", False)) and strategy(args, "eval_strategy") != "no")
    n_save, save_at = points("save", at_end=True)
    n_log, _ = points("logging", at_end=False)
    warmup = warmup_steps(total, getattr(args, "warmup_steps", 0) or 0)
    return RunPlan(total, per_epoch, n_eval, n_save, n_log, warmup, len(eval_at & save_at))


def _every(args: Any, kind: str) -> str:
    return f"{kind}_steps={getattr(args, f'{kind}_steps', None)!r}"


def schedule_findings(args: Any, plan: RunPlan, has_eval: bool) -> list[Finding]:
    """Evaluation, saving, logging, best-model and warmup settings against the run's real step count.

    Curves (eval and logging points) are judged from :data:`CURVE_MIN_STEPS` steps on: a shorter run is a smoke test.

    >>> from types import SimpleNamespace as NS
    >>> args = NS(eval_strategy="steps", eval_steps=500, save_strategy="steps", save_steps=500, logging_strategy="steps",
    ...           logging_steps=500, warmup_steps=100, lr_scheduler_type="linear", load_best_model_at_end=False)
    >>> plan = RunPlan(60, 60, 1, 1, 0, 100, 1)
    >>> [(f.check, f.status) for f in schedule_findings(args, plan, has_eval=True)]
    [('eval_points', 'warn'), ('log_points', 'warn'), ('save_points', 'warn'), ('warmup_length', 'fail')]
    """
    total, out = plan.total_steps, []
    eval_strategy = strategy(args, "eval_strategy")
    suggest = max(1, total // 6)
    if has_eval and eval_strategy != "no" and total >= CURVE_MIN_STEPS:
        if plan.eval_points < MIN_EVAL_POINTS:
            how = (f"eval_strategy='epoch' over {math.ceil(total / plan.updates_per_epoch)} epoch(s)"
                   if eval_strategy == "epoch" else _every(args, "eval"))
            out.append(Finding("eval_points", "warn",
                               f"{how} in a {total}-step run evaluates {plan.eval_points} time(s): no eval curve, so "
                               "overfitting cannot show", f"set eval_strategy='steps', eval_steps={suggest} (or a "
                               "ratio such as 0.15) for about 6 evaluations"))
        else:
            out.append(Finding("eval_points", "pass", f"{plan.eval_points} evaluations in {total} steps", ""))
    if strategy(args, "logging_strategy") == "steps" and plan.log_points < MIN_LOG_POINTS and total >= CURVE_MIN_STEPS:
        out.append(Finding("log_points", "warn",
                           f"{_every(args, 'logging')} in a {total}-step run logs the training loss {plan.log_points} "
                           "time(s): no loss curve to read", f"set logging_steps={max(1, total // 10)} (about 10 points)"))
    out += _save_findings(args, plan)
    out += _warmup_findings(args, plan)
    return out


def _save_findings(args: Any, plan: RunPlan) -> list[Finding]:
    total, out = plan.total_steps, []
    if strategy(args, "save_strategy") == "steps" and plan.save_points <= 1 and total > 20:
        out.append(Finding("save_points", "warn",
                           f"{_every(args, 'save')} in a {total}-step run writes only the final checkpoint: a crash or "
                           "a Colab disconnect loses the whole run", f"set save_steps={max(1, total // 4)} (or a ratio "
                           "such as 0.25) to resume from a recent checkpoint"))
    if getattr(args, "load_best_model_at_end", False):
        metric = getattr(args, "metric_for_best_model", None) or "loss"
        greater = getattr(args, "greater_is_better", None)
        is_loss = metric.endswith("loss")
        if greater is not None and greater == is_loss:
            out.append(Finding("best_model_metric", "fail",
                               f"metric_for_best_model={metric!r} with greater_is_better={greater}: "
                               f"load_best_model_at_end keeps the {'worst' if is_loss else 'lowest-scoring'} checkpoint",
                               f"set greater_is_better={not is_loss} (or leave it unset: transformers infers it from "
                               "the metric's name)"))
        if plan.best_model_candidates <= 1:
            out.append(Finding("best_model_candidates", "warn",
                               f"load_best_model_at_end=True but only {plan.best_model_candidates} checkpoint(s) in this "
                               f"{total}-step run have an evaluation: the 'best' model is just the last one",
                               "save and evaluate on the same schedule several times per run (save_steps a multiple "
                               "of eval_steps, both well below the total steps)"))
    return out


def _warmup_findings(args: Any, plan: RunPlan) -> list[Finding]:
    total, warmup = plan.total_steps, plan.warmup_steps
    scheduler = strategy(args, "lr_scheduler_type")
    if warmup and scheduler == "constant":
        return [Finding("warmup_length", "warn", f"warmup_steps={getattr(args, 'warmup_steps', 0)!r} with "
                        "lr_scheduler_type='constant': the constant schedule has no warmup, the setting is ignored",
                        "use lr_scheduler_type='constant_with_warmup' to warm up")]
    if warmup >= total:
        return [Finding("warmup_length", "fail",
                        f"warmup of {warmup} steps in a {total}-step run: the learning rate never reaches "
                        f"{getattr(args, 'learning_rate', 'its peak')}", f"set warmup_steps={max(1, total // 10)} "
                        "(or the ratio 0.1: a float < 1 is a share of the total steps in TRL 1.x)")]
    if warmup > total / 2:
        return [Finding("warmup_length", "warn",
                        f"warmup of {warmup} of {total} steps: more than half of the run climbs to the learning rate",
                        "use a warmup of 5-10% of the steps (warmup_steps=0.1)")]
    return [Finding("warmup_length", "pass", f"warmup {warmup} of {total} steps", "")]


def generation_findings(generation_config: Any, end_of_turn: int, end_token: str, **generate_kwargs: Any) -> list[Finding]:
    """The before/after generation settings: sampling flags greedy decoding ignores; a stop token that never comes.

    ``generate_kwargs`` are the arguments the comparison passes to ``generate`` (they override the config).

    >>> from transformers import GenerationConfig
    >>> config = GenerationConfig(eos_token_id=0, temperature=0.7)
    >>> [(f.check, f.status) for f in generation_findings(config, 2, "<|im_end|>", do_sample=False)]
    [('sampling_flags', 'warn'), ('generation_eos', 'fail')]
    """
    settings = {k: getattr(generation_config, k, None) for k in ("do_sample", *DEFAULT_SAMPLING)}
    settings.update({k: v for k, v in generate_kwargs.items() if k in settings})
    out = []
    ignored = {k: v for k, v in settings.items() if k in DEFAULT_SAMPLING and v is not None and v != DEFAULT_SAMPLING[k]}
    if not settings["do_sample"] and ignored:
        flags = ", ".join(f"{k}={v!r}" for k, v in ignored.items())
        out.append(Finding("sampling_flags", "warn",
                           f"{flags} with do_sample=False: greedy decoding ignores them, so the before/after replies "
                           "are not the ones these settings describe", "pass do_sample=True to sample with them, or "
                           "drop them for a reproducible greedy comparison"))
    else:
        out.append(Finding("sampling_flags", "pass", "greedy decoding" if not settings["do_sample"]
                           else f"sampling with {ignored or 'the default settings'}", ""))
    eos = generate_kwargs.get("eos_token_id", getattr(generation_config, "eos_token_id", None))
    stops = [eos] if isinstance(eos, int) else list(eos or [])
    if end_of_turn not in stops:
        out.append(Finding("generation_eos", "fail",
                           f"generation stops at token id(s) {stops or 'none'}, not at the chat template's end of turn "
                           f"{end_token!r} (id {end_of_turn}): every reply runs on to max_new_tokens",
                           f"set model.generation_config.eos_token_id = {end_of_turn} (tokenizer.convert_tokens_to_ids"
                           f"({end_token!r})) before generating and saving"))
    else:
        out.append(Finding("generation_eos", "pass", f"generation stops at {end_token!r} (id {end_of_turn})", ""))
    return out


def doubled_end_findings(examples: Sequence[Sequence[int]], end_of_turn: int, end_token: str,
                         between: Sequence[int] = ()) -> list[Finding]:
    """Rows that close a turn twice (``<|im_end|>`` then, after optional ``between`` ids such as a newline, again).

    TRL appends the end-of-turn token to a ``text`` row that does not end with it; text rendered with the chat
    template ends in ``<|im_end|>\\n``, so it gets a second one and the model learns to emit it twice.

    >>> [f.status for f in doubled_end_findings([[5, 2, 198, 2], [5, 2]], 2, "<|im_end|>", between=[198])]
    ['fail']
    >>> [f.status for f in doubled_end_findings([[5, 2, 198, 1, 5, 2]], 2, "<|im_end|>", between=[198])]
    ['pass']
    """
    skip = set(between)

    def doubled(ids: Sequence[int]) -> bool:
        last_end = None
        for token in ids:
            if token == end_of_turn:
                if last_end is not None:
                    return True
                last_end = token
            elif token not in skip:
                last_end = None
        return False

    bad = sum(map(doubled, examples))
    if bad:
        return [Finding("doubled_end_of_turn", "fail",
                        f"{bad} of {len(examples)} examples close a turn with {end_token!r} twice: TRL appended its "
                        "own end-of-turn to text that already ends with one, and the model learns to emit it twice",
                        f"strip the trailing {end_token!r} (and newline) from the text column, or train on a "
                        "`messages` dataset and let the chat template close each turn")]
    return [Finding("doubled_end_of_turn", "pass", f"no example closes a turn twice ({len(examples)} checked)", "")]
