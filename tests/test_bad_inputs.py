"""Bad input, tried for real: each case gets one clear error naming the input and the fix,
raised before any model is loaded or any file is written in the run folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from labhelpers.run.inputs import RunInputError, check_run_inputs

GOOD_ROW = {"prompt": "Hi?", "prompt_id": "p0", "category": "Chat",
            "messages": [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Hello."}]}


def _rows(n: int, **change) -> list[dict]:
    rows = [dict(GOOD_ROW, prompt_id=f"p{i}", prompt=f"Question {i}?",
                 messages=[{"role": "user", "content": f"Question {i}?"}, {"role": "assistant", "content": f"Answer {i}."}])
            for i in range(n)]
    if change:
        rows[3] = dict(rows[3], **change)
    return rows


def _jsonl(rows: list[dict]) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


# (case id, file text or None for "no file", size overrides, extra kwargs, words the message must contain)
DATASET_CASES = [
    ("missing file", None, {}, ["DATASET", "file not found"]),
    ("not json", "this is not json\n", {}, ["DATASET", "line 1"]),
    ("json array not jsonl", json.dumps(_rows(40)), {}, ["DATASET", "one object per line"]),
    ("wrong schema", _jsonl([{"question": "x", "answer": "y"}] * 40), {}, ["DATASET", "messages"]),
    ("ends with user", _jsonl(_rows(40, messages=[{"role": "user", "content": "a"}])), {}, ["row 3", "assistant"]),
    ("empty reply", _jsonl(_rows(40, messages=[{"role": "user", "content": "a"}, {"role": "assistant", "content": " "}])), {}, ["row 3", "whitespace"]),
    ("unknown role", _jsonl(_rows(40, messages=[{"role": "human", "content": "a"}, {"role": "assistant", "content": "b"}])), {}, ["row 3", "human"]),
    ("system not first", _jsonl(_rows(40, messages=[{"role": "user", "content": "a"}, {"role": "system", "content": "s"}, {"role": "assistant", "content": "b"}])), {}, ["row 3", "system"]),
    ("two users in a row", _jsonl(_rows(40, messages=[{"role": "user", "content": "a"}, {"role": "user", "content": "b"}, {"role": "assistant", "content": "c"}])), {}, ["row 3", "user"]),
    ("messages not a list", _jsonl(_rows(40, messages="Hi")), {}, ["row 3", "list"]),
    ("content not a string", _jsonl(_rows(40, messages=[{"role": "user", "content": 5}, {"role": "assistant", "content": "b"}])), {}, ["row 3", "content"]),
    ("empty dataset", "", {}, ["DATASET", "empty"]),
    ("eval split would be empty", _jsonl(_rows(1)), {}, ["DATASET"]),
    ("batch larger than dataset", _jsonl(_rows(12)), {"per_device_train_batch_size": 64, "n_train_examples": None, "n_eval_examples": 2}, ["per_device_train_batch_size", "larger than"]),
    ("more rows asked than exist", _jsonl(_rows(30)), {"n_train_examples": 500, "n_eval_examples": 5}, ["n_train_examples", "exceed"]),
]
PARAMETER_CASES = [
    ("unknown profile", {"profile": "colabb"}, ["PROFILE", "colab"]),
    ("zero steps", {"max_steps": 0}, ["max_steps", "-1 or a positive int"]),
    ("negative steps", {"max_steps": -5}, ["max_steps"]),
    ("learning rate zero", {"learning_rate": 0.0}, ["learning_rate", "> 0"]),
    ("learning rate negative", {"learning_rate": -1e-4}, ["learning_rate"]),
    ("unknown scheduler", {"lr_scheduler_type": "cosine_warmup"}, ["lr_scheduler_type", "choose one of"]),
    ("unknown size key", {"max_seq_length": 512}, ["max_seq_length", "max_length"]),
    ("zero batch", {"per_device_train_batch_size": 0}, ["per_device_train_batch_size", "positive"]),
    ("negative epochs", {"num_train_epochs": -1.0}, ["num_train_epochs"]),
]


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.fixture
def workspace(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "keep.txt").write_text("earlier work")  # must survive every failed check
    return tmp_path


def _assert_clear(error: RunInputError, words: list[str]) -> None:
    text = str(error)
    for word in words:
        assert word.lower() in text.lower(), f"{word!r} not in: {text}"
    assert "Fix:" in text or "fix" in text.lower()
    assert "Traceback" not in text


@pytest.mark.parametrize("case,text,sizes,words", DATASET_CASES, ids=[c[0] for c in DATASET_CASES])
def test_bad_dataset_is_refused_before_anything_is_written(workspace, case, text, sizes, words):
    data = workspace / "data.jsonl"
    if text is not None:
        data.write_text(text)
    before = _snapshot(workspace)
    with pytest.raises(RunInputError) as caught:
        check_run_inputs("ci", str(data), workspace / "run", **sizes)
    _assert_clear(caught.value, words)
    assert _snapshot(workspace) == before


@pytest.mark.parametrize("case,params,words", PARAMETER_CASES, ids=[c[0] for c in PARAMETER_CASES])
def test_bad_parameter_is_refused_before_anything_is_written(workspace, case, params, words):
    before = _snapshot(workspace)
    profile = params.pop("profile", "ci")
    with pytest.raises(RunInputError) as caught:
        check_run_inputs(profile, "HuggingFaceH4/no_robots", workspace / "run", **params)
    _assert_clear(caught.value, words)
    assert _snapshot(workspace) == before


def test_unknown_profile_from_environment(monkeypatch, workspace):
    monkeypatch.setenv("LAB_PROFILE", "gpu-please")
    with pytest.raises(RunInputError, match="LAB_PROFILE"):
        check_run_inputs(None, "HuggingFaceH4/no_robots", workspace / "run")


def test_output_dir_not_writable(workspace):
    blocker = workspace / "a-file"
    blocker.write_text("x")
    with pytest.raises(RunInputError, match="RUN_DIR.*is a file"):
        check_run_inputs("ci", "HuggingFaceH4/no_robots", blocker / "run")


def test_max_length_below_template_overhead(workspace, tokenizer):
    with pytest.raises(RunInputError, match="max_length: 16 tokens cannot hold") as caught:
        check_run_inputs("ci", "HuggingFaceH4/no_robots", workspace / "run", tokenizer=tokenizer, max_length=16)
    assert "use max_length of at least" in str(caught.value)


def test_good_inputs_pass_and_create_nothing(workspace, tokenizer):
    inputs = check_run_inputs("ci", "HuggingFaceH4/no_robots", workspace / "new-run", tokenizer=tokenizer, max_steps=3)
    assert inputs.recipe.sizes.max_steps == 3 and len(inputs.data["train"]) >= 600
    assert not (workspace / "new-run").exists()


def test_each_dataset_gets_its_own_run_folder(tmp_path, monkeypatch):
    """A model trained on one dataset must never be read as another's: default folders differ, a shared one refuses."""
    from labhelpers.run.folder import default_run_dir, run_dir

    monkeypatch.delenv("LAB_RUN_DIR", raising=False)
    monkeypatch.setenv("LAB_RUN_ROOT", str(tmp_path / "runs"))
    assert default_run_dir("ci", dataset="sft-lab/house-format") == tmp_path / "runs" / "ci"
    assert default_run_dir("ci", dataset="HuggingFaceH4/no_robots") == tmp_path / "runs" / "ci-huggingfaceh4-no-robots"
    shared = tmp_path / "shared"
    run_dir("ci", shared, "sft-lab/house-format")
    run_dir("ci", shared, "sft-lab/house-format")  # the same data again: fine
    with pytest.raises(ValueError, match="holds results trained on 'sft-lab/house-format'.*set RUN_DIR"):
        run_dir("ci", shared, "HuggingFaceH4/no_robots")


def test_start_lesson_seeds_as_transformers_set_seed_does(tmp_path):
    """The setup call's seed leaves Python's, numpy's and torch's generators where ``transformers.set_seed(42)`` does
    (the series' numbers stay the same) without importing the Trainer's utilities."""
    import random

    import numpy as np
    import torch
    import transformers

    from labhelpers.run.inputs import start_lesson

    def draws():
        return random.random(), float(np.random.rand()), torch.rand(3).tolist()

    transformers.set_seed(42)
    theirs = draws()
    start_lesson("ci", run_dir=tmp_path)
    assert draws() == theirs
