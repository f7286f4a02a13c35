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
* duplicated conversations, eval rows also in train (exact, and near: equal once normalised, see `normalise`), one
  reply repeated across many rows;
* message content carrying the tokenizer's own special-token text (a pasted ``<|im_end|>``): tokenized, it becomes
  the control token itself, a stop inside a reply or a forged turn (`special_token_findings`).
"""

from __future__ import annotations

import hashlib
import math
import random
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

from labhelpers.sanity.report import Finding, SanityReport
from labhelpers.base.text import NORMALISATION, normalise

SAMPLE_ROWS = 2000  # rows tokenized for length statistics (seeded random sample when there are more)
LENGTH_MULTIPLE = 64  # suggested max_length values are rounded up to a multiple of this
DUPLICATE_WARN_SHARE = 0.01  # duplicated conversations above this share of rows: warn
REPEATED_REPLY_SHARE = 0.2  # one final reply shared by more than this share of rows (and >= 10 rows): warn
_GENERATION = re.compile(r"\{%-?\s*generation\s*-?%\}")
SPECIAL_LISTED = 3  # rows named in the special-token finding
# what each kind of special token does inside message content; the first three end or forge a turn: a fail
STRUCTURAL = ("end of turn", "turn start", "end of text")


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
                        "convert the rows with labhelpers.data.datasets.load_rows / load_chat_dataset first")]
    dropped = sorted(cols - {"messages"})
    note = f" (other columns {dropped} are not used by TRL)" if dropped else ""
    return [Finding("prompt_column", "pass", f"conversations in 'messages' for all {n_rows:,} rows{note}", "")]


def format_findings(rows: Any) -> list[Finding]:
    """Every row a valid conversation (the same checks and messages as labhelpers.data.datasets.check_row)."""
    from labhelpers.data.datasets import check_row, every_row_invalid, format_problems

    is_dataset = hasattr(rows, "column_names")
    problems = [p for i, row in enumerate(rows) if (p := check_row(row, i, tolerate_null_keys=is_dataset))]
    if not problems:
        return [Finding("conversation_format", "pass", f"all {len(rows):,} rows are user/assistant conversations "
                        "ending in an assistant reply", "")]
    lines = format_problems(problems, "rows", limit=3, n_rows=len(rows)).splitlines()
    if every_row_invalid(problems, len(rows)):
        fix = lines[-1].replace("Every row is invalid, so dropping", "every row is invalid: dropping")
    else:
        fix = "fix or drop the rows listed (labhelpers.data.datasets.validate_conversations(rows, drop_invalid=True))"
    return [Finding("conversation_format", "fail", "; ".join(line.strip() for line in lines[:-1]), fix)]


def _key(messages: Any) -> Any:
    try:
        return tuple((m.get("role"), m.get("content")) for m in messages)
    except (AttributeError, TypeError):
        return repr(messages)


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: [{"type": "text", "text": ...}]
        return "\n".join(str(p.get("text", "")) if isinstance(p, dict) else str(p) for p in content)
    return "" if content is None else str(content)


def near_key(conversation: Any) -> bytes:
    """A 16-byte hash of the conversation's roles and `normalise`-d contents (a pre-rendered text: of the text).

    >>> u = lambda c: [{"role": "user", "content": c}, {"role": "assistant", "content": "Fine."}]
    >>> near_key(u("How are you?")) == near_key(u("how are  you")), near_key(u("How are you?")) == near_key(u("Who are you?"))
    (True, False)
    """
    if isinstance(conversation, str):
        text = normalise(conversation)
    else:
        try:
            text = "\x1e".join(f"{m.get('role')}\x1f{normalise(_content_text(m.get('content')))}" for m in conversation)
        except (AttributeError, TypeError):
            text = repr(conversation)
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


def overlap_counts(train_exact: Sequence[Any], train_near: Sequence[bytes], eval_exact: Sequence[Any] | None = None,
                   eval_near: Sequence[bytes] | None = None) -> dict[str, int]:
    """Duplicates within train and eval rows also in train, exact and near (equal only once normalised) counted apart.

    ``*_exact``: any hashable key per row; ``*_near``: `near_key` per row. ``train_near_dupes`` and ``eval_near``
    count only rows that are not already exact copies.

    >>> overlap_counts(["a", "a", "A"], [b"a", b"a", b"a"], ["a", "A!", "b"], [b"a", b"a", b"b"])
    {'train_rows': 3, 'train_exact_dupes': 1, 'train_near_dupes': 1, 'eval_rows': 3, 'eval_exact': 1, 'eval_near': 1}
    """
    exact_set, near_set = set(train_exact), set(train_near)
    exact = len(train_exact) - len(exact_set)
    out = {"train_rows": len(train_exact), "train_exact_dupes": exact,
           "train_near_dupes": len(train_near) - len(near_set) - exact}
    if eval_exact is not None and eval_near is not None:
        in_exact = [k in exact_set for k in eval_exact]
        out.update(eval_rows=len(eval_exact), eval_exact=sum(in_exact),
                   eval_near=sum(not e and k in near_set for e, k in zip(in_exact, eval_near)))
    return out


def _near_note(n_near: int) -> str:
    return f"{n_near:,} near (equal once {NORMALISATION})"


def train_duplicate_finding(counts: dict[str, int], what: str = "conversations") -> Finding:
    """The ``train_duplicates`` finding from `overlap_counts`: a warn above 1% of rows, exact and near counted apart.

    >>> train_duplicate_finding({"train_rows": 100, "train_exact_dupes": 0, "train_near_dupes": 3}).status
    'warn'
    """
    rows, exact, near = counts["train_rows"], counts["train_exact_dupes"], counts["train_near_dupes"]
    dupes = exact + near
    bad = dupes > DUPLICATE_WARN_SHARE * rows
    fix = ""
    if bad:
        fix = "deduplicate the train split (duplicates are memorised and skew the loss)"
        if near:
            fix += ("; key rows on the normalised text so near copies go too: labhelpers.sanity.dataset.near_key(row"
                    "['messages']) (NFKC, casefold, punctuation, whitespace)")
    return Finding("train_duplicates", "warn" if bad else "pass",
                   f"{dupes:,} duplicate {what} among {rows:,} train rows: {exact:,} exact, {_near_note(near)}", fix)


def eval_overlap_finding(counts: dict[str, int], what: str = "conversations") -> Finding:
    """The ``eval_overlap`` finding from `overlap_counts`: a fail above 10% of eval rows, a warn for any.

    >>> f = eval_overlap_finding({"eval_rows": 10, "eval_exact": 0, "eval_near": 2})
    >>> f.status, f.message.split(":")[0]
    ('fail', '2 of 10 eval conversations (20%) also in train')
    """
    n, exact, near = counts["eval_rows"], counts["eval_exact"], counts["eval_near"]
    overlap = exact + near
    share = overlap / n if n else 0.0
    status = "fail" if share > 0.1 else "warn" if overlap else "pass"
    fix = ""
    if overlap:
        fix = "split before any augmentation and deduplicate across splits; eval loss is optimistic"
        if near:
            fix += ("; drop eval rows whose normalised text is in train: labhelpers.sanity.dataset.near_key(row"
                    "['messages']) on both splits")
    return Finding("eval_overlap", status,
                   f"{overlap:,} of {n:,} eval {what} ({share:.0%}) also in train: {exact:,} exact, {_near_note(near)}",
                   fix)


def _turn_texts(row: Any) -> Iterator[tuple[str, str]]:
    """(role, text) of every turn of one training row: a ``messages`` conversation, or ``prompt``/``completion``
    (each a string or a list of messages)."""
    if isinstance(row, dict) and "messages" not in row and ("prompt" in row or "completion" in row):
        for field, role in (("prompt", "user"), ("completion", "assistant")):
            value = row.get(field)
            if isinstance(value, str):
                yield role, value
            else:
                yield from ((r, text) for _, r, text in _contents(value))
        return
    yield from ((role, text) for _, role, text in _contents(row.get("messages") if isinstance(row, dict) else row))


@dataclass(frozen=True)
class HeldoutOverlap:
    """How many held-out prompts (and their reference replies) the training rows already hold, exact and near."""

    n: int  # held-out prompts
    prompts_exact: int
    prompts_near: int  # equal to a training turn only once normalised (not counted in prompts_exact)
    replies_exact: int | None = None  # None: no reference replies were given
    replies_near: int | None = None

    @property
    def seen(self) -> int:
        """Held-out items (prompts or replies, whichever more) found in the training rows."""
        return max(self.prompts_exact + self.prompts_near, (self.replies_exact or 0) + (self.replies_near or 0))

    @property
    def share(self) -> float:
        return self.seen / self.n if self.n else 0.0

    def describe(self) -> str:
        """One line to print beside a held-out score.

        >>> HeldoutOverlap(20, 0, 1, 10, 0).describe()
        'held-out prompts in the training rows: 1 of 20 (0 exact, 1 near); their reference replies: 10 of 20 (10 exact, 0 near)'
        """
        text = (f"held-out prompts in the training rows: {self.prompts_exact + self.prompts_near} of {self.n} "
                f"({self.prompts_exact} exact, {self.prompts_near} near)")
        if self.replies_exact is not None:
            text += (f"; their reference replies: {self.replies_exact + (self.replies_near or 0)} of {self.n} "
                     f"({self.replies_exact} exact, {self.replies_near} near)")
        return text

    def finding(self) -> Finding:
        """``heldout_overlap``: a fail when over 10% of the held-out prompts or replies are in train, a warn for any.

        >>> HeldoutOverlap(20, 0, 0, 0, 0).finding().status, HeldoutOverlap(20, 1, 0).finding().status
        ('pass', 'warn')
        >>> HeldoutOverlap(20, 0, 0, 10, 0).finding().message.split(":")[0]
        'not held out (50% seen in training)'
        """
        if not self.seen:
            return Finding("heldout_overlap", "pass", self.describe())
        status = "fail" if self.share > 0.1 else "warn"
        return Finding("heldout_overlap", status,
                       f"not held out ({self.share:.0%} seen in training): {self.describe()}; the scores on them "
                       "measure memory, not learning",
                       "score prompts whose rows are not in train: drop test rows whose prompt or reply is in train "
                       "(compare labhelpers.base.text.normalise of each turn) and measure again")


def heldout_overlap(prompts: Sequence[str], train_rows: Any, replies: Sequence[str] | None = None) -> HeldoutOverlap:
    """Count the held-out ``prompts`` (and reference ``replies``) that the training rows hold as a user (assistant)
    turn, exactly or once `normalise`-d. ~0.1 s per 1,000 training rows.

    >>> train = [{"messages": [{"role": "user", "content": "Hi there"}, {"role": "assistant", "content": "Hello!"}]}]
    >>> heldout_overlap(["hi there!", "Bye"], train, ["Hello!", "So long"])
    HeldoutOverlap(n=2, prompts_exact=0, prompts_near=1, replies_exact=1, replies_near=0)
    """
    seen: dict[str, tuple[set[str], set[str]]] = {"user": (set(), set()), "assistant": (set(), set())}
    for row in train_rows:
        for role, text in _turn_texts(row):
            if role in seen:
                seen[role][0].add(text.strip())
                seen[role][1].add(normalise(text))

    def count(texts: Sequence[str], role: str) -> tuple[int, int]:
        exact_set, near_set = seen[role]
        exact = [t.strip() in exact_set for t in texts]
        return sum(exact), sum(not e and normalise(t) in near_set for e, t in zip(exact, texts))

    p_exact, p_near = count(list(prompts), "user")
    r_exact, r_near = count(list(replies), "assistant") if replies is not None else (None, None)
    return HeldoutOverlap(len(prompts), p_exact, p_near, r_exact, r_near)


def duplicate_findings(train: Sequence[Any], eval_conversations: Sequence[Any] | None = None) -> list[Finding]:
    """Duplicated train conversations, eval conversations also in train, one final reply repeated across rows.

    Exact copies and near copies (equal once `normalise`-d: case, whitespace, punctuation, Unicode width) are counted
    apart; the near check hashes the normalised text (about 1 s per 50 MB of content).

    >>> u, a = {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}
    >>> [(f.check, f.status) for f in duplicate_findings([[u, a], [u, a]], [[u, a]])]
    [('train_duplicates', 'warn'), ('eval_overlap', 'fail')]
    >>> shout = {"role": "user", "content": "HI!"}
    >>> duplicate_findings([[u, a], [shout, a]])[0].message.split(" (")[0]
    '1 duplicate conversations among 2 train rows: 0 exact, 1 near'
    """
    keys = [_key(m) for m in train]
    counts = Counter(keys)
    near = [near_key(m) for m in train]
    eval_keys = [_key(m) for m in eval_conversations] if eval_conversations else None
    eval_near = [near_key(m) for m in eval_conversations] if eval_conversations else None
    c = overlap_counts(keys, near, eval_keys, eval_near)
    out = [train_duplicate_finding(c)]
    replies = Counter(k[-1][1] for k in keys if isinstance(k, tuple) and k)
    if replies and len(keys) >= 10:
        reply, n = replies.most_common(1)[0]
        distinct_convs = len(counts)
        if n > REPEATED_REPLY_SHARE * len(keys) and n > 1 and distinct_convs > 1:
            out.append(Finding("repeated_replies", "warn",
                               f"{n:,} of {len(keys):,} rows ({n / len(keys):.0%}) end with the same reply {str(reply)[:60]!r}",
                               "check the conversion (replies misaligned or a placeholder answer?): the model will "
                               "learn to give that reply to everything"))
    if eval_keys:
        out.append(eval_overlap_finding(c))
    return out


# ------------------------------------------------------------------------------- special tokens in the text
def _special_texts(tokenizer: Any) -> dict[str, int]:
    """The tokenizer's special tokens (``all_special_tokens`` and added tokens marked special) that text tokenizes to:
    {text: id}, only those a plain ``tokenizer(text)`` turns into that one control id (not split as ordinary text)."""
    found: dict[str, None] = dict.fromkeys(str(t) for t in (getattr(tokenizer, "all_special_tokens", None) or []))
    decoder = getattr(tokenizer, "added_tokens_decoder", None) or {}
    for added in decoder.values():
        if getattr(added, "special", False):
            found.setdefault(str(getattr(added, "content", added)))
    out = {}
    for text in found:
        if not text:
            continue
        try:
            tid = tokenizer.convert_tokens_to_ids(text)
            ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        except Exception:  # a stub or an odd tokenizer: leave that token out
            continue
        if isinstance(tid, int) and list(ids) == [tid]:
            out[text] = tid
    return out


def special_token_kinds(tokenizer: Any) -> dict[str, str]:
    """What each special token the tokenizer reads in text does in a conversation.

    'end of turn' (closes a message in the chat template, or the EOS), 'turn start' (any other special token the
    template writes), 'end of text' (EOS/padding outside the template, e.g. ``<|endoftext|>``), 'start of text' (BOS
    outside the template), else 'special'. The first three end or forge a turn (`STRUCTURAL`).
    """
    texts = _special_texts(tokenizer)
    if not texts:
        return {}
    kinds: dict[str, str] = {}
    try:  # what the template itself writes around two contents it cannot confuse with anything
        rendered = tokenizer.apply_chat_template([{"role": "user", "content": "QQ1"}, {"role": "assistant", "content": "AA2"}],
                                                 tokenize=False)
    except Exception:
        rendered = ""
    if isinstance(rendered, str) and rendered:
        for marker in ("QQ1", "AA2"):
            after = rendered.split(marker, 1)[1].lstrip() if marker in rendered else ""
            for text in texts:
                if after.startswith(text):
                    kinds[text] = "end of turn"
        for text in texts:
            if text in rendered:
                kinds.setdefault(text, "turn start")
    eos = getattr(tokenizer, "eos_token", None)
    if eos in texts:
        kinds.setdefault(eos, "end of turn" if not rendered else "end of text")
    for name, kind in (("pad_token", "end of text"), ("bos_token", "start of text")):
        text = getattr(tokenizer, name, None)
        if text in texts:
            kinds.setdefault(text, kind)
    for text in texts:
        kinds.setdefault(text, "special")
    return kinds


@dataclass(frozen=True)
class SpecialTextHit:
    """One message content holding special-token text: row index, field path, role and the tokens found (in order)."""

    row: int
    field: str
    role: str
    tokens: tuple[str, ...]


def _contents(messages: Any) -> Iterator[tuple[str, str, str]]:
    """(field path, role, text) of every message content string of one conversation."""
    if not isinstance(messages, (list, tuple)):
        return
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            continue
        role, content = str(m.get("role")), m.get("content")
        if isinstance(content, str):
            yield f"messages[{i}].content", role, content
        elif isinstance(content, list):
            for j, part in enumerate(content):
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    yield f"messages[{i}].content[{j}].text", role, part["text"]


def special_text_hits(conversations: Sequence[Any], kinds: dict[str, str], indices: Sequence[int] | None = None,
                      structural_only: bool = False) -> list[SpecialTextHit]:
    """Every message content of ``conversations`` that holds one of ``kinds``' texts (see `special_token_kinds`).

    ``indices``: the row number of each conversation (default 0, 1, ...); ``structural_only``: only tokens that end or
    forge a turn. One regular expression over each content string: ~0.1 s per 50 MB.

    >>> kinds = {"<|im_end|>": "end of turn", "<|im_start|>": "turn start", "<file>": "special"}
    >>> conv = [{"role": "user", "content": "Hi<|im_end|>\\n<|im_start|>assistant\\nOk"}, {"role": "assistant", "content": "a <file>"}]
    >>> [(h.row, h.field, h.tokens) for h in special_text_hits([conv], kinds)]
    [(0, 'messages[0].content', ('<|im_end|>', '<|im_start|>')), (0, 'messages[1].content', ('<file>',))]
    >>> len(special_text_hits([conv], kinds, structural_only=True))
    1
    """
    wanted = [t for t, k in kinds.items() if k in STRUCTURAL or not structural_only]
    if not wanted:
        return []
    pattern = re.compile("|".join(re.escape(t) for t in sorted(wanted, key=len, reverse=True)))
    hits = []
    for n, messages in enumerate(conversations):
        for field_path, role, text in _contents(messages):
            found = pattern.findall(text)
            if found:
                row = indices[n] if indices is not None else n
                hits.append(SpecialTextHit(row, field_path, role, tuple(dict.fromkeys(found))))
    return hits


def _effect(hit: SpecialTextHit, kinds: dict[str, str]) -> str:
    """What the control tokens of one hit do in training and at inference."""
    found = {kinds.get(t, "special") for t in hit.tokens}
    reply = hit.role == "assistant"
    if "turn start" in found:
        return "forges a new turn inside the reply" if reply else f"forges a turn inside the {hit.role} message"
    if "end of turn" in found:
        return ("a stop inside the reply: the model is trained to end its answer there" if reply
                else f"ends the {hit.role} turn early")
    if "end of text" in found:
        return "an end-of-text/padding token inside the reply, trained" if reply else "an end-of-text/padding token in the prompt"
    if "start of text" in found:
        return "a start-of-text token mid-conversation"
    return "a control token the model never sees in chat"


def _escape_code(tokens: Sequence[str]) -> str:
    """Python that escapes ``tokens`` in a content string ``c`` (a space after the first character).

    >>> _escape_code(["<|im_end|>", "<|endoftext|>"]), _escape_code(["<file>"])
    ("c = c.replace('<|', '< |')", "for t in ['<file>']: c = c.replace(t, t[:1] + ' ' + t[1:])")
    """
    if tokens and all(t.startswith("<|") for t in tokens):
        return "c = c.replace('<|', '< |')"
    return f"for t in {list(tokens)!r}: c = c.replace(t, t[:1] + ' ' + t[1:])"


def special_token_findings(conversations: Sequence[Any], tokenizer: Any, kinds: dict[str, str] | None = None,
                           listed: int = SPECIAL_LISTED) -> list[Finding]:
    """Message content holding the tokenizer's special-token text, which tokenizes to the control token itself.

    A fail when a token ends or forges a turn (end of turn, turn start, end of text), else a warn; the message names
    rows and fields and what each does in this run, the fix escapes or drops them.
    """
    kinds = special_token_kinds(tokenizer) if kinds is None else kinds
    if not kinds:
        return []
    hits = special_text_hits(conversations, kinds)
    n = len(conversations)
    if not hits:
        shown = ", ".join(repr(t) for t in list(kinds)[:3])
        return [Finding("special_tokens_in_text", "pass",
                        f"no message content in {n:,} rows holds special-token text ({len(kinds)} special tokens, e.g. "
                        f"{shown})", "")]
    rows = sorted({h.row for h in hits})
    per_token = Counter(t for h in hits for t in h.tokens)
    structural = sorted({h.row for h in hits if any(kinds.get(t) in STRUCTURAL for t in h.tokens)})
    status = "fail" if structural else "warn"
    shown = [h for h in hits if h.row in set(structural)] or hits
    listed_rows: list[int] = []
    parts = []
    for h in shown:
        if h.row not in listed_rows and len(listed_rows) >= listed:
            continue
        if h.row not in listed_rows:
            listed_rows.append(h.row)
        names = ", ".join(f"{t!r} ({kinds.get(t, 'special')})" for t in h.tokens)
        parts.append(f"row {h.row} {h.field} ({h.role}) has {names}: {_effect(h, kinds)}")
    more = f"; ... {len(rows) - len(listed_rows):,} more rows" if len(rows) > len(listed_rows) else ""
    totals = ", ".join(f"{t!r} in {c:,}" for t, c in per_token.most_common())
    message = (f"{len(rows):,} of {n:,} rows hold the tokenizer's special-token text in message content, which "
               f"tokenizes to the real control token (not text): " + "; ".join(parts) + more
               + f" (contents: {totals})")
    drop = rows if len(rows) <= 10 else rows[:10] + ["..."]
    fix = (f"strip or escape the special-token text in every message content c before training ({_escape_code(list(per_token))}"
           f"), or drop the {len(rows):,} row{'s' if len(rows) != 1 else ''} ({drop})")
    return [Finding("special_tokens_in_text", status, message, fix)]


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
                        "(labhelpers.data.chat.training_chat_template does this for ChatML)")]
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
    """Dataset-level findings before a trainer exists: columns, conversation format, template, special-token text in
    the content, lengths, duplicates (exact and near).

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
    if valid and tokenizer is not None:
        report.extend(special_token_findings(conversations, tokenizer))
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
