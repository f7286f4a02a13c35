"""``python -m labhelpers.sanity``: bad input gives rc 2 with the per-row message before torch loads; never a traceback;
and `check_dataset` over broken and healthy setups (real tokenizer, marked slow)."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from labhelpers.sanity.__main__ import EXIT_BAD_INPUT, EXIT_FAIL, EXIT_OK, main
from sanity_setup import chat_rows

ROOT = Path(__file__).resolve().parent.parent
U, A, S = ({"role": r, "content": c} for r, c in (("user", "Hi"), ("assistant", "Hello"), ("system", "Be brief")))


def jsonl(rows: list) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return rc, out, err


def sharegpt(messages: list[dict]) -> dict:
    names = {"user": "human", "assistant": "gpt", "system": "system"}
    return {"conversations": [{"from": names[m["role"]], "value": m["content"]} for m in messages]}


# (case id, file name, content, words the stderr line must contain)
BAD_FILES = [
    ("empty assistant content", "d.jsonl", jsonl([{"messages": [U, A]}, {"messages": [U, {"role": "assistant", "content": ""}]}]),
     ["row 1", "messages[1].content", "content is empty", "write the message text"]),
    ("trailing user turn", "d.jsonl", jsonl([{"messages": [U, A, U]}]), ["row 0", "messages[2]", "append an assistant reply"]),
    ("None content", "d.jsonl", jsonl([{"messages": [U, {"role": "assistant", "content": None}]}]),
     ["row 0", "messages[1].content", "content is null"]),
    ("system + user only", "d.jsonl", jsonl([{"messages": [S, U]}] * 3), ["row 0", "row 2", "last turn is 'user'"]),
    ("weight 0 reply", "d.jsonl", jsonl([{"messages": [U, {**A, "weight": 0}]}]),
     ["row 0", "messages[1].weight", "would be trained", "end the conversation before this reply"]),
    ("sharegpt trailing human", "d.jsonl", jsonl([sharegpt([U, A, U])]), ["row 0", "conversations[2]", "last turn is 'user'"]),
    ("sharegpt empty reply", "d.jsonl", jsonl([sharegpt([U, {"role": "assistant", "content": " "}])]),
     ["row 0", "conversations[1].value", "whitespace only"]),
    ("alpaca empty output", "d.json", json.dumps([{"instruction": "a", "input": "", "output": ""}]), ["row 0", "output", "empty"]),
    ("prompt/completion empty reply", "d.jsonl", jsonl([{"prompt": [U], "completion": [{"role": "assistant", "content": ""}]}]),
     ["row 0", "completion[0].content"]),
    ("csv trailing user", "d.csv", 'messages\n"[{""role"": ""user"", ""content"": ""Hi""}]"\n', ["row 0", "messages[0]", "last turn"]),
    ("parquet system only", "d.parquet", [{"messages": [S]}], ["row 0", "last turn is 'system'"]),
    ("text column", "d.jsonl", jsonl([{"text": "<|im_start|>user\nHi<|im_end|>"}]), ["'text' column", "convert each row"]),
    ("unknown schema", "d.jsonl", jsonl([{"q": 1}]), ["wrong schema", "messages"]),
    ("not json", "d.jsonl", "{oops\n", ["line 1", "not valid JSON"]),
    ("empty file", "d.jsonl", "", ["empty dataset"]),
]


def write(tmp_path: Path, name: str, content) -> Path:
    path = tmp_path / name
    if isinstance(content, list):
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(content), path)
    else:
        path.write_text(content, encoding="utf-8")
    return path


@pytest.mark.parametrize("case, name, content, words", BAD_FILES, ids=[c[0] for c in BAD_FILES])
def test_bad_rows_are_refused_with_rc2_and_the_row_message(tmp_path, capsys, case, name, content, words):
    rc, out, err = run_cli(capsys, "--data", str(write(tmp_path, name, content)))
    assert rc == EXIT_BAD_INPUT and out == ""
    assert err.startswith("error: ")
    for word in words:
        assert word in err, f"{word!r} not in {err!r}"
    assert 'validate="drop"' not in err  # the API hint is replaced by a CLI one


def test_bad_eval_file_is_refused_too(tmp_path, capsys):
    good = write(tmp_path, "train.jsonl", jsonl([{"messages": [U, A]}] * 4))
    bad = write(tmp_path, "eval.jsonl", jsonl([{"messages": [U]}]))
    rc, _, err = run_cli(capsys, "--data", str(good), "--eval", str(bad))
    assert rc == EXIT_BAD_INPUT and "eval.jsonl: 1 invalid row" in err


# (case id, argv after --data FILE, words in the one-line error)
BAD_FLAGS = [
    ("unknown profile", ["--profile", "colabb"], ["--profile", "unknown profile 'colabb'", "'colab'"]),
    ("max-length zero", ["--max-length", "0"], ["--max-length", "must be >= 1"]),
    ("max-length tiny", ["--max-length", "4"], ["--max-length must be >= 8"]),
    ("lr not a number", ["--lr", "fast"], ["--lr", "not a number"]),
    ("lr too big", ["--lr", "3"], ["--lr 3 must be < 1"]),
    ("epochs and max-steps", ["--epochs", "1", "--max-steps", "5"], ["not allowed with argument"]),
    ("unknown level", ["--level", "deep"], ["--level", "invalid choice"]),
    ("unknown flag", ["--lerning-rate", "1e-4"], ["unrecognized arguments"]),
    ("missing chat template", ["--chat-template", "/no/such.jinja"], ["--chat-template", "cannot read it"]),
]


@pytest.mark.parametrize("case, extra, words", BAD_FLAGS, ids=[c[0] for c in BAD_FLAGS])
def test_bad_flags_give_one_line_and_rc2(tmp_path, capsys, case, extra, words):
    data = write(tmp_path, "d.jsonl", jsonl([{"messages": [U, A]}] * 4))
    rc, out, err = run_cli(capsys, "--data", str(data), *extra)
    assert rc == EXIT_BAD_INPUT and out == ""
    assert len(err.strip().splitlines()) == 1, err
    for word in words:
        assert word in err, f"{word!r} not in {err!r}"


def test_missing_data_and_missing_file(tmp_path, capsys):
    rc, _, err = run_cli(capsys)
    assert rc == EXIT_BAD_INPUT and "--data" in err and "required" in err
    rc, _, err = run_cli(capsys, "--data", str(tmp_path / "nope.jsonl"))
    assert rc == EXIT_BAD_INPUT and "no such file" in err
    rc, _, err = run_cli(capsys, "--data", str(tmp_path))
    assert rc == EXIT_BAD_INPUT and "a folder" in err


def test_json_bad_input_is_machine_readable(tmp_path, capsys):
    rc, out, _ = run_cli(capsys, "--data", str(write(tmp_path, "d.jsonl", jsonl([{"messages": [U]}]))), "--json")
    payload = json.loads(out)
    assert rc == EXIT_BAD_INPUT and payload["exit_code"] == 2 and "row 0" in payload["error"]


def test_help_documents_exit_codes_and_flags(capsys):
    rc, out, _ = run_cli(capsys, "--help")
    assert rc == EXIT_OK
    for word in ("exit status:", "0  no check failed", "1  at least one check failed", "2  bad input", "--max-length",
                 "--batch-size", "--grad-accum", "--lr", "--epochs", "--max-steps", "--packing", "--eval",
                 "--chat-template", "--level", "--profile", "--show", "--seed", "--json", "ShareGPT", "Alpaca"):
        assert word in out, word


def _timed(*argv: str) -> tuple[subprocess.CompletedProcess, float]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "labhelpers.sanity", *argv], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60)
    return done, time.perf_counter() - start


def test_help_is_fast_plain_text():
    done, seconds = _timed("--help")
    assert done.returncode == 0 and seconds < 2.0, seconds
    assert "exit status:" in done.stdout and "\x1b[" not in done.stdout and done.stderr == ""


def test_rejected_file_is_fast_and_does_not_import_torch(tmp_path):
    bad = write(tmp_path, "bad.jsonl", jsonl([{"messages": [U, A]}] * 100 + [{"messages": [U, {**A, "content": ""}]}]))
    done, seconds = _timed("--data", str(bad))
    assert done.returncode == 2 and seconds < 2.0, seconds
    assert "row 100, messages[1].content: content is empty" in done.stderr and "Traceback" not in done.stderr
    probe = subprocess.run([sys.executable, "-c", "import sys; from labhelpers.sanity.__main__ import main; "
                            f"main(['--data', {str(bad)!r}]); print('torch' in sys.modules)"],
                           cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert probe.stdout.strip() == "False"


# ------------------------------------------------------------------------------------ with the real model
@pytest.mark.slow
def test_healthy_sharegpt_file_json_output(tmp_path, capsys):
    rows = chat_rows(24)
    data = write(tmp_path, "d.jsonl", jsonl([sharegpt(r["messages"]) for r in rows]))
    rc, out, _ = run_cli(capsys, "--data", str(data), "--max-length", "512", "--show", "2", "--seed", "3", "--json")
    report = json.loads(out)
    assert rc == EXIT_OK and report["verdict"] == "OK", report
    assert "ShareGPT: 24 rows, roles human->user, gpt->assistant" in report["data"]
    assert not any(a.startswith("--max-length") for a in report["assumed"])
    assert any(a.startswith("--batch-size 4") for a in report["assumed"])
    assert len(report["samples"]) == 2 and all("[Answer:" in s for s in report["samples"])
    status = {f["check"]: f["status"] for f in report["findings"]}
    assert status["prompt_tokens_trained"] == "pass" and status["rows_too_long"] == "pass"
    assert status["eval_split"] == "pass"  # no --eval: not the user's setting, not a warning
    assert any("token statistics from all 24 of 24 rows" in n for n in report["notes"])


@pytest.mark.slow
def test_every_row_too_long_fails_fast_with_a_larger_max_length(tmp_path, capsys):
    long = [{"messages": [{"role": "user", "content": "Please summarise: " + "word " * 120}, {"role": "assistant", "content": "Done."}]}
            for _ in range(6)]
    data = write(tmp_path, "d.jsonl", jsonl(long))
    rc, out, _ = run_cli(capsys, "--data", str(data), "--max-length", "64")
    assert rc == EXIT_FAIL
    head = out.split("\n\n")[0]  # verdict and fixes come before the findings table
    assert head.startswith("VERDICT: FAIL") and "Top fixes:" in head and "rows_too_long: set max_length=" in head
    suggested = int(head.split("set max_length=")[1].split(" ")[0])
    assert suggested > 64
    assert "all 6 rows would be dropped by TRL" in out and "preflight skipped" in out


@pytest.mark.slow
def test_no_robots_schema_with_eval_overlap(tmp_path, capsys):
    rows = [{"prompt": r["messages"][0]["content"], "prompt_id": f"p{i}", "messages": r["messages"]}
            for i, r in enumerate(chat_rows(8))]
    data = write(tmp_path, "d.jsonl", jsonl(rows))
    rc, out, _ = run_cli(capsys, "--data", str(data), "--eval", str(data), "--max-length", "512", "--show", "0")
    assert rc == EXIT_FAIL
    assert "FAIL   | prompt_column" in out and "select_columns(['messages'])" in out
    assert "FAIL   | eval_overlap" in out and "8 of 8 eval conversations" in out
    assert "Sample rows" not in out


# ------------------------------------------------------------------------------------------ check_dataset
def _long(n: int = 4) -> list[dict]:
    return [{"messages": [{"role": "user", "content": f"Row {i}: " + "word " * 200}, {"role": "assistant", "content": "Ok."}]}
            for i in range(n)]


def _no_generation(tok):
    tok = copy.copy(tok)
    tok.chat_template = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
                         "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    return tok


def _raising(tok):
    tok = copy.copy(tok)
    tok.chat_template = "{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}x"
    return tok


# (case id, rows, eval rows, tokenizer change, config, finding id, status, a word of the fix)
CHECK_CASES = [
    ("prompt column", lambda: [{"prompt": r["messages"][0]["content"], **r} for r in chat_rows(4)], None, None,
     {"max_length": 256}, "prompt_column", "fail", "select_columns"),
    ("every row dropped", _long, None, None, {"max_length": 64}, "rows_too_long", "fail", "max_length="),
    ("packing cuts instead", _long, None, None, {"max_length": 64, "packing": True}, "rows_too_long", "fail", "max_length="),
    ("some rows too long", lambda: chat_rows(6) + _long(1), None, None, {"max_length": 128}, "rows_too_long", "warn", "shorten"),
    ("duplicates", lambda: chat_rows(3) * 3, None, None, {"max_length": 256}, "train_duplicates", "warn", "deduplicate"),
    ("eval overlap", lambda: chat_rows(4), lambda: chat_rows(2), None, {"max_length": 256}, "eval_overlap", "fail", "split"),
    ("invalid rows", lambda: chat_rows(2) + [{"messages": [U]}], None, None, {"max_length": 256}, "conversation_format", "fail",
     "drop"),
    ("template without generation markers", lambda: chat_rows(2), None, _no_generation, {"max_length": 256}, "chat_template",
     "warn", "{% generation %}"),
    ("template that raises", lambda: [{"messages": [S, U, A]}] * 2, None, _raising, {"max_length": 256}, "chat_template", "fail",
     "fix the template"),
    ("one reply everywhere", lambda: [{"messages": [{"role": "user", "content": f"Q{i}"}, A]} for i in range(12)], None, None,
     {"max_length": 256}, "repeated_replies", "warn", "conversion"),
    ("healthy short rows", lambda: chat_rows(8), lambda: chat_rows(2, "test"), None, {"max_length": 256}, None, "pass", ""),
    ("healthy long rows, big max_length", lambda: chat_rows(4, short=False), None, None, {"max_length": 2048}, None, "pass", ""),
]


@pytest.mark.slow
@pytest.mark.parametrize("case, rows, eval_rows, change, config, check, status, fix_word", CHECK_CASES,
                         ids=[c[0] for c in CHECK_CASES])
def test_check_dataset(tokenizer, case, rows, eval_rows, change, config, check, status, fix_word):
    from labhelpers.sanity import check_dataset

    tok = change(tokenizer) if change else tokenizer
    report = check_dataset(rows(), tok, config, eval_rows=eval_rows() if eval_rows else None)
    if check is None:
        assert report.ok and not report.warnings, str(report)
        return
    finding = report.by_check(check)
    assert finding is not None and finding.status == status, str(report)
    assert fix_word in finding.fix, finding.fix
    if check == "rows_too_long" and status == "fail":
        suggested = int(finding.fix.split("max_length=")[1].split(" ")[0])
        assert suggested > config["max_length"]


@pytest.mark.slow
def test_preflight_reports_a_train_set_trl_emptied(model_and_tokenizer, cpu_recipe):
    from datasets import Dataset

    from labhelpers.sanity import preflight
    from sanity_setup import build_trainer

    model, tok = model_and_tokenizer
    rows = _long(3)
    trainer = build_trainer(model, tok, cpu_recipe, rows=rows, eval_rows=None, max_length=32)
    assert len(trainer.train_dataset) == 0
    report = preflight(trainer, dataset=Dataset.from_list(rows))  # was: torch "num_samples=0" ValueError
    finding = report.by_check("train_rows_dropped")
    assert finding.status == "fail" and "all 3 training rows" in finding.message and "max_length" in finding.fix
