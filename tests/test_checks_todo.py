"""Feedback common to every TODO check: an unfilled TODO is named as such before any diagnosis, the guard that
student copies call in cells depending on a TODO, and tolerances that follow the dtype (bf16 works on CPU)."""

from __future__ import annotations

import inspect
import math

import pytest
import torch
import torch.nn.functional as F

from labhelpers import checks
from labhelpers.checks import (
    NOT_IMPLEMENTED,
    TodoCheckError,
    TodoNotDoneError,
    check_masked_lm_loss,
    check_pack_examples,
    require_todo,
)


def unfilled(*args, **kwargs):
    """What a student copy's TODO does until it is filled in."""
    raise NotImplementedError("TODO: shift by one, flatten, sum the cross-entropy over labels != -100 ...")


class ChatTok:
    """Tiny stand-in for a chat tokenizer: enough for the checks to reach the student's function."""

    padding_side = "right"
    pad_token_id = 0

    def apply_chat_template(self, messages, tokenize=True, add_generation_prompt=False, return_dict=False,
                            return_assistant_tokens_mask=False):
        if not tokenize:
            return "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
        ids = list(range(1, 3 * len(messages) + 1))
        return {"input_ids": ids, "assistant_masks": [0] * len(ids)}


def _eff(p, a, g):
    return p * a * g


def _steps(n, p, a, g):
    return math.ceil(math.ceil(n / (p * g)) / a)


def _warmup(total, ratio):
    return math.ceil(total * ratio)


CASES = {  # check name -> (args with `unfilled` in the student's place) ; one case per student function
    "check_batch_math/effective_batch_size": ("check_batch_math", (unfilled, _steps, _warmup)),
    "check_batch_math/optimizer_steps_per_epoch": ("check_batch_math", (_eff, unfilled, _warmup)),
    "check_batch_math/warmup_steps": ("check_batch_math", (_eff, _steps, unfilled)),
    "check_generate_answers": ("check_generate_answers", (unfilled, object(), ChatTok())),
    "check_format_chatml": ("check_format_chatml", (unfilled, ChatTok())),
    "check_build_labels": ("check_build_labels", (unfilled, ChatTok())),
    "check_assistant_mask_from_ids": ("check_assistant_mask_from_ids", (unfilled, ChatTok())),
    "check_pack_examples": ("check_pack_examples", (unfilled,)),
    "check_cosine_schedule": ("check_cosine_schedule", (unfilled,)),
    "check_masked_lm_loss": ("check_masked_lm_loss", (unfilled,)),
    "check_masked_lm_loss/real_batch": ("check_masked_lm_loss", (unfilled, torch.zeros(1, 3, 5), torch.ones(1, 3).long(),
                                                                  torch.tensor(1.0))),
    "check_behaviour_scores": ("check_behaviour_scores", (unfilled,)),
    "check_predict_run": ("check_predict_run", (unfilled,)),
    "check_reply_loss": ("check_reply_loss", (unfilled, object(), ChatTok())),
}
# These checks get the TODO's *result* (a config, a figure, a trainer), never code: with the TODO unfilled the
# notebook cell fails before calling them, on `require_todo(...)`, tested below.
TAKE_VALUES = {"check_sft_config", "check_loss_plot", "check_preflight_clean"}


def test_every_check_is_covered():
    names = {n for n, f in vars(checks).items() if n.startswith("check_") and inspect.isfunction(f)}
    decorated = {n for n in names if getattr(vars(checks)[n], "student_params", None)}
    assert decorated == {name for name, _ in CASES.values()}
    assert names == decorated | TAKE_VALUES


@pytest.mark.parametrize("case", sorted(CASES))
def test_unfilled_todo_is_named_before_any_diagnosis(case):
    name, args = CASES[case]
    with pytest.raises(TodoCheckError) as err:
        getattr(checks, name)(*args)
    message = str(err.value)
    assert NOT_IMPLEMENTED in message, message
    assert "-100" not in message and "Traceback" not in message
    param = case.split("/")[1] if "/" in case and not case.endswith("real_batch") else None
    if param:
        assert message.startswith(f"{param} is not implemented yet")
    assert err.value.__suppress_context__  # the NotImplementedError's traceback is not shown twice


def test_other_not_implemented_errors_are_not_taken_for_the_todo():
    def backend_gap(logits, labels):
        raise NotImplementedError("Could not run 'aten::foo' with arguments from the 'Meta' backend")

    with pytest.raises(NotImplementedError, match="aten::foo"):
        check_masked_lm_loss(backend_gap)


# ------------------------------------------------------------------------------------------------ the guard
def test_require_todo_passes_when_done(capsys):
    def build_labels(ids, mask):
        return [i if m else -100 for i, m in zip(ids, mask)]

    packed = [1]
    exec("require_todo('build_labels', 'packed')", {"require_todo": require_todo, "build_labels": build_labels,
                                                    "packed": packed})


