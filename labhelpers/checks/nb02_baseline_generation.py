"""TODO checks of notebook 02 (baseline generation): batched, left-padded greedy generation against one prompt
generated at a time, with inputs that reach end-of-turn and padding, two calls (sampling shows) and a tokenizer that
must come back padding on the right."""

from __future__ import annotations

from labhelpers.checks.core import TodoCheckError, call_student, passed, require, student_code

# A short prompt whose greedy reply ends after a few tokens ("No."), so that within the check's budget its row reaches
# <|im_end|> and then pad tokens while the long prompt's reply goes on: an answer that decodes without
# skip_special_tokens shows them. The short prompt is also the one a batch pads.
GENERATION_CHECK_PROMPTS = ("Is the sky blue? Answer yes or no.",
                            "Name the three primary colours and say in one short sentence why they matter.")
_SEEDS = (1234, 4321)  # the two calls: a sampling answer draws differently, a greedy one cannot

# Errors a generate_answers typically raises, and their fixes (substring of "Type: message" -> fix).
_GENERATION_ERROR_FIXES = (
    ("Unable to create tensor", "tokenize the batch with padding=True (prompts of different lengths need padding to "
                                "become one tensor) and return_tensors=\"pt\""),
    ("padding=True", "tokenize the batch with padding=True and return_tensors=\"pt\""),
    ("has no attribute 'shape'", "tokenize with return_tensors=\"pt\": generate needs tensors, not Python lists"),
    ("has no attribute 'to'", "tokenize with return_tensors=\"pt\": generate needs tensors, not Python lists"),
    ("'list' object", "tokenize with return_tensors=\"pt\": generate needs tensors, not Python lists"),
    ("positional argument", "pass the tokenized batch as keyword arguments: model.generate(**batch, ...)"),
    ("same device", "move the batch to the model's device: tokenizer(...).to(model.device)"),
    ("temperature", "decode greedily: do_sample=False, with no temperature, top_k or top_p"),
    ("max_length", "pass max_new_tokens=max_new_tokens (max_length counts the prompt too)"),
)


_ALONE: dict[tuple, str] = {}  # reference replies already generated: a re-run of the check (same weights) reuses them


def _weights_key(model) -> tuple:
    """Changes whenever the weights do: training (a few values of every tensor, adapters included), a dtype cast, an
    added adapter, another model at the same address."""
    import torch

    params = list(model.parameters())
    with torch.no_grad():
        probe = sum(float(p.detach().flatten()[:64].double().sum()) for p in params)
    return id(model), len(params), params[0].data_ptr(), str(params[0].dtype), probe


def _generate_alone(model, tokenizer, prompt: str, max_new_tokens: int) -> str:
    """Reference: one prompt, no padding at all, greedy, new tokens only, special tokens skipped (remembered per
    weights, tokenizer, prompt and budget: greedy decoding gives the same reply again)."""
    key = (_weights_key(model), id(tokenizer), prompt, max_new_tokens)
    if key not in _ALONE:
        if len(_ALONE) >= 64:
            _ALONE.clear()
        _ALONE[key] = _generate_alone_now(model, tokenizer, prompt, max_new_tokens)
    return _ALONE[key]


def _generate_alone_now(model, tokenizer, prompt: str, max_new_tokens: int) -> str:
    import torch

    text = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                         add_generation_prompt=True)
    enc = tokenizer(text, return_tensors="pt", add_special_tokens=False).to(model.device)
    from labhelpers.model.attention import model_autocast

    with torch.no_grad(), model_autocast(model):  # a flash kernel takes only half precision
        out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                             pad_token_id=tokenizer.pad_token_id)
    return tokenizer.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True)


