"""Dataset checks that run before a trainer exists: what TRL would do with these rows at this ``max_length``.

    report = check_dataset(rows, tokenizer, SFTConfig(...))      # or DataCheckConfig(max_length=512)
    report                                                      # same Finding/SanityReport style as preflight

Token statistics come from a seeded random sample of ``sample_size`` rows (2,000 by default: tokenizing 50 MB of
chat takes minutes, a sample takes seconds and gives percentiles within a few tokens); row-level checks (columns,
conversation format, duplicates, eval overlap) look at every row. Catches, among others:

* a leftover string ``prompt`` column next to ``messages`` (the no_robots schema): TRL takes its prompt/completion
  path and fails with ``KeyError: 'completion'``;
* rows whose first reply starts after ``max_length``: TRL truncates them to prompt only and drops them (when every row
  goes, the dataloader is empty and torch fails with ``num_samples=0``); the fix gives a ``max_length`` above the current;
* a chat template that fails to render, or lacks ``{% generation %}`` markers for ``assistant_only_loss``;
* duplicated conversations, eval rows also in train, one reply repeated across many rows.
"""

from __future__ import annotations

import math
import random
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any, Sequence

from labhelpers.sanity.report import Finding, SanityReport

SAMPLE_ROWS = 2000  # rows tokenized for length statistics (seeded random sample when there are more)
LENGTH_MULTIPLE = 64  # suggested max_length values are rounded up to a multiple of this
DUPLICATE_WARN_SHARE = 0.01  # duplicated conversations above this share of rows: warn
REPEATED_REPLY_SHARE = 0.2  # one final reply shared by more than this share of rows (and >= 10 rows): warn
_GENERATION = re.compile(r"\{%-?\s*generation\s*-?%\}")


@dataclass(frozen=True)
class DataCheckConfig:
    """The SFTConfig fields `check_dataset` reads, for use before an SFTConfig exists (an SFTConfig works too)."""

    max_length: int | None = 1024  # tokens per row after truncation (TRL's default); None = never truncate
    packing: bool = False  # packed rows are cut at max_length, not dropped
    assistant_only_loss: bool = True  # needs {% generation %} markers in the chat template
    truncation_mode: str = "keep_start"  # TRL's default: keep the first max_length tokens


def _get(config: Any, name: str, default: Any) -> Any:
    if isinstance(config, dict):
        return config.get(name, default)
    return getattr(config, name, default)


def _columns(rows: Any) -> list[str]:
    names = getattr(rows, "column_names", None)
    if names is not None:
        return list(names)
    seen: dict[str, None] = {}
    for row in rows:
        if isinstance(row, dict):
            seen.update(dict.fromkeys(row))
    return list(seen)


def _messages(rows: Any) -> list[Any]:
    if hasattr(rows, "column_names"):
        return list(rows["messages"]) if "messages" in rows.column_names else []
    return [row.get("messages") if isinstance(row, dict) else None for row in rows]


# ------------------------------------------------------------------------------------------ pure helpers
def round_up(n: int, multiple: int = LENGTH_MULTIPLE) -> int:
    """``n`` rounded up to a multiple of ``multiple``.

    >>> round_up(130), round_up(128), round_up(1)
    (192, 128, 64)
    """
    return max(multiple, math.ceil(n / multiple) * multiple)


def percentile(values: Sequence[int], q: float) -> int:
    """The nearest-rank ``q`` percentile (0 < q <= 1) of ``values``.

    >>> percentile(list(range(1, 101)), 0.95), percentile([7], 0.95)
    (95, 7)
    """
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def suggest_max_length(lengths: Sequence[int], current: int, q: float = 0.95) -> int:
    """A max_length that keeps ``q`` of rows whole: the percentile rounded up, and always above ``current``.

    >>> suggest_max_length([100, 300, 700, 900], 256)
    960
    >>> suggest_max_length([100, 120, 300], 256)  # the percentile is not above 256: never suggest <= current
    320
    """
    return max(round_up(percentile(lengths, q)), round_up(current + 1))


