"""TODO checks of notebook 14 (diagnose the broken run): the student names each case's bug, then fixes each case.

A wrong diagnosis is answered with why not, from the case itself: the sanity assistant's checks for the named bug
pass on it (their measurement is quoted), or they fail too but follow from an earlier cause (where to look is named).
A fix is judged by the assistant as well: the case's bug is gone and nothing that passed on the broken setup fails on
the fixed one. The cases and the assistant's report are :mod:`labhelpers.sanity.clinic`.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from labhelpers.checks.core import TodoCheckError, passed, require
from labhelpers.sanity.clinic import (BUGS, AmpStep, bug_status, choice, compare_reports, is_placeholder, reveal,
                                      telling_check)
from labhelpers.views.display import HTMLText

# the bug of each case, in the notebook's order
ANSWERS: dict[int, str] = {1: "template_twice", 2: "eval_leak", 3: "stop_token_masked", 4: "fp16_weights",
                           5: "packing_leak", 6: "grad_accum_scale", 7: "prompt_trained"}
# where a case's cause shows, for an answer that names a symptom the case also has (or a bug it has no part for)
LOOK_AT: dict[int, str] = {
    1: "how the rows reached the trainer (a `text` column written by apply_chat_template) and the last tokens of "
       "the token view",
    2: "which rows the eval split holds, and how close its curve runs to the train curve",
    3: "what the collator does to the padding, and which token the padding is",
    4: "the dtype of the weights the optimizer updates, and the error the step ends with",
    5: "how many conversations share a row, and what tells the model where each one starts",
    6: "the loss of the same rows as one batch and as accumulated micro-batches",
    7: "the SFTConfig: what decides which tokens carry a label",
}
# the one change each fix makes, for a fix that does not remove the bug yet
FIXES: dict[int, str] = {
    1: "pass the conversations themselves (train_dataset=train_rows, the `messages` column) with "
       "assistant_only_loss=True: the trainer applies the template once",
    2: "eval_dataset=eval_rows (the held-out split), not rows of train_rows",
    3: "give the padding its own token: pad_tokenizer.pad_token = '<|endoftext|>' (the tokenizer pad_collator reads), "
       "or drop data_collator= and use the lab's tokenizer (TRL's collator pads by length, never by token id)",
    4: "amp_step(model, tokenizer, torch.float32): fp32 master weights, fp16 only inside autocast",
    5: "packing_strategy='bfd' (padding-free: position_ids restart at each conversation, no attention_mask), or "
       "packing=False",
    6: "use SFTTrainer itself (its loss divides by the trained tokens of the whole accumulated batch), or pass "
       "num_items_in_batch on: model(**inputs, num_items_in_batch=num_items_in_batch)",
    7: "assistant_only_loss=True in tiny_config(...): only the replies and their <|im_end|> carry labels",
}


def case_number(key: Any) -> int:
    """The case a diagnosis key names: ``3``, ``3.0``, ``"3"``, ``"case 3"``, ``"Case_3"`` or ``"case-3:"``.

    >>> case_number(3), case_number("Case 5"), case_number("case7"), case_number("case_2:"), case_number(4.0)
    (3, 5, 7, 2, 4)
    >>> case_number("eight")
    Traceback (most recent call last):
    ...
    ValueError: 'eight' does not name a case: use the case numbers 1 to 7 as keys, e.g. {1: "eval_leak", ...}
    """
    if isinstance(key, float) and key.is_integer():
        key = int(key)
    match = re.fullmatch(r"\s*(?:case[\s_\-]*)?(\d+)\s*:?\s*", str(key), flags=re.IGNORECASE)
    number = int(match.group(1)) if match and not isinstance(key, bool) else None
    if number not in ANSWERS:
        raise ValueError(f"{key!r} does not name a case: use the case numbers 1 to {len(ANSWERS)} as keys, "
                         'e.g. {1: "eval_leak", ...}')
    return number


def _normalised(diagnosis: Any) -> dict[int, str]:
    """``{case number: bug name}`` of a student's diagnosis; TodoCheckError naming every key or value to fix at once."""
    require(isinstance(diagnosis, Mapping), f"diagnosis is a {type(diagnosis).__name__}, not a dict",
            'diagnosis = {1: "<bug name>", 2: "<bug name>", ..., 7: "<bug name>"}, names from show_bugs()')
    out: dict[int, str] = {}
    keys: dict[int, Any] = {}
    problems: list[str] = []
    for key, answer in diagnosis.items():
        try:
            number = case_number(key)
        except ValueError as err:
            problems.append(str(err))
            continue
        if is_placeholder(answer):
            problems.append(f"case {number} has no diagnosis yet ({answer!r}): write one of the names show_bugs() "
                            f"lists: {', '.join(BUGS)}")
            continue
        try:
            bug = choice(answer)
        except ValueError as err:
            problems.append(f"case {number}: {err}")
            continue
        if number in out and out[number] != bug:
            problems.append(f"case {number} is diagnosed twice: {keys[number]!r}: {out[number]!r} and {key!r}: {bug!r} "
                            "name the same case; keep one key per case")
        out[number], keys[number] = bug, key
    if problems:
        raise TodoCheckError("\n- ".join(["the diagnosis needs fixing first:", *problems]) if len(problems) > 1
                             else problems[0])
    missing = [n for n in ANSWERS if n not in out]
    require(not missing, f"no diagnosis for case {', '.join(map(str, missing))}",
            "add one key per case, 1 to 7, each with the bug name you think it has")
    return out


