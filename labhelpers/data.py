"""Load chat datasets (hub, bundled offline copy or local JSONL) and validate conversations before tokenizing.

Rows follow the ``HuggingFaceH4/no_robots`` schema: ``prompt``, ``prompt_id``, ``messages`` (a list of
``{"content", "role"}`` dicts) and ``category``. Only ``messages`` is required.

Errors name the row, the field and the fix. Bad files raise `DatasetFileError`; bad conversations raise
one `ConversationFormatError` listing every bad row, or are dropped with ``validate="drop"``.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datasets

BUNDLED_DIR = Path(__file__).resolve().parent / "bundled_data"  # train.jsonl + test.jsonl, see its README.md
DEFAULT_DATASET = "HuggingFaceH4/no_robots"
BUNDLED_STANDS_IN_FOR = (DEFAULT_DATASET,)  # hub names the bundled copy replaces offline
SOURCES = ("auto", "hub", "bundled")
VALIDATE_MODES = ("raise", "drop", "off")
ROLES = ("system", "user", "assistant")
MESSAGE_KEYS = ("content", "role")
MAX_LISTED = 20  # bad rows spelled out in one error message


class DatasetFileError(ValueError):
    """A dataset file is missing, unreadable or has the wrong shape; the message names the file and the fix."""


class ConversationFormatError(ValueError):
    """One or more rows are not valid chat conversations; the message lists each bad row and the fix."""


@dataclass(frozen=True)
class RowProblem:
    """What is wrong with one row: where (index, prompt_id, field), what (reason, detail) and the fix."""

    index: int  # row position in the rows given
    prompt_id: str | None  # the row's prompt_id, if it has one
    field: str  # e.g. "messages[3]" or "messages[0].content"
    reason: str  # short, countable, e.g. "last turn is not 'assistant'"
    detail: str  # the specific case, e.g. "last turn is 'user'"
    fix: str  # e.g. "append an assistant reply or drop the row"

    def __str__(self) -> str:
        """One line: ``row 3 (prompt_id 'ab12…'), messages[1]: detail; fix``."""
        pid = "" if self.prompt_id is None else f" (prompt_id {_short(self.prompt_id)!r})"
        return f"row {self.index}{pid}, {self.field}: {self.detail}; {self.fix}"


@dataclass
class ValidationReport:
    """Outcome of `validate_conversations`: how many rows, how many dropped, and counts per reason."""

    n_rows: int  # rows checked
    n_dropped: int = 0  # rows removed (only with drop_invalid=True)
    reasons: dict[str, int] = field(default_factory=dict)  # reason -> number of bad rows
    problems: list[RowProblem] = field(default_factory=list)  # one per bad row, in row order

    @property
    def n_invalid(self) -> int:
        """Rows with a problem (dropped or not)."""
        return len(self.problems)

    def summary(self, source: str = "dataset") -> str:
        """One line for the notebook, e.g. ``dataset: 2 of 5 rows dropped (1 × ...)``."""
        if not self.problems:
            return f"{source}: all {self.n_rows} rows valid"
        counts = ", ".join(f"{n} × {reason}" for reason, n in self.reasons.items())
        verb = "dropped" if self.n_dropped else "invalid"
        return f"{source}: {self.n_invalid} of {self.n_rows} rows {verb} ({counts})"


def _short(prompt_id: str) -> str:
    """First 8 characters of a long id, with an ellipsis.

    >>> _short("ab12cd34ef56"), _short("r1")
    ('ab12cd34…', 'r1')
    """
    return prompt_id if len(prompt_id) <= 8 else prompt_id[:8] + "…"


def check_row(row: Any, index: int = 0, *, tolerate_null_keys: bool = False) -> RowProblem | None:
    """The first problem with one conversation row, or None when it is valid.

    ``tolerate_null_keys`` ignores extra message keys whose value is None (Arrow pads struct fields that way).

    >>> check_row({"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]})
    >>> print(check_row({"prompt_id": "p1", "messages": [{"role": "user", "content": "Hi"}]}, 17))
    row 17 (prompt_id 'p1'), messages[0]: last turn is 'user'; append an assistant reply or drop the row
    """
    pid = row.get("prompt_id") if isinstance(row, dict) else None
    pid = None if pid is None else str(pid)

    def problem(fld: str, reason: str, detail: str, fix: str) -> RowProblem:
        return RowProblem(index, pid, fld, reason, detail, fix)

    if not isinstance(row, dict):
        return problem("row", "row is not an object", f"row is a {type(row).__name__}, not an object",
                       "write each row as a JSON object with a 'messages' list")
    messages = row.get("messages")
    if messages is None:
        return problem("messages", "missing 'messages'", f"no 'messages' field (fields: {sorted(row)})",
                       "add a 'messages' list of {'role', 'content'} dicts or drop the row")
    if not isinstance(messages, list):
        return problem("messages", "'messages' is not a list", f"'messages' is a {type(messages).__name__}",
                       "make 'messages' a list of {'role', 'content'} dicts")
    if not messages:
        return problem("messages", "'messages' is empty", "'messages' is an empty list",
                       "add a user turn and an assistant reply or drop the row")
    expected = "user"
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            return problem(where, "message is not a dict", f"message is a {type(message).__name__}",
                           "write each message as {'role': ..., 'content': ...}")
        extra = sorted(k for k in message if k not in MESSAGE_KEYS and not (tolerate_null_keys and message[k] is None))
        if extra:
            return problem(where, "unknown message key", f"unknown key(s) {extra}",
                           "keep only 'role' and 'content' (move the rest out of the message)")
        role = message.get("role")
        if role is None:
            return problem(f"{where}.role", "missing role", "no 'role'", "add 'role': 'system', 'user' or 'assistant'")
        if role not in ROLES:
            return problem(f"{where}.role", "unknown role", f"role {role!r} is not one of {list(ROLES)}",
                           "rename it to 'system', 'user' or 'assistant'")
        content = message.get("content")
        if content is None:
            return problem(f"{where}.content", "missing content", "no 'content'", "add the message text or drop the row")
        if not isinstance(content, str):
            return problem(f"{where}.content", "content is not a string", f"content is a {type(content).__name__}",
                           "store the message text as a string")
        if not content.strip():
            return problem(f"{where}.content", "empty content", f"content is {'empty' if not content else 'whitespace only'}",
                           "write the message text or drop the row")
        if role == "system":
            if i != 0:
                return problem(where, "system message not first", f"'system' at position {i}",
                               "move the system message to messages[0] or drop it")
            continue
        if role != expected:
            if i == (1 if messages[0].get("role") == "system" else 0):
                return problem(where, "does not start with user", f"conversation starts with {role!r}",
                               "start with a user turn (after an optional system message) or drop the row")
            return problem(where, "turns do not alternate", f"two {role!r} turns in a row",
                           "merge the two turns or insert the missing reply")
        expected = "assistant" if role == "user" else "user"
    last = len(messages) - 1
    if messages[last].get("role") != "assistant":
        return problem(f"messages[{last}]", "last turn is not 'assistant'", f"last turn is {messages[last].get('role')!r}",
                       "append an assistant reply or drop the row")
    return None


def format_problems(problems: list[RowProblem], source: str = "dataset", limit: int = MAX_LISTED) -> str:
    """The `ConversationFormatError` message: a header, one line per bad row (capped) and how to drop them.

    >>> p = RowProblem(4, None, "messages", "missing 'messages'", "no 'messages' field (fields: ['x'])", "add it")
    >>> print(format_problems([p], "train.jsonl"))
    train.jsonl: 1 invalid row
      row 4, messages: no 'messages' field (fields: ['x']); add it
    To skip invalid rows instead, pass validate="drop" (or drop_invalid=True).
    """
    lines = [f"{source}: {len(problems)} invalid row{'s' if len(problems) != 1 else ''}"]
    lines += [f"  {p}" for p in problems[:limit]]
    if len(problems) > limit:
        lines.append(f"  ... and {len(problems) - limit} more")
    lines.append('To skip invalid rows instead, pass validate="drop" (or drop_invalid=True).')
    return "\n".join(lines)


def validate_conversations(rows: list[dict] | datasets.Dataset, *, drop_invalid: bool = False,
                           source: str = "dataset") -> tuple[list[dict] | datasets.Dataset, ValidationReport]:
    """Check every row; return ``(rows, report)``, raising `ConversationFormatError` on bad rows unless ``drop_invalid``.

    With ``drop_invalid=True`` the bad rows are removed (same type as given) and a summary is printed.

    >>> good = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]}
    >>> kept, report = validate_conversations([good, {"prompt_id": "x", "messages": []}], drop_invalid=True)
    dataset: 1 of 2 rows dropped (1 × 'messages' is empty)
    >>> len(kept), report.n_dropped, report.reasons
    (1, 1, {"'messages' is empty": 1})
    """
    is_dataset = isinstance(rows, datasets.Dataset)
    problems = [p for i, row in enumerate(rows) if (p := check_row(row, i, tolerate_null_keys=is_dataset))]
    report = ValidationReport(n_rows=len(rows), reasons=dict(Counter(p.reason for p in problems)), problems=problems)
    if not problems:
        return rows, report
    if not drop_invalid:
        raise ConversationFormatError(format_problems(problems, source))
    bad = {p.index for p in problems}
    keep = [i for i in range(len(rows)) if i not in bad]
    kept = rows.select(keep) if is_dataset else [rows[i] for i in keep]
    report.n_dropped = len(bad)
    print(report.summary(source))
    return kept, report


def read_jsonl(path: str | Path) -> list[dict]:
    """Rows of a JSONL file (one JSON object per line, blank lines skipped); `DatasetFileError` names file, line and fix."""
    path = Path(path)
    if not path.is_file():
        hint = "it is a folder; pass a .jsonl file or a folder holding train.jsonl and test.jsonl" if path.exists() \
            else "check the path (relative paths start at the notebook's folder)"
        raise DatasetFileError(f"{path}: file not found; {hint}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise DatasetFileError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start}); save it as UTF-8") from None
    rows: list[dict] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as err:
            whole = _whole_document(text)
            if whole is not None:
                raise DatasetFileError(f"{path}: the whole file is one JSON {whole}, not JSONL; "
                                       "write one object per line (e.g. `for r in rows: f.write(json.dumps(r) + '\\n')`)") from None
            raise DatasetFileError(f"{path}, line {number}: not valid JSON ({err.msg} at column {err.colno}); "
                                   "each line must be one complete JSON object") from None
        if isinstance(value, list):
            raise DatasetFileError(f"{path}, line {number}: a JSON array, not an object; "
                                   "JSONL needs one object per line, so write one object per line")
        if not isinstance(value, dict):
            raise DatasetFileError(f"{path}, line {number}: a JSON {type(value).__name__}, not an object; "
                                   "write one object with a 'messages' field per line")
        rows.append(value)
    if not rows:
        raise DatasetFileError(f"{path}: empty dataset (no rows); add at least one conversation per line")
    if not any("messages" in row for row in rows):
        found = sorted({key for row in rows for key in row})
        raise DatasetFileError(f"{path}: wrong schema, no row has a 'messages' field (fields found: {found}); "
                               "convert each row to {'messages': [{'role': ..., 'content': ...}, ...]}")
    return rows


def _whole_document(text: str) -> str | None:
    """'array' or 'object' when ``text`` parses as a single JSON document, else None.

    >>> _whole_document('[{"a": 1},\\n {"a": 2}]'), _whole_document('{"a":\\n 1}'), _whole_document('{"a"')
    ('array', 'object', None)
    """
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return None
    return "array" if isinstance(value, list) else "object" if isinstance(value, dict) else None


def to_dataset(rows: list[dict], source: str = "dataset") -> datasets.Dataset:
    """``Dataset.from_list`` whose Arrow type errors become a `DatasetFileError` naming the source and the fix."""
    try:
        return datasets.Dataset.from_list(rows)
    except (TypeError, ValueError, OverflowError) as err:  # pyarrow.ArrowInvalid / ArrowTypeError subclass these
        raise DatasetFileError(f"{source}: rows do not share one schema ({type(err).__name__}: {str(err)[:200]}); "
                               "give each field the same type in every row (validate first to find bad rows)") from None


def split_rows(rows: list[dict], test_size: float, seed: int, source: str = "dataset") -> datasets.DatasetDict:
    """Shuffle-split rows into train/test (test gets ``ceil(test_size * n)`` rows); error if either would be empty."""
    if not 0 < test_size < 1:
        raise DatasetFileError(f"{source}: test_size={test_size} must be between 0 and 1 (e.g. 0.1)")
    n_test = math.ceil(test_size * len(rows))
    if len(rows) < 2 or n_test >= len(rows):
        raise DatasetFileError(f"{source}: {len(rows)} row(s) with test_size={test_size} leaves an empty "
                               f"{'test' if len(rows) < 2 else 'train'} split; add rows, change test_size, "
                               "or pass a folder with train.jsonl and test.jsonl")
    return to_dataset(rows, source).train_test_split(test_size=n_test, seed=seed)


def load_local(path: str | Path, *, test_size: float = 0.1, seed: int = 42,
               validate: str = "raise") -> datasets.DatasetDict:
    """A `.jsonl` file (split off ``test_size`` with ``seed``) or a folder holding train.jsonl and test.jsonl.

    Rows are validated as plain dicts (``validate`` as in `load_chat_dataset`) before Arrow sees them.
    """
    path = Path(path)
    if path.is_dir():
        missing = [name for name in ("train.jsonl", "test.jsonl") if not (path / name).is_file()]
        if missing:
            raise DatasetFileError(f"{path}: folder lacks {missing}; put train.jsonl and test.jsonl there, "
                                   "or pass a single .jsonl file to split")
        files = {split: path / f"{split}.jsonl" for split in ("train", "test")}
        splits = {split: _checked(read_jsonl(file), validate, str(file)) for split, file in files.items()}
        for split, rows in splits.items():
            if not rows:
                raise DatasetFileError(f"{files[split]}: no valid rows left after validation; fix the rows listed above")
        return datasets.DatasetDict({split: to_dataset(rows, str(files[split])) for split, rows in splits.items()})
    return split_rows(_checked(read_jsonl(path), validate, str(path)), test_size, seed, source=str(path))


def _checked(rows: list[dict], validate: str, source: str) -> list[dict]:
    """Rows after `validate_conversations` ("raise" / "drop"), or unchanged for "off"."""
    if validate == "off":
        return rows
    kept, _ = validate_conversations(rows, drop_invalid=validate == "drop", source=source)
    return kept


def _load_hub(name: str, test_size: float, seed: int) -> datasets.DatasetDict:
    """``datasets.load_dataset(name)`` with a train/test pair (split off ``test_size`` when the hub has no test)."""
    loaded = datasets.load_dataset(name)
    if "test" not in loaded:
        loaded = loaded["train"].train_test_split(test_size=test_size, seed=seed)
    return datasets.DatasetDict({"train": loaded["train"], "test": loaded["test"]})


def _load_bundled(name: str, validate: str = "raise") -> datasets.DatasetDict:
    """The bundled copy, announced in one line when it stands in for a hub name."""
    if name not in BUNDLED_STANDS_IN_FOR:
        raise ValueError(f"no bundled copy of {name!r}; offline the choices are {list(BUNDLED_STANDS_IN_FOR)} "
                         "or a local .jsonl file / folder; connect to the hub to load other names")
    loaded = load_local(BUNDLED_DIR, validate=validate)
    print(f"offline: using the bundled sft-lab chat dataset ({len(loaded['train'])} train / "
          f"{len(loaded['test'])} test) in place of {name}")
    return loaded


def load_chat_dataset(name_or_path: str = DEFAULT_DATASET, *, source: str = "auto", test_size: float = 0.1,
                      seed: int = 42, validate: str = "raise") -> datasets.DatasetDict:
    """A ``DatasetDict`` with ``train`` and ``test`` from a local path, the hub, or the bundled offline copy.

    source: "auto" (local path if it exists, else hub when reachable, else bundled), "hub" or "bundled".
    validate: "raise" (ConversationFormatError on bad rows), "drop" (remove them, print counts) or "off".
    """
    if source not in SOURCES:
        raise ValueError(f"source={source!r}; choose one of {list(SOURCES)}")
    if validate not in VALIDATE_MODES:
        raise ValueError(f"validate={validate!r}; choose one of {list(VALIDATE_MODES)}")
    looks_local = Path(name_or_path).exists() or str(name_or_path).endswith(".jsonl")
    if looks_local and source != "hub":  # local rows are validated before Arrow sees them
        return load_local(name_or_path, test_size=test_size, seed=seed, validate=validate)
    if source == "bundled":
        return _load_bundled(name_or_path, validate)
    if source == "auto":
        from labhelpers.hub import use_hub

        if not use_hub():
            return _load_bundled(name_or_path, validate)
    loaded = _load_hub(name_or_path, test_size, seed)
    if validate != "off":
        for split in ("train", "test"):
            loaded[split], _ = validate_conversations(loaded[split], drop_invalid=validate == "drop",
                                                      source=f"{name_or_path} [{split}]")
    return loaded
