"""TODO check of notebook 13 (a model you can hand to someone): the student's ``make_generation_config(tokenizer,
max_new_tokens)`` stops at ``<|im_end|>``, pads with the pad token, is greedy and takes its budget from the argument.

The handoff itself (the reference generation config, the model card, the folder) is :mod:`labhelpers.handoff`.
"""

from __future__ import annotations

from typing import Any, Callable

from labhelpers.checks.core import passed, require, student_code
from labhelpers.handoff import END_OF_TURN, generation_config_for  # noqa: F401  (the doctest passes the reference)


def _ids(value: Any) -> list[int]:
    return [] if value is None else [value] if isinstance(value, int) else list(value)


@student_code("make_generation_config")
def check_generation_config(make_generation_config: Callable[[Any, int], Any], tokenizer: Any,
                            budgets: tuple[int, ...] = (96, 17)) -> None:
    """Call the student's ``make_generation_config(tokenizer, max_new_tokens)`` and say what is wrong with it.

    >>> class Tok:
    ...     pad_token_id, eos_token_id = 0, 2
    ...     def convert_tokens_to_ids(self, token): return {"<|im_end|>": 2, "<|endoftext|>": 0}[token]
    ...     def convert_ids_to_tokens(self, i): return {2: "<|im_end|>", 0: "<|endoftext|>"}[i]
    >>> check_generation_config(generation_config_for, Tok())
    ✓ generation config: stops at <|im_end|> (id 2), pads with <|endoftext|> (id 0), greedy, max_new_tokens from the argument
    """
    from transformers import GenerationConfig

    end = tokenizer.convert_tokens_to_ids(END_OF_TURN)
    for budget in budgets:
        config = make_generation_config(tokenizer, budget)
        call = f"make_generation_config(tokenizer, {budget})"
        require(isinstance(config, GenerationConfig), f"{call} returned a {type(config).__name__}, not a GenerationConfig",
                "return transformers.GenerationConfig(eos_token_id=..., pad_token_id=..., max_new_tokens=..., do_sample=False)")
        eos = _ids(config.eos_token_id)
        named = ", ".join(f"{i} ({tokenizer.convert_ids_to_tokens(i)})" for i in eos) or "None"
        require(end in eos, f"{call}: eos_token_id is {named}, not <|im_end|> (id {end}): every reply of the chat "
                "template ends with <|im_end|>, so generation would run on past the answer until max_new_tokens",
                f"eos_token_id=tokenizer.convert_tokens_to_ids({END_OF_TURN!r})")
        require(config.pad_token_id == tokenizer.pad_token_id,
                f"{call}: pad_token_id is {config.pad_token_id!r}, the tokenizer pads with {tokenizer.pad_token_id}",
                "pad_token_id=tokenizer.pad_token_id (batched generation pads prompts with it)")
        require(config.pad_token_id not in eos, f"{call}: pad_token_id {config.pad_token_id} is also an eos id",
                "pad with the tokenizer's pad token, which is not the end-of-turn token")
        require(config.max_new_tokens == budget, f"{call}: max_new_tokens is {config.max_new_tokens!r}, asked for {budget}",
                "max_new_tokens=max_new_tokens (the argument), not max_length (which counts the prompt too)")
        require(not config.do_sample, f"{call}: do_sample is True, so every call samples a different reply",
                "do_sample=False: greedy by default, reproducible; a user can still pass do_sample=True to generate()")
        require((config.num_beams or 1) == 1, f"{call}: num_beams is {config.num_beams}", "keep num_beams=1 (greedy)")
    passed(f"generation config: stops at {END_OF_TURN} (id {end}), pads with "
           f"{tokenizer.convert_ids_to_tokens(tokenizer.pad_token_id)} (id {tokenizer.pad_token_id}), greedy, "
           "max_new_tokens from the argument")
