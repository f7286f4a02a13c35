"""Chat data formats people actually have, detected from their keys and converted to ``messages`` rows.

Supported row formats (see `row_format`):

* ``messages``: OpenAI / Hugging Face chat, ``{"messages": [{"role", "content"}, ...]}``. OpenAI fine-tuning files may
  give an assistant message ``"weight": 0`` (keep as context, don't train); TRL's ``assistant_only_loss`` trains every
  assistant reply, so such a row is refused (never trained silently) and the message says how to fix it.
* ShareGPT: ``{"conversations": [{"from": "human", "value": ...}, ...]}``, optional top-level ``system``.
* Alpaca: ``{"instruction", "output"}`` with optional ``input`` and ``system``; the user turn is instruction + blank
  line + input.
* TRL prompt/completion: conversational (two lists of messages) or plain (two strings -> one user and one assistant turn).
* A lone ``text`` column is refused: pre-rendered text cannot be split into prompt and reply, so assistant-only training
  would train on the prompt too.

Conversion is a pure row -> row step; problems are `labhelpers.data.datasets.RowProblem`s naming the row, the *original* field
(``conversations[2].from``, ``output``, ``completion[0].content``) and the fix.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Any, Sequence

from labhelpers.data.problems import DatasetFileError, RowProblem

FORMAT_NAMES = {  # row_format id -> name used in reports
    "messages": "messages",
    "sharegpt": "ShareGPT",
    "alpaca": "Alpaca",
    "prompt_completion": "TRL prompt/completion",
    "text": "text",
}
SHAREGPT_ROLES = {  # ShareGPT 'from' values -> chat roles
    "human": "user", "user": "user",
    "gpt": "assistant", "assistant": "assistant", "chatgpt": "assistant", "bing": "assistant", "bard": "assistant",
    "model": "assistant",
    "system": "system",
}
WEIGHT_KEY = "weight"  # OpenAI fine-tuning: 0 = context only, 1 = train this assistant reply
TEXT_REFUSAL = ("a plain 'text' column cannot be trained assistant-only: pre-rendered text has no marked boundary "
                "between prompt and reply, so the loss would train on the prompt (and system/template tokens) too")
TEXT_FIX = ("convert each row to {'messages': [{'role': 'user', 'content': ...}, {'role': 'assistant', 'content': ...}]} "
            "(split the text at the template's assistant header), or train on the whole text with "
            "assistant_only_loss=False if that is really what you want")
_MESSAGE_INDEX = re.compile(r"^messages\[(\d+)\](.*)$")


@dataclass(frozen=True)
class FormatReport:
    """What `to_messages` found and did: the format, the row count and one note per conversion.

    >>> print(FormatReport("sharegpt", 1204, ("roles human->user, gpt->assistant",)))
    ShareGPT: 1,204 rows, roles human->user, gpt->assistant
    >>> FormatReport("messages", 3).converted
    False
    """

    format: str  # a FORMAT_NAMES key
    n_rows: int  # rows read from the file
    notes: tuple[str, ...] = ()  # e.g. "roles human->user, gpt->assistant"; empty when rows were used as given
    variant: str = ""  # e.g. "conversational" for prompt/completion

    @property
    def name(self) -> str:
        """Display name, e.g. ``TRL prompt/completion (plain)``."""
        base = FORMAT_NAMES.get(self.format, self.format)
        return f"{base} ({self.variant})" if self.variant else base

    @property
    def converted(self) -> bool:
        """True when rows were changed (anything but plain ``messages`` rows used as given)."""
        return self.format != "messages" or bool(self.notes)

    def __str__(self) -> str:
        return ", ".join([f"{self.name}: {_plural(self.n_rows, 'row')}", *self.notes])


def row_format(row: Any) -> str | None:
    """The format of one row from its keys (a FORMAT_NAMES key), or None when no format matches.

    >>> row_format({"conversations": []}), row_format({"instruction": "a", "input": "", "output": "b"})
    ('sharegpt', 'alpaca')
    >>> row_format({"prompt": "a", "completion": "b"}), row_format({"text": "x"}), row_format({"instruction": "a"})
    ('prompt_completion', 'text', None)
    >>> row_format({"instruction": "a", "output": "b"})  # many Alpaca-style files leave out an empty input
    'alpaca'
    """
    if not isinstance(row, dict):
        return None
    if "messages" in row:
        return "messages"
    if "conversations" in row:
        return "sharegpt"
    if "instruction" in row and "output" in row:
        return "alpaca"
    if "prompt" in row and "completion" in row:
        return "prompt_completion"
    if "text" in row:
        return "text"
    return None


def _schema_hint(found: Sequence[str]) -> str:
    """A targeted hint for near-miss schemas.

    >>> print(_schema_hint(["question", "answer"]))
     ('question'/'answer' look like a Q&A table: rename them to 'instruction'/'output' (Alpaca) or build 'messages')
    """
    keys = set(found)
    if {"question", "answer"} <= keys:
        return (" ('question'/'answer' look like a Q&A table: rename them to 'instruction'/'output' (Alpaca) "
                "or build 'messages')")
    if {"chosen", "rejected"} <= keys:
        return " ('chosen'/'rejected' is preference data for DPO: for SFT use the 'chosen' conversations as 'messages')"
    if "prompt" in keys and "completion" not in keys:
        return " ('prompt' without 'completion': add the reply as 'completion')"
    return ""


def detect_format(rows: Sequence[Any], source: str = "dataset") -> str:
    """The format most rows have; `DatasetFileError` for a ``text`` column or when no row matches a format.

    >>> detect_format([{"conversations": []}, {"conversations": []}, {"x": 1}])
    'sharegpt'
    >>> detect_format([{"text": "<|im_start|>user..."}], "t.jsonl")
    Traceback (most recent call last):
    ...
    labhelpers.data.datasets.DatasetFileError: t.jsonl: a plain 'text' column cannot be trained assistant-only: pre-rendered text has no marked boundary between prompt and reply, so the loss would train on the prompt (and system/template tokens) too; convert each row to {'messages': [{'role': 'user', 'content': ...}, {'role': 'assistant', 'content': ...}]} (split the text at the template's assistant header), or train on the whole text with assistant_only_loss=False if that is really what you want
    """
    votes = Counter(fmt for fmt in map(row_format, rows) if fmt is not None)
    if not votes:
        found = sorted({key for row in rows if isinstance(row, dict) for key in row})
        raise DatasetFileError(
            f"{source}: wrong schema, no row matches a chat format (fields found: {found}){_schema_hint(found)}; "
            "convert each row to {'messages': [{'role': ..., 'content': ...}, ...]} or use ShareGPT "
            "('conversations'), Alpaca ('instruction', 'input', 'output') or prompt/completion")
    fmt = votes.most_common(1)[0][0]
    if fmt == "text":
        raise DatasetFileError(f"{source}: {TEXT_REFUSAL}; {TEXT_FIX}")
    return fmt


# ------------------------------------------------------------------------------------------- row converters
def _problem(row: Any, index: int, fld: str, reason: str, detail: str, fix: str) -> RowProblem:
    pid = row.get("prompt_id", row.get("id")) if isinstance(row, dict) else None
    return RowProblem(index, None if pid is None else str(pid), fld, reason, detail, fix)


def _messages_row(row: dict, index: int, tolerate_null_keys: bool, counts: Counter) -> tuple[dict | None, RowProblem | None]:
    """A ``messages`` row as given; OpenAI ``weight`` keys removed (1) or refused (0).

    >>> c = Counter()
    >>> _messages_row({"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo", "weight": 1}]}, 0, False, c)
    ({'messages': [{'role': 'user', 'content': 'Hi'}, {'role': 'assistant', 'content': 'Yo'}]}, None)
    >>> print(_messages_row({"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo", "weight": 0}]}, 4, False, c)[1])
    row 4, messages[1].weight: assistant reply has weight 0 (OpenAI: context only, not trained) but TRL's assistant_only_loss trains every assistant reply, so it would be trained; end the conversation before this reply (or drop the row) to keep it untrained, or delete 'weight' to train it
    """
    messages = row.get("messages")
    if not isinstance(messages, list):
        return row, None  # check_row reports it
    needs_copy = False
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            continue
        if WEIGHT_KEY in m:
            weight = m[WEIGHT_KEY]
            if weight is None and tolerate_null_keys:
                needs_copy = True
                continue
            if m.get("role") != "assistant":
                return None, _problem(row, index, f"messages[{i}].weight", "weight on a non-assistant message",
                                      f"'weight' on a {m.get('role')!r} message (OpenAI allows it on assistant replies only)",
                                      "remove 'weight' from that message")
            if weight in (0, False):
                return None, _problem(
                    row, index, f"messages[{i}].weight", "reply with weight 0",
                    "assistant reply has weight 0 (OpenAI: context only, not trained) but TRL's assistant_only_loss "
                    "trains every assistant reply, so it would be trained",
                    "end the conversation before this reply (or drop the row) to keep it untrained, "
                    "or delete 'weight' to train it")
            if weight not in (1, True):
                return None, _problem(row, index, f"messages[{i}].weight", "bad weight",
                                      f"weight is {weight!r}", "use 'weight': 1 (train) or 0 (context only)")
            needs_copy = True
        elif tolerate_null_keys and any(v is None for k, v in m.items() if k not in ("role", "content")):
            needs_copy = True
    if not needs_copy:
        return row, None
    kept: list[Any] = []
    for m in messages:
        if isinstance(m, dict):
            if m.get(WEIGHT_KEY) in (1, True):
                counts["weight 1 removed"] += 1
            m = {k: v for k, v in m.items() if k != WEIGHT_KEY and not (tolerate_null_keys and v is None and k != "content")}
        kept.append(m)
    return {**row, "messages": kept}, None


def _sharegpt_row(row: dict, index: int, counts: Counter) -> tuple[dict | None, RowProblem | None]:
    """``conversations`` of ``{from, value}`` (or ``{role, content}``) as messages; roles mapped by SHAREGPT_ROLES.

    >>> c = Counter()
    >>> _sharegpt_row({"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Yo"}]}, 0, c)[0]
    {'messages': [{'role': 'user', 'content': 'Hi'}, {'role': 'assistant', 'content': 'Yo'}]}
    >>> print(_sharegpt_row({"conversations": [{"from": "narrator", "value": "Hi"}]}, 2, c)[1])
    row 2, conversations[0].from: 'from' is 'narrator', not one of human, user, gpt, assistant, chatgpt, bing, bard, model, system; rename it (human/gpt/system) or drop the row
    """
    turns = row.get("conversations")
    if not isinstance(turns, list):
        return None, _problem(row, index, "conversations", "'conversations' is not a list",
                              f"'conversations' is a {type(turns).__name__}",
                              "make 'conversations' a list of {'from', 'value'} dicts")
    messages: list[Any] = []
    system = row.get("system")
    if isinstance(system, str) and system.strip():
        messages.append({"role": "system", "content": system})
        counts["top-level system"] += 1
    for i, turn in enumerate(turns):
        if not isinstance(turn, dict):
            messages.append(turn)  # check_row reports "message is not a dict"
            continue
        if "from" in turn:
            who = turn["from"]
            role = SHAREGPT_ROLES.get(who.lower().strip() if isinstance(who, str) else who)
            if role is None:
                return None, _problem(row, index, f"conversations[{i}].from", "unknown 'from'",
                                      f"'from' is {who!r}, not one of {', '.join(SHAREGPT_ROLES)}",
                                      "rename it (human/gpt/system) or drop the row")
            if who != role:
                counts[f"{who}->{role}"] += 1
            extra = sorted(k for k in turn if k not in ("from", "value") and turn[k] is not None)
            if extra:
                return None, _problem(row, index, f"conversations[{i}]", "unknown message key", f"unknown key(s) {extra}",
                                      "keep only 'from' and 'value' (move the rest out of the turn)")
            messages.append({"role": role, "content": turn.get("value")})
        else:
            messages.append(turn)  # role/content turns: check_row validates them as messages
    return {"messages": messages}, None


def _alpaca_user(instruction: str, extra: str) -> str:
    """The user turn of an Alpaca row: the instruction, then a blank line and the input when there is one.

    >>> _alpaca_user("Translate.", "Bonjour"), _alpaca_user("Say hi.", "  ")
    ('Translate.\\n\\nBonjour', 'Say hi.')
    """
    return f"{instruction}\n\n{extra}" if extra.strip() else instruction


def _alpaca_row(row: dict, index: int, counts: Counter) -> tuple[dict | None, RowProblem | None]:
    """instruction (+ input) -> user, output -> assistant, optional system first.

    >>> _alpaca_row({"instruction": "Add.", "input": "2+2", "output": "4"}, 0, Counter())[0]["messages"][0]
    {'role': 'user', 'content': 'Add.\\n\\n2+2'}
    """
    for key in ("instruction", "input", "output", "system"):
        value = row.get(key)
        if key in ("input", "system") and value is None:
            continue
        if not isinstance(value, str):
            return None, _problem(row, index, key, f"'{key}' is not a string",
                                  f"'{key}' is {'null' if value is None else 'a ' + type(value).__name__}",
                                  f"store the {key} text as a string" + (" (\"\" when there is none)" if key == "input" else ""))
    messages = []
    system = row.get("system")
    if system and system.strip():
        messages.append({"role": "system", "content": system})
        counts["system"] += 1
    messages.append({"role": "user", "content": _alpaca_user(row["instruction"], row.get("input") or "")})
    messages.append({"role": "assistant", "content": row["output"]})
    return {"messages": messages}, None


def _prompt_completion_row(row: dict, index: int, counts: Counter) -> tuple[dict | None, RowProblem | None]:
    """Conversational (lists) -> prompt + completion messages; plain (strings) -> one user and one assistant turn.

    >>> _prompt_completion_row({"prompt": "2+2=", "completion": "4"}, 0, Counter())[0]
    {'messages': [{'role': 'user', 'content': '2+2='}, {'role': 'assistant', 'content': '4'}]}
    """
    prompt, completion = row.get("prompt"), row.get("completion")
    if isinstance(prompt, list) and isinstance(completion, list):
        counts["conversational"] += 1
        if any(isinstance(m, dict) and m.get("role") == "assistant" for m in prompt):
            counts["assistant turns in prompt"] += 1
        return {"messages": list(prompt) + list(completion)}, None
    if isinstance(prompt, str) and isinstance(completion, str):
        counts["plain"] += 1
        return {"messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": completion}]}, None
    kinds = f"'prompt' is a {type(prompt).__name__} and 'completion' a {type(completion).__name__}"
    return None, _problem(row, index, "prompt/completion", "prompt/completion types differ", kinds,
                          "make both strings (plain) or both lists of {'role', 'content'} messages (conversational)")


def convert_row(row: Any, fmt: str, index: int = 0, *, tolerate_null_keys: bool = False,
                counts: Counter | None = None) -> tuple[dict | None, RowProblem | None]:
    """``(messages_row, None)`` or ``(None, problem)`` for one row of format ``fmt`` (pure; ``counts`` collects notes).

    >>> convert_row({"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Yo"}]}, "sharegpt")[0]
    {'messages': [{'role': 'user', 'content': 'Hi'}, {'role': 'assistant', 'content': 'Yo'}]}
    >>> print(convert_row({"messages": []}, "sharegpt", 3)[1])
    row 3, row: row is in messages format, the file is ShareGPT; convert the row to ShareGPT like the others or drop it
    """
    counts = Counter() if counts is None else counts
    own = row_format(row)
    if own is None:
        return row, None  # check_row names what is missing ("no 'messages' field", "row is not an object")
    if own != fmt:
        return None, _problem(row, index, "row", "row in another format",
                              f"row is in {FORMAT_NAMES[own]} format, the file is {FORMAT_NAMES[fmt]}",
                              f"convert the row to {FORMAT_NAMES[fmt]} like the others or drop it")
    if fmt == "messages":
        return _messages_row(row, index, tolerate_null_keys, counts)
    if fmt == "sharegpt":
        return _sharegpt_row(row, index, counts)
    if fmt == "alpaca":
        return _alpaca_row(row, index, counts)
    if fmt == "prompt_completion":
        return _prompt_completion_row(row, index, counts)
    raise ValueError(f"format {fmt!r} cannot be converted; choose one of {[k for k in FORMAT_NAMES if k != 'text']}")


def _plural(n: int, word: str, many: str = "") -> str:
    """``n`` and the word, plural when n != 1.

    >>> _plural(1, "row"), _plural(1204, "row"), _plural(2, "reply", "replies")
    ('1 row', '1,204 rows', '2 replies')
    """
    return f"{n:,} {word if n == 1 else many or word + 's'}"


def _notes(fmt: str, counts: Counter, n_rows: int) -> tuple[tuple[str, ...], str]:
    """(report notes, variant) from what the converters counted."""
    if fmt == "messages":
        n = counts["weight 1 removed"]
        return ((f"'weight': 1 removed from {_plural(n, 'reply', 'replies')} (every assistant reply is trained)",) if n else ()), ""
    if fmt == "sharegpt":
        roles = [k for k in counts if "->" in k]
        notes = [("roles " + ", ".join(roles)) if roles else "roles already user/assistant"]
        if counts["top-level system"]:
            notes.append(f"'system' -> system message in {_plural(counts['top-level system'], 'row')}")
        return tuple(notes), ""
    if fmt == "alpaca":
        notes = ["instruction + input -> user, output -> assistant"]
        if counts["system"]:
            notes.append(f"system -> system message in {_plural(counts['system'], 'row')}")
        return tuple(notes), ""
    if fmt == "prompt_completion":
        conv, plain = counts["conversational"], counts["plain"]
        variant = "conversational" if conv and not plain else "plain" if plain and not conv else "mixed"
        notes = ["prompt + completion -> messages" if variant == "conversational" else "prompt -> user, completion -> assistant"]
        if counts["assistant turns in prompt"]:
            notes.append(f"{_plural(counts['assistant turns in prompt'], 'row')} with assistant turns inside 'prompt' that TRL's "
                         "prompt/completion path would not train; as messages they are trained too")
        return tuple(notes), variant
    return (), ""


def to_messages(rows: Sequence[Any], source: str = "dataset", *, tolerate_null_keys: bool = False
                ) -> tuple[list[Any], list[RowProblem], FormatReport]:
    """Detect the format and convert every row: ``(rows, problems, report)``; bad rows keep their place (as given).

    >>> rows, problems, report = to_messages([{"instruction": "Hi", "input": "", "output": "Yo"}])
    >>> rows, problems, str(report)
    ([{'messages': [{'role': 'user', 'content': 'Hi'}, {'role': 'assistant', 'content': 'Yo'}]}], [], 'Alpaca: 1 row, instruction + input -> user, output -> assistant')
    """
    fmt = detect_format(rows, source)
    counts: Counter = Counter()
    out: list[Any] = []
    problems: list[RowProblem] = []
    for i, row in enumerate(rows):
        converted, problem = convert_row(row, fmt, i, tolerate_null_keys=tolerate_null_keys, counts=counts)
        if problem is not None:
            problems.append(problem)
            out.append(row)
        else:
            out.append(converted)
    notes, variant = _notes(fmt, counts, len(rows))
    return out, problems, FormatReport(fmt, len(rows), notes, variant)


def source_field(row: Any, fmt: str, fld: str) -> str:
    """Where a converted row's ``messages[i]...`` field came from in the original row (for error messages).

    >>> source_field({"conversations": [{}, {"from": "gpt"}]}, "sharegpt", "messages[1].content")
    'conversations[1].value'
    >>> source_field({"instruction": "a", "input": "", "output": ""}, "alpaca", "messages[1].content")
    'output'
    >>> source_field({"prompt": [{}], "completion": [{}]}, "prompt_completion", "messages[1].role")
    'completion[0].role'
    """
    match = _MESSAGE_INDEX.match(fld)
    if fmt == "messages" or not isinstance(row, dict) or match is None:
        return fld
    i, rest = int(match[1]), match[2]
    if fmt == "sharegpt":
        system = isinstance(row.get("system"), str) and bool(row["system"].strip())
        if system and i == 0:
            return "system"
        turns = row.get("conversations") or []
        j = i - system
        if 0 <= j < len(turns) and isinstance(turns[j], dict) and "from" in turns[j]:
            rest = rest.replace(".content", ".value").replace(".role", ".from")
        return f"conversations[{j}]{rest}"
    if fmt == "alpaca":
        system = isinstance(row.get("system"), str) and bool(row["system"].strip())
        names = (["system"] if system else []) + ["instruction", "output"]
        return names[i] if i < len(names) else fld
    if fmt == "prompt_completion":
        prompt = row.get("prompt")
        if isinstance(prompt, list):
            return f"prompt[{i}]{rest}" if i < len(prompt) else f"completion[{i - len(prompt)}]{rest}"
        return ("prompt", "completion")[i] if i < 2 else fld
    return fld
