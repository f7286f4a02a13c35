"""Notebook 03's TODO, `format_chatml(messages, add_generation_prompt)`, as students write it: near misses (a newline
missing or doubled, the default system prompt misunderstood, the generation prompt wrong) that the check must reject
with their own mistake named, and right answers written differently from the solution that it must accept (the real
SmolLM2 tokenizer, no model weights)."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import pytest

from labhelpers.checks import TodoCheckError, check_format_chatml

DEFAULT_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"


@pytest.fixture(scope="module")
def tokenizer():
    """The lab's SFT-ready SmolLM2 tokenizer (no model weights: fast)."""
    from labhelpers.model.loading import load_tokenizer

    return load_tokenizer()


# ------------------------------------------------------------------------------------------------ wrong answers
def no_newline_after_role(messages, add_generation_prompt=False):
    text = ""
    if messages[0]["role"] != "system":
        text += f"<|im_start|>system{DEFAULT_SYSTEM}<|im_end|>\n"
    for m in messages:
        text += f"<|im_start|>{m['role']}{m['content']}<|im_end|>\n"
    if add_generation_prompt:
        text += "<|im_start|>assistant\n"
    return text


def colon_after_role(messages, add_generation_prompt=False):
    if messages[0]["role"] != "system":
        messages = [{"role": "system", "content": DEFAULT_SYSTEM}] + messages
    text = "".join(f"<|im_start|>{m['role']}: {m['content']}<|im_end|>\n" for m in messages)
    return text + ("<|im_start|>assistant\n" if add_generation_prompt else "")


def no_default_system(messages, add_generation_prompt=False):
    text = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
    return text + ("<|im_start|>assistant\n" if add_generation_prompt else "")


def default_system_always(messages, add_generation_prompt=False):
    text = f"<|im_start|>system\n{DEFAULT_SYSTEM}<|im_end|>\n"
    text += "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
    return text + ("<|im_start|>assistant\n" if add_generation_prompt else "")


def default_system_with_a_full_stop(messages, add_generation_prompt=False):
    parts = []
    if messages[0]["role"] != "system":
        parts.append("<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face."
                     "<|im_end|>\n")
    parts += [f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages]
    if add_generation_prompt:
        parts.append("<|im_start|>assistant\n")
    return "".join(parts)


def stripped_content(messages, add_generation_prompt=False):
    if messages[0]["role"] != "system":
        messages = [{"role": "system", "content": DEFAULT_SYSTEM}] + messages
    text = "".join(f"<|im_start|>{m['role']}\n{m['content'].strip()}<|im_end|>\n" for m in messages)
    return text + ("<|im_start|>assistant\n" if add_generation_prompt else "")


def no_newline_after_end(messages, add_generation_prompt=False):
    if messages[0]["role"] != "system":
        messages = [{"role": "system", "content": DEFAULT_SYSTEM}] + messages
    text = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>" for m in messages)
    return text + ("<|im_start|>assistant\n" if add_generation_prompt else "")


def joined_with_newlines(messages, add_generation_prompt=False):  # the last turn loses its "\n"
    if messages[0]["role"] != "system":
        messages = [{"role": "system", "content": DEFAULT_SYSTEM}] + messages
    text = "\n".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>" for m in messages)
    return text + ("<|im_start|>assistant\n" if add_generation_prompt else "")


def joined_twice(messages, add_generation_prompt=False):  # turns that end in "\n", joined with "\n" again
    if messages[0]["role"] != "system":
        messages = [{"role": "system", "content": DEFAULT_SYSTEM}] + messages
    turns = [f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages]
    if add_generation_prompt:
        turns.append("<|im_start|>assistant\n")
    return "\n".join(turns)


def newline_before_end(messages, add_generation_prompt=False):
    if messages[0]["role"] != "system":
        messages = [{"role": "system", "content": DEFAULT_SYSTEM}] + messages
    text = "".join(f"<|im_start|>{m['role']}\n{m['content']}\n<|im_end|>\n" for m in messages)
    return text + ("<|im_start|>assistant\n" if add_generation_prompt else "")


def generation_prompt_without_newline(messages, add_generation_prompt=False):
    if messages[0]["role"] != "system":
        messages = [{"role": "system", "content": DEFAULT_SYSTEM}] + messages
    text = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
    return text + ("<|im_start|>assistant" if add_generation_prompt else "")