def length_counts(lengths: Sequence[int], reply_starts: Sequence[int | None], reply_ends: Sequence[int | None],
                  max_length: int, packing: bool = False, truncation_mode: str = "keep_start") -> dict[str, int]:
    """What TRL does to each row at ``max_length``: counts of rows truncated, dropped, and with the final stop cut.

    ``reply_starts``: index of each row's first trained token; ``reply_ends``: index of its last one (the final stop
    token). Without packing TRL truncates, then drops rows left with no trained token; packing only cuts.

    >>> length_counts([100, 300, 500], [60, 200, 300], [99, 299, 499], 256)
    {'rows': 3, 'truncated': 2, 'dropped': 1, 'stop_cut': 2}
    >>> length_counts([100, 300], [60, 280], [99, 299], 256, truncation_mode="keep_end")
    {'rows': 2, 'truncated': 1, 'dropped': 0, 'stop_cut': 0}
    """
    truncated = dropped = stop_cut = 0
    for n, start, end in zip(lengths, reply_starts, reply_ends):
        if n <= max_length:
            continue
        truncated += 1
        if truncation_mode == "keep_end":
            first_kept = n - max_length
            dropped += end is not None and end < first_kept and not packing
            continue
        stop_cut += end is not None and end >= max_length
        dropped += start is not None and start >= max_length and not packing
    return {"rows": len(lengths), "truncated": truncated, "dropped": dropped, "stop_cut": stop_cut}


# ------------------------------------------------------------------------------------------------ checks
def column_findings(columns: Sequence[str], n_rows: int, prompt_is_text: bool) -> list[Finding]:
    """A ``prompt`` (or ``completion``) column next to ``messages`` sends TRL down its prompt/completion path.

    >>> [(f.check, f.status) for f in column_findings(["prompt", "prompt_id", "messages"], 5, True)]
    [('prompt_column', 'fail')]
    >>> column_findings(["messages"], 5, False)[0].status
    'pass'
    """
    cols = set(columns)
    if "messages" in cols and "prompt" in cols:
        extra = "" if "completion" in cols else (" and fails with KeyError: 'completion'" if prompt_is_text else "")
        return [Finding("prompt_column", "fail",
                        f"a {'string ' if prompt_is_text else ''}'prompt' column next to 'messages' (columns {sorted(cols)}): "
                        f"TRL sees 'prompt' and takes its prompt/completion path instead of the conversation{extra}",
                        "keep only 'messages': ds = ds.select_columns(['messages']) (or rows = [{'messages': r['messages']} "
                        "for r in rows]); labhelpers.sanity.protocol.build_trainer does this for you")]
    if "messages" in cols and "completion" in cols:
        return [Finding("prompt_column", "fail", f"a 'completion' column next to 'messages' (columns {sorted(cols)})",
                        "keep only 'messages': ds = ds.select_columns(['messages'])")]
    if "messages" not in cols:
        return [Finding("prompt_column", "warn", f"no 'messages' column (columns {sorted(cols)}): not a conversational dataset",
                        "convert the rows with labhelpers.data.load_rows / load_chat_dataset first")]
    dropped = sorted(cols - {"messages"})
    note = f" (other columns {dropped} are not used by TRL)" if dropped else ""
    return [Finding("prompt_column", "pass", f"conversations in 'messages' for all {n_rows:,} rows{note}", "")]


def format_findings(rows: Any) -> list[Finding]:
    """Every row a valid conversation (the same checks and messages as labhelpers.data.check_row)."""
    from labhelpers.data import check_row, format_problems

    is_dataset = hasattr(rows, "column_names")
    problems = [p for i, row in enumerate(rows) if (p := check_row(row, i, tolerate_null_keys=is_dataset))]
    if not problems:
        return [Finding("conversation_format", "pass", f"all {len(rows):,} rows are user/assistant conversations "
                        "ending in an assistant reply", "")]
    lines = format_problems(problems, "rows", limit=3).splitlines()
    return [Finding("conversation_format", "fail", "; ".join(line.strip() for line in lines[:-1]),
                    "fix or drop the rows listed (labhelpers.data.validate_conversations(rows, drop_invalid=True))")]


def _key(messages: Any) -> Any:
    try:
        return tuple((m.get("role"), m.get("content")) for m in messages)
    except (AttributeError, TypeError):
        return repr(messages)


