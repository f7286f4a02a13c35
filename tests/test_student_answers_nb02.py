"""Notebook 02's TODO, `generate_answers`, as students write it: near misses that the check must reject with their
own mistake named, and right answers written differently from the solution that it must accept (real SmolLM2)."""

from __future__ import annotations

import time

import pytest
import torch
from transformers import GenerationConfig

from labhelpers.checks import TodoCheckError, check_generate_answers

pytestmark = pytest.mark.slow


def _chat(tokenizer, prompts, generation_prompt=True):
    return [tokenizer.apply_chat_template([{"role": "user", "content": p}], tokenize=False,
                                          add_generation_prompt=generation_prompt) for p in prompts]


# ------------------------------------------------------------------------------------------- wrong answers
def no_skip_special_tokens(model, tokenizer, prompts, max_new_tokens):
    texts = _chat(tokenizer, prompts)
    before = tokenizer.padding_side
    tokenizer.padding_side = "left"
    inputs = tokenizer(texts, padding=True, return_tensors="pt", add_special_tokens=False)
    tokenizer.padding_side = before
    with torch.no_grad():
        output = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
    return tokenizer.batch_decode(output[:, inputs["input_ids"].shape[1]:])


def never_restores_padding_side(model, tokenizer, prompts, max_new_tokens):
    tokenizer.padding_side = "left"
    enc = tokenizer(_chat(tokenizer, prompts), padding=True, return_tensors="pt", add_special_tokens=False)
    out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False)
    return tokenizer.batch_decode(out[:, enc.input_ids.shape[1]:], skip_special_tokens=True)


def samples(model, tokenizer, prompts, max_new_tokens):
    enc = tokenizer(_chat(tokenizer, prompts), padding=True, padding_side="left", return_tensors="pt",
                    add_special_tokens=False)
    out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=True, temperature=0.7, top_p=0.9)
    return tokenizer.batch_decode(out[:, enc.input_ids.shape[1]:], skip_special_tokens=True)


def pads_right(model, tokenizer, prompts, max_new_tokens):  # never sets the side: the tokenizer's default is right
    enc = tokenizer(_chat(tokenizer, prompts), padding=True, return_tensors="pt", add_special_tokens=False)
    out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False)
    return tokenizer.batch_decode(out[:, enc.input_ids.shape[1]:], skip_special_tokens=True)


def decodes_prompt_too(model, tokenizer, prompts, max_new_tokens):
    enc = tokenizer(_chat(tokenizer, prompts), padding=True, padding_side="left", return_tensors="pt",
                    add_special_tokens=False)
    out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False)
    return tokenizer.batch_decode(out, skip_special_tokens=True)


def no_generation_prompt(model, tokenizer, prompts, max_new_tokens):
    enc = tokenizer(_chat(tokenizer, prompts, generation_prompt=False), padding=True, padding_side="left",
                    return_tensors="pt", add_special_tokens=False)
    out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False)
    return tokenizer.batch_decode(out[:, enc.input_ids.shape[1]:], skip_special_tokens=True)


def slices_each_row_at_its_own_length(model, tokenizer, prompts, max_new_tokens):
    texts = _chat(tokenizer, prompts)
    lengths = [len(tokenizer(t, add_special_tokens=False).input_ids) for t in texts]
    enc = tokenizer(texts, padding=True, padding_side="left", return_tensors="pt", add_special_tokens=False)
    out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False)
    return [tokenizer.decode(row[n:], skip_special_tokens=True) for row, n in zip(out, lengths)]


def forgets_padding(model, tokenizer, prompts, max_new_tokens):
    enc = tokenizer(_chat(tokenizer, prompts), return_tensors="pt", add_special_tokens=False)
    out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False)
    return tokenizer.batch_decode(out[:, enc.input_ids.shape[1]:], skip_special_tokens=True)


def no_return_tensors(model, tokenizer, prompts, max_new_tokens):
    enc = tokenizer(_chat(tokenizer, prompts), padding=True, padding_side="left", add_special_tokens=False)
    out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False)
    return tokenizer.batch_decode(out[:, len(enc["input_ids"][0]):], skip_special_tokens=True)


