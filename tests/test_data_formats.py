"""Bring-your-own data: every format and file type `load_chat_dataset` reads, and each bad input's message."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from labhelpers.data.datasets import ConversationFormatError, DatasetFileError, load_chat_dataset, load_rows, read_records
from labhelpers.data.formats import FormatReport, detect_format, row_format

U, A, S = ({"role": r, "content": c} for r, c in (("user", "Hi"), ("assistant", "Hello"), ("system", "Be brief")))
CHAT = [U, A]


def jsonl(rows: list) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


def to_csv(rows: list[dict]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]))
    writer.writeheader()
    for row in rows:
        writer.writerow({k: json.dumps(v) if isinstance(v, list) else v for k, v in row.items()})
    return out.getvalue()


def write(tmp_path: Path, name: str, content: str | bytes | list[dict]) -> Path:
    path = tmp_path / name
    if isinstance(content, list):
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(content), path)
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8", newline="")
    return path


SHAREGPT = {"id": "s1", "conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"}]}
ALPACA = {"instruction": "Translate to French.", "input": "Hello", "output": "Bonjour"}
ALPACA_MSGS = [{"role": "user", "content": "Translate to French.\n\nHello"}, {"role": "assistant", "content": "Bonjour"}]

# (case id, file name, content, expected messages of row 0, expected report line)
GOOD = [
    ("no_robots jsonl", "d.jsonl", jsonl([{"prompt": "Hi", "prompt_id": "p1", "messages": CHAT, "category": "Chat"}] * 2),
     CHAT, "messages: 2 rows"),
    ("openai weight 1", "d.jsonl", jsonl([{"messages": [U, {**A, "weight": 1}]}] * 2), CHAT,
     "messages: 2 rows, 'weight': 1 removed from 2 replies (every assistant reply is trained)"),
    ("sharegpt jsonl", "d.jsonl", jsonl([SHAREGPT] * 3), CHAT, "ShareGPT: 3 rows, roles human->user, gpt->assistant"),
    ("sharegpt system + chatgpt", "d.jsonl",
     jsonl([{"system": "Be brief", "conversations": [{"from": "user", "value": "Hi"}, {"from": "chatgpt", "value": "Hello"}]}]),
     [S, U, A], "ShareGPT: 1 row, roles chatgpt->assistant, 'system' -> system message in 1 row"),
    ("sharegpt role/content turns", "d.jsonl", jsonl([{"conversations": CHAT}]), CHAT,
     "ShareGPT: 1 row, roles already user/assistant"),
    ("alpaca json array", "d.json", json.dumps([ALPACA, {**ALPACA, "input": ""}]), ALPACA_MSGS,
     "Alpaca: 2 rows, instruction + input -> user, output -> assistant"),
    ("alpaca with system", "d.json", json.dumps([{**ALPACA, "system": "Be brief"}]), [S] + ALPACA_MSGS,
     "Alpaca: 1 row, instruction + input -> user, output -> assistant, system -> system message in 1 row"),
    ("alpaca without input", "d.jsonl", jsonl([{"instruction": ALPACA["instruction"], "output": ALPACA["output"]}]),
     [{"role": "user", "content": ALPACA["instruction"]}, {"role": "assistant", "content": ALPACA["output"]}],
     "Alpaca: 1 row, instruction + input -> user, output -> assistant"),
    ("alpaca csv", "d.csv", to_csv([ALPACA, {**ALPACA, "input": ""}]), ALPACA_MSGS,
     "Alpaca: 2 rows, instruction + input -> user, output -> assistant"),
    ("prompt/completion conversational", "d.jsonl", jsonl([{"prompt": [S, U], "completion": [A]}]), [S, U, A],
     "TRL prompt/completion (conversational): 1 row, prompt + completion -> messages"),
    ("prompt/completion plain", "d.jsonl", jsonl([{"prompt": "Hi", "completion": "Hello"}]), CHAT,
     "TRL prompt/completion (plain): 1 row, prompt -> user, completion -> assistant"),
    ("messages parquet", "d.parquet", [{"messages": CHAT}, {"messages": [U, A, U, A]}], CHAT, "messages: 2 rows"),
    ("sharegpt parquet", "d.parquet", [SHAREGPT, SHAREGPT], CHAT, "ShareGPT: 2 rows, roles human->user, gpt->assistant"),
    ("messages csv (JSON cells)", "d.csv", to_csv([{"messages": CHAT}]), CHAT, "messages: 1 row"),
    ("BOM, CRLF, blank trailing lines", "d.jsonl",
     b"\xef\xbb\xbf" + jsonl([{"messages": CHAT}] * 2).replace("\n", "\r\n").encode() + b"\r\n\r\n  \r\n", CHAT,
     "messages: 2 rows"),
    ("json lines named .json", "d.json", jsonl([{"messages": CHAT}] * 2), CHAT, "messages: 2 rows"),
    ("json object holding the rows", "d.json", json.dumps({"data": [SHAREGPT]}), CHAT,
     "ShareGPT: 1 row, roles human->user, gpt->assistant"),
]


@pytest.mark.parametrize("case, name, content, first, line", GOOD, ids=[g[0] for g in GOOD])
def test_each_format_converts_to_messages(tmp_path, case, name, content, first, line):
    rows, report = load_rows(write(tmp_path, name, content))
    assert rows[0]["messages"] == first
    assert str(report) == line
    assert all(set(m) == {"role", "content"} for row in rows for m in row["messages"])


def test_conversion_line_is_printed_and_messages_files_stay_quiet(tmp_path, capsys):
    path = write(tmp_path, "share.jsonl", jsonl([SHAREGPT] * 10))
    loaded = load_chat_dataset(str(path), test_size=0.2)
    assert (len(loaded["train"]), len(loaded["test"])) == (8, 2) and loaded["train"].column_names == ["messages"]
    assert capsys.readouterr().out == f"ShareGPT: 10 rows, roles human->user, gpt->assistant (from {path})\n"
    load_chat_dataset(str(write(tmp_path, "plain.jsonl", jsonl([{"messages": CHAT}] * 10))))
    assert capsys.readouterr().out == ""  # notebooks' outputs do not change


def test_folder_with_train_and_test_in_any_extension(tmp_path, capsys):
    write(tmp_path, "train.parquet", [SHAREGPT] * 3)
    write(tmp_path, "test.csv", to_csv([ALPACA]))
    loaded = load_chat_dataset(str(tmp_path))
    assert (len(loaded["train"]), len(loaded["test"])) == (3, 1)
    assert loaded["test"][0]["messages"] == ALPACA_MSGS
    out = capsys.readouterr().out
    assert "ShareGPT: 3 rows" in out and "Alpaca: 1 row" in out
    (tmp_path / "test.csv").unlink()
    with pytest.raises(DatasetFileError, match=r"folder lacks \['test.parquet'\]"):
        load_chat_dataset(str(tmp_path))


def test_detection_helpers():
    assert [row_format(r) for r in ({"messages": []}, SHAREGPT, ALPACA, {"prompt": "a", "completion": "b"})] == [
        "messages", "sharegpt", "alpaca", "prompt_completion"]
    assert detect_format([SHAREGPT, SHAREGPT, {"messages": CHAT}]) == "sharegpt"
    assert not FormatReport("messages", 2).converted and FormatReport("alpaca", 2).converted


# (case id, file name, content, error class, words the message must contain: the row, the field, what, the fix)
BAD = [
    ("weight 0 reply", "d.jsonl", jsonl([{"messages": CHAT}, {"messages": [U, {**A, "weight": 0}]}]), ConversationFormatError,
     ["row 1", "messages[1].weight", "weight 0", "would be trained", "end the conversation before this reply"]),
    ("weight 2", "d.jsonl", jsonl([{"messages": [U, {**A, "weight": 2}]}]), ConversationFormatError,
     ["row 0", "messages[1].weight", "weight is 2", "use 'weight': 1"]),
    ("weight on user", "d.jsonl", jsonl([{"messages": [{**U, "weight": 1}, A]}]), ConversationFormatError,
     ["row 0", "messages[0].weight", "remove 'weight'"]),
    ("empty assistant content", "d.jsonl", jsonl([{"messages": [U, {"role": "assistant", "content": ""}]}]),
     ConversationFormatError, ["row 0", "messages[1].content", "content is empty", "write the message text"]),
    ("None content", "d.jsonl", jsonl([{"messages": [U, {"role": "assistant", "content": None}]}]), ConversationFormatError,
     ["row 0", "messages[1].content", "content is null", "add the message text"]),
    ("trailing user turn", "d.jsonl", jsonl([{"messages": [U, A, U]}]), ConversationFormatError,
     ["row 0", "messages[2]", "last turn is 'user'", "append an assistant reply"]),
    ("system + user only", "d.jsonl", jsonl([{"messages": [S, U]}]), ConversationFormatError,
     ["row 0", "messages[1]", "last turn is 'user'", "append an assistant reply"]),
    ("sharegpt unknown from", "d.jsonl",
     jsonl([SHAREGPT, {"conversations": [{"from": "human", "value": "Hi"}, {"from": "narrator", "value": "x"}]}]),
     ConversationFormatError, ["row 1", "conversations[1].from", "'narrator'", "rename it"]),
    ("sharegpt empty value", "d.jsonl", jsonl([{"id": "abc", "conversations": [{"from": "human", "value": "Hi"},
                                                                              {"from": "gpt", "value": " "}]}]),
     ConversationFormatError, ["row 0 (prompt_id 'abc')", "conversations[1].value", "whitespace only", "write the message text"]),
    ("sharegpt trailing human", "d.jsonl", jsonl([{"conversations": SHAREGPT["conversations"] + [{"from": "human", "value": "?"}]}]),
     ConversationFormatError, ["row 0", "conversations[2]", "last turn is 'user'", "append an assistant reply"]),
    ("sharegpt not a list", "d.jsonl", jsonl([{"conversations": "Hi"}]), ConversationFormatError,
     ["row 0", "conversations", "is a str", "make 'conversations' a list"]),
    ("alpaca empty output", "d.json", json.dumps([ALPACA, {**ALPACA, "output": ""}]), ConversationFormatError,
     ["row 1", "output", "content is empty", "write the message text"]),
    ("alpaca null output", "d.json", json.dumps([{**ALPACA, "output": None}]), ConversationFormatError,
     ["row 0", "output", "'output' is null", "store the output text"]),
    ("prompt/completion types differ", "d.jsonl", jsonl([{"prompt": [U], "completion": "Hello"}]), ConversationFormatError,
     ["row 0", "prompt/completion", "make both strings"]),
    ("completion empty reply", "d.jsonl", jsonl([{"prompt": [U], "completion": [{"role": "assistant", "content": ""}]}]),
     ConversationFormatError, ["row 0", "completion[0].content", "content is empty"]),
    ("row in another format", "d.jsonl", jsonl([{"messages": CHAT}, {"messages": CHAT}, SHAREGPT]), ConversationFormatError,
     ["row 2", "row is in ShareGPT format, the file is messages", "convert the row"]),
    ("text column", "d.jsonl", jsonl([{"text": "<|im_start|>user\nHi<|im_end|>"}]), DatasetFileError,
     ["d.jsonl", "'text' column", "would train on the prompt", "convert each row to {'messages'"]),
    ("unknown schema", "d.jsonl", jsonl([{"question": "a", "answer": "b"}]), DatasetFileError,
     ["wrong schema", "fields found: ['answer', 'question']", "convert each row"]),
    ("question/answer table", "d.jsonl", jsonl([{"question": "a", "answer": "b"}]), DatasetFileError,
     ["wrong schema", "look like a Q&A table", "rename them to 'instruction'/'output'"]),
    ("array item not an object", "d.json", json.dumps([{"messages": CHAT}, "oops"]), DatasetFileError,
     ["item 1 of the array", "make every array item one row object"]),
    ("array in a .jsonl", "d.jsonl", json.dumps([{"messages": CHAT}] * 2, indent=1), DatasetFileError,
     ["whole file is one JSON array", "one object per line", "name the file .json"]),
    ("broken json", "d.json", '[{"messages": ', DatasetFileError, ["not valid JSON", "line 1"]),
    ("unknown extension", "d.txt", "hello", DatasetFileError, ["unknown file type '.txt'", ".jsonl"]),
    ("empty file", "d.jsonl", "\n\n", DatasetFileError, ["empty dataset"]),
    ("not utf-8", "d.jsonl", b'{"messages": "\xff"}\n', DatasetFileError, ["not UTF-8", "save it as UTF-8"]),
    ("odd extension", "d.parquet.bad", b"PAR1 nope", DatasetFileError, ["unknown file type '.bad'"]),
]


@pytest.mark.parametrize("case, name, content, error, words", BAD, ids=[b[0] for b in BAD])
def test_each_bad_input_names_row_field_and_fix(tmp_path, case, name, content, error, words):
    path = write(tmp_path, name, content)
    with pytest.raises(error) as info:
        load_rows(path)
    message = str(info.value)
    for word in words:
        assert word in message, f"{word!r} not in:\n{message}"
    with pytest.raises(error):  # load_chat_dataset reports the same way
        load_chat_dataset(str(path))


def test_drop_removes_bad_rows_of_any_format(tmp_path, capsys):
    bad = {"conversations": [{"from": "human", "value": "Hi"}]}
    rows, report = load_rows(write(tmp_path, "d.jsonl", jsonl([SHAREGPT, bad, SHAREGPT])), validate="drop")
    assert len(rows) == 2 and report.format == "sharegpt"
    assert "1 of 3 rows dropped (1 × last turn is not 'assistant')" in capsys.readouterr().out


def test_read_records_keeps_raw_rows(tmp_path):
    assert read_records(write(tmp_path, "d.csv", to_csv([ALPACA]))) == [ALPACA]
    multi = {**ALPACA, "output": "Bonjour,\n- line two\n- \"three\""}  # quoted cells spanning lines
    assert read_records(write(tmp_path, "m.csv", to_csv([multi, ALPACA]))) == [multi, ALPACA]
    tsv = write(tmp_path, "d.tsv", "instruction\tinput\toutput\nSay hi, please.\t\tHi, you.\n")
    assert read_records(tsv) == [{"instruction": "Say hi, please.", "input": "", "output": "Hi, you."}]


def test_broken_parquet_file(tmp_path):
    with pytest.raises(DatasetFileError, match="not a readable Parquet file"):
        load_rows(write(tmp_path, "d.parquet", b"PAR1 nope"))


def test_fifty_thousand_rows_load_in_seconds(tmp_path):
    import time

    path = write(tmp_path, "big.jsonl", jsonl([SHAREGPT] * 50_000))  # ~5 MB; benchmarks/data_formats.py does 50 MB
    start = time.perf_counter()
    rows, _ = load_rows(path)
    assert len(rows) == 50_000 and time.perf_counter() - start < 5