def duplicate_findings(train: Sequence[Any], eval_conversations: Sequence[Any] | None = None) -> list[Finding]:
    """Duplicated train conversations, eval conversations also in train, one final reply repeated across rows.

    >>> u, a = {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}
    >>> [(f.check, f.status) for f in duplicate_findings([[u, a], [u, a]], [[u, a]])]
    [('train_duplicates', 'warn'), ('eval_overlap', 'fail')]
    """
    keys = [_key(m) for m in train]
    counts = Counter(keys)
    dupes = len(keys) - len(counts)
    bad = dupes > DUPLICATE_WARN_SHARE * len(keys)
    out = [Finding("train_duplicates", "warn" if bad else "pass",
                   f"{dupes:,} duplicate conversations among {len(keys):,} train rows",
                   "deduplicate the train split (duplicates are memorised and skew the loss)" if bad else "")]
    replies = Counter(k[-1][1] for k in keys if isinstance(k, tuple) and k)
    if replies and len(keys) >= 10:
        reply, n = replies.most_common(1)[0]
        distinct_convs = len(counts)
        if n > REPEATED_REPLY_SHARE * len(keys) and n > 1 and distinct_convs > 1:
            out.append(Finding("repeated_replies", "warn",
                               f"{n:,} of {len(keys):,} rows ({n / len(keys):.0%}) end with the same reply {str(reply)[:60]!r}",
                               "check the conversion (replies misaligned or a placeholder answer?): the model will "
                               "learn to give that reply to everything"))
    if eval_conversations:
        train_set = set(counts)
        eval_keys = [_key(m) for m in eval_conversations]
        overlap = sum(k in train_set for k in eval_keys)
        share = overlap / len(eval_keys)
        status = "fail" if share > 0.1 else "warn" if overlap else "pass"
        out.append(Finding("eval_overlap", status,
                           f"{overlap:,} of {len(eval_keys):,} eval conversations ({share:.0%}) also in train",
                           "split before any augmentation and deduplicate across splits; eval loss is optimistic"
                           if overlap else ""))
    return out


def template_findings(tokenizer: Any, assistant_only_loss: bool) -> list[Finding]:
    """The chat template exists and marks replies with ``{% generation %}`` when ``assistant_only_loss`` is on."""
    template = getattr(tokenizer, "chat_template", None)
    if not template:
        return [Finding("chat_template", "fail", "the tokenizer has no chat template: conversations cannot be rendered",
                        "use an Instruct/chat model or pass a template (--chat-template FILE)")]
    if assistant_only_loss and not _GENERATION.search(template if isinstance(template, str) else str(template)):
        return [Finding("chat_template", "warn",
                        "assistant_only_loss=True but the chat template has no {% generation %} markers: TRL swaps in "
                        "its own training template for models it knows and fails for others",
                        "wrap assistant content and its end-of-turn token in {% generation %}...{% endgeneration %} "
                        "(labhelpers.chat.training_chat_template does this for ChatML)")]
    return [Finding("chat_template", "pass", "chat template marks assistant replies with {% generation %}", "")]


def _sample_indices(n: int, size: int, seed: int) -> list[int]:
    if n <= size:
        return list(range(n))
    return sorted(random.Random(seed).sample(range(n), size))


def token_positions(conversations: Sequence[Any], tokenizer: Any) -> tuple[list[int], list[int | None], list[int | None], list[str]]:
    """(lengths, first trained index, last trained index, render errors) of conversations rendered for training."""
    from labhelpers.sanity.tokens import assistant_header, assistant_mask, end_of_turn_id

    header, end_id = assistant_header(tokenizer), end_of_turn_id(tokenizer)
    texts, errors = [], []
    for conv in conversations:
        try:
            texts.append(tokenizer.apply_chat_template(conv, tokenize=False))
        except Exception as err:  # jinja2 errors, templates that raise (e.g. "System role not supported")
            errors.append(f"{type(err).__name__}: {str(err).splitlines()[0][:160] if str(err) else ''}")
    ids_list = tokenizer(texts, add_special_tokens=False)["input_ids"] if texts else []
    lengths, starts, ends = [], [], []
    for ids in ids_list:
        mask = assistant_mask(ids, header, end_id)
        lengths.append(len(ids))
        first = mask.index(True) if True in mask else None
        starts.append(first)
        ends.append(len(mask) - 1 - mask[::-1].index(True) if first is not None else None)
    return lengths, starts, ends, errors


