"""Show tokens in a notebook: which ones the loss trains (green) and which are masked (grey, label -100).

    render_masked_tokens(tokenizer, input_ids, labels)      # an HTML block; displays itself in Jupyter
"""

from __future__ import annotations

import html
from typing import Any, Sequence

IGNORE_INDEX = -100  # label value the cross-entropy loss skips
TRAINED_STYLE = "background:#c3e6cb;color:#155724"  # green: this token's label is trained
MASKED_STYLE = "background:#e2e3e5;color:#6c757d"  # grey: label -100, no loss here


class HTMLText(str):
    """A string of HTML that Jupyter renders as HTML (and doctests print as text)."""

    def _repr_html_(self) -> str:
        return str(self)


def show_in_place(handle: Any, shown: Any) -> Any:
    """Show ``shown`` (an IPython display object) in the notebook, or replace what an earlier call showed under
    ``handle``; returns the handle for the next call (None outside an IPython shell, where nothing is shown).
    One output redrawn while training (``LiveCurves``' figure, ``LiveSamples``' table) instead of a new one each time::

        self._handle = show_in_place(self._handle, Image(data=png, format="png"))
    """
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:
        return None
    if get_ipython() is None:  # a plain script: nothing to show it in
        return None
    if handle is None:
        return display(shown, display_id=True)
    handle.update(shown)
    return handle


def token_pieces(tokenizer: Any, input_ids: Sequence[int]) -> list[str]:
    """The text of each token on its own (``tokenizer.decode([id])``), special tokens kept.

    >>> class Toy:
    ...     def decode(self, ids, skip_special_tokens=False):
    ...         return {5: "Hi", 6: " there", 7: "!"}[ids[0]]
    >>> token_pieces(Toy(), [5, 6, 7])
    ['Hi', ' there', '!']
    """
    return [tokenizer.decode([int(i)], skip_special_tokens=False) for i in input_ids]


def trained_spans(trained: Sequence[bool]) -> list[tuple[int, int]]:
    """Inclusive (first, last) token positions of each run of True values.

    >>> trained_spans([False, True, True, False, True])
    [(1, 2), (4, 4)]
    """
    spans: list[tuple[int, int]] = []
    start = None
    for i, flag in enumerate(list(trained) + [False]):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            spans.append((start, i - 1))
            start = None
    return spans


def render_masked_tokens(tokenizer: Any, input_ids: Sequence[int], labels: Sequence[int],
                         title: str | None = None) -> HTMLText:
    """HTML of the tokens with trained ones (label != -100) in green and masked ones in grey, plus a count.

    >>> class Toy:
    ...     def decode(self, ids, skip_special_tokens=False):
    ...         return {5: "Hi", 6: " there", 7: "!\\n"}[ids[0]]
    >>> print(render_masked_tokens(Toy(), [5, 6, 7], [-100, 6, 7]))  # doctest: +NORMALIZE_WHITESPACE
    <div style='font-family:monospace;font-size:12px;line-height:1.7'><div><b>2 of 3 tokens trained</b> (<span
    style='background:#c3e6cb;color:#155724'>trained</span> <span style='background:#e2e3e5;color:#6c757d'>masked,
    label -100</span>)</div><div style='white-space:pre-wrap'><span style='background:#e2e3e5;color:#6c757d'
    title='0: id 5'>Hi</span><span style='background:#c3e6cb;color:#155724' title='1: id 6'> there</span><span
    style='background:#c3e6cb;color:#155724' title='2: id 7'>!↵
    </span></div></div>
    """
    ids = [int(i) for i in input_ids]
    labs = [int(x) for x in labels]
    if len(ids) != len(labs):
        raise ValueError(f"{len(ids)} input ids but {len(labs)} labels; pass one label per token")
    pieces = token_pieces(tokenizer, ids)
    n_trained = sum(label != IGNORE_INDEX for label in labs)
    head = f"<b>{html.escape(title)}</b>: " if title else ""
    legend = (f"<div>{head}<b>{n_trained} of {len(ids)} tokens trained</b> (<span style='{TRAINED_STYLE}'>trained</span> "
              f"<span style='{MASKED_STYLE}'>masked, label -100</span>)</div>")
    spans = []
    for pos, (token_id, piece, label) in enumerate(zip(ids, pieces, labs)):
        style = MASKED_STYLE if label == IGNORE_INDEX else TRAINED_STYLE
        text = html.escape(piece).replace("\n", "↵\n")
        spans.append(f"<span style='{style}' title='{pos}: id {token_id}'>{text}</span>")
    return HTMLText("<div style='font-family:monospace;font-size:12px;line-height:1.7'>" + legend
                    + "<div style='white-space:pre-wrap'>" + "".join(spans) + "</div></div>")


def bracket_trained(pieces: Sequence[str], trained: Sequence[bool]) -> str:
    """Plain-text view for terminals and logs: ``[brackets]`` around each run of trained tokens.

    >>> bracket_trained(["Hi", " there", "!"], [False, True, True])
    'Hi[ there!]'
    """
    out, inside = [], False
    for piece, flag in zip(pieces, trained):
        if flag != inside:
            out.append("[" if flag else "]")
            inside = flag
        out.append(piece)
    return "".join(out) + ("]" if inside else "")


def token_roles(tokenizer: Any, input_ids: Sequence[int], start_token: str = "<|im_start|>") -> list[str]:
    """The ChatML turn each token belongs to ('system', 'user', 'assistant'; 'pad' for padding), headers included.

    >>> class Toy:  # 1 = <|im_start|>, 2 = <|im_end|>, 0 = pad, 9 = newline
    ...     pad_token_id = 0
    ...     def convert_tokens_to_ids(self, token): return 1
    ...     def decode(self, ids, skip_special_tokens=False):
    ...         return "".join({3: "user", 4: "ass", 5: "istant", 9: "\\n", 7: "Hi", 2: "<|im_end|>"}[i] for i in ids)
    >>> token_roles(Toy(), [1, 3, 9, 7, 2, 9, 1, 4, 5, 9, 7, 2, 0])
    ['user', 'user', 'user', 'user', 'user', 'user', 'assistant', 'assistant', 'assistant', 'assistant', 'assistant', 'assistant', 'pad']
    """
    ids = [int(i) for i in input_ids]
    start_id = tokenizer.convert_tokens_to_ids(start_token)
    pad_id = getattr(tokenizer, "pad_token_id", None)
    roles: list[str] = []
    role = "none"
    for i, token_id in enumerate(ids):
        if token_id == start_id:
            role = tokenizer.decode(ids[i + 1:i + 5]).split("\n")[0].strip() or "none"
        roles.append("pad" if token_id == pad_id and pad_id != start_id else role)
    return roles
