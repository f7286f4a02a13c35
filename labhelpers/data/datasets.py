"""Load chat datasets (hub, bundled copies or a local file/folder) and validate conversations before tokenizing.

The lesson's default, :data:`LAB_DATASET` (``"sft-lab/house-format"``), is bundled and loads the same online and
offline, so a student's numbers match CI's; its replies follow a house format a short run visibly learns.
``"HuggingFaceH4/no_robots"`` is one parameter away: the real data from the hub, or offline a bundled stand-in with
natural replies (no house format), so the real-data path runs here too.

Rows follow the ``HuggingFaceH4/no_robots`` schema: ``prompt``, ``prompt_id``, ``messages`` (a list of
``{"content", "role"}`` dicts) and ``category``. Only ``messages`` is required. Local files may also be ShareGPT,
Alpaca or TRL prompt/completion rows (converted to ``messages`` by `labhelpers.data.formats`, announced in one line), in
``.jsonl``, ``.json`` (an array, or JSON lines), ``.parquet`` or ``.csv``; a UTF-8 BOM and CRLF line ends are fine.

Errors name the row, the field and the fix. Bad files raise `DatasetFileError`; bad conversations raise
one `ConversationFormatError` listing every bad row, or are dropped with ``validate="drop"``.
"""

from __future__ import annotations

import ast
import csv
import io
import json
import math
import sys
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported lazily: `datasets` costs ~1 s, and the sanity CLI validates files before any heavy import
    import datasets
    from labhelpers.data.formats import FormatReport

from labhelpers.data.problems import DatasetFileError, RowProblem  # noqa: F401  (public here: data raises them)

BUNDLED_DIR = Path(__file__).resolve().parents[1] / "bundled_data"  # train.jsonl + test.jsonl, see its README.md
LAB_DATASET = "sft-lab/house-format"  # the lesson's data: bundled, the same online and offline
NO_ROBOTS = "HuggingFaceH4/no_robots"  # the seed lab's real data (hub); offline, its natural-reply stand-in
DEFAULT_DATASET = LAB_DATASET
BUNDLED = {LAB_DATASET: BUNDLED_DIR, NO_ROBOTS: BUNDLED_DIR / "natural"}  # name -> folder (train/test.jsonl)
BUNDLED_STANDS_IN_FOR = (NO_ROBOTS,)  # hub names a bundled copy replaces only when the hub is unreachable
SOURCES = ("auto", "hub", "bundled")
VALIDATE_MODES = ("raise", "drop", "off")
ROLES = ("system", "user", "assistant")
MESSAGE_KEYS = ("content", "role")
MAX_LISTED = 20  # bad rows spelled out in one error message
EXTENSIONS = (".jsonl", ".json", ".parquet", ".csv")  # local file types, read by extension (.ndjson reads as .jsonl)
SPLIT_NAMES = ("train", "test")  # files a local folder must hold, each with one of EXTENSIONS
_CSV_LIST_COLUMNS = ("messages", "conversations", "prompt", "completion")  # CSV cells holding JSON lists


class ConversationFormatError(ValueError):
    """One or more rows are not valid chat conversations; the message lists each bad row and the fix."""


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
            return problem(f"{where}.content", "missing content", "content is null" if "content" in message else "no 'content'",
                           "add the message text or drop the row")
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


def format_problems(problems: list[RowProblem], source: str = "dataset", limit: int = MAX_LISTED,
                    n_rows: int | None = None) -> str:
    """The `ConversationFormatError` message: a header, one line per bad row (capped) and how to drop them, or, when
    every one of ``n_rows`` is bad, why dropping is no fix (it would leave no data).

    >>> p = RowProblem(4, None, "messages", "missing 'messages'", "no 'messages' field (fields: ['x'])", "add it")
    >>> print(format_problems([p], "train.jsonl"))
    train.jsonl: 1 invalid row
      row 4, messages: no 'messages' field (fields: ['x']); add it
    To skip invalid rows instead, pass validate="drop" (or drop_invalid=True).
    >>> print(format_problems([p], "train.jsonl", n_rows=1).splitlines()[-1])
    Every row is invalid, so dropping them would leave no data: convert the rows (most often: add it).
    """
    lines = [f"{source}: {len(problems)} invalid row{'s' if len(problems) != 1 else ''}"]
    lines += [f"  {p}" for p in problems[:limit]]
    if len(problems) > limit:
        lines.append(f"  ... and {len(problems) - limit} more")
    if every_row_invalid(problems, n_rows):
        common = Counter(p.fix.removesuffix(" or drop the row") for p in problems).most_common(1)[0][0]
        lines.append(f"Every row is invalid, so dropping them would leave no data: convert the rows (most often: {common}).")
    else:
        lines.append('To skip invalid rows instead, pass validate="drop" (or drop_invalid=True).')
    return "\n".join(lines)