def why_not(number: int, bug: str, case: Any) -> str:
    """Why case ``number`` is not ``bug``, from the case itself (the sanity assistant's checks for that bug)."""
    status, message = bug_status(reveal(case), bug)
    if "not applicable" in message or "not measured" in message:
        return f"case {number} has no part that {bug} could break ({message}): look at {LOOK_AT[number]}"
    if status == "pass":
        return f"case {number} is not {bug}: the assistant's check for it passes here ({message})"
    return (f"case {number} does show {bug}'s symptom ({message}), but as a consequence of something earlier: look "
            f"at {LOOK_AT[number]}")


def check_diagnosis(diagnosis: Any, cases: Mapping[int, Any]) -> None:
    """Every case named with its bug; each wrong name answered with why not (measured on the case)."""
    answers = _normalised(diagnosis)
    wrong = [why_not(n, answers[n], cases[n]) for n in ANSWERS if answers[n] != ANSWERS[n]]
    if wrong:
        right = len(ANSWERS) - len(wrong)
        raise TodoCheckError(f"{right} of {len(ANSWERS)} cases diagnosed right. Not yet:\n- " + "\n- ".join(wrong))
    passed(f"all {len(ANSWERS)} cases diagnosed: " + ", ".join(f"{n} {ANSWERS[n]}" for n in ANSWERS))


def _is_trainer(value: Any) -> bool:
    return hasattr(value, "args") and hasattr(value, "train_dataset") and hasattr(value, "model")


def _check_fix(number: int, broken: Any, fixed: Any) -> HTMLText:
    """Case ``number``'s bug gone in ``fixed``, nothing that passed on ``broken`` failing there; the two side by side."""
    bug = ANSWERS[number]
    kind = "the result of amp_step(...)" if bug == "fp16_weights" else "an SFTTrainer"
    ok_kind = isinstance(fixed, AmpStep) if bug == "fp16_weights" else _is_trainer(fixed)
    require(ok_kind, f"fixed{number} is a {type(fixed).__name__}, not {kind}", f"build it as case {number} is built, "
            f"with one change: {FIXES[number]}")
    require(fixed is not broken, f"fixed{number} is case{number} itself", f"build a new one with one change: "
            f"{FIXES[number]}")
    before, after = reveal(broken), reveal(fixed)
    status, message = bug_status(after, bug, telling_check(before, bug))
    require(status == "pass", f"case {number}'s bug is still there: {message}", FIXES[number])
    broke = [f for f in after.failed if (before.by_check(f.check) is None or before.by_check(f.check).status == "pass")]
    require(not broke, "the fix removed the bug but broke something that passed before: "
            + "; ".join(f"{f.check}: {f.message}" for f in broke), "; ".join(f.fix for f in broke if f.fix)
            or "change only what the case's bug needs")
    still = [f for f in after.failed if f not in broke]
    left = ("; still failing, as in the broken setup (another fix's job): "
            + "; ".join(f"{f.check}: {f.message}" for f in still)) if still else ""
    passed(f"case {number} fixed: {message}{left}")
    return compare_reports(before, after, [bug])


def check_fix_template_twice(broken: Any, fixed: Any) -> HTMLText:
    """Case 1 fixed: the template applied once (by the trainer), no doubled end-of-turn."""
    return _check_fix(1, broken, fixed)


def check_fix_eval_leak(broken: Any, fixed: Any) -> HTMLText:
    """Case 2 fixed: the eval split shares no row with the train rows."""
    return _check_fix(2, broken, fixed)


def check_fix_stop_token_masked(broken: Any, fixed: Any) -> HTMLText:
    """Case 3 fixed: every reply's end-of-turn token is trained."""
    return _check_fix(3, broken, fixed)


def check_fix_fp16_weights(broken: Any, fixed: Any) -> HTMLText:
    """Case 4 fixed: the AMP step unscales its gradients (fp32 master weights)."""
    return _check_fix(4, broken, fixed)


def check_fix_packing_leak(broken: Any, fixed: Any) -> HTMLText:
    """Case 5 fixed: an example's logits are the same packed or alone."""
    return _check_fix(5, broken, fixed)


def check_fix_grad_accum_scale(broken: Any, fixed: Any) -> HTMLText:
    """Case 6 fixed: the same rows give the same loss and gradient as one batch or accumulated."""
    return _check_fix(6, broken, fixed)


def check_fix_prompt_trained(broken: Any, fixed: Any) -> HTMLText:
    """Case 7 fixed: only the replies (and their end-of-turn token) carry labels."""
    return _check_fix(7, broken, fixed)
