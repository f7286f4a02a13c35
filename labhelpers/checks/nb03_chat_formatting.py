"""TODO checks of notebook 03 (chat formatting): the student's ChatML rendering against the tokenizer's own
chat template, naming the first difference."""

from __future__ import annotations

from labhelpers.checks.core import TodoCheckError, passed, require, student_code


def first_difference(got: str, want: str, context: int = 25) -> str:
    """Where two strings first differ, with a snippet of each around that position ('' when equal).

    >>> print(first_difference("<|im_start|>user\\nHi", "<|im_start|>user\\nHi<|im_end|>\\n", 8))
    first difference at character 19 (your text is shorter): yours '>user\\nHi' vs expected '>user\\nHi<|im_end'
    >>> first_difference("abc", "abc")
    ''
    """
    if got == want:
        return ""
    pos = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))
    lo = max(pos - context, 0)
    note = " (your text is shorter)" if pos == len(got) else " (your text is longer)" if pos == len(want) else ""
    return (f"first difference at character {pos}{note}: yours {got[lo:pos + context]!r} "
            f"vs expected {want[lo:pos + context]!r}")


def chatml_check_cases() -> list[tuple[list[dict[str, str]], bool]]:
    """(messages, add_generation_prompt) pairs covering the template's branches.

    >>> len(chatml_check_cases()), chatml_check_cases()[0]
    (11, ([{'role': 'user', 'content': 'Hi!'}], True))
    """
    from labhelpers.chat import PROBE_CONVERSATIONS

    cases: list[tuple[list[dict[str, str]], bool]] = [
        ([{"role": "user", "content": "Hi!"}], True),
        ([{"role": "system", "content": "Be terse."}, {"role": "user", "content": "Hi!"}], True),
        ([{"role": "user", "content": "  spaces and a trailing newline\n"}], False),
    ]
    for conversation in PROBE_CONVERSATIONS:
        cases.append((list(conversation), False))
        cases.append((list(conversation[:-1]), True))
    return cases


@student_code("format_chatml")
def check_format_chatml(format_chatml, tokenizer) -> None:
    """Compare the student's ``format_chatml(messages, add_generation_prompt)`` with the tokenizer's own rendering.

    >>> class Tok:  # renders like SmolLM2's template, without a default system prompt
    ...     def apply_chat_template(self, messages, tokenize=False, add_generation_prompt=False):
    ...         s = "".join(f"<|im_start|>{m['role']}\\n{m['content']}<|im_end|>\\n" for m in messages)
    ...         return s + ("<|im_start|>assistant\\n" if add_generation_prompt else "")
    >>> check_format_chatml(lambda m, add_generation_prompt=False: Tok().apply_chat_template(m,
    ...     add_generation_prompt=add_generation_prompt), Tok())
    ✓ format_chatml reproduces apply_chat_template on 11 conversations (with and without a generation prompt)
    >>> check_format_chatml(lambda m, add_generation_prompt=False: Tok().apply_chat_template(m), Tok())
    Traceback (most recent call last):
    ...
    labhelpers.checks.TodoCheckError: case 1 of 11, add_generation_prompt=True, messages [{'role': 'user', 'content': 'Hi!'}]: first difference at character 31 (your text is shorter): yours 'tart|>user\\nHi!<|im_end|>\\n' vs expected 'tart|>user\\nHi!<|im_end|>\\n<|im_start|>assistant\\n'. Fix: with add_generation_prompt=True, end with '<|im_start|>assistant\\n' so the model knows it is its turn
    """
    cases = chatml_check_cases()
    for number, (messages, gen) in enumerate(cases, start=1):
        want = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=gen)
        got = format_chatml([dict(m) for m in messages], add_generation_prompt=gen)
        require(isinstance(got, str), f"format_chatml returned {type(got).__name__}, not a string",
                "build and return one string")
        if got == want:
            continue
        diff = first_difference(got, want)
        pos = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))
        if gen and want.endswith("<|im_start|>assistant\n") and not got.endswith("<|im_start|>assistant\n"):
            fix = "with add_generation_prompt=True, end with '<|im_start|>assistant\\n' so the model knows it is its turn"
        elif not gen and got.endswith("<|im_start|>assistant\n"):
            fix = "add the generation prompt only when add_generation_prompt=True"
        elif messages[0]["role"] != "system" and want.startswith("<|im_start|>system") and pos < 100:
            fix = ("without a system message SmolLM2's template inserts its default one first: "
                   "'<|im_start|>system\\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\\n'")
        elif messages[0]["role"] == "system" and got.count("<|im_start|>system") > 1:
            fix = "insert the default system prompt only when the first message is not a system message"
        else:
            fix = ("each message is '<|im_start|>' + role + '\\n' + content + '<|im_end|>' + '\\n', content unchanged "
                   "(no strip), nothing between messages")
        raise TodoCheckError(f"case {number} of {len(cases)}, add_generation_prompt={gen}, messages {messages}: {diff}. "
                             f"Fix: {fix}")
    passed(f"format_chatml reproduces apply_chat_template on {len(cases)} conversations "
           "(with and without a generation prompt)")