def generation_prompt_always(messages, add_generation_prompt=False):
    if messages[0]["role"] != "system":
        messages = [{"role": "system", "content": DEFAULT_SYSTEM}] + messages
    return "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages) + "<|im_start|>assistant\n"


def generation_prompt_never(messages, add_generation_prompt=False):
    if messages[0]["role"] != "system":
        messages = [{"role": "system", "content": DEFAULT_SYSTEM}] + messages
    return "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)


def generation_prompt_closed(messages, add_generation_prompt=False):
    if messages[0]["role"] != "system":
        messages = [{"role": "system", "content": DEFAULT_SYSTEM}] + messages
    if add_generation_prompt:
        messages = messages + [{"role": "assistant", "content": ""}]
    return "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)


def backslash_n_copied(messages, add_generation_prompt=False):  # '\\n' as the student copy's stub line printed it
    if messages[0]["role"] != "system":
        messages = [{"role": "system", "content": DEFAULT_SYSTEM}] + messages
    text = "".join("<|im_start|>" + m["role"] + r"\n" + m["content"] + r"<|im_end|>\n" for m in messages)
    return text + (r"<|im_start|>assistant\n" if add_generation_prompt else "")


def attribute_access(messages, add_generation_prompt=False):
    text = "" if messages[0]["role"] == "system" else f"<|im_start|>system\n{DEFAULT_SYSTEM}<|im_end|>\n"
    for message in messages:
        text += f"<|im_start|>{message.role}\n{message.content}<|im_end|>\n"
    return text + ("<|im_start|>assistant\n" if add_generation_prompt else "")


def closes_with_endoftext(messages, add_generation_prompt=False):
    if messages[0]["role"] != "system":
        messages = [{"role": "system", "content": DEFAULT_SYSTEM}] + messages
    text = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|endoftext|>\n" for m in messages)
    return text + ("<|im_start|>assistant\n" if add_generation_prompt else "")


def returns_the_parts(messages, add_generation_prompt=False):
    parts = [] if messages[0]["role"] == "system" else [f"<|im_start|>system\n{DEFAULT_SYSTEM}<|im_end|>\n"]
    parts += [f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages]
    if add_generation_prompt:
        parts.append("<|im_start|>assistant\n")
    return parts


# (name, student function, distinctive words of the message it must get)
WRONG = [
    ("no newline after the role", no_newline_after_role, "after '<|im_start|>system' comes a newline"),
    ("': ' after the role", colon_after_role, "yours has ': '"),
    ("no default system turn", no_default_system, "inserts its default one first"),
    ("default system turn always", default_system_always,
     "insert the default system prompt only when the first message is not a system message"),
    ("default system prompt with a full stop", default_system_with_a_full_stop,
     "your default system prompt differs from the template's"),
    ("content stripped", stripped_content, "content unchanged (no strip)"),
    ("no newline after <|im_end|>", no_newline_after_end, "no newline after <|im_end|>"),
    ("turns joined with a newline", joined_with_newlines, "the last turn too"),
    ("newline-ended turns joined with a newline", joined_twice, "two newlines between turns"),
    ("newline before <|im_end|>", newline_before_end, "a newline before <|im_end|>"),
    ("generation prompt without its newline", generation_prompt_without_newline,
     "the generation prompt ends with a newline"),
    ("generation prompt always", generation_prompt_always, "only when add_generation_prompt=True"),
    ("generation prompt never", generation_prompt_never, "end with '<|im_start|>assistant\\n'"),
    ("generation prompt closed", generation_prompt_closed, "leave the assistant's turn open"),
    ("backslash-n copied from the stub", backslash_n_copied, "a backslash and an 'n'"),
    ("message.role", attribute_access, "format_chatml raised AttributeError: 'dict' object has no attribute 'role'"),
    ("<|endoftext|> closes the turns", closes_with_endoftext, "your turns end with '<|endoftext|>'"),
    ("the parts, not joined", returns_the_parts, "format_chatml returned list, not a string"),
]


# ------------------------------------------------------------------------------------------------ right answers
def plus_equals_loop(messages, add_generation_prompt=False):
    out = ""
    if len(messages) == 0 or messages[0]["role"] != "system":
        out += "<|im_start|>system\n" + DEFAULT_SYSTEM + "<|im_end|>\n"
    for msg in messages:
        out += "<|im_start|>" + msg["role"] + "\n" + msg["content"] + "<|im_end|>" + "\n"
    if add_generation_prompt:
        out += "<|im_start|>assistant\n"
    return out


