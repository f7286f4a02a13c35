"""The TODO checks of notebooks 01-04: each passes the reference solution and catches a typical mistake with the
right message."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from labhelpers.checks import (
    TodoCheckError,
    check_batch_math,
    check_assistant_mask_from_ids,
    check_build_labels,
    check_predict_run,
    check_reply_loss,
    check_format_chatml,
    check_generate_answers,
)

# ---------------------------------------------------------------------------------------------- 01 batch arithmetic


def _eff(p, a, g):
    return p * a * g


def _steps(n, p, a, g):
    return math.ceil(math.ceil(n / (p * g)) / a)


def _warmup(total, ratio):
    return math.ceil(total * ratio)


def test_batch_math_reference_passes(capsys):
    check_batch_math(_eff, _steps, _warmup)
    assert capsys.readouterr().out.startswith("✓ batch arithmetic matches HF Trainer")


def test_batch_math_catches_floor_division():
    with pytest.raises(TodoCheckError, match=r"round up \(math.ceil\), never down"):
        check_batch_math(_eff, lambda n, p, a, g: n // (p * a * g), _warmup)


def test_batch_math_catches_forgotten_gpus():
    with pytest.raises(TodoCheckError, match=r"effective_batch_size\(per_device=1, grad_accum=1, n_gpus=2\) returned 1"):
        check_batch_math(lambda p, a, g: p * a, _steps, _warmup)


def test_batch_math_catches_int_warmup():
    with pytest.raises(TodoCheckError, match=r"warmup_steps\(total_steps=8, ratio=0.03\) returned 0, HF computes math.ceil"):
        check_batch_math(_eff, _steps, lambda total, ratio: int(total * ratio))


# ---------------------------------------------------------------------------------------------- 03 chat template
DEFAULT_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"


def _format_chatml(messages, add_generation_prompt=False):
    parts = [] if messages and messages[0]["role"] == "system" else [f"<|im_start|>system\n{DEFAULT_SYSTEM}<|im_end|>\n"]
    parts += [f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages]
    return "".join(parts) + ("<|im_start|>assistant\n" if add_generation_prompt else "")


@pytest.mark.slow
def test_format_chatml_reference_passes(tokenizer, capsys):
    check_format_chatml(_format_chatml, tokenizer)
    assert "reproduces apply_chat_template on 11 conversations" in capsys.readouterr().out


@pytest.mark.slow
def test_format_chatml_catches_missing_default_system(tokenizer):
    def no_default(messages, add_generation_prompt=False):
        return _format_chatml([{"role": "system", "content": "x"}] + messages, add_generation_prompt).split("\n", 2)[2] \
            if messages[0]["role"] != "system" else _format_chatml(messages, add_generation_prompt)

    with pytest.raises(TodoCheckError, match=r"first difference at character 12.*inserts its default one first"):
        check_format_chatml(no_default, tokenizer)


@pytest.mark.slow
def test_format_chatml_catches_stripped_content(tokenizer):
    def stripped(messages, add_generation_prompt=False):
        return _format_chatml([{**m, "content": m["content"].strip()} for m in messages], add_generation_prompt)

    with pytest.raises(TodoCheckError, match=r"case 3 of 11.*content unchanged \(no strip\)"):
        check_format_chatml(stripped, tokenizer)


# ---------------------------------------------------------------------------------------------- 04 labels


def _build_labels(ids, mask):
    return [i if m else -100 for i, m in zip(ids, mask)]


@pytest.mark.slow
def test_build_labels_reference_passes(tokenizer, capsys):
    check_build_labels(_build_labels, tokenizer)
    assert capsys.readouterr().out.startswith("✓ labels train exactly the assistant replies")


@pytest.mark.slow
def test_build_labels_names_the_trained_user_turn(tokenizer):
    with pytest.raises(TodoCheckError, match=r"your labels train the system turn at tokens 0-20 .*the user turn at tokens 21-29"):
        check_build_labels(lambda ids, mask: list(ids), tokenizer)


@pytest.mark.slow
def test_build_labels_catches_masked_end_of_turn(tokenizer):
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    with pytest.raises(TodoCheckError, match=r"mask the end-of-turn token <\|im_end\|> at token 36"):
        check_build_labels(lambda ids, mask: [i if m and i != im_end else -100 for i, m in zip(ids, mask)], tokenizer)


@pytest.mark.slow
def test_build_labels_catches_shift(tokenizer):
    with pytest.raises(TodoCheckError, match=r"shifted by one token"):
        check_build_labels(lambda ids, mask: _build_labels(ids, mask)[1:] + [-100], tokenizer)


# ------------------------------------------------------------------ 04 optional: the mask from the ids alone


def _mask_from_ids(ids, tokenizer, header_text="<|im_start|>assistant\n", keep_end=True, newline_after=False,
                   first_only=False):
    """The reference, and the typical mistakes by flag."""
    header, end = tokenizer.encode(header_text, add_special_tokens=False), tokenizer.convert_tokens_to_ids("<|im_end|>")
    mask, i, found = [0] * len(ids), 0, 0
    while i < len(ids):
        if ids[i:i + len(header)] == header and not (first_only and found):
            found += 1
            i += len(header)
            while i < len(ids):
                if ids[i] == end:
                    mask[i] = int(keep_end)
                    if newline_after and i + 1 < len(ids):
                        mask[i + 1] = 1
                    break
                mask[i] = 1
                i += 1
        i += 1
    return mask


def _with_header(ids, tokenizer):
    mask = _mask_from_ids(ids, tokenizer)
    header = len(tokenizer.encode("<|im_start|>assistant\n", add_special_tokens=False))
    starts = [i for i in range(1, len(ids)) if mask[i] and not mask[i - 1]]
    for s in starts:
        mask[s - header:s] = [1] * header
    return mask


# (case, student function, words the feedback must contain)
MASK_MISTAKES = [
    ("header marked", _with_header, "you mark the assistant header"),
    ("<|im_end|> left out", lambda ids, tok: _mask_from_ids(ids, tok, keep_end=False), "<|im_end|> closing the reply"),
    ("newline after <|im_end|>", lambda ids, tok: _mask_from_ids(ids, tok, newline_after=True), "newline after <|im_end|>"),
    ("first reply only", lambda ids, tok: _mask_from_ids(ids, tok, first_only=True), "only the first reply is marked"),
    ("everything marked", lambda ids, tok: [1] * len(ids), "you mark system tokens"),
    ("a tensor of the right values", lambda ids, tok: torch.tensor(_mask_from_ids(ids, tok)), None),
    ("wrong length", lambda ids, tok: _mask_from_ids(ids, tok)[:-1], "one 0/1 value per input id"),
]


@pytest.mark.slow
def test_assistant_mask_from_ids_reference_passes(tokenizer, capsys):
    check_assistant_mask_from_ids(_mask_from_ids, tokenizer)
    assert capsys.readouterr().out.startswith("✓ your mask from the token ids alone equals the template's")


@pytest.mark.slow
@pytest.mark.parametrize("case, student, words", MASK_MISTAKES, ids=[c[0] for c in MASK_MISTAKES])
def test_assistant_mask_from_ids_names_the_mistake(tokenizer, case, student, words):
    if words is None:  # an accepted variant
        check_assistant_mask_from_ids(student, tokenizer)
        return
    with pytest.raises(TodoCheckError) as err:
        check_assistant_mask_from_ids(student, tokenizer)
    assert words in str(err.value) and "Fix:" in str(err.value), str(err.value)


# ------------------------------------------------------------------ 06 optional: predict the run


def _predict(config, batches, floor_accum=False, final_point=True, convert_share=True, warmup_round=math.ceil,
             honour_max_steps=True, count_start=True):
    """The reference prediction, and the typical mistakes by flag."""
    per_epoch = batches // config.gradient_accumulation_steps if floor_accum else math.ceil(
        batches / config.gradient_accumulation_steps)
    steps = (config.max_steps if config.max_steps > 0 and honour_max_steps
             else math.ceil(config.num_train_epochs * per_epoch))

    def points(value):
        every = (math.ceil(steps * value) if value < 1 else int(value)) if convert_share else max(1, int(value))
        return steps // every + (final_point and steps % every != 0)

    warmup = config.warmup_steps
    start = bool(config.eval_on_start) and count_start
    return {"steps": steps, "evaluations": points(config.eval_steps) + start, "checkpoints": points(config.save_steps),
            "warmup_steps": warmup_round(steps * warmup) if warmup < 1 else int(warmup)}


# (case, student function, words the feedback must contain)
PREDICT_MISTAKES = [
    ("accumulation floors the partial group", lambda c, b: _predict(c, b, floor_accum=True), "partial group still steps"),
    ("no evaluation at the last step", lambda c, b: _predict(c, b, final_point=False), "plus one at the last step"),
    ("a share read as a step count", lambda c, b: _predict(c, b, convert_share=False), "a share of the run"),
    ("warmup rounded down", lambda c, b: _predict(c, b, warmup_round=math.floor), "rounds it up"),
    ("max_steps ignored", lambda c, b: _predict(c, b, honour_max_steps=False), "overrides num_train_epochs"),
    ("eval_on_start not counted", lambda c, b: _predict(c, b, count_start=False), "eval_on_start=True adds one"),
    ("not a dict", lambda c, b: [1, 2, 3, 4], "return a dict"),
]


def test_predict_run_reference_passes(capsys):
    check_predict_run(_predict)
    assert capsys.readouterr().out.startswith("✓ your predictions match the Trainer's own arithmetic")


@pytest.mark.parametrize("case, student, words", PREDICT_MISTAKES, ids=[c[0] for c in PREDICT_MISTAKES])
def test_predict_run_names_the_mistake(case, student, words):
    with pytest.raises(TodoCheckError) as err:
        check_predict_run(student)
    assert words in str(err.value) and "Fix:" in str(err.value), str(err.value)


# ------------------------------------------------------------------ 09 optional: the reply loss by hand


def _reply_loss(model, tokenizer, prompt, reply, start_shift=0, end_shift=0, shift=True, reduce="mean"):
    """The reference reply loss, and the typical mistakes by argument."""
    user = [{"role": "user", "content": prompt}]
    head = tokenizer.apply_chat_template(user, add_generation_prompt=True, return_dict=True)["input_ids"]
    full = tokenizer.apply_chat_template(user + [{"role": "assistant", "content": reply}], return_dict=True)["input_ids"]
    end = full.index(tokenizer.convert_tokens_to_ids("<|im_end|>"), len(head)) + 1 + end_shift
    ids = torch.tensor([full], device=model.device)
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0].float()
    start = 0 if start_shift else len(head)
    if shift:
        losses = torch.nn.functional.cross_entropy(logits[start - 1 if start else 0:end - 1], ids[0, max(start, 1):end],
                                                   reduction="none")
    else:
        losses = torch.nn.functional.cross_entropy(logits[start:end], ids[0, start:end], reduction="none")
    return float(losses.sum() if reduce == "sum" else losses.mean())


REPLY_LOSS_MISTAKES = [
    ("prompt scored too", lambda m, t, p, r: _reply_loss(m, t, p, r, start_shift=1), "prompt tokens included"),
    ("<|im_end|> left out", lambda m, t, p, r: _reply_loss(m, t, p, r, end_shift=-1), "<|im_end|> left out"),
    ("newline after <|im_end|>", lambda m, t, p, r: _reply_loss(m, t, p, r, end_shift=1), "newline after <|im_end|>"),
    ("logits not shifted", lambda m, t, p, r: _reply_loss(m, t, p, r, shift=False), "not shifted"),
    ("summed", lambda m, t, p, r: _reply_loss(m, t, p, r, reduce="sum"), "summed, not averaged"),
    ("a constant", lambda m, t, p, r: 1.0, "none of the usual mistakes"),
]


@pytest.mark.slow
def test_reply_loss_reference_passes_and_equals_reply_nll(model_and_tokenizer, capsys):
    from labhelpers.run.generation import reply_nll

    model, tokenizer = model_and_tokenizer
    check_reply_loss(_reply_loss, model, tokenizer)
    assert capsys.readouterr().out.startswith("✓ your reply loss equals the teacher-forced reply NLL")
    prompt, reply = "Name a colour.", "Blue."
    assert math.isclose(_reply_loss(model, tokenizer, prompt, reply), reply_nll(model, tokenizer, [prompt], [reply])[0],
                        rel_tol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("case, student, words", REPLY_LOSS_MISTAKES, ids=[c[0] for c in REPLY_LOSS_MISTAKES])
def test_reply_loss_names_the_mistake(model_and_tokenizer, case, student, words):
    model, tokenizer = model_and_tokenizer
    with pytest.raises(TodoCheckError) as err:
        check_reply_loss(student, model, tokenizer)
    assert words in str(err.value) and "Fix:" in str(err.value), str(err.value)


# ---------------------------------------------------------------------------------------------- 02 generation


def _generate(model, tokenizer, prompts, max_new_tokens, side="left"):
    texts = [tokenizer.apply_chat_template([{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True)
             for p in prompts]
    old, tokenizer.padding_side = tokenizer.padding_side, side
    batch = tokenizer(texts, padding=True, return_tensors="pt", add_special_tokens=False)
    tokenizer.padding_side = old
    with torch.no_grad():
        out = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    return tokenizer.batch_decode(out[:, batch["input_ids"].shape[1]:], skip_special_tokens=True)


@pytest.mark.slow
def test_generate_answers_reference_passes(model_and_tokenizer, capsys):
    model, tokenizer = model_and_tokenizer
    check_generate_answers(_generate, model, tokenizer)
    assert "left-padded greedy replies match" in capsys.readouterr().out


@pytest.mark.slow
def test_generate_answers_catches_right_padding(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    with pytest.raises(TodoCheckError, match=r"pad on the LEFT"):
        check_generate_answers(lambda *a: _generate(*a, side="right"), model, tokenizer)


@pytest.mark.slow
def test_generate_answers_catches_prompt_in_output(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer

    def whole(model, tokenizer, prompts, max_new_tokens):
        return [p + " " + r for p, r in zip(prompts, _generate(model, tokenizer, prompts, max_new_tokens))]

    with pytest.raises(TodoCheckError, match=r"contains the prompt itself.*decode only the new tokens"):
        check_generate_answers(whole, model, tokenizer)


@pytest.mark.slow
def test_build_labels_asks_for_a_list_not_a_tensor(tokenizer):
    as_tensor = lambda ids, mask: torch.where(torch.tensor(mask).bool(), torch.tensor(ids), -100)  # noqa: E731
    with pytest.raises(TodoCheckError, match=r"returned a torch.Tensor, not a list .*Fix: return a Python list of "
                                             r"ints: e.g. labels.tolist\(\)"):
        check_build_labels(as_tensor, tokenizer)


@pytest.mark.slow
def test_build_labels_inverted_mask_names_prompt_and_reply(tokenizer):
    with pytest.raises(TodoCheckError) as err:
        check_build_labels(lambda ids, mask: [-100 if m else i for i, m in zip(ids, mask)], tokenizer)
    message = str(err.value)
    assert "your labels train the prompt (the system turn at tokens 0-20" in message
    assert "and mask the reply: -100 on the assistant's tokens" in message and "your mask is inverted" in message


@pytest.mark.slow
def test_generate_answers_bf16_model_is_compared_in_float32(model_and_tokenizer, capsys):
    model, tokenizer = model_and_tokenizer
    half = copy.deepcopy(model).to(torch.bfloat16)
    before = {k: v.clone() for k, v in half.state_dict().items()}
    check_generate_answers(_generate, half, tokenizer)
    assert "compared in float32 on a float32 copy of your bfloat16 model" in capsys.readouterr().out
    assert half.dtype == torch.bfloat16
    assert all(torch.equal(before[k], v) for k, v in half.state_dict().items())  # the student's model is untouched
