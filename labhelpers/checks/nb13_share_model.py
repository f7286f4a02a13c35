"""TODO check of notebook 13 (a model you can hand to someone): the student's ``make_generation_config(tokenizer,
max_new_tokens)`` stops at ``<|im_end|>``, pads with the pad token, is greedy and takes its budget from the argument;
every id is a plain int (generation_config.json stores it) and nothing in it makes ``save_pretrained`` refuse it or
bends greedy decoding (a far-off repetition penalty).

The handoff itself (the reference generation config, the model card, the folder) is :mod:`labhelpers.run.handoff`.
"""

from __future__ import annotations

from typing import Any, Callable

from labhelpers.checks.core import TodoCheckError, call_student, passed, require, student_code
from labhelpers.run.handoff import END_OF_TURN, generation_config_for  # noqa: F401  (the doctest passes the reference)

# Sampling-only settings: with do_sample=False greedy decoding ignores them and save_pretrained refuses the config.
SAMPLING_FLAGS = ("temperature", "top_p", "top_k", "min_p", "typical_p", "epsilon_cutoff", "eta_cutoff")
# repetition_penalty: 1 is off; outside this range it no longer just nudges greedy decoding (see _penalty_problem).
REPETITION_PENALTY_RANGE = (1.0, 1.3)
_HINTS = (
    ("temperature", "leave temperature out: do_sample=False is greedy (temperature=0 is not a setting transformers "
                    "accepts for sampling)"),
    ("pad_token_id", "pad_token_id=tokenizer.pad_token_id (an int)"),
    ("eos_token_id", f"eos_token_id=tokenizer.convert_tokens_to_ids({END_OF_TURN!r}) (an int)"),
)


def _token_name(tokenizer: Any, token_id: int) -> str:
    """The token text of ``token_id`` for a message, or ``"?"`` when the tokenizer has no such id."""
    try:
        return str(tokenizer.convert_ids_to_tokens(token_id))
    except Exception:  # noqa: BLE001  (a name for a message only: never crash while writing it)
        return "?"


def _id_problem(name: str, value: Any, fix: str) -> tuple[str, str] | None:
    """(problem, fix) when ``value`` (an eos/pad setting) is not an int or a list of ints, else ``None``.

    >>> _id_problem("eos_token_id", "<|im_end|>", "tokenizer.convert_tokens_to_ids('<|im_end|>')")[0]
    "eos_token_id is the token text '<|im_end|>', where generate() compares token ids"
    >>> _id_problem("eos_token_id", [2, 0], ""), _id_problem("pad_token_id", None, "")
    (None, None)
    """
    items = value if isinstance(value, (list, tuple)) else [value]
    for item in items:
        if isinstance(item, str):
            return (f"{name} is the token text {item!r}, where generate() compares token ids",
                    f"an id, not the token text; use {fix}")
        if item is not None and (isinstance(item, bool) or not isinstance(item, int)):
            kind = type(item).__name__
            return (f"{name} is a {kind}, not an int: generation_config.json stores plain ints (save_pretrained "
                    f"cannot write a {kind})", f"{fix}, or turn it into an int with int(...) / .item() / .tolist()")
    return None


def _texts_named(make: Callable[[Any, int], Any], fixes: dict[str, str]) -> Callable[[Any, int], Any]:
    """``make`` wrapped so that GenerationConfig's own validation failing on a token text (``pad_token_id < 0`` with a
    str) fails the check naming the setting, instead of as a TypeError inside transformers."""
    import functools
    import traceback

    @functools.wraps(make)
    def call(tokenizer: Any, budget: int) -> Any:
        try:
            return make(tokenizer, budget)
        except TypeError as err:
            frames = traceback.extract_tb(err.__traceback__)
            line = (frames[-1].line or "") if frames else ""
            name = next((n for n in fixes if n in line), None)
            if name is None or "'str'" not in str(err):
                raise
            raise TodoCheckError(f"make_generation_config(tokenizer, {budget}): {name} is a token text (a str), where "
                                 f"GenerationConfig wants a token id (it failed on `{line.strip()}`). Fix: an id, not "
                                 f"the token text; use {fixes[name]}") from None

    return call


def _ids(value: Any) -> list[int]:
    return [] if value is None else [value] if isinstance(value, int) else list(value)


