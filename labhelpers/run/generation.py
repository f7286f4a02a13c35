"""Generation for before/after comparisons: one choice of prompts and one greedy, batched decoder.

Notebook 02 writes the baseline with the student's ``generate_answers``; notebook 09 (or a recompute when 02 has not
run), postflight and the sanity protocol use :func:`generate_replies`. All of them take their prompts from
:func:`comparison_prompts`, so a baseline recomputed anywhere answers the same prompts as notebook 02's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch

from labhelpers.model.attention import model_autocast
from labhelpers.data.turns import end_of_turn_id

# Prompts outside the training data's domain, asked before and after tuning: what tuning costs shows here.
CLASSIC_PROMPTS = (
    "Explain what a neural network is in simple terms.",
    "Write a Python function that reverses a string.",
    "Give me three tips for a good presentation.",
)


# Prompts far from any fine-tuning set, half of them asking for code: what the base model could do before tuning,
# measured after it (notebook 09's retention: fine-tuning teaches a behaviour and can cost a skill).
GENERAL_PROMPTS = (
    "What causes the seasons on Earth?",
    "Summarize the plot of Romeo and Juliet in two sentences.",
    "How do vaccines train the immune system?",
    "Give me a recipe idea for a quick vegetarian dinner.",
    "What is the difference between weather and climate?",
    "Why is the sky blue?",
    "Write a short thank-you note to a colleague.",
    "What are the main causes of inflation?",
    "Explain photosynthesis to a ten-year-old.",
    "How do I prepare for a job interview?",
)
CODE_PROMPTS = (
    "Write a Python function that checks whether a number is prime.",
    "Write a Python function that returns the factorial of n.",
    "Write a SQL query that counts the orders per customer.",
    "Write a Python function that merges two sorted lists.",
    "Write a JavaScript function that capitalizes every word in a string.",
    "Write a Python function that counts the vowels in a string.",
    "Write a Python class for a simple bank account with deposit and withdraw.",
    "Write a bash command that finds all .txt files in a folder.",
    "Write a Python function that removes duplicates from a list while keeping order.",
    "Write a Python function that computes the Fibonacci numbers up to n.",
)


# Outside prompts for a replay mix (labhelpers.series.retention): the base model's own replies to these join the
# training rows. None of them is a retention prompt above, so the retention measure never scores a replayed row.
REPLAY_PROMPTS = (
    "How does a refrigerator keep food cold?", "What is the difference between a virus and a bacterium?",
    "Give me two tips for sleeping better.", "Why do leaves change colour in autumn?",
    "Explain what a budget is and why it helps.", "What is the water cycle?",
    "Write a short birthday message for a friend.", "How do airplanes stay in the air?",
    "What are the benefits of regular exercise?", "Explain what gravity is.",
    "How do I make a cup of tea?", "What is a noun? Give an example.",
    "Write a Python function that returns the largest number in a list.",
    "Write a Python function that checks whether a string is a palindrome.",
    "Write a SQL query that lists the ten most recent orders.",
    "Write a Python function that sums the even numbers in a list.",
    "Write a JavaScript function that returns the length of the longest word in a sentence.",
    "Write a Python function that converts Celsius to Fahrenheit.",
    "Write a bash command that counts the lines of a file.",
    "Write a Python function that reverses the words in a sentence.",
)


def retention_prompts(n: int) -> list[str]:
    """``n`` prompts outside the training data, alternating general and code prompts.

    >>> [p[:20] for p in retention_prompts(3)]
    ['What causes the seas', 'Write a Python funct', 'Summarize the plot o']
    """
    mixed = [p for pair in zip(GENERAL_PROMPTS, CODE_PROMPTS) for p in pair]
    if not 0 < n <= len(mixed):
        raise ValueError(f"n = {n}: choose 1..{len(mixed)} retention prompts")
    return mixed[:n]


def looks_like_code(text: str) -> bool:
    r"""True when a reply contains code: a fenced block, or a line that starts a definition or statement.

    >>> looks_like_code("```python\nprint(1)\n```"), looks_like_code("def f(x):\n    return x"), looks_like_code("Answer: yes")
    (True, True, False)
    """
    starts = ("def ", "class ", "SELECT ", "select ", "function ", "const ", "import ", "find ", "for ", "return ")
    return "```" in text or any(line.lstrip().startswith(starts) for line in text.splitlines())


def heldout_pairs(test_rows: Any, n: int) -> list[tuple[str, str]]:
    """(user message, reference reply) of the first ``n`` single-turn rows of the (never trained on) test split.

    >>> rows = [{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]},
    ...         {"messages": [{"role": "user", "content": "c"}, {"role": "assistant", "content": "d"},
    ...                       {"role": "user", "content": "e"}, {"role": "assistant", "content": "f"}]},
    ...         {"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "g"},
    ...                       {"role": "assistant", "content": "h"}]}]
    >>> heldout_pairs(rows, 5)
    [('a', 'b'), ('g', 'h')]
    """
    pairs = []
    for row in test_rows:
        users = [m["content"] for m in row["messages"] if m["role"] == "user"]
        if len(users) == 1:  # single-turn rows: the reply depends on this one prompt only
            pairs.append((users[0], row["messages"][-1]["content"]))
        if len(pairs) == n:
            break
    return pairs


def heldout_prompts(test_rows: Any, n: int) -> list[str]:
    """The user message of the first ``n`` single-turn test rows (see :func:`heldout_pairs`).

    >>> heldout_prompts([{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}], 3)
    ['a']
    """
    return [prompt for prompt, _ in heldout_pairs(test_rows, n)]


def comparison_prompts(test_rows: Any, n_heldout: int) -> list[str]:
    """The before/after prompts: :data:`CLASSIC_PROMPTS` first, then ``n_heldout`` held-out prompts.

    >>> comparison_prompts([], 3)[:1]
    ['Explain what a neural network is in simple terms.']
    """
    return list(CLASSIC_PROMPTS) + heldout_prompts(test_rows, n_heldout)


def _as_messages(prompt: Any) -> list[dict[str, str]]:
    return [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)


def generate_replies(model: Any, tokenizer: Any, prompts: Sequence[Any], max_new_tokens: int = 64,
                     batch_size: int = 8, store: Path | None = None) -> tuple[list[str], list[bool]]:
    """Greedy replies (left padding, batched, on ``model.device``) and whether each hit ``max_new_tokens`` unfinished.

    The reference the notebooks' ``generate_answers`` TODO is checked against; used by 09, postflight and the protocol.
    ``store``: a folder where the replies are kept with what made them (the weights' fingerprint, prompts, template,
    settings, autocast); greedy decoding is repeatable, so a re-run with the same inputs reads them back.
    """
    if store is not None:
        from labhelpers.model.loading import weights_fingerprint
        from labhelpers.run.folder import content_key, reuse_or_compute

        key = {"weights": weights_fingerprint(model), "prompts": content_key([_as_messages(p) for p in prompts]),
               "template": content_key(tokenizer.chat_template), "max_new_tokens": max_new_tokens,
               "batch_size": batch_size, "device": model.device.type,
               "autocast": torch.is_autocast_enabled(model.device.type)}
        texts, hit = reuse_or_compute(Path(store) / f"replies-{content_key(key)}.json", key,
                                      lambda: generate_replies(model, tokenizer, prompts, max_new_tokens, batch_size),
                                      what=f"{len(prompts)} greedy replies")
        return list(texts), list(hit)
    side, training = tokenizer.padding_side, model.training
    tokenizer.padding_side = "left"
    texts, hit = [], []
    model.eval()
    try:
        for i in range(0, len(prompts), batch_size):
            chunk = [tokenizer.apply_chat_template(_as_messages(p), add_generation_prompt=True, tokenize=False)
                     for p in prompts[i : i + batch_size]]
            enc = tokenizer(chunk, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
            with torch.no_grad(), model_autocast(model):  # a flash kernel takes only half precision
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


def reply_token_span(tokenizer: Any, prompt: str, reply: str) -> tuple[list[int], int, int]:
    """``(ids, start, end)``: the chat-templated single-turn conversation and the slice ``ids[start:end]`` the model
    writes, the reply and its end-of-turn token (the newline the template adds after it is left out).

    The one rule for "which tokens are the reply": :func:`reply_nll` and notebook 09's reply-loss check use it.
    """
    user = [{"role": "user", "content": prompt}]
    head = list(tokenizer.apply_chat_template(user, add_generation_prompt=True, tokenize=True,
                                              return_dict=True)["input_ids"])
    full = list(tokenizer.apply_chat_template(user + [{"role": "assistant", "content": reply}], tokenize=True,
                                              return_dict=True)["input_ids"])
    if full[:len(head)] != head:
        raise ValueError(f"the chat template renders the prompt {prompt[:40]!r} differently with a reply; "
                         "scoring a reply needs a prefix-preserving template")
    end_id = end_of_turn_id(tokenizer)
    end = full.index(end_id, len(head)) + 1 if end_id in full[len(head):] else len(full)
    return full, len(head), end


def reply_nll(model: Any, tokenizer: Any, prompts: Sequence[str], replies: Sequence[str],
              batch_size: int = 8, store: Path | None = None) -> list[float]:
    """Mean negative log-likelihood (nats per token) of each ``reply`` after its single-turn ``prompt``, teacher-forced.

    Scores the reply and its end-of-turn token, as the training loss does, so it needs no format: the same measure
    serves any dataset (a held-out reply loss) and retention (the base model's own replies under the tuned model).
    Batched with right padding; every tensor goes to ``model.device``.
    ``store``: a folder where the losses are kept with what made them (the weights' fingerprint, the prompt/reply
    pairs, template, batch, autocast), as :func:`generate_replies` keeps replies: notebook 12 reads back what 09 scored.
    """
    if store is not None:
        from labhelpers.model.loading import weights_fingerprint
        from labhelpers.run.folder import content_key, reuse_or_compute

        key = {"weights": weights_fingerprint(model), "pairs": content_key([list(prompts), list(replies)]),
               "template": content_key(tokenizer.chat_template), "batch_size": batch_size,
               "device": model.device.type, "autocast": torch.is_autocast_enabled(model.device.type)}
        return list(reuse_or_compute(Path(store) / f"nll-{content_key(key)}.json", key,
                                     lambda: reply_nll(model, tokenizer, prompts, replies, batch_size),
                                     what=f"{len(prompts)} reply losses"))
    rows = []
    for prompt, reply in zip(prompts, replies, strict=True):
        full, start, end = reply_token_span(tokenizer, prompt, reply)
        rows.append((full[:end], start))
    losses = []
    training = model.training
    model.eval()
    try:
        for i in range(0, len(rows), batch_size):
            chunk = rows[i : i + batch_size]
            width = max(len(ids) for ids, _ in chunk)
            ids = torch.full((len(chunk), width), tokenizer.pad_token_id, dtype=torch.long)
            labels = torch.full((len(chunk), width), -100, dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for r, (row, start) in enumerate(chunk):
                ids[r, :len(row)] = torch.tensor(row)
                labels[r, start:len(row)] = torch.tensor(row[start:])
                mask[r, :len(row)] = 1
            ids, labels, mask = ids.to(model.device), labels.to(model.device), mask.to(model.device)
            with torch.no_grad(), model_autocast(model):
                logits = model(input_ids=ids, attention_mask=mask, use_cache=False).logits.float()
            per_token = torch.nn.functional.cross_entropy(logits[:, :-1].transpose(1, 2), labels[:, 1:],
                                                          ignore_index=-100, reduction="none")
            counts = (labels[:, 1:] != -100).sum(1).clamp(min=1)
            losses += (per_token.sum(1) / counts).tolist()
    finally:
        model.train(training)
    return losses

