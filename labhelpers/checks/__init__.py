"""Feedback for the notebooks' TODO cells: each ``check_*`` runs the student's code on small inputs
and either prints what is right or raises :class:`TodoCheckError` saying what is wrong and how to fix it.

The checks compare against reference behaviour (library functions or small reference versions here);
they never fill a TODO in for the student.

One module per notebook, named by its number: notebook ``NN_topic.ipynb``'s checks are in ``nbNN_topic.py``
(``nb05_packing.py``: ``check_pack_examples``). ``core.py`` holds what they share: :class:`TodoCheckError`,
:func:`require`, :func:`passed`, :func:`student_code` and the :func:`require_todo` guard. The checks of notebooks
01-11 are imported here (``from labhelpers.checks import check_pack_examples``); those of 12 and 13 build on
``labhelpers.run.lora`` / ``labhelpers.run.handoff`` and are imported from their own modules
(``from labhelpers.checks.nb12_lora import check_lora_config``), so the checks of 01-11 do not load those.

Each TODO has an id (``04.build_labels``, :func:`todo_id`); :func:`hint` (from :mod:`labhelpers.views.progress`) reveals its
hints one tier at a time, and every check's verdict lands in the run folder's ``progress.jsonl`` (``core.py``).

Nothing else in ``labhelpers`` imports this package: the checks sit on top of the plumbing they test against
(tests/test_imports.py).
"""

from labhelpers.checks.core import (NOT_IMPLEMENTED, TodoCheckError, TodoNotDoneError, passed, require, require_todo,
                                    student_code, todo_id)
from labhelpers.checks.nb01_setup_and_hardware import check_batch_math
from labhelpers.checks.nb02_baseline_generation import GENERATION_CHECK_PROMPTS, check_generate_answers
from labhelpers.checks.nb03_chat_formatting import chatml_check_cases, check_format_chatml, first_difference
from labhelpers.checks.nb04_loss_masking import (LABEL_CHECK_CONVERSATIONS, check_assistant_mask_from_ids,
                                                 check_build_labels)
from labhelpers.checks.nb05_packing import check_pack_examples
from labhelpers.checks.nb06_sft_trainer import WHY_SETTING, check_predict_run, check_sft_config, predict_run_cases
from labhelpers.checks.nb07_loss_curves import check_loss_plot
from labhelpers.checks.nb08_lr_schedulers import _reference_cosine_lrs, check_cosine_schedule
from labhelpers.checks.nb09_before_after import REPLY_LOSS_CHECK_PAIRS, check_behaviour_scores, check_reply_loss
from labhelpers.checks.nb10_sanity_protocol import check_preflight_clean
from labhelpers.checks.nb11_custom_accelerate_loop import check_masked_lm_loss, loss_tolerance
from labhelpers.views.progress import hint

__all__ = [
    "GENERATION_CHECK_PROMPTS", "LABEL_CHECK_CONVERSATIONS", "NOT_IMPLEMENTED", "REPLY_LOSS_CHECK_PAIRS", "WHY_SETTING",
    "TodoCheckError", "TodoNotDoneError", "chatml_check_cases", "check_assistant_mask_from_ids", "check_batch_math",
    "check_behaviour_scores", "check_build_labels", "check_cosine_schedule", "check_format_chatml",
    "check_generate_answers", "check_loss_plot", "check_masked_lm_loss", "check_pack_examples", "check_predict_run",
    "check_preflight_clean", "check_reply_loss", "check_sft_config", "first_difference", "hint", "loss_tolerance",
    "passed", "predict_run_cases", "require", "require_todo", "student_code", "todo_id",
]  # and _reference_cosine_lrs, which tests/test_checks_loops.py imports from here