def system_message_prepended_in_place(messages, add_generation_prompt=False):
    if not any(m["role"] == "system" for m in messages[:1]):
        messages.insert(0, {"role": "system", "content": DEFAULT_SYSTEM})
    body = "\n".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>" for m in messages) + "\n"
    return body + "<|im_start|>assistant\n" * bool(add_generation_prompt)


TURN = "<|im_start|>{role}\n{content}<|im_end|>\n"


def format_strings_and_a_buffer(messages, add_generation_prompt=False):
    buffer = io.StringIO()
    first_role = messages[0].get("role") if messages else None
    if first_role != "system":
        buffer.write(TURN.format(role="system", content=DEFAULT_SYSTEM))
    for message in messages:
        buffer.write(TURN.format(**message))
    if add_generation_prompt:
        buffer.write("<|im_start|>assistant\n")
    return buffer.getvalue()


def own_jinja_template(messages, add_generation_prompt=False):
    """A student who read the template in section 2 and wrote a Jinja one of their own."""
    from jinja2 import Template

    template = Template("{% if messages[0].role != 'system' %}<|im_start|>system\n" + DEFAULT_SYSTEM
                        + "<|im_end|>\n{% endif %}{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}"
                        "<|im_end|>\n{% endfor %}{% if gen %}<|im_start|>assistant\n{% endif %}",
                        keep_trailing_newline=True)
    return template.render(messages=messages, gen=add_generation_prompt)


RIGHT = [
    ("+= in a loop", plus_equals_loop),
    ("system message inserted, turns joined with '\\n'", system_message_prepended_in_place),
    ("str.format and a StringIO", format_strings_and_a_buffer),
    ("a Jinja template of one's own", own_jinja_template),
]


@pytest.mark.parametrize("name, student, words", WRONG, ids=[w[0] for w in WRONG])
def test_wrong_answer_is_named(tokenizer, name, student, words):
    with pytest.raises(TodoCheckError) as err:
        check_format_chatml(student, tokenizer)
    assert words in str(err.value) and "Fix:" in str(err.value), str(err.value)


@pytest.mark.parametrize("name, student", RIGHT, ids=[r[0] for r in RIGHT])
def test_right_answer_is_accepted(tokenizer, name, student, capsys):
    check_format_chatml(student, tokenizer)
    assert capsys.readouterr().out.startswith("✓ format_chatml reproduces apply_chat_template on 11 conversations")


@pytest.mark.parametrize("name, student, words", WRONG, ids=[w[0] for w in WRONG])
def test_every_failure_is_one_clean_line(tokenizer, name, student, words):
    """No crash from inside the student's code or the check: one TodoCheckError, one line, mistake and fix."""
    try:
        check_format_chatml(student, tokenizer)
    except Exception as err:  # noqa: BLE001  (the test is that nothing else escapes)
        assert type(err) is TodoCheckError, f"{type(err).__name__}: {err}"
        message = str(err)
        assert "\n" not in message and message.count("Fix:") == 1 and len(message) < 1000, message
    else:
        pytest.fail(f"{name} passed the check")


def test_a_missing_newline_is_not_blamed_on_the_default_system_prompt(tokenizer):
    with pytest.raises(TodoCheckError) as err:
        check_format_chatml(no_newline_after_role, tokenizer)
    assert "default" not in str(err.value), str(err.value)


def test_the_todo_hint_does_not_spell_the_turn():
    """The stub line a student copy shows is a nudge: the turn's layout is the lesson's text above it, not a line
    to paste (its '\\n' would be a backslash and an n)."""
    cells = json.loads((Path(__file__).parents[1] / "notebooks/03_chat_formatting.ipynb").read_text())["cells"]
    stub = next("".join(c["source"]) for c in cells if "def format_chatml" in "".join(c["source"]))
    assert "raise NotImplementedError(\"TODO:" in stub
    assert "<|im_start|>" not in stub and "<|im_end|>" not in stub and "\\n" not in stub, stub


def test_check_cost_is_small(tokenizer):
    start = time.perf_counter()
    check_format_chatml(plus_equals_loop, tokenizer)
    with pytest.raises(TodoCheckError):
        check_format_chatml(joined_twice, tokenizer)
    assert time.perf_counter() - start < 2
