"""API drift: arguments that old tutorials pass and current TRL / transformers reject, with the fix.

>>> explain_drift(TypeError("SFTConfig.__init__() got an unexpected keyword argument 'max_seq_length'"))
"SFTConfig has no 'max_seq_length' any more: use max_length=... (TRL 1.x renamed it)"
"""

from __future__ import annotations

import re

# old keyword -> what to do instead (TRL 1.16, transformers 5.24)
REMOVED_ARGUMENTS: dict[str, str] = {
    "max_seq_length": "use max_length=... (TRL 1.x renamed it)",
    "evaluation_strategy": 'use eval_strategy="steps" or "epoch"',
    "warmup_ratio": "pass the ratio as warmup_steps=0.1 (a float below 1 is a ratio)",
    "tokenizer": "pass the tokenizer as processing_class=tokenizer",
    "overwrite_output_dir": "drop it: the Trainer writes into output_dir and keeps checkpoints it finds",
    "logging_dir": 'drop it: report_to="tensorboard" logs under output_dir/runs',
    "group_by_length": 'use train_sampling_strategy="group_by_length" (transformers 5); on a CPU it beat packing '
                       "in trained tokens/s (python -m benchmarks packing)",
}
_UNEXPECTED = re.compile(r"(\w+)\.__init__\(\) got an unexpected keyword argument '(\w+)'")


def explain_drift(error: BaseException) -> str:
    """One-line fix for a ``TypeError`` caused by an argument that was renamed or removed."""
    match = _UNEXPECTED.search(str(error))
    if not match:
        return f"not an API-drift error: {error}"
    owner, argument = match.groups()
    fix = REMOVED_ARGUMENTS.get(argument, f"check the {owner} documentation for its current name")
    return f"{owner} has no {argument!r} any more: {fix}"


def drifted_keywords(kwargs: dict) -> dict[str, str]:
    """The keywords in ``kwargs`` that current versions reject, each with its fix.

    >>> drifted_keywords({"max_seq_length": 512, "learning_rate": 2e-5})
    {'max_seq_length': 'use max_length=... (TRL 1.x renamed it)'}
    """
    return {k: REMOVED_ARGUMENTS[k] for k in kwargs if k in REMOVED_ARGUMENTS}


def explain_drift_where_typed() -> bool:
    """In a notebook, name the fix right under a ``TypeError`` that an old name causes, in the cell where it was typed
    (06's TODO cell, not two cells later): IPython shows its usual traceback, then one line ``API drift: ...``. Other
    errors are left as they are. False outside IPython (nothing to hook).

    >>> explain_drift_where_typed() in (True, False)  # False in a plain process; tests/test_drift_where_typed.py runs it
    True
    """
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    if shell is None:
        return False

    def show(shell: object, etype: type, value: BaseException, tb: object, tb_offset: int | None = None) -> None:
        shell.showtraceback((etype, value, tb), tb_offset=tb_offset)
        if _UNEXPECTED.search(str(value)):
            print(f"API drift: {explain_drift(value)}")

    shell.set_custom_exc((TypeError,), show)
    return True