def _penalty_problem(penalty: Any) -> tuple[str, str] | None:
    """(problem, fix) for a repetition penalty far from 1 (off), else ``None``.

    >>> _penalty_problem(None), _penalty_problem(1.1)
    (None, None)
    >>> _penalty_problem(0.8)[0].split(":")[0]
    'repetition_penalty is 0.8, below 1'
    """
    low, high = REPETITION_PENALTY_RANGE
    fix = ("leave repetition_penalty out (1.0, off): the TODO asks for plain greedy decoding; a user can pass "
           "repetition_penalty=... to generate()")
    if penalty is None:
        return None
    if isinstance(penalty, bool) or not isinstance(penalty, (int, float)):
        return f"repetition_penalty is {penalty!r}, not a number", fix
    if low <= float(penalty) <= high:
        return None
    if float(penalty) < low:
        return (f"repetition_penalty is {penalty}, below 1: it rewards every token already in the prompt or the "
                "reply, so greedy decoding repeats itself until max_new_tokens", fix)
    return (f"repetition_penalty is {penalty}, far above the usual 1.0-{high}: it divides the score of every token "
            "already in the prompt or the reply, so the model avoids the template's and the house format's own "
            "words (Answer:, the bullets, Confidence:) and the reply drifts", fix)


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
    >>> import transformers
    >>> check_generation_config(lambda tok, n: transformers.GenerationConfig(eos_token_id="<|im_end|>", pad_token_id=0,
    ...                                                                      max_new_tokens=n), Tok())
    Traceback (most recent call last):
    ...
    labhelpers.checks.TodoCheckError: make_generation_config(tokenizer, 96): eos_token_id is the token text '<|im_end|>', where generate() compares token ids. Fix: an id, not the token text; use tokenizer.convert_tokens_to_ids('<|im_end|>')
    """
    from transformers import GenerationConfig

    end = tokenizer.convert_tokens_to_ids(END_OF_TURN)
    pad = tokenizer.pad_token_id
    end_fix = f"tokenizer.convert_tokens_to_ids({END_OF_TURN!r})"
    fixes = {"eos_token_id": end_fix, "pad_token_id": "tokenizer.pad_token_id"}
    for budget in budgets:
        call = f"make_generation_config(tokenizer, {budget})"
        config = call_student(_texts_named(make_generation_config, fixes), tokenizer, budget,
                              name="make_generation_config", hints=_HINTS)
        require(config is not None, f"{call} returned None: the function has no `return`",
                "return transformers.GenerationConfig(eos_token_id=..., pad_token_id=..., max_new_tokens=..., "
                "do_sample=False)")
        require(isinstance(config, GenerationConfig), f"{call} returned a {type(config).__name__}, not a GenerationConfig",
                "return transformers.GenerationConfig(eos_token_id=..., pad_token_id=..., max_new_tokens=..., do_sample=False)")
        for name, fix in fixes.items():
            wrong_type = _id_problem(name, getattr(config, name), fix)
            if wrong_type:
                require(False, f"{call}: {wrong_type[0]}", wrong_type[1])
        eos = _ids(config.eos_token_id)
        named = ", ".join(f"{i} ({_token_name(tokenizer, i)})" for i in eos)
        require(bool(eos), f"{call}: eos_token_id is None (not set): generate() then stops only at the model config's "
                "eos, or at max_new_tokens", f"eos_token_id={end_fix}")
        require(end in eos, f"{call}: eos_token_id is {named}, not {END_OF_TURN} (id {end}): every reply of the chat "
                "template ends with <|im_end|>, so generation would run on past the answer until max_new_tokens",
                f"eos_token_id={end_fix}")
        require(config.pad_token_id is not None, f"{call}: pad_token_id is not set (None), the tokenizer pads with "
                f"{pad}: generate() then pads with the eos id and warns on every call",
                "pad_token_id=tokenizer.pad_token_id (batched generation pads prompts with it)")
        require(config.pad_token_id != end, f"{call}: pad_token_id is {end}, the end-of-turn token {END_OF_TURN}; the "
                f"tokenizer pads with {pad} ({_token_name(tokenizer, pad)})",
                "pad_token_id=tokenizer.pad_token_id: a pad id equal to the stop id hides padding from generate() "
                "(it cannot infer the attention mask; notebook 04)")
        require(config.pad_token_id == pad,
                f"{call}: pad_token_id is {config.pad_token_id!r}, the tokenizer pads with {pad}",
                "pad_token_id=tokenizer.pad_token_id (batched generation pads prompts with it)")
        require(config.pad_token_id not in eos,
                f"{call}: pad_token_id {config.pad_token_id} ({_token_name(tokenizer, config.pad_token_id)}) is also "
                f"in eos_token_id {eos}: generate() cannot tell padding from a stop token, so it cannot infer the "
                "attention mask of padded prompts",
                f"eos_token_id={end_fix} alone (the end-of-turn token), pad_token_id=tokenizer.pad_token_id")
        if config.max_new_tokens is None and config.max_length is not None:
            require(False, f"{call}: max_new_tokens is not set and max_length is {config.max_length}: max_length "
                    "counts the prompt too, so a long prompt leaves no room for the reply",
                    "max_new_tokens=max_new_tokens (the argument), not max_length")
        require(config.max_new_tokens == budget, f"{call}: max_new_tokens is {config.max_new_tokens!r}, asked for {budget}",
                "max_new_tokens=max_new_tokens (the argument), not max_length (which counts the prompt too)")
        if config.do_sample and isinstance(config.temperature, (int, float)) and config.temperature <= 0:
            require(False, f"{call}: do_sample=True with temperature={config.temperature}: temperature 0 is not greedy "
                    "decoding; sampling needs a temperature > 0 (generate() raises) and samples a different reply "
                    "each call", "do_sample=False and no temperature: that is greedy decoding")
        require(not config.do_sample, f"{call}: do_sample is True, so every call samples a different reply",
                "do_sample=False: greedy by default, reproducible; a user can still pass do_sample=True to generate()")
        for flag in SAMPLING_FLAGS:
            value = getattr(config, flag, None)
            require(value is None, f"{call}: {flag} is {value} while do_sample=False: greedy decoding ignores it, "
                    "and save_pretrained refuses such a config (GenerationConfig is invalid), so the folder is never "
                    "written",
                    f"leave {flag} out: do_sample=False alone is greedy")
        require((config.num_beams or 1) == 1, f"{call}: num_beams is {config.num_beams}", "keep num_beams=1 (greedy)")
        penalty = _penalty_problem(config.repetition_penalty)
        if penalty:
            require(False, f"{call}: {penalty[0]}", penalty[1])
        try:
            config.validate(strict=True)  # what save_pretrained runs before writing generation_config.json
        except ValueError as err:
            said = next((line.strip("- ") for line in str(err).splitlines()[1:] if line.strip()), str(err))
            require(False, f"{call}: save_pretrained would refuse this config: {said[:300]}",
                    "remove that setting: the TODO needs only eos_token_id, pad_token_id, max_new_tokens, do_sample")
    passed(f"generation config: stops at {END_OF_TURN} (id {end}), pads with "
           f"{_token_name(tokenizer, pad)} (id {pad}), greedy, max_new_tokens from the argument")
