"""TODO checks of notebook 02 (baseline generation): batched, left-padded greedy generation against one prompt
generated at a time."""

from __future__ import annotations

from labhelpers.checks.core import TodoCheckError, passed, require, student_code


GENERATION_CHECK_PROMPTS = ("Say hi.", "Name the three primary colours and say in one short sentence why they matter.")


def _generate_alone(model, tokenizer, prompt: str, max_new_tokens: int) -> str:
    """Reference: one prompt, no padding at all, greedy, new tokens only, special tokens skipped."""
    import torch

    text = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                         add_generation_prompt=True)
    enc = tokenizer(text, return_tensors="pt", add_special_tokens=False).to(model.device)
    from labhelpers.attention import model_autocast

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


@student_code("generate_answers")
def check_generate_answers(generate_answers, model, tokenizer, max_new_tokens: int = 6) -> None:
    """Run the student's batched ``generate_answers`` on two prompts of different lengths and compare each reply
    with the same prompt generated alone (no padding, greedy). A bfloat16/float16 model is compared on a float32 copy
    (see :func:`_float32_twin`); the model itself is not changed. Needs the real model (see tests/test_checks_basics.py).
    """
    prompts = list(GENERATION_CHECK_PROMPTS)
    side = tokenizer.padding_side
    model, how = _float32_twin(model)
    got = generate_answers(model, tokenizer, prompts, max_new_tokens)
    tokenizer.padding_side = side
    require(isinstance(got, list) and len(got) == len(prompts) and all(isinstance(x, str) for x in got),
            f"generate_answers returned {type(got).__name__} {str(got)[:80]!r}, expected a list of {len(prompts)} strings",
            "return one decoded string per prompt, in the order of the prompts")
    for prompt, text in zip(prompts, got):
        require("<|im_" not in text and "<|endoftext|>" not in text,
                f"the reply to {prompt!r} contains special tokens: {text[:120]!r}",
                "decode with tokenizer.batch_decode(new_tokens, skip_special_tokens=True)")
        require(prompt not in text and "You are a helpful AI assistant" not in text,
                f"the reply to {prompt!r} contains the prompt itself: {text[:120]!r}",
                "decode only the new tokens: output_ids[:, input_ids.shape[1]:] (generate returns prompt + reply)")
    want = [_generate_alone(model, tokenizer, p, max_new_tokens) for p in prompts]
    short, long_ = 0, 1  # the short prompt is the one that gets padded in a batch
    if got[long_] == want[long_] and got[short] != want[short]:
        raise TodoCheckError(
            f"the padded (shorter) prompt {prompts[short]!r} gets {got[short][:80]!r} in your batch but "
            f"{want[short][:80]!r} alone ({how}); the unpadded one matches. Fix: pad on the LEFT "
            "(tokenizer.padding_side = 'left') and pass the attention_mask to generate, so every prompt ends right "
            "where its reply begins")
    require(got == want, f"your replies {[g[:60] for g in got]} differ from greedy replies generated one prompt at a "
            f"time {[w[:60] for w in want]} ({how})",
            "render each prompt with apply_chat_template(..., add_generation_prompt=True, tokenize=False), tokenize "
            "with add_special_tokens=False and padding_side='left', generate greedily (do_sample=False) with the "
            "attention_mask")
    passed(f"batched, left-padded greedy replies match one-at-a-time generation for {len(prompts)} prompts ({how})")
