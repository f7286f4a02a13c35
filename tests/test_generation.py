"""labhelpers.run.generation: one choice of before/after prompts, and the measures that need no house format."""

from __future__ import annotations

import pytest

from labhelpers.run.generation import (CLASSIC_PROMPTS, CODE_PROMPTS, comparison_prompts, generate_replies,
                                       heldout_pairs, looks_like_code, reply_nll, retention_prompts)


def test_notebooks_02_and_09_ask_the_same_prompts():
    from labhelpers.data.datasets import load_chat_dataset

    test = load_chat_dataset()["test"]
    prompts = comparison_prompts(test, 20)
    assert prompts[:3] == list(CLASSIC_PROMPTS) and len(prompts) == 23
    assert [p for p, _ in heldout_pairs(test, 20)] == prompts[3:]


def test_retention_prompts_alternate_and_half_ask_for_code():
    prompts = retention_prompts(10)
    assert sum(p in CODE_PROMPTS for p in prompts) == 5 and len(set(prompts)) == 10
    with pytest.raises(ValueError, match="1..20"):
        retention_prompts(21)


@pytest.mark.parametrize("text,code", [("```\nx = 1\n```", True), ("SELECT id FROM t;", True),
                                       ("Answer: reverse it.\n- a\n- b\n- c\nConfidence: high", False)])
def test_looks_like_code(text, code):
    assert looks_like_code(text) is code


@pytest.mark.slow
def test_reply_nll_prefers_the_models_own_reply():
    """A model's greedy reply is far more likely under it than another prompt's reply (a measure that can fail)."""
    from labhelpers.model.loading import load_model_and_tokenizer

    model, tokenizer = load_model_and_tokenizer(verbose=False)
    prompts = ["What is the capital of France?", "Name a primary colour."]
    own, _ = generate_replies(model, tokenizer, prompts, max_new_tokens=12)
    swapped = [own[1], own[0]]
    nll_own, nll_swapped = reply_nll(model, tokenizer, prompts, own), reply_nll(model, tokenizer, prompts, swapped)
    assert all(a < b for a, b in zip(nll_own, nll_swapped)), (nll_own, nll_swapped)
    assert reply_nll(model, tokenizer, prompts, own, batch_size=1) == pytest.approx(nll_own, abs=1e-4)  # padding-free