def fixed_budget(model, tokenizer, prompts, max_new_tokens):  # ignores the argument
    enc = tokenizer(_chat(tokenizer, prompts), padding=True, padding_side="left", return_tensors="pt",
                    add_special_tokens=False)
    out = model.generate(**enc, max_new_tokens=16, do_sample=False)
    return tokenizer.batch_decode(out[:, enc.input_ids.shape[1]:], skip_special_tokens=True)


def max_length_for_the_reply(model, tokenizer, prompts, max_new_tokens):
    enc = tokenizer(_chat(tokenizer, prompts), padding=True, padding_side="left", return_tensors="pt",
                    add_special_tokens=False)
    out = model.generate(**enc, max_length=enc.input_ids.shape[1] + max_new_tokens // 2, do_sample=False)
    return tokenizer.batch_decode(out[:, enc.input_ids.shape[1]:], skip_special_tokens=True)


def returns_one_string(model, tokenizer, prompts, max_new_tokens):
    enc = tokenizer(_chat(tokenizer, prompts), padding=True, padding_side="left", return_tensors="pt",
                    add_special_tokens=False)
    out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False)
    return "\n".join(tokenizer.batch_decode(out[:, enc.input_ids.shape[1]:], skip_special_tokens=True))


# (name, student function, distinctive words of the message it must get)
WRONG = [
    ("no skip_special_tokens", no_skip_special_tokens, "contains the special tokens <|im_end|>, <|endoftext|>"),
    ("padding side never restored", never_restores_padding_side, "left tokenizer.padding_side at 'left'"),
    ("samples", samples, "your generation samples"),
    ("right padding", pads_right, "Fix: pad on the LEFT"),
    ("prompt decoded too", decodes_prompt_too, "contains the prompt itself"),
    ("no generation prompt", no_generation_prompt, "add_generation_prompt=True"),
    ("each row sliced at its own length", slices_each_row_at_its_own_length, "starts with the end of that prompt"),
    ("no padding=True", forgets_padding, "generate_answers raised ValueError"),
    ("no return_tensors", no_return_tensors, "return_tensors=\"pt\": generate needs tensors"),
    ("budget ignored", fixed_budget, "runs past the 8 new tokens asked for"),
    ("max_length", max_length_for_the_reply, "stops early"),
    ("one string", returns_one_string, "expected a list of 2 strings"),
]


# ------------------------------------------------------------------------------------------- right answers
def loop_decode_and_call_kwarg(model, tokenizer, prompts, max_new_tokens):
    """Batched chat template, padding_side as a call argument (the attribute is never touched), decode per row."""
    conversations = [[{"role": "user", "content": p}] for p in prompts]
    texts = tokenizer.apply_chat_template(conversations, tokenize=False, add_generation_prompt=True)
    batch = tokenizer(texts, return_tensors="pt", padding="longest", padding_side="left", add_special_tokens=False)
    batch = batch.to(model.device)
    with torch.inference_mode():
        generated = model.generate(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                                   max_new_tokens=max_new_tokens, do_sample=False, num_beams=1)
    start = batch["input_ids"].size(1)
    replies = []
    for row in generated:
        replies.append(tokenizer.decode(row[start:], skip_special_tokens=True))
    return replies


