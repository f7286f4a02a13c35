"""Which tokens open and close a turn, read from the tokenizer's own chat template, not from ChatML literals, so
another chat model's template (Llama 3's ``<|eot_id|>``, Gemma's ``<end_of_turn>``) works wherever the lab asks.

    end_of_turn_id(tokenizer)        # the token every assistant reply ends with: generation must stop on it
    assistant_header_text(tokenizer) # what the template writes before a reply ("<|im_start|>assistant\\n")

The template is rendered once per question on a probe conversation; a tokenizer without a template (a toy, an old
base model) falls back to its EOS token.
"""

from __future__ import annotations

from typing import Any

_PROBE_REPLY = "Q7XJ probe reply"
_PROBE_USER = [{"role": "user", "content": "Hi"}]


def _special_texts(tokenizer: Any) -> list[str]:
    """The tokenizer's special and added token texts, longest first (so "<|im_end|>" beats "<|")."""
    texts = set(getattr(tokenizer, "all_special_tokens", None) or [])
    added = getattr(tokenizer, "get_added_vocab", None)
    if callable(added):
        texts |= set(added())
    return sorted((t for t in texts if t), key=len, reverse=True)


def _render(tokenizer: Any, conversation: list[dict[str, str]], generation_prompt: bool = False) -> str | None:
    """The template's text for ``conversation``; None when the tokenizer has no usable chat template."""
    if not getattr(tokenizer, "chat_template", None) or not hasattr(tokenizer, "apply_chat_template"):
        return None
    try:
        return tokenizer.apply_chat_template(conversation, tokenize=False, add_generation_prompt=generation_prompt)
    except Exception:  # noqa: BLE001 (a template that cannot render this probe: fall back to EOS)
        return None


def end_of_turn_token(tokenizer: Any) -> str:
    """The special token the chat template writes right after an assistant reply; the EOS token without a template.

    >>> class Toy:
    ...     eos_token = "</s>"
    >>> end_of_turn_token(Toy())
    '</s>'
    """
    rendered = _render(tokenizer, _PROBE_USER + [{"role": "assistant", "content": _PROBE_REPLY}])
    if rendered is not None and _PROBE_REPLY in rendered:
        after = rendered[rendered.rindex(_PROBE_REPLY) + len(_PROBE_REPLY):]
        for text in _special_texts(tokenizer):
            if after.startswith(text):
                return text
    eos = getattr(tokenizer, "eos_token", None)
    if not eos and getattr(tokenizer, "eos_token_id", None) is not None and hasattr(tokenizer, "convert_ids_to_tokens"):
        eos = tokenizer.convert_ids_to_tokens(tokenizer.eos_token_id)
    if not eos:
        raise ValueError("the tokenizer has no chat template and no eos_token, so no token ends a reply; load the "
                         "chat model's own tokenizer (AutoTokenizer.from_pretrained(model_id))")
    return eos


def end_of_turn_id(tokenizer: Any) -> int:
    """Id of `end_of_turn_token`: what every reply is trained to end with and generation must stop on.

    >>> class Toy:
    ...     eos_token = "<|im_end|>"
    ...     def convert_tokens_to_ids(self, token): return {"<|im_end|>": 2}[token]
    >>> end_of_turn_id(Toy())
    2
    """
    return int(tokenizer.convert_tokens_to_ids(end_of_turn_token(tokenizer)))


def assistant_header_text(tokenizer: Any) -> str:
    """What the template writes before an assistant reply (its generation prompt); ChatML's
    ``"<|im_start|>assistant\\n"`` without a template.

    >>> assistant_header_text(object())
    '<|im_start|>assistant\\n'
    """
    with_prompt = _render(tokenizer, _PROBE_USER, generation_prompt=True)
    without = _render(tokenizer, _PROBE_USER)
    if with_prompt is not None and without is not None and with_prompt.startswith(without) and with_prompt != without:
        return with_prompt[len(without):]
    return "<|im_start|>assistant\n"


def turn_start_token(tokenizer: Any) -> str | None:
    """The special token that opens every turn (ChatML ``<|im_start|>``), or None when turns open with plain text.

    >>> turn_start_token(object())
    '<|im_start|>'
    """
    header = assistant_header_text(tokenizer)
    specials = _special_texts(tokenizer) or ["<|im_start|>"]
    return next((text for text in specials if header.startswith(text)), None)
