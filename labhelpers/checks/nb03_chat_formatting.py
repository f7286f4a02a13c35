"""TODO checks of notebook 03 (chat formatting): the student's ChatML rendering against the tokenizer's own
chat template, naming the first difference and the piece of the template it falls in (the newline after the role,
the default system turn, the end of a turn, the generation prompt ...)."""

from __future__ import annotations

import re
from typing import NamedTuple

from labhelpers.checks.core import TodoCheckError, call_student, passed, require, student_code

DEFAULT_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"


def first_difference(got: str, want: str, context: int = 25) -> str:
    """Where two strings first differ, with a snippet of each around that position ('' when equal).

    >>> print(first_difference("<|im_start|>user\\nHi", "<|im_start|>user\\nHi<|im_end|>\\n", 8))
    first difference at character 19 (your text is shorter): yours '>user\\nHi' vs expected '>user\\nHi<|im_end'
    >>> first_difference("abc", "abc")
    ''
    """
    if got == want:
        return ""
    pos = _difference_at(got, want)
    lo = max(pos - context, 0)
    note = " (your text is shorter)" if pos == len(got) else " (your text is longer)" if pos == len(want) else ""
    return (f"first difference at character {pos}{note}: yours {got[lo:pos + context]!r} "
            f"vs expected {want[lo:pos + context]!r}")


def _difference_at(got: str, want: str) -> int:
    return next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))


def chatml_check_cases() -> list[tuple[list[dict[str, str]], bool]]:
    """(messages, add_generation_prompt) pairs covering the template's branches.

    >>> len(chatml_check_cases()), chatml_check_cases()[0]
    (11, ([{'role': 'user', 'content': 'Hi!'}], True))
    """
    from labhelpers.data.chat import PROBE_CONVERSATIONS

    cases: list[tuple[list[dict[str, str]], bool]] = [
        ([{"role": "user", "content": "Hi!"}], True),
        ([{"role": "system", "content": "Be terse."}, {"role": "user", "content": "Hi!"}], True),
        ([{"role": "user", "content": "  spaces and a trailing newline\n"}], False),
    ]
    for conversation in PROBE_CONVERSATIONS:
        cases.append((list(conversation), False))
        cases.append((list(conversation[:-1]), True))
    return cases


class Piece(NamedTuple):
    """One piece of a ChatML rendering: its place in the text, what it is, and its turn (-1: the default system turn;
    len(messages): the generation prompt)."""

    start: int
    text: str
    part: str  # open, role, role-newline, content, end, turn-newline
    turn: int


def chatml_pieces(messages: list[dict[str, str]], add_generation_prompt: bool,
                  default_system: str | None = DEFAULT_SYSTEM) -> list[Piece]:
    """The ChatML rendering of ``messages`` cut into its pieces (SmolLM2's template when ``default_system`` is its
    default prompt; a template without a default when it is None).

    >>> [(p.text, p.part, p.turn) for p in chatml_pieces([{"role": "user", "content": "Hi"}], True, None)]
    [('<|im_start|>', 'open', 0), ('user', 'role', 0), ('\\n', 'role-newline', 0), ('Hi', 'content', 0), ('<|im_end|>', 'end', 0), ('\\n', 'turn-newline', 0), ('<|im_start|>', 'open', 1), ('assistant', 'role', 1), ('\\n', 'role-newline', 1)]
    """
    turns = [(m["role"], m["content"], i) for i, m in enumerate(messages)]
    if default_system is not None and messages and messages[0]["role"] != "system":
        turns.insert(0, ("system", default_system, -1))
    pieces: list[Piece] = []
    at = 0

    def add(text: str, part: str, turn: int) -> None:
        nonlocal at
        pieces.append(Piece(at, text, part, turn))
        at += len(text)

    for role, content, turn in turns:
        for text, part in (("<|im_start|>", "open"), (role, "role"), ("\n", "role-newline"), (content, "content"),
                           ("<|im_end|>", "end"), ("\n", "turn-newline")):
            add(text, part, turn)
    if add_generation_prompt:
        for text, part in (("<|im_start|>", "open"), ("assistant", "role"), ("\n", "role-newline")):
            add(text, part, len(messages))
    return [p for p in pieces if p.text]


def _snippet(text: str, pos: int, width: int = 14) -> str:
    return repr(text[pos:pos + width])


