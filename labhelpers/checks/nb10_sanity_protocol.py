"""TODO check of notebook 10 (the sanity-check protocol): the student's trainer passes the quick preflight, evaluates
on a held-out split, and fine-tunes every weight at a full fine-tune's learning rate (the preflight only warns about a
LoRA rate on a full fine-tune; the protocol below the TODO would train with it)."""

from __future__ import annotations

from typing import Any

from labhelpers.checks.core import TodoCheckError, passed, require

# A full fine-tune's learning-rate band. The top is where the preflight's learning_rate finding stops passing
# (labhelpers.sanity.preflight.hyperparameter_findings: it warns above 3e-4, 1e-4 past 1B parameters); the bottom is
# the preflight's own advice for a low rate ("try 1e-5..1e-4"). The recipes use 2e-4 (ci) and 2e-5 (colab, full).
FULL_FT_LR_LOW = 1e-5
FULL_FT_LR_HIGH = 3e-4
FULL_FT_LR_HIGH_BIG = 1e-4  # models over 1B parameters
_FIX_LR = ("learning_rate=recipe.sizes.learning_rate, the recipe's full-fine-tune rate (or leave it out: small_config "
           "already uses it)")


def full_fine_tune_lr_band(n_params: int) -> tuple[float, float]:
    """(lowest, highest) learning rate the check accepts for a full fine-tune of ``n_params`` parameters.

    >>> full_fine_tune_lr_band(135_000_000), full_fine_tune_lr_band(7_000_000_000)
    ((1e-05, 0.0003), (1e-05, 0.0001))
    """
    return FULL_FT_LR_LOW, FULL_FT_LR_HIGH_BIG if n_params > 1_000_000_000 else FULL_FT_LR_HIGH


def learning_rate_problem(lr: float, n_params: int) -> tuple[str, str] | None:
    """(problem, fix) for a full fine-tune's learning rate outside :func:`full_fine_tune_lr_band`, else ``None``.

    >>> learning_rate_problem(2e-4, 135_000_000) is None
    True
    >>> learning_rate_problem(1e-3, 135_000_000)[0].split(" (")[0]
    'learning_rate 0.001 is a LoRA learning rate'
    """
    from labhelpers.sanity.lora import LORA_LR_HIGH, LORA_LR_LOW

    low, high = full_fine_tune_lr_band(n_params)
    band = f"a full fine-tune's {low:g}..{high:g}"
    size = f"all {n_params / 1e6:,.0f}M weights"
    if lr > LORA_LR_HIGH:
        return (f"learning_rate {lr:g} is far above {band} (and above even LoRA's {LORA_LR_HIGH:g}): this trainer "
                f"updates {size}, so the first steps undo pre-training and the loss diverges", _FIX_LR)
    if lr > high:
        return (f"learning_rate {lr:g} is a LoRA learning rate (LoRA adapters start at zero and need "
                f"{LORA_LR_LOW:g}..{LORA_LR_HIGH:g}; notebook 12 uses 1e-3), not {band}: this trainer updates {size}, "
                "and at that rate the first steps undo pre-training (the loss spikes or goes NaN)", _FIX_LR)
    if lr < low:
        return (f"learning_rate {lr:g} is below {band}: lowering it silences the preflight's learning-rate finding, "
                "but in a short run the weights barely move, so the protocol's overfit step cannot pass", _FIX_LR)
    return None


def _named(finding: Any, trainer: Any) -> tuple[str, str]:
    """(problem, fix) for a failing preflight finding, naming the setting that caused it where it is known."""
    args, columns = trainer.args, getattr(trainer.train_dataset, "column_names", None) or []
    if finding.check == "prompt_tokens_trained":
        fix = ("train_dataset=train_rows (the `messages` column) with small_config('good', assistant_only_loss=True, "
               "...): the chat template marks the replies, and only they are trained")
        if "text" in columns and "messages" not in columns:
            return (f"train_dataset is the pre-rendered `text` column, so nothing tells the prompt from the reply: "
                    f"{finding.message}", fix)
        if getattr(args, "completion_only_loss", None) and not getattr(args, "assistant_only_loss", False):
            return ("completion_only_loss=True masks the prompt of prompt/completion rows only; train_rows hold "
                    f"`messages` conversations, so the whole chat is still trained: {finding.message}", fix)
        if not getattr(args, "assistant_only_loss", False):
            return f"assistant_only_loss is off, so the loss trains the prompt too: {finding.message}", fix
    if finding.check == "eval_overlap":
        return (f"your eval rows are training rows: {finding.message}, so the eval loss measures memorisation, not "
                "generalisation", "eval_dataset=eval_rows (the held-out rows select_splits kept apart), not train_rows")
    return f"{finding.check}: {finding.message}", finding.fix or "change the setting the message names"


def check_preflight_clean(trainer: object) -> object:
    """Run the quick preflight on the student's trainer; fail with every problem (its cause named where known) and its
    fix, in one message; on success print the number of warnings and return the report."""
    from trl import SFTTrainer

    from labhelpers.sanity import preflight
    from labhelpers.sanity.config import strategy

    require(isinstance(trainer, SFTTrainer), f"good_trainer is a {type(trainer).__name__}, not an SFTTrainer",
            "build an SFTTrainer(model=model, args=small_config('good', ...), train_dataset=train_rows, "
            "eval_dataset=eval_rows, processing_class=tokenizer)")
    problems: list[tuple[str, str]] = []
    if trainer.eval_dataset is None:
        problems.append(("the trainer has no eval split", 'pass eval_dataset=eval_rows and eval_strategy="steps"'))
    elif strategy(trainer.args, "eval_strategy") == "no":
        problems.append(("evaluation is switched off (eval_strategy='no', small_config's default)",
                         'pass eval_strategy="steps" and eval_steps=... so the eval loss is measured during training'))
    model = trainer.model
    lora = hasattr(model, "peft_config")  # LoRA: the preflight's own LoRA bands judge the rate
    lr_problem = None if lora else learning_rate_problem(trainer.args.learning_rate,
                                                         sum(p.numel() for p in model.parameters()))
    try:
        report = preflight(trainer)
    except ValueError as err:  # e.g. a trainer built without processing_class: the preflight cannot read its labels
        raise TodoCheckError(f"the preflight cannot run on good_trainer: {' '.join(str(err).split())}. Fix: build it "
                             "as the TODO shows, with processing_class=tokenizer") from None
    if lr_problem:
        finding = report.by_check("learning_rate")
        status = finding.status if finding is not None else "pass"
        if status != "fail":  # the report alone would let it through: say why the check does not
            lr_problem = (f"{lr_problem[0]}. The preflight only {'warns' if status == 'warn' else 'passes it'}, but "
                          "the protocol below trains with this rate", lr_problem[1])
        problems.append(lr_problem)
    for finding in report.failed:
        if finding.check == "learning_rate" and lr_problem:
            continue  # named above, with the band
        problems.append(_named(finding, trainer))
    if problems:
        said = (f"{problems[0][0]}. Fix: {problems[0][1]}" if len(problems) == 1 else f"{len(problems)} problems: "
                + " ".join(f"({i}) {problem}. Fix: {fix}." for i, (problem, fix) in enumerate(problems, 1)))
        raise TodoCheckError(" ".join(said.split()))  # one line in Jupyter, whatever a finding's message holds
    passed(f"preflight passes ({len(report.warnings)} warning(s) to read below)")
    return report