def _float32_twin(model):
    """(model to compare generations on, note for the message): ``model`` itself when it computes in float32, else a
    float32 copy. In bfloat16/float16 a padded batch and a single prompt round differently, and greedy decoding flips
    wherever the top two logits are within that rounding, so exact equality is only meaningful in float32."""
    import copy

    import torch

    dtype = getattr(model, "dtype", torch.float32)
    if dtype not in (torch.bfloat16, torch.float16) or getattr(model, "is_quantized", False):
        return model, f"exact match, {str(dtype).removeprefix('torch.')}"
    twin = copy.deepcopy(model).float()
    return twin, (f"exact match, compared in float32 on a float32 copy of your {str(dtype).removeprefix('torch.')} "
                  "model: half precision rounds a padded batch differently and can flip near-tied greedy tokens")


def _seeded(fn, seed: int, device):
    """``fn()`` under ``torch.manual_seed(seed)``, the caller's random state left as it was."""
    import torch

    devices = [device] if getattr(device, "type", "cpu") == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        return fn()


def _call(generate_answers, model, tokenizer, prompts, max_new_tokens, seed):
    """One call of the student's function from a tokenizer padding on the right (the training default); returns
    (replies, padding side the call left behind)."""
    side = tokenizer.padding_side
    tokenizer.padding_side = "right"
    try:
        got = _seeded(lambda: call_student(generate_answers, model, tokenizer, list(prompts), max_new_tokens,
                                           name="generate_answers", hints=_GENERATION_ERROR_FIXES),
                      seed, getattr(model, "device", None))
        return got, tokenizer.padding_side
    finally:
        tokenizer.padding_side = side


def _shown(texts) -> list[str]:
    return [t[:70] for t in texts]


def _mismatch(prompts, got, want, how, tokenizer, max_new_tokens) -> str:
    """What a reply list that is not the greedy one got wrong, as "problem. Fix: fix"."""
    short, long_ = 0, 1  # the short prompt is the one that gets padded in a batch; the long one is never padded
    differ = [g.strip() != w.strip() for g, w in zip(got, want)]
    rendered = [tokenizer.apply_chat_template([{"role": "user", "content": p}], tokenize=False,
                                              add_generation_prompt=True) for p in prompts]
    if not differ[long_]:  # only the padded row is wrong: the padding, or where its reply was cut out
        g, w = got[short], want[short]
        extra = g[:len(g) - len(w)] if w and g.endswith(w) else ""
        if extra.strip() and extra.strip() in rendered[short]:
            return (f"your reply to the padded prompt {prompts[short]!r} starts with the end of that prompt "
                    f"({extra[-50:]!r}), then the reply: its slice starts too early. Fix: cut every row at the padded "
                    "prompt length, output_ids[:, batch['input_ids'].shape[1]:] (with left padding every prompt ends "
                    "at that column), not at each prompt's own token count")
        return (f"the padded (shorter) prompt {prompts[short]!r} gets {g[:80]!r} in your batch but {w[:80]!r} alone "
                f"({how}); the unpadded one matches. Fix: pad on the LEFT (tokenizer.padding_side = 'left', or "
                "padding_side='left' in the tokenizer call) and pass the attention_mask to generate, so every prompt "
                "ends right where its reply begins")
    if all(g.lstrip().startswith("assistant") and not w.lstrip().startswith("assistant")
           for g, w, d in zip(got, want, differ) if d):
        return (f"your replies begin with the word 'assistant' ({_shown(got)}): the model had to open its own turn. "
                "Fix: render each prompt with apply_chat_template(..., add_generation_prompt=True), which ends it "
                "with <|im_start|>assistant\\n")
    g, w = got[long_], want[long_]  # greedy, the long prompt's reply uses the whole budget
    if _starts(g, w) and len(g.strip()) > len(w.strip()):
        return (f"your reply to {prompts[long_]!r} runs past the {max_new_tokens} new tokens asked for "
                f"({g[:120]!r}). Fix: pass max_new_tokens=max_new_tokens (the function's argument) to generate")
    if _starts(w, g) and len(g.strip()) < len(w.strip()):
        return (f"your reply to {prompts[long_]!r} stops early: {g!r}, where greedy generation of {max_new_tokens} "
                f"new tokens gives {w[:100]!r}. Fix: pass max_new_tokens=max_new_tokens to generate (max_length "
                "counts the prompt's tokens too)")
    return (f"your replies {_shown(got)} differ from greedy replies generated one prompt at a time {_shown(want)} "
            f"({how}). Fix: render each prompt with apply_chat_template(..., add_generation_prompt=True, "
            "tokenize=False), tokenize with add_special_tokens=False and padding_side='left', generate greedily "
            "(do_sample=False, num_beams=1) with the attention_mask")