def template_tokenizes_and_generation_config(model, tokenizer, prompts, max_new_tokens):
    """The chat template tokenizes and pads itself; a GenerationConfig; try/finally restores the side."""
    saved_side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    try:
        enc = tokenizer.apply_chat_template([[{"role": "user", "content": q}] for q in prompts],
                                            add_generation_prompt=True, tokenize=True, padding=True,
                                            return_tensors="pt", return_dict=True)
    finally:
        tokenizer.padding_side = saved_side
    settings = GenerationConfig(max_new_tokens=max_new_tokens, do_sample=False,
                                pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
    with torch.no_grad():
        ids = model.generate(**enc.to(model.device), generation_config=settings)
    n_prompt = enc["attention_mask"].shape[-1]
    return [text.strip() for text in tokenizer.batch_decode(ids[:, n_prompt:], skip_special_tokens=True)]


def input_ids_only(model, tokenizer, prompts, max_new_tokens):
    """Passes input_ids without the mask (generate rebuilds it from the pad token), restores 'right' by hand."""
    chats = []
    for prompt in prompts:
        chats.append(tokenizer.apply_chat_template([{"role": "user", "content": prompt}],
                                                   add_generation_prompt=True, tokenize=False))
    tokenizer.padding_side = "left"
    input_ids = tokenizer(chats, padding=True, return_tensors="pt", add_special_tokens=False).input_ids
    tokenizer.padding_side = "right"
    output = model.generate(input_ids.to(model.device), max_new_tokens=max_new_tokens,
                            pad_token_id=tokenizer.pad_token_id)
    return tokenizer.batch_decode(output[:, input_ids.shape[-1]:], skip_special_tokens=True)


RIGHT = [
    ("per-row decode, padding_side kwarg", loop_decode_and_call_kwarg),
    ("template tokenizes, GenerationConfig", template_tokenizes_and_generation_config),
    ("input_ids only, default greedy", input_ids_only),
]


@pytest.mark.parametrize("name, student, words", WRONG, ids=[w[0] for w in WRONG])
def test_wrong_answer_is_named(model_and_tokenizer, name, student, words):
    model, tokenizer = model_and_tokenizer
    side = tokenizer.padding_side
    with pytest.raises(TodoCheckError) as err:
        check_generate_answers(student, model, tokenizer)
    assert words in str(err.value) and "Fix:" in str(err.value), str(err.value)
    assert tokenizer.padding_side == side  # the check gives the tokenizer back as it found it


@pytest.mark.parametrize("name, student", RIGHT, ids=[r[0] for r in RIGHT])
def test_right_answer_is_accepted(model_and_tokenizer, name, student, capsys):
    model, tokenizer = model_and_tokenizer
    check_generate_answers(student, model, tokenizer)
    assert "✓ batched, left-padded greedy replies match" in capsys.readouterr().out


def test_the_check_inputs_reach_end_of_turn_and_padding(model_and_tokenizer):
    """The short prompt's greedy reply ends inside the check's budget while the long one's goes on, so its row holds
    <|im_end|> and pads: what an answer without skip_special_tokens shows."""
    model, tokenizer = model_and_tokenizer
    replies = no_skip_special_tokens(model, tokenizer, ["Is the sky blue? Answer yes or no.",
                                                        "Name the three primary colours and say in one short sentence "
                                                        "why they matter."], 8)
    assert "<|im_end|><|endoftext|>" in replies[0] and "<|im_end|>" not in replies[1]


def test_the_check_leaves_the_random_state_alone(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    check_generate_answers(loop_decode_and_call_kwarg, model, tokenizer)
    assert torch.equal(torch.rand(3), expected)


def test_check_cost_is_small(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    start = time.perf_counter()
    check_generate_answers(loop_decode_and_call_kwarg, model, tokenizer)
    seconds = time.perf_counter() - start
    print(f"check_generate_answers: {seconds:.1f} s")
    assert seconds < 30  # ~2-4 s on an idle 2-core CPU; the bound leaves room for a loaded CI machine


def test_remembered_reference_replies_follow_the_weights():
    """The check reuses its one-prompt reference replies only while the weights are the same: a change in any tensor
    (not only the first, which a LoRA run leaves alone), an added adapter or a dtype cast makes it generate again."""
    from labhelpers.checks.nb02_baseline_generation import _weights_key

    model = torch.nn.Sequential(torch.nn.Embedding(8, 4), torch.nn.Linear(4, 4))
    key = _weights_key(model)
    assert _weights_key(model) == key
    with torch.no_grad():
        model[1].weight[0, 0] += 0.5  # a later tensor moves, the embedding does not
    moved = _weights_key(model)
    assert moved != key
    model.add_module("adapter", torch.nn.Linear(4, 1))
    assert _weights_key(model) != moved
    assert _weights_key(model.double()) != _weights_key(model.float())