def every_row_invalid(problems: list[RowProblem], n_rows: int | None) -> bool:
    """True when ``problems`` cover all ``n_rows`` rows (None: unknown, False)."""
    return bool(n_rows) and len({p.index for p in problems}) >= n_rows


def _is_dataset(rows: Any) -> bool:
    """True for a ``datasets.Dataset`` (checked without importing ``datasets`` when nobody has yet)."""
    module = sys.modules.get("datasets")
    return module is not None and isinstance(rows, module.Dataset)


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
    is_dataset = _is_dataset(rows)
    problems = [p for i, row in enumerate(rows) if (p := check_row(row, i, tolerate_null_keys=is_dataset))]
    return _settle(rows, problems, drop_invalid, source)


def _settle(rows: Any, problems: list[RowProblem], drop_invalid: bool, source: str) -> tuple[Any, ValidationReport]:
    """Raise `ConversationFormatError` for ``problems``, or drop their rows (printing the summary) with ``drop_invalid``."""
    report = ValidationReport(n_rows=len(rows), reasons=dict(Counter(p.reason for p in problems)), problems=problems)
    if not problems:
        return rows, report
    if not drop_invalid or every_row_invalid(problems, len(rows)):  # dropping all rows would only fail later
        raise ConversationFormatError(format_problems(problems, source, n_rows=len(rows)))
    bad = {p.index for p in problems}
    keep = [i for i in range(len(rows)) if i not in bad]
    kept = rows.select(keep) if _is_dataset(rows) else [rows[i] for i in keep]
    report.n_dropped = len(bad)
    print(report.summary(source))
    return kept, report


# ------------------------------------------------------------------------------------------------ local files
def _missing_file(path: Path) -> DatasetFileError:
    hint = ("it is a folder; pass a data file or a folder holding train and test files" if path.exists()
            else "check the path (relative paths start at the notebook's folder)")
    return DatasetFileError(f"{path}: file not found; {hint}")


def _read_text(path: Path) -> str:
    """The file's text: UTF-8, a leading BOM removed; `DatasetFileError` when missing or not UTF-8."""
    if not path.is_file():
        raise _missing_file(path)
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise DatasetFileError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start}); save it as UTF-8") from None


def parse_jsonl(text: str, source: str = "dataset") -> list[dict]:
    """Objects of JSON-lines text (blank lines and CRLF ends fine); `DatasetFileError` names the line and the fix.

    >>> parse_jsonl('{"a": 1}\\r\\n\\r\\n{"a": 2}\\r\\n')
    [{'a': 1}, {'a': 2}]
    >>> parse_jsonl('{"a": 1}\\n[1]', "x.jsonl")
    Traceback (most recent call last):
    ...
    labhelpers.data.datasets.DatasetFileError: x.jsonl, line 2: a JSON array, not an object; JSONL needs one object per line, so write one object per line (or name the file .json if it is one JSON array)
    """
    rows: list[dict] = []
    loads = json.loads
    for number, line in enumerate(text.splitlines(), start=1):
        if not line or line.isspace():
            continue
        try:
            value = loads(line)
        except json.JSONDecodeError as err:
            whole = _whole_document(text)
            if whole is not None:
                raise DatasetFileError(f"{source}: the whole file is one JSON {whole}, not JSONL; write one object per "
                                       "line (e.g. `for r in rows: f.write(json.dumps(r) + '\\n')`) or name the file "
                                       ".json") from None
            raise DatasetFileError(f"{source}, line {number}: not valid JSON ({err.msg} at column {err.colno}); "
                                   "each line must be one complete JSON object") from None
        if type(value) is not dict:
            if isinstance(value, list):
                raise DatasetFileError(f"{source}, line {number}: a JSON array, not an object; JSONL needs one object "
                                       "per line, so write one object per line (or name the file .json if it is one "
                                       "JSON array)")
            raise DatasetFileError(f"{source}, line {number}: a JSON {type(value).__name__}, not an object; "
                                   "write one object with a 'messages' field per line")
        rows.append(value)
    return rows