def _starts(text: str, prefix: str) -> bool:
    """True when ``text`` begins with ``prefix`` (both stripped)."""
    return text.strip().startswith(prefix.strip())


@student_code("generate_answers")
def check_generate_answers(generate_answers, model, tokenizer, max_new_tokens: int = 8) -> None:
    """Run the student's batched ``generate_answers`` twice on a short and a long prompt and compare each reply with
    the same prompt generated alone (no padding, greedy). Within ``max_new_tokens`` the short prompt's reply ends and
    its row is padded, so special tokens left in the text show; two calls under different seeds show sampling; the
    tokenizer is handed over padding on the right and must come back so. A bfloat16/float16 model is compared on a
    float32 copy (see :func:`_float32_twin`); the model itself is not changed. Needs the real model (see
    tests/test_checks_basics.py and tests/test_student_answers_nb02.py).
    """
    prompts = list(GENERATION_CHECK_PROMPTS)
    model, how = _float32_twin(model)  # the student's function runs on it too, so both sides round alike
    got, side_after = _call(generate_answers, model, tokenizer, prompts, max_new_tokens, _SEEDS[0])
    require(isinstance(got, (list, tuple)) and len(got) == len(prompts) and all(isinstance(x, str) for x in got),
            f"generate_answers returned {type(got).__name__} {str(got)[:80]!r}, expected a list of {len(prompts)} strings",
            "return one decoded string per prompt, in the order of the prompts (tokenizer.batch_decode(...) gives that "
            "list)")
    got = list(got)
    require(side_after == "right",
            f"generate_answers left tokenizer.padding_side at {side_after!r} (it was 'right' before the call): the "
            "training code after this notebook pads on the right and would now pad on the left",
            "remember the side (old = tokenizer.padding_side), set 'left' for the batch and restore the old one after "
            "tokenizing (try/finally), or pass padding_side='left' to the tokenizer call and leave the attribute alone")
    for prompt, text in zip(prompts, got):
        require(prompt not in text and "You are a helpful AI assistant" not in text,
                f"the reply to {prompt!r} contains the prompt itself: {text[:120]!r}",
                "decode only the new tokens: output_ids[:, input_ids.shape[1]:] (generate returns prompt + reply)")
        special = [t for t in ("<|im_end|>", "<|endoftext|>", "<|im_start|>") if t in text]
        require(not special,
                f"the reply to {prompt!r} contains the special tokens {', '.join(special)}: {text[:120]!r}. A reply "
                "that ends before the others in its batch ends in <|im_end|> and then padding; left in the text, those "
                "tokens count as reply text in every later score (house format, lengths)",
                "decode with tokenizer.batch_decode(new_tokens, skip_special_tokens=True)")
    again, _ = _call(generate_answers, model, tokenizer, prompts, max_new_tokens, _SEEDS[1])
    require(isinstance(again, (list, tuple)) and list(again) == got,
            f"two calls of generate_answers on the same prompts gave different replies ({_shown(got)}, then "
            f"{_shown(again)}): your generation samples, so the baseline would change on every run",
            "decode greedily: model.generate(..., do_sample=False) and no temperature, top_k or top_p")
    want = [_generate_alone(model, tokenizer, p, max_new_tokens) for p in prompts]
    if not all(g.strip() == w.strip() for g, w in zip(got, want)):
        raise TodoCheckError(_mismatch(prompts, got, want, how, tokenizer, max_new_tokens))
    passed(f"batched, left-padded greedy replies match one-at-a-time generation for {len(prompts)} prompts, special "
           f"tokens skipped, padding side restored ({how})")