def test_require_todo_names_a_missing_name_and_an_unfilled_function():
    def pack_examples(examples, max_length):
        raise NotImplementedError("TODO: truncate each example ...")

    namespace = {"require_todo": require_todo, "pack_examples": pack_examples}
    with pytest.raises(TodoNotDoneError, match=r"^run the TODO above first \(it defines `packed`\)\. Fix: "):
        exec("require_todo('packed')", namespace)
    with pytest.raises(TodoNotDoneError, match=r"pack_examples is not implemented yet"):
        exec("require_todo('pack_examples', 'packed')", namespace)


def test_require_todo_sees_stubs_in_classes_and_nested_functions():
    source = ("class Scorer:\n    def score(self):\n        raise NotImplementedError('TODO: score it')\n"
              "def outer():\n    def inner():\n        raise NotImplementedError('TODO: inner')\n    return inner\n")
    namespace = {"require_todo": require_todo}
    exec(source, namespace)
    for name in ("Scorer", "outer"):
        with pytest.raises(TodoNotDoneError, match=f"{name} is not implemented yet"):
            exec(f"require_todo({name!r})", namespace)


def test_require_todo_renders_as_one_line_in_ipython():
    try:
        require_todo("nothing_defines_this")
    except TodoNotDoneError as err:
        lines = err._render_traceback_()
    assert lines == ["TodoNotDoneError: run the TODO above first (it defines `nothing_defines_this`). Fix: fill in the "
                     "TODO, run its cell and its check, then the cells below it in order"]


# ------------------------------------------------------------------------------------- dtype tolerance (11)
def good_loss(logits, labels):  # no upcast: in bf16 the result is rounded to bf16
    s = F.cross_entropy(logits[:, :-1].flatten(0, 1), labels[:, 1:].flatten(), ignore_index=-100, reduction="sum")
    return s / (labels[:, 1:] != -100).sum().clamp(min=1)


def mean_over_all_positions(logits, labels):
    per = F.cross_entropy(logits[:, :-1].flatten(0, 1), labels[:, 1:].flatten(), ignore_index=-100, reduction="none")
    return per.mean()


def bf16_batch():
    g = torch.Generator().manual_seed(3)
    logits = (torch.randn(2, 48, 4096, generator=g) * 3).to(torch.bfloat16)
    labels = torch.randint(0, 4096, (2, 48), generator=g)
    labels[:, :15] = -100
    trainer_loss = good_loss(logits.float(), labels)  # TRL upcasts the logits to float32 inside its loss
    return logits, labels, trainer_loss


def test_bf16_loss_passes_with_the_bf16_tolerance_and_says_so(capsys):
    logits, labels, trainer_loss = bf16_batch()
    got = float(good_loss(logits, labels))
    assert abs(got - float(trainer_loss)) > 1e-5 + 1e-5 * float(trainer_loss)  # float32's tolerance would reject it
    check_masked_lm_loss(good_loss, logits, labels, trainer_loss)
    assert "tolerance 1e-05 + 1.6e-02 x |loss| for bfloat16 logits" in capsys.readouterr().out


def test_bf16_tolerance_still_names_a_mistake():
    logits, labels, trainer_loss = bf16_batch()

    def right_on_toys_wrong_here(lg, lb):
        return good_loss(lg, lb) if lg.size(1) < 48 else mean_over_all_positions(lg, lb)

    with pytest.raises(TodoCheckError, match=r"for bfloat16 logits\): .*you averaged over masked tokens too"):
        check_masked_lm_loss(right_on_toys_wrong_here, logits, labels, trainer_loss)


def test_explicit_tolerance_overrides_the_dtype_default():
    logits, labels, trainer_loss = bf16_batch()
    with pytest.raises(TodoCheckError, match=r"tolerance 1e-05 \+ 1.0e-05 x \|loss\| for bfloat16 logits"):
        check_masked_lm_loss(good_loss, logits, labels, trainer_loss, rtol=1e-5)


# ------------------------------------------------------------------------------------------- wording fixes
def test_strict_less_than_packer_is_told_about_exactly_full_rows():
    def best_fit_strict(examples, max_length):  # `<` instead of `<=`: an exactly full row "has no room"
        rows = []
        for ids in sorted((list(e[:max_length]) for e in examples), key=len, reverse=True):
            fitting = [r for r in rows if len(r["input_ids"]) + len(ids) < max_length]
            row = max(fitting, key=lambda r: len(r["input_ids"])) if fitting else None
            if row is None:
                row = {"input_ids": [], "position_ids": [], "seq_lengths": []}
                rows.append(row)
            row["input_ids"] += ids
            row["position_ids"] += range(len(ids))
            row["seq_lengths"].append(len(ids))
        return rows

    with pytest.raises(TodoCheckError) as err:
        check_pack_examples(best_fit_strict)
    assert "an exactly full row still has room: use <=" in str(err.value)
    assert "first-fit" not in str(err.value)


def test_lr_mismatch_prints_enough_digits_to_see_it():
    def nearly(step, total, warmup, peak):
        if step < warmup:
            return peak * step / warmup
        return peak * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup))) * (1 + 2e-6)

    with pytest.raises(TodoCheckError) as err:
        checks.check_cosine_schedule(nearly)
    # printed with 4 digits both were "2e-05"; the relative difference 2e-6 asks for 8 digits
    assert "at step 10 your LR is 2.000004e-05 but at the end of warmup the LR is the peak, 2e-05 " in str(err.value)
