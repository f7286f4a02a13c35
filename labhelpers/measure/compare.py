"""Before/after comparison: save the base model's generations once (notebook 02), read them back later.

``<run>/baseline/generations.json`` holds one JSON object with these keys (``GENERATION_KEYS``):

* ``prompts``: list of str, the user messages, in order (the classic ones first, then held-out test prompts)
* ``outputs``: list of str, the decoded new tokens of each reply (special tokens skipped)
* ``max_new_tokens``: int, the generation budget used for every prompt
* ``n_new_tokens``: list of int, tokens in each reply (re-tokenized from the text unless given)
* ``hit_limit``: list of bool, the reply used the whole budget (it was cut, not finished)
* ``house_format``: list of bool, the reply follows the house format (``labhelpers.measure.behaviour``)
* ``score``: float, share of replies in the house format (0.0 .. 1.0)
* ``hit_limit_rate``: float, share of replies that hit ``max_new_tokens``
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

from labhelpers.measure.behaviour import follows_house_format

GENERATION_KEYS = ("prompts", "outputs", "max_new_tokens", "n_new_tokens", "hit_limit", "house_format", "score",
                   "hit_limit_rate")


def new_token_counts(outputs: Sequence[str], tokenizer: Any, n_new_tokens: Sequence[int] | None = None) -> list[int]:
    """Tokens in each reply: ``n_new_tokens`` when given (exact), else the replies re-tokenized.

    A reply hit the generation budget when its count is ``>= max_new_tokens``.

    >>> class Words:
    ...     def __call__(self, text, add_special_tokens=False):
    ...         return {"input_ids": text.split()}
    >>> new_token_counts(["a b c", "d"], Words()), new_token_counts(["a b c"], Words(), [4])
    ([3, 1], [4])
    """
    if n_new_tokens is None:
        return [len(tokenizer(text, add_special_tokens=False)["input_ids"]) for text in outputs]
    if len(n_new_tokens) != len(outputs):
        raise ValueError(f"{len(n_new_tokens)} token counts for {len(outputs)} outputs; pass one count per output")
    return [int(n) for n in n_new_tokens]


def generation_record(prompts: Sequence[str], outputs: Sequence[str], max_new_tokens: int, tokenizer: Any,
                      n_new_tokens: Sequence[int] | None = None) -> dict[str, Any]:
    """The dict :func:`save_generations` writes: texts, per-reply flags and the two rates.

    >>> class Words:  # a toy tokenizer: one token per word
    ...     def __call__(self, text, add_special_tokens=False):
    ...         return {"input_ids": text.split()}
    >>> r = generation_record(["q1", "q2"], ["a b c", "Answer: x\\n- a\\n- b\\n- c\\nConfidence: low"], 3, Words())
    >>> r["n_new_tokens"], r["hit_limit"], r["house_format"], r["score"], r["hit_limit_rate"]
    ([3, 10], [True, True], [False, True], 0.5, 1.0)
    """
    if len(prompts) != len(outputs):
        raise ValueError(f"{len(prompts)} prompts but {len(outputs)} outputs; pass one output per prompt, in order")
    n_new_tokens = new_token_counts(outputs, tokenizer, n_new_tokens)
    hit = [n >= max_new_tokens for n in n_new_tokens]
    house = [follows_house_format(text) for text in outputs]
    n = max(len(outputs), 1)
    return {"prompts": list(prompts), "outputs": list(outputs), "max_new_tokens": int(max_new_tokens),
            "n_new_tokens": n_new_tokens, "hit_limit": hit, "house_format": house,
            "score": sum(house) / n, "hit_limit_rate": sum(hit) / n}


def save_generations(path: str | Path, prompts: Sequence[str], outputs: Sequence[str], max_new_tokens: int,
                     tokenizer: Any, n_new_tokens: Sequence[int] | None = None) -> dict[str, Any]:
    """Write prompts, outputs and their flags/scores (keys in the module docstring) to ``path``; return the dict.

    ``n_new_tokens`` (tokens generated per reply) makes ``hit_limit`` exact; without it the replies are
    re-tokenized, which can differ by a token when the model produced an unusual tokenization.

    >>> import tempfile
    >>> class Words:
    ...     def __call__(self, text, add_special_tokens=False):
    ...         return {"input_ids": text.split()}
    >>> path = Path(tempfile.mkdtemp()) / "baseline" / "generations.json"
    >>> saved = save_generations(path, ["Hi?"], ["Hello there"], 96, Words())
    >>> load_generations(path) == saved, saved["hit_limit"]
    (True, [False])
    """
    record = generation_record(prompts, outputs, max_new_tokens, tokenizer, n_new_tokens)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(path)
    return record


def load_generations(path: str | Path) -> dict[str, Any]:
    """Read a file written by :func:`save_generations`; a clear error when it is missing or malformed.

    >>> load_generations("/nonexistent/baseline/generations.json")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    FileNotFoundError: /nonexistent/baseline/generations.json: no saved generations; run notebook 02 ...
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no saved generations; run notebook 02 (02_baseline_generation.ipynb) "
                                "with the same run folder first")
    record = json.loads(path.read_text(encoding="utf-8"))
    missing = [key for key in GENERATION_KEYS if key not in record]
    if missing:
        raise ValueError(f"{path}: missing key(s) {missing}; re-run notebook 02 to rewrite it with save_generations()")
    lengths = {key: len(record[key]) for key in ("prompts", "outputs", "n_new_tokens", "hit_limit", "house_format")}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"{path}: lists of different lengths {lengths}; re-run notebook 02")
    return record