def parse_json(text: str, source: str = "dataset") -> list[dict]:
    """Rows of a ``.json`` file: an array of objects, ``{"<name>": [objects]}``, one object, or JSON lines.

    >>> parse_json('[{"a": 1}, {"a": 2}]'), parse_json('{"data": [{"a": 1}]}'), parse_json('{"a": 1}\\n{"a": 2}')
    ([{'a': 1}, {'a': 2}], [{'a': 1}], [{'a': 1}, {'a': 2}])
    """
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        if err.msg == "Extra data":  # JSON lines saved as .json (datasets' to_json does this)
            return parse_jsonl(text, source)
        raise DatasetFileError(f"{source}: not valid JSON ({err.msg} at line {err.lineno}, column {err.colno}); "
                               "write one JSON array of row objects (or one object per line)") from None
    if isinstance(value, dict):
        lists = [v for v in value.values() if isinstance(v, list) and v and all(isinstance(x, dict) for x in v)]
        if len(value) == 1 and len(lists) == 1:
            value = lists[0]  # {"data": [...]}
        else:
            value = [value]  # a single row
    if not isinstance(value, list):
        raise DatasetFileError(f"{source}: the file holds a JSON {type(value).__name__}; write a JSON array of row objects")
    for i, row in enumerate(value):
        if not isinstance(row, dict):
            raise DatasetFileError(f"{source}, item {i} of the array: a JSON {type(row).__name__}, not an object; "
                                   "make every array item one row object")
    return value


def _cell(key: str, value: str) -> Any:
    """A CSV cell: JSON (or Python-repr, as pandas writes) lists in the list columns, else the string.

    >>> _cell("messages", '[{"role": "user", "content": "Hi"}]'), _cell("messages", "[{'role': 'user'}]"), _cell("input", "[x]")
    ([{'role': 'user', 'content': 'Hi'}], [{'role': 'user'}], '[x]')
    """
    if key not in _CSV_LIST_COLUMNS or not value.lstrip().startswith("["):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        try:
            return ast.literal_eval(value)
        except (ValueError, SyntaxError):
            return value


def parse_csv(text: str, source: str = "dataset", delimiter: str = ",") -> list[dict]:
    """Rows of CSV text with a header line; list columns (messages, conversations, prompt, completion) hold JSON.

    Quoted cells may span lines (long replies usually do).

    >>> parse_csv('instruction,input,output\\r\\nAdd.,2+2,"4\\nsure"\\r\\n')
    [{'instruction': 'Add.', 'input': '2+2', 'output': '4\\nsure'}]
    """
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # long replies exceed the 128 KB default
    try:
        reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
        return [{k: _cell(k, v or "") for k, v in row.items() if k is not None} for row in reader]
    except csv.Error as err:
        raise DatasetFileError(f"{source}: not valid CSV ({err}); write a header line and one row per line") from None


def _parquet_rows(path: Path) -> list[dict]:
    try:
        import pyarrow.parquet as pq
    except ImportError:  # pragma: no cover - pyarrow comes with datasets
        raise DatasetFileError(f"{path}: reading .parquet needs pyarrow; pip install pyarrow") from None
    if not path.is_file():
        raise _missing_file(path)
    try:
        return pq.read_table(path).to_pylist()
    except Exception as err:  # pyarrow raises ArrowInvalid / OSError for broken files
        raise DatasetFileError(f"{path}: not a readable Parquet file ({type(err).__name__}: {str(err)[:200]}); "
                               "write it with pandas.DataFrame.to_parquet or Dataset.to_parquet") from None