def length_findings(lengths: Sequence[int], starts: Sequence[int | None], ends: Sequence[int | None], n_rows: int,
                    max_length: int | None, packing: bool = False, truncation_mode: str = "keep_start",
                    sampled: str = "") -> list[Finding]:
    """Rows TRL would truncate or drop at ``max_length``; a fail when every row (or > 20% of stop tokens) would go.

    >>> f = length_findings([400, 500], [300, 420], [399, 499], 2, 256)[0]
    >>> f.status, f.message.split(":")[0], "max_length=512" in f.fix
    ('fail', 'all 2 rows would be dropped by TRL', True)
    """
    if not lengths:
        return []
    p50, p95, longest = percentile(lengths, 0.5), percentile(lengths, 0.95), max(lengths)
    stats = f"tokens per row: median {p50}, 95th percentile {p95}, max {longest}{sampled}"
    if not max_length:
        return [Finding("rows_too_long", "warn", f"max_length is None: rows are never truncated; {stats}",
                        f"set max_length (e.g. {round_up(p95)}, the 95th percentile rounded up)")]
    c = length_counts(lengths, starts, ends, max_length, packing, truncation_mode)
    rows = c["rows"]
    suggestion = suggest_max_length(lengths, max_length)
    fix = (f"set max_length={suggestion} (the 95th-percentile length {p95} rounded up to {LENGTH_MULTIPLE}, above the "
           f"current {max_length}) or drop/shorten the long rows")
    if not packing and c["dropped"] == rows:
        return [Finding("rows_too_long", "fail",
                        f"all {rows:,} rows would be dropped by TRL: each one's first reply starts after "
                        f"max_length={max_length} tokens, so truncation leaves only prompt tokens (labels all -100) and "
                        f"the train set is empty (torch: num_samples=0); {stats}", fix)]
    share = c["dropped"] / rows
    est = f" (~{round(share * n_rows):,} of all {n_rows:,})" if sampled and c["dropped"] else ""
    what = "cut by packing" if packing else "truncated"
    msg = (f"{c['truncated']:,} of {rows:,} rows longer than max_length={max_length} ({what}); final stop token cut "
           f"in {c['stop_cut']:,}; {c['dropped']:,} would be dropped{est} (first reply starts after max_length); {stats}")
    status = "fail" if c["stop_cut"] > 0.2 * rows or share > 0.2 else "warn" if c["truncated"] else "pass"
    return [Finding("rows_too_long", status, msg, fix if status != "pass" else "")]


def check_dataset(rows: Any, tokenizer: Any, config: Any = None, *, eval_rows: Any = None,
                  sample_size: int = SAMPLE_ROWS, seed: int = 0) -> SanityReport:
    """Dataset-level findings before a trainer exists: columns, conversation format, template, lengths, duplicates.

    ``rows``: a list of dicts or a ``datasets.Dataset`` with ``messages``; ``config``: an SFTConfig, a
    `DataCheckConfig` or a dict (max_length, packing, assistant_only_loss, truncation_mode); ``eval_rows``: the eval
    split, for the overlap check. Token statistics use a seeded sample of ``sample_size`` rows (said in the findings).
    """
    config = DataCheckConfig() if config is None else config
    max_length = _get(config, "max_length", 1024)
    packing = bool(_get(config, "packing", False))
    assistant_only = bool(_get(config, "assistant_only_loss", True))
    truncation_mode = _get(config, "truncation_mode", "keep_start") or "keep_start"
    n = len(rows)
    report = SanityReport(title="dataset check")
    if n == 0:
        report.extend([Finding("rows", "fail", "no rows", "add conversations to the dataset")])
        return report
    columns = _columns(rows)
    first = rows[0] if not hasattr(rows, "column_names") else {c: rows[0][c] for c in columns}
    report.extend(column_findings(columns, n, isinstance(first.get("prompt"), str)))
    format_report = format_findings(rows)
    report.extend(format_report)
    conversations = _messages(rows)
    report.extend(template_findings(tokenizer, assistant_only))
    valid = format_report[0].status == "pass"
    if valid and tokenizer is not None and getattr(tokenizer, "chat_template", None):
        picks = _sample_indices(n, sample_size, seed)
        sampled = "" if len(picks) == n else f" (from a random sample of {len(picks):,} of {n:,} rows, seed {seed})"
        lengths, starts, ends, errors = token_positions([conversations[i] for i in picks], tokenizer)
        if errors:
            report.extend([Finding("chat_template", "fail",
                                   f"the chat template failed on {len(errors):,} of {len(picks):,} rows{sampled}: {errors[0]}",
                                   "fix the template (--chat-template) or the rows it rejects (e.g. a system turn it "
                                   "does not support)")])
        report.extend(length_findings(lengths, starts, ends, n, max_length, packing, truncation_mode, sampled))
        report.extras["lengths"] = lengths
        report.extras["sampled_rows"] = len(picks)
        if lengths and not packing and max_length:
            counts = length_counts(lengths, starts, ends, max_length, packing, truncation_mode)
            report.extras["dropped_share"] = counts["dropped"] / counts["rows"]
    if valid:
        report.extend(duplicate_findings(conversations, _messages(eval_rows) if eval_rows is not None else None))
    return report
