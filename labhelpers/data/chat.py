"""Chat templates: the training twin of a model's template, with `{% generation %}` markers.

TRL's ``assistant_only_loss=True`` asks the tokenizer for an assistant-token mask, which Jinja
templates only produce inside ``{% generation %}…{% endgeneration %}``. Stock templates (SmolLM2's
included) have no such markers, so TRL refuses them. :func:`training_chat_template` rewrites a
ChatML template so that each assistant reply *and its* ``<|im_end|>`` sit inside the markers while
the rendered text stays byte-identical; :func:`template_mismatches` proves it.
"""

from __future__ import annotations

import re
from typing import Any, Sequence

# The per-message line of a ChatML template, as SmolLM2 (and many HF ChatML models) write it. Inside
# the Jinja string literals the newline may be a real newline or the two characters backslash-n.
CHATML_MESSAGE_PATTERN = re.compile(
    r"\{\{ ?'<\|im_start\|>' \+ message\['role'\] \+ '(?P<nl>\n|\\n)' \+ message\['content'\] "
    r"\+ '<\|im_end\|>' \+ '(?P=nl)' ?\}\}"
)
CHATML_ASSISTANT_WITH_MARKERS = (
    "{{% if message['role'] == 'assistant' %}}"
    "{{{{ '<|im_start|>assistant{nl}' }}}}"
    "{{% generation %}}{{{{ message['content'] + '<|im_end|>' }}}}{{% endgeneration %}}"
    "{{{{ '{nl}' }}}}"
    "{{% else %}}{line}{{% endif %}}"
)

# Conversations that exercise every branch of a chat template: with and without a system prompt,
# one and several turns, and content with newlines and template-looking text.
PROBE_CONVERSATIONS: tuple[tuple[dict[str, str], ...], ...] = (
    ({"role": "user", "content": "Hi!"}, {"role": "assistant", "content": "Hello."}),
    (
        {"role": "system", "content": "You answer in one word."},
        {"role": "user", "content": "Colour of the sky?"},
        {"role": "assistant", "content": "Blue."},
    ),
    (
        {"role": "user", "content": "Line one\nline two"},
        {"role": "assistant", "content": "Answer: yes\n- a\n- b\n- c\nConfidence: high"},
        {"role": "user", "content": "And {{ braces }} or <|im_start|>?"},
        {"role": "assistant", "content": "Still fine."},
    ),
    (
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "One"},
        {"role": "assistant", "content": "Two"},
        {"role": "user", "content": "Three"},
        {"role": "assistant", "content": "Four"},
    ),
)


class TemplateError(ValueError):
    """The tokenizer's chat template cannot be given generation markers safely."""


def has_generation_markers(template: str | None) -> bool:
    """True when a Jinja chat template marks assistant output with ``{% generation %}``.

    >>> has_generation_markers("{% generation %}{{ m }}{% endgeneration %}")
    True
    >>> has_generation_markers("{{ m }}")
    False
    """
    return bool(template) and "{% generation %}" in template and "{% endgeneration %}" in template


def training_chat_template(template: str) -> str:
    """Return ``template`` with each assistant reply and its ``<|im_end|>`` wrapped in generation markers.

    >>> line = "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"
    >>> marked = training_chat_template("{% for message in messages %}" + line + "{% endfor %}")
    >>> has_generation_markers(marked), marked.count(line)
    (True, 1)
    """
    if has_generation_markers(template):
        return template
    matches = list(CHATML_MESSAGE_PATTERN.finditer(template))
    if len(matches) != 1:
        raise TemplateError(
            "this chat template is not the ChatML form labhelpers knows how to mark; write a training "
            "template with {% generation %}…{% endgeneration %} around each assistant reply and its "
            "end-of-turn token, then pass it as SFTConfig(chat_template_path=...)"
        )
    line = matches[0]
    marked = CHATML_ASSISTANT_WITH_MARKERS.format(nl=line["nl"], line=line[0])
    return template[: line.start()] + marked + template[line.end() :]


def template_mismatches(
    tokenizer: Any,
    stock_template: str,
    training_template: str,
    conversations: Sequence[Sequence[dict[str, str]]] = PROBE_CONVERSATIONS,
) -> list[str]:
    """Describe every conversation the two templates render differently (empty list: identical)."""
    problems = []
    for index, conversation in enumerate(conversations):
        for add_generation_prompt in (False, True):
            messages = list(conversation[:-1]) if add_generation_prompt else list(conversation)
            kwargs = dict(tokenize=False, add_generation_prompt=add_generation_prompt)
            stock = tokenizer.apply_chat_template(messages, chat_template=stock_template, **kwargs)
            training = tokenizer.apply_chat_template(messages, chat_template=training_template, **kwargs)
            if stock != training:
                problems.append(
                    f"conversation {index} (add_generation_prompt={add_generation_prompt}): "
                    f"stock {stock!r} != training {training!r}"
                )
    return problems
