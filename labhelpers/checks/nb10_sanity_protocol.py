"""TODO check of notebook 10 (the sanity-check protocol): the student's trainer passes the quick preflight."""

from __future__ import annotations

from labhelpers.checks.core import passed, require


def check_preflight_clean(trainer: object) -> object:
    """Run the quick preflight on the student's trainer; fail with every failing finding and its fix."""
    from trl import SFTTrainer

    from labhelpers.sanity import preflight

    require(isinstance(trainer, SFTTrainer), f"good_trainer is a {type(trainer).__name__}", "build an SFTTrainer(...)")
    require(trainer.eval_dataset is not None, "the trainer has no eval split", "pass eval_dataset=eval_rows")
    strategy = getattr(trainer.args.eval_strategy, "value", trainer.args.eval_strategy)
    require(strategy != "no", "evaluation is switched off (eval_strategy='no')",
            'pass eval_strategy="steps" and eval_steps=... so the eval loss is measured during training')
    report = preflight(trainer)
    failures = "\n  - ".join(f"{f.check}: {f.message} (fix: {f.fix})" for f in report.failed)
    require(report.ok, f"the preflight still fails:\n  - {failures}", "change the config as each fix says")
    passed(f"preflight passes ({len(report.warnings)} warning(s) to read below)")
    return report