def read_records(path: str | Path) -> list[dict]:
    """Raw row objects of a local file, parsed by extension (.jsonl/.ndjson, .json, .parquet, .csv); no schema check."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        rows = _parquet_rows(path)
    else:
        text = _read_text(path)
        if suffix in (".jsonl", ".ndjson"):
            rows = parse_jsonl(text, str(path))
        elif suffix == ".json":
            rows = parse_json(text, str(path))
        elif suffix in (".csv", ".tsv"):
            rows = parse_csv(text, str(path), "," if suffix == ".csv" else "\t")
        else:
            start = text.lstrip()[:1]
            if start not in ("[", "{"):
                raise DatasetFileError(f"{path}: unknown file type {suffix or '(no extension)'!r}; "
                                       f"name it with one of {list(EXTENSIONS)}")
            rows = parse_json(text, str(path)) if start == "[" else parse_jsonl(text, str(path))
    if not rows:
        raise DatasetFileError(f"{path}: empty dataset (no rows); add at least one conversation per line")
    return rows


def read_jsonl(path: str | Path) -> list[dict]:
    """Rows of a JSONL file (one JSON object per line, blank lines skipped); `DatasetFileError` names file, line and fix."""
    path = Path(path)
    rows = parse_jsonl(_read_text(path), str(path))
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


def to_chat_rows(records: list[Any], validate: str = "raise", source: str = "dataset", *,
                 tolerate_null_keys: bool = False) -> tuple[list[dict], FormatReport]:
    """Convert raw rows of any supported format to ``messages`` rows and validate them: ``(rows, format report)``.

    Conversion problems (e.g. a ``weight: 0`` reply, an unknown ShareGPT role) and conversation problems are listed
    together in one `ConversationFormatError`, naming the original field; ``validate="drop"`` removes those rows and
    ``"off"`` skips the conversation checks (never the conversion ones).

    >>> rows, report = to_chat_rows([{"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Yo"}]}])
    >>> rows[0]["messages"][1], str(report)
    ({'role': 'assistant', 'content': 'Yo'}, 'ShareGPT: 1 row, roles human->user, gpt->assistant')
    """
    from labhelpers.data.formats import source_field, to_messages

    if validate not in VALIDATE_MODES:
        raise ValueError(f"validate={validate!r}; choose one of {list(VALIDATE_MODES)}")
    rows, problems, report = to_messages(records, source, tolerate_null_keys=tolerate_null_keys)
    if validate != "off":
        bad = {p.index for p in problems}
        native = report.format == "messages"
        for i, row in enumerate(rows):
            if i in bad:
                continue
            problem = check_row(row, i, tolerate_null_keys=tolerate_null_keys)
            if problem is not None:
                if not native:
                    raw = records[i]
                    pid = raw.get("prompt_id", raw.get("id")) if isinstance(raw, dict) else None
                    problem = replace(problem, field=source_field(raw, report.format, problem.field),
                                      prompt_id=None if pid is None else str(pid))
                problems.append(problem)
        problems.sort(key=lambda p: p.index)
    kept, _ = _settle(rows, problems, validate == "drop", source)
    return kept, report


def load_rows(path: str | Path, validate: str = "raise") -> tuple[list[dict], FormatReport]:
    """Read one local file of any supported format and extension: ``(messages rows, format report)``, validated."""
    path = Path(path)
    return to_chat_rows(read_records(path), validate, str(path), tolerate_null_keys=path.suffix.lower() == ".parquet")


def to_dataset(rows: list[dict], source: str = "dataset") -> datasets.Dataset:
    """``Dataset.from_list`` whose Arrow type errors become a `DatasetFileError` naming the source and the fix."""
    import datasets

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


def split_files(folder: str | Path) -> dict[str, Path]:
    """``{"train": file, "test": file}`` of a folder (any of EXTENSIONS); `DatasetFileError` names what is missing."""
    folder = Path(folder)
    found: dict[str, list[Path]] = {s: [folder / f"{s}{e}" for e in EXTENSIONS if (folder / f"{s}{e}").is_file()]
                                    for s in SPLIT_NAMES}
    for split, files in found.items():
        if len(files) > 1:
            raise DatasetFileError(f"{folder}: several {split} files {[f.name for f in files]}; keep exactly one")
    ext = next((files[0].suffix for files in found.values() if files), ".jsonl")
    missing = [f"{split}{ext}" for split, files in found.items() if not files]
    if missing:
        raise DatasetFileError(f"{folder}: folder lacks {missing}; put train{ext} and test{ext} there "
                               f"(any of {', '.join(EXTENSIONS)}), or pass a single data file to split")
    return {split: files[0] for split, files in found.items()}


def _announce(report: FormatReport, source: str) -> None:
    """Print the one-line conversion report when rows were converted (plain ``messages`` files stay silent)."""
    if report.converted:
        print(f"{report} (from {source})")


def load_local(path: str | Path, *, test_size: float = 0.1, seed: int = 42,
               validate: str = "raise") -> datasets.DatasetDict:
    """A data file (split off ``test_size`` with ``seed``) or a folder holding train and test files.

    Files may be .jsonl, .json, .parquet or .csv in any format `labhelpers.data.formats` reads; rows are converted to
    ``messages`` (one line printed when they were) and validated as plain dicts (``validate`` as in
    `load_chat_dataset`) before Arrow sees them.
    """
    import datasets

    path = Path(path)
    if path.is_dir():
        files = split_files(path)
        splits = {}
        for split, file in files.items():
            rows, report = load_rows(file, validate)
            _announce(report, str(file))
            if not rows:
                raise DatasetFileError(f"{file}: no valid rows left after validation; fix the rows listed above")
            splits[split] = rows
        return datasets.DatasetDict({split: to_dataset(rows, str(files[split])) for split, rows in splits.items()})
    rows, report = load_rows(path, validate)
    _announce(report, str(path))
    return split_rows(rows, test_size, seed, source=str(path))


def _checked(rows: list[dict], validate: str, source: str) -> list[dict]:
    """Rows after `validate_conversations` ("raise" / "drop"), or unchanged for "off"."""
    if validate == "off":
        return rows
    kept, _ = validate_conversations(rows, drop_invalid=validate == "drop", source=source)
    return kept


def _load_hub(name: str, test_size: float, seed: int) -> datasets.DatasetDict:
    """``datasets.load_dataset(name)`` with a train/test pair (split off ``test_size`` when the hub has no test)."""
    import datasets

    loaded = datasets.load_dataset(name)
    if "test" not in loaded:
        loaded = loaded["train"].train_test_split(test_size=test_size, seed=seed)
    return datasets.DatasetDict({"train": loaded["train"], "test": loaded["test"]})


def _load_bundled(name: str, validate: str = "raise") -> datasets.DatasetDict:
    """A bundled copy; one line says so when it stands in for a hub dataset.

    >>> _load_bundled("someone/other")
    Traceback (most recent call last):
    ...
    ValueError: no bundled copy of 'someone/other'; offline the choices are ['sft-lab/house-format', 'HuggingFaceH4/no_robots'] or a local .jsonl file / folder; connect to the hub to load other names
    """
    if name not in BUNDLED:
        raise ValueError(f"no bundled copy of {name!r}; offline the choices are {list(BUNDLED)} "
                         "or a local .jsonl file / folder; connect to the hub to load other names")
    loaded = load_local(BUNDLED[name], validate=validate)
    if name in BUNDLED_STANDS_IN_FOR:
        print(f"offline: using the bundled natural-reply stand-in ({len(loaded['train'])} train / "
              f"{len(loaded['test'])} test, no_robots schema, no house format) in place of {name}")
    return loaded


def dataset_source(name_or_path: str) -> str:
    """Where :func:`load_chat_dataset` takes ``name_or_path`` from, in words (for model cards and run summaries).

    >>> dataset_source("sft-lab/house-format")
    'sft-lab/house-format (bundled with labhelpers: labhelpers/bundled_data)'
    """
    from labhelpers.base.hub import use_hub

    if name_or_path == LAB_DATASET:
        return f"{LAB_DATASET} (bundled with labhelpers: labhelpers/bundled_data)"
    if Path(name_or_path).exists():
        return f"the local file/folder {name_or_path}"
    if name_or_path in BUNDLED_STANDS_IN_FOR and not use_hub():
        return f"the bundled natural-reply stand-in for {name_or_path} (labhelpers/bundled_data/natural; offline)"
    return f"{name_or_path} (Hugging Face hub)"


def load_chat_dataset(name_or_path: str = DEFAULT_DATASET, *, source: str = "auto", test_size: float = 0.1,
                      seed: int = 42, validate: str = "raise") -> datasets.DatasetDict:
    """A ``DatasetDict`` with ``train`` and ``test`` from a local path, the hub, or the bundled offline copy.

    source: "auto" (local path if it exists; :data:`LAB_DATASET` from its bundled copy; else the hub when reachable,
    else a bundled stand-in), "hub" or "bundled".
    A local path is a file or a train/test folder in any format and extension `load_rows` reads (ShareGPT, Alpaca and
    prompt/completion rows are converted to ``messages`` and announced in one line).
    validate: "raise" (ConversationFormatError on bad rows), "drop" (remove them, print counts) or "off".
    """
    if source not in SOURCES:
        raise ValueError(f"source={source!r}; choose one of {list(SOURCES)}")
    if validate not in VALIDATE_MODES:
        raise ValueError(f"validate={validate!r}; choose one of {list(VALIDATE_MODES)}")
    looks_local = Path(name_or_path).exists() or str(name_or_path).lower().endswith(EXTENSIONS + (".ndjson",))
    if looks_local and source != "hub":  # local rows are validated before Arrow sees them
        return load_local(name_or_path, test_size=test_size, seed=seed, validate=validate)
    if source == "bundled" or (name_or_path == LAB_DATASET and source == "auto"):
        return _load_bundled(name_or_path, validate)
    if source == "auto":
        from labhelpers.base.hub import use_hub

        if not use_hub():
            return _load_bundled(name_or_path, validate)
    loaded = _load_hub(name_or_path, test_size, seed)
    if validate != "off":
        for split in ("train", "test"):
            loaded[split], _ = validate_conversations(loaded[split], drop_invalid=validate == "drop",
                                                      source=f"{name_or_path} [{split}]")
    return loaded
