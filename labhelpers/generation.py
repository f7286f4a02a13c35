"""Generation for before/after comparisons: one choice of prompts and one greedy, batched decoder.

Notebook 02 writes the baseline with the student's ``generate_answers``; notebook 09 (or a recompute when 02 has not
run), postflight and the sanity protocol use :func:`generate_replies`. All of them take their prompts from
:func:`comparison_prompts`, so a baseline recomputed anywhere answers the same prompts as notebook 02's.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

# Prompts outside the training data's domain, asked before and after tuning: what tuning costs shows here.
CLASSIC_PROMPTS = (
    "Explain what a neural network is in simple terms.",
    "Write a Python function that reverses a string.",
    "Give me three tips for a good presentation.",
)


def heldout_prompts(test_rows: Any, n: int) -> list[str]:
    """The user message of the first ``n`` single-turn rows of the (never trained on) test split.

    >>> rows = [{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]},
    ...         {"messages": [{"role": "user", "content": "c"}, {"role": "assistant", "content": "d"},
    ...                       {"role": "user", "content": "e"}, {"role": "assistant", "content": "f"}]},
    ...         {"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "g"},
    ...                       {"role": "assistant", "content": "h"}]}]
    >>> heldout_prompts(rows, 5)
    ['a', 'g']
    """
    prompts = []
    for row in test_rows:
        users = [m["content"] for m in row["messages"] if m["role"] == "user"]
        if len(users) == 1:  # single-turn rows: the reply depends on this one prompt only
            prompts.append(users[0])
        if len(prompts) == n:
            break
    return prompts


def comparison_prompts(test_rows: Any, n_heldout: int) -> list[str]:
    """The before/after prompts: :data:`CLASSIC_PROMPTS` first, then ``n_heldout`` held-out prompts.

    >>> comparison_prompts([], 3)[:1]
    ['Explain what a neural network is in simple terms.']
    """
    return list(CLASSIC_PROMPTS) + heldout_prompts(test_rows, n_heldout)


def _as_messages(prompt: Any) -> list[dict[str, str]]:
    return [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)


def generate_replies(model: Any, tokenizer: Any, prompts: Sequence[Any], max_new_tokens: int = 64,
                     batch_size: int = 8) -> tuple[list[str], list[bool]]:
    """Greedy replies (left padding, batched, on ``model.device``) and whether each hit ``max_new_tokens`` unfinished.

    The reference the notebooks' ``generate_answers`` TODO is checked against; used by 09, postflight and the protocol.
    """
    side, training = tokenizer.padding_side, model.training
    tokenizer.padding_side = "left"
    texts, hit = [], []
    model.eval()
    try:
        for i in range(0, len(prompts), batch_size):
            chunk = [tokenizer.apply_chat_template(_as_messages(p), add_generation_prompt=True, tokenize=False)
                     for p in prompts[i : i + batch_size]]
            enc = tokenizer(chunk, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
            with torch.no_grad():
                out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                                     pad_token_id=tokenizer.pad_token_id)
            stops = model.generation_config.eos_token_id
            stops = {stops} if isinstance(stops, int) else set(stops or [tokenizer.eos_token_id])
            for row in out[:, enc["input_ids"].shape[1]:].tolist():
                hit.append(not any(t in stops for t in row) and len(row) >= max_new_tokens)
                texts.append(tokenizer.decode(row, skip_special_tokens=True))
    finally:
        tokenizer.padding_side = side
        model.train(training)
    return texts, hit
