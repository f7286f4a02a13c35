"""Token-level helpers shared by the checks: which ids are assistant replies, segments of packed rows.

Rendering tokens (HTML or text) and ``IGNORE_INDEX`` are ``labhelpers.views.display``'s.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from labhelpers.data.turns import assistant_header_text, end_of_turn_id  # noqa: F401  (end_of_turn_id: re-exported)


def assistant_mask(ids: Sequence[int], header: Sequence[int], end_id: int) -> list[bool]:
    """Mark reply tokens: after each ``header`` (+1 newline token) up to and including ``end_id`` (or the end).

    >>> assistant_mask([5, 1, 7, 9, 4, 4, 2, 9, 1, 8, 9, 3, 2], header=[1, 7], end_id=2)
    [False, False, False, False, True, True, True, False, False, False, False, False, False]
    >>> assistant_mask([1, 7, 9, 4], header=[1, 7], end_id=2)  # cut by truncation: reply runs to the end
    [False, False, False, True]
    """
    mask = [False] * len(ids)
    n, i = len(header), 0
    while i <= len(ids) - n:
        if list(ids[i : i + n]) == list(header):
            j = i + n + 1  # skip the newline token after "assistant"
            while j < len(ids):
                mask[j] = True
                if ids[j] == end_id:
                    break
                j += 1
            i = j + 1
        else:
            i += 1
    return mask


def reply_ends(ids: Sequence[int], header: Sequence[int], end_id: int) -> list[int]:
    """Positions of the end-of-turn token that closes each reply.

    >>> reply_ends([1, 7, 9, 4, 2, 9, 1, 8, 3, 2, 1, 7, 9, 5, 2], header=[1, 7], end_id=2)
    [4, 14]
    """
    mask = assistant_mask(ids, header, end_id)
    return [i for i, (m, t) in enumerate(zip(mask, ids)) if m and t == end_id]


def segments(position_ids: Sequence[int] | None, length: int) -> list[tuple[int, int]]:
    """(start, end) of each packed example: a new one begins wherever position ids restart at 0.

    >>> segments([0, 1, 2, 0, 1, 0], 6)
    [(0, 3), (3, 5), (5, 6)]
    >>> segments(None, 4)
    [(0, 4)]
    """
    if position_ids is None:
        return [(0, length)]
    starts = [i for i, p in enumerate(position_ids[:length]) if int(p) == 0] or [0]
    if starts[0] != 0:
        starts.insert(0, 0)
    return [(s, e) for s, e in zip(starts, starts[1:] + [length])]


def assistant_header(tokenizer: Any) -> list[int]:
    """Token ids that open an assistant turn, without the newlines that close the header (ChatML:
    ``<|im_start|>assistant``), read from the chat template (`labhelpers.data.turns`)."""
    return tokenizer.encode(assistant_header_text(tokenizer).rstrip("\n"), add_special_tokens=False)


def split_at(ids: Sequence[int], start: Sequence[int]) -> list[tuple[int, int]]:
    """(start, end) pieces of ``ids`` cut before each occurrence of the ``start`` pattern (a conversation opening).

    >>> split_at([4, 2, 1, 9, 5, 1, 9, 6], [1, 9])
    [(0, 2), (2, 5), (5, 8)]
    """
    n = len(start)
    cuts = [i for i in range(1, len(ids) - n + 1) if list(ids[i : i + n]) == list(start)]
    bounds = [0] + cuts + [len(ids)]
    return [(s, e) for s, e in zip(bounds, bounds[1:]) if e > s]


def last_reply_split(ids: Sequence[int], header: Sequence[int], end_id: int) -> tuple[list[int], list[int]] | None:
    """``(prompt, reply)``: the tokens before the last assistant reply and the reply itself; None without a reply.

    >>> last_reply_split([5, 1, 7, 9, 4, 4, 2, 9, 1, 7, 9, 3, 2], header=[1, 7], end_id=2)
    ([5, 1, 7, 9, 4, 4, 2, 9, 1, 7, 9], [3, 2])
    >>> last_reply_split([5, 6], header=[1, 7], end_id=2) is None
    True
    """
    mask = assistant_mask(ids, header, end_id)
    if not any(mask):
        return None
    end = len(mask) - mask[::-1].index(True)
    start = end
    while start > 0 and mask[start - 1]:
        start -= 1
    return list(ids[:start]), list(ids[start:end])


def examples_in_batch(batch: dict[str, torch.Tensor], start: Sequence[int] | None = None) -> list[tuple[list[int], list[int]]]:
    """Split a collated batch into (input_ids, labels) per example: rows, minus padding, split at packing seams.

    ``start`` (the ids a conversation opens with) also splits rows packed without position ids ("wrapped") and
    drops a leading piece that does not open a conversation (the tail of one cut by the previous row).

    >>> b = {"input_ids": torch.tensor([[5, 6, 7, 5, 6]]), "labels": torch.tensor([[-100, 6, 7, -100, 6]]),
    ...      "position_ids": torch.tensor([[0, 1, 2, 0, 1]])}
    >>> examples_in_batch(b)
    [([5, 6, 7], [-100, 6, 7]), ([5, 6], [-100, 6])]
    """
    ids, labels = batch["input_ids"], batch["labels"]
    attention = batch.get("attention_mask")
    positions = batch.get("position_ids")
    out = []
    for r in range(ids.shape[0]):
        length = int(attention[r].sum()) if attention is not None else ids.shape[1]
        row_ids, row_labels = ids[r].tolist(), labels[r].tolist()
        if attention is not None and attention[r, :length].sum() != length:  # left padding
            keep = attention[r].bool()
            row_ids, row_labels = ids[r][keep].tolist(), labels[r][keep].tolist()
        pos = positions[r].tolist() if positions is not None and attention is None else None
        pieces = segments(pos, length)
        if start and pos is None:
            n = len(start)
            pieces = [(s, e) for s, e in split_at(row_ids[:length], start) if row_ids[s : s + n] == list(start)]
        for s, e in pieces:
            out.append((row_ids[s:e], row_labels[s:e]))
    return out


def rendered_ids(rendered: Any) -> list[int]:
    """Token ids of what ``apply_chat_template(..., tokenize=True)`` returned (a list, or a dict-like with input_ids).

    >>> rendered_ids({"input_ids": [1, 2]}), rendered_ids((3, 4))
    ([1, 2], [3, 4])
    """
    if isinstance(rendered, dict) or hasattr(rendered, "keys"):
        rendered = rendered["input_ids"]
    return list(rendered)