def chatml_problem(got: str, want: str, pieces: list[Piece], messages: list[dict[str, str]],
                   default_system: str | None) -> tuple[str, str]:
    """(problem, fix) for the first difference between the student's ``got`` and the template's ``want``, named by the
    piece of the template it falls in.

    >>> msgs = [{"role": "user", "content": "Hi"}]
    >>> want = "<|im_start|>user\\nHi<|im_end|>\\n"
    >>> chatml_problem("<|im_start|>userHi<|im_end|>\\n", want, chatml_pieces(msgs, False, None), msgs, None)[0]
    "after '<|im_start|>user' comes a newline ('\\\\n'), yours goes straight on with 'Hi<|im_end|>\\\\n'"
    """
    pos = _difference_at(got, want)
    n_messages = len(messages)
    gen_turn = n_messages
    if pos == len(want):  # the template's text is a prefix of the student's
        extra = got[pos:]
        if pieces and pieces[-1].turn == gen_turn and extra.startswith("<|im_end|>"):
            return ("you close the generation prompt: the model writes its reply after '<|im_start|>assistant\\n'",
                    "leave the assistant's turn open: end with '<|im_start|>assistant\\n' and nothing after it")
        if extra.startswith("<|im_start|>assistant"):
            return ("your text ends with a generation prompt though add_generation_prompt=False",
                    "add the generation prompt only when add_generation_prompt=True")
        return (f"your text goes on after the template's end: {extra[:30]!r}",
                "end with the last turn's '<|im_end|>\\n' (or the generation prompt when asked for): nothing after it")
    piece = next(p for p in pieces if p.start <= pos < p.start + len(p.text))
    turn_start = next(p.start for p in pieces if p.turn == piece.turn)
    here = got[pos:]
    if here.startswith("\\n") and want[pos] == "\n":
        return ("yours has a backslash and an 'n' (two characters) where the template has a newline",
                "write the newline as '\\n' in a normal string: not in a raw string r'...', not as '\\\\n'")
    if default_system is not None:
        first_header = f"<|im_start|>{messages[0]['role']}" if messages else ""
        default_turn = f"<|im_start|>system\n{default_system}"
        if piece.turn == -1 and first_header and got[turn_start:].startswith(first_header):
            return ("no default system turn", "without a system message SmolLM2's template inserts its default one "
                    f"first: '<|im_start|>system\\n{default_system}<|im_end|>\\n'")
        if piece.turn == 0 and got[turn_start:].startswith(default_turn) and not want[turn_start:].startswith(
                default_turn):
            return ("you add the default system turn though the conversation starts with its own system message",
                    "insert the default system prompt only when the first message is not a system message")
    what = "the generation prompt" if piece.turn == gen_turn else (
        "the default system turn" if piece.turn == -1 else f"message {piece.turn} ({messages[piece.turn]['role']})")
    if piece.part == "open":
        if piece.turn == gen_turn and not here:
            return ("no generation prompt", "with add_generation_prompt=True, end with '<|im_start|>assistant\\n' so "
                    "the model knows it is its turn")
        if here.startswith("\n") and got[pos - 1:pos] == "\n":
            return ("two newlines between turns: each turn already ends with '<|im_end|>\\n'",
                    "join the turns with '' (nothing between them), not with '\\n'")
        return (f"{what} opens with {_snippet(got, pos)}, the template's with '<|im_start|>'",
                "open each turn with '<|im_start|>' exactly")
    if piece.part == "role":
        return (f"{what}: the role is written {_snippet(got, pos)}, the template writes {piece.text!r}",
                "write the role exactly as given: message['role']")
    if piece.part == "role-newline":
        role = next(p.text for p in pieces if p.turn == piece.turn and p.part == "role")
        if piece.turn == gen_turn and pos == len(got):
            return ("the generation prompt ends with a newline: yours stops after 'assistant'",
                    "end with '<|im_start|>assistant\\n': the reply starts on the next line")
        sep = re.match(r"[^\w<]*", here).group()
        has = f"yours has {sep!r}" if sep else f"yours goes straight on with {_snippet(got, pos)}"
        return (f"after '<|im_start|>{role}' comes a newline ('\\n'), {has}",
                "write '<|im_start|>' + role + '\\n' + content: the newline sits between the role and the content")
    if piece.part == "content":
        if piece.turn == -1:
            return (f"your default system prompt differs from the template's at {_snippet(got, pos)} (expected "
                    f"{_snippet(want, pos)})", f"copy it character for character: {default_system!r}")
        content = piece.text
        if content != content.strip() and got[piece.start:].startswith(content.strip()):
            return (f"{what}: its content lost its leading or trailing whitespace",
                    "each message is '<|im_start|>' + role + '\\n' + content + '<|im_end|>' + '\\n', content "
                    "unchanged (no strip), nothing between messages")
        return (f"{what}: its content differs from the message's at {_snippet(got, pos)}",
                "copy message['content'] exactly as given: content unchanged (no strip, no escaping, nothing added)")
    if piece.part == "end":
        at = got[piece.start:]  # the student's text where <|im_end|> should start
        token = re.match(r"</?\|?[\w/]+\|?>", at)
        if token and token.group() not in ("<|im_end|>", "<|im_start|>"):
            return (f"your turns end with {token.group()!r}, the template's with '<|im_end|>' (the end-of-turn token "
                    "SmolLM2 was trained to stop on)", "close each message with '<|im_end|>'")
        if pos > piece.start:
            return (f"{what} ends with {_snippet(got, piece.start)}, the template's with '<|im_end|>'",
                    "write '<|im_end|>' exactly")
        if re.match(r"\s+<\|im_end\|>", at):
            return (f"{what}: a newline before <|im_end|> (yours {_snippet(got, pos)})",
                    "put <|im_end|> right after the content: content + '<|im_end|>' + '\\n'")
        if not at or re.match(r"\s*<\|im_start\|>", at):
            return (f"{what}: no <|im_end|> after the content (yours {_snippet(got, pos) if at else 'stops there'})",
                    "close each message with '<|im_end|>', then '\\n'")
        if piece.turn == -1:
            return (f"your default system prompt differs from the template's: yours goes on with {_snippet(got, pos)} "
                    "where it ends", f"copy it character for character: {default_system!r}")
        return (f"{what}: your content goes on with {_snippet(got, pos)} where the message's ends",
                "copy message['content'] exactly as given: content unchanged (no strip, no escaping, nothing added)")
    # the newline after <|im_end|>
    earlier = [p for p in pieces if p.part == "turn-newline" and p.start < piece.start]
    if piece.turn == n_messages - 1 and earlier:
        return ("no newline after the last <|im_end|>: every turn ends with '<|im_end|>\\n', the last turn too "
                "(a '\\n'.join puts newlines only between the turns)",
                "end every turn with '<|im_end|>\\n' and join the turns with ''")
    return (f"no newline after <|im_end|> (yours goes on with {_snippet(got, pos) if here else 'nothing'})",
            "each turn ends with '<|im_end|>' + '\\n', the next '<|im_start|>' right after it")


@student_code("format_chatml")
def check_format_chatml(format_chatml, tokenizer) -> None:
    """Compare the student's ``format_chatml(messages, add_generation_prompt)`` with the tokenizer's own rendering,
    naming the first difference and the piece of the template it falls in.

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
    labhelpers.checks.TodoCheckError: case 1 of 11, add_generation_prompt=True, messages [{'role': 'user', 'content': 'Hi!'}]: first difference at character 31 (your text is shorter): yours 'tart|>user\\nHi!<|im_end|>\\n' vs expected 'tart|>user\\nHi!<|im_end|>\\n<|im_start|>assistant\\n': no generation prompt. Fix: with add_generation_prompt=True, end with '<|im_start|>assistant\\n' so the model knows it is its turn
    """
    cases = chatml_check_cases()
    hints = (
        ("object has no attribute", "each message is a dict: read message['role'] and message['content'] "
                                    "(not message.role)"),
        ("unexpected keyword argument", "keep the TODO's signature: format_chatml(messages, "
                                        "add_generation_prompt=False)"),
        ("KeyError", "each message has the keys 'role' and 'content'"),
    )
    for number, (messages, gen) in enumerate(cases, start=1):
        want = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=gen)
        got = call_student(format_chatml, [dict(m) for m in messages], add_generation_prompt=gen,
                           name="format_chatml", hints=hints)
        joined = isinstance(got, (list, tuple)) and all(isinstance(x, str) for x in got)
        require(isinstance(got, str), f"format_chatml returned {type(got).__name__}, not a string",
                "join the parts into one string: return ''.join(parts)" if joined else "build and return one string")
        if got == want:
            continue
        diff = first_difference(got, want)
        pieces, default = None, None
        for default in (DEFAULT_SYSTEM, None):
            pieces = chatml_pieces(messages, gen, default)
            if "".join(p.text for p in pieces) == want:
                break
        else:
            pieces = None
        if pieces is None:  # a template this check does not know piece by piece: the difference alone
            problem, fix = "your text differs there", ("each message is '<|im_start|>' + role + '\\n' + content + "
                                                       "'<|im_end|>' + '\\n', content unchanged (no strip)")
        else:
            problem, fix = chatml_problem(got, want, pieces, messages, default)
        raise TodoCheckError(f"case {number} of {len(cases)}, add_generation_prompt={gen}, messages {messages}: "
                             f"{diff}: {problem}. Fix: {fix}")
    passed(f"format_chatml reproduces apply_chat_template on {len(cases)} conversations "
           "(with and without a generation prompt)")
