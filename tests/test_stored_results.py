"""Stored results (labhelpers.run.folder.reuse_or_compute): a re-run reads a costly, repeatable result back only when every
input that made it is the same, and computes it again when one changed (weights, prompts, rows, settings, machine)."""

from __future__ import annotations

import json
import subprocess

import pytest
import torch

from labhelpers.run.folder import reuse_or_compute


def test_a_half_written_store_is_recomputed_not_trusted(tmp_path):
    path = tmp_path / "r.json"
    path.write_text('{"key": {"a": 1}, "val')  # a disconnect mid-write
    assert reuse_or_compute(path, {"a": 1}, lambda: 7) == 7
    assert json.loads(path.read_text()) == {"key": {"a": 1}, "value": 7}


@pytest.mark.slow
def test_stored_replies_are_reused_only_for_the_same_weights_and_prompts(model_and_tokenizer, tmp_path, monkeypatch, capsys):
    from labhelpers.run.generation import generate_replies

    model, tokenizer = model_and_tokenizer
    prompts = ["Name a primary colour.", "What is 2 + 2?"]
    first = generate_replies(model, tokenizer, prompts, max_new_tokens=6, store=tmp_path)
    assert first == generate_replies(model, tokenizer, prompts, max_new_tokens=6)  # the store changes nothing

    calls = []
    real_generate = model.generate
    monkeypatch.setattr(model, "generate", lambda *a, **k: calls.append(1) or real_generate(*a, **k))
    assert generate_replies(model, tokenizer, prompts, max_new_tokens=6, store=tmp_path) == first
    assert not calls and "reused 2 greedy replies" in capsys.readouterr().out

    generate_replies(model, tokenizer, prompts[:1], max_new_tokens=6, store=tmp_path)  # other prompts
    assert len(calls) == 1
    generate_replies(model, tokenizer, prompts, max_new_tokens=7, store=tmp_path)  # another budget
    assert len(calls) == 2
    weight = model.model.norm.weight
    with torch.no_grad():
        weight.mul_(1.01)  # other weights: a retrained model never reads the old model's replies
    try:
        generate_replies(model, tokenizer, prompts, max_new_tokens=6, store=tmp_path)
    finally:
        with torch.no_grad():
            weight.div_(1.01)
    assert len(calls) == 3
    assert len(list(tmp_path.glob("replies-*.json"))) == 4


def test_stored_reply_losses_are_reused_only_for_the_same_weights_and_pairs(model_and_tokenizer, tmp_path, monkeypatch,
                                                                            capsys):
    from labhelpers.run.generation import reply_nll

    model, tokenizer = model_and_tokenizer
    prompts, replies = ["Name a primary colour.", "What is 2 + 2?"], ["Red.", "4."]
    first = reply_nll(model, tokenizer, prompts, replies, store=tmp_path)
    assert first == reply_nll(model, tokenizer, prompts, replies)  # the store changes nothing

    calls = []
    real_forward = model.forward
    monkeypatch.setattr(model, "forward", lambda *a, **k: calls.append(1) or real_forward(*a, **k))
    assert reply_nll(model, tokenizer, prompts, replies, store=tmp_path) == first
    assert not calls and "reused 2 reply losses" in capsys.readouterr().out
    reply_nll(model, tokenizer, prompts, ["Blue.", "4."], store=tmp_path)  # another reply
    assert len(calls) == 1
    reply_nll(model, tokenizer, prompts, replies, batch_size=1, store=tmp_path)  # another batch: other padding
    assert len(calls) == 3
    weight = model.model.norm.weight
    with torch.no_grad():
        weight.mul_(1.01)  # other weights: a retrained model never reads the old model's losses
    try:
        reply_nll(model, tokenizer, prompts, replies, store=tmp_path)
    finally:
        with torch.no_grad():
            weight.div_(1.01)
    assert len(calls) == 4
    assert len(list(tmp_path.glob("nll-*.json"))) == 4


def test_stored_protocol_result_is_keyed_by_weights_rows_and_settings(tmp_path, monkeypatch):
    from labhelpers.sanity import protocol
    from labhelpers.sanity.report import Finding, SanityReport

    runs = []

    def fake_protocol(*args, **kwargs):
        runs.append(1)
        return protocol.ProtocolResult("GO", ["every check passed"],
                                       {"overfit": SanityReport([Finding("overfit_loss", "pass", "2.1 → 0.3")])})

    monkeypatch.setattr(protocol, "_protocol", fake_protocol)
    model = torch.nn.Linear(3, 3)
    rows = [{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}]
    store = tmp_path / "protocol.json"

    def run(**changes):
        settings = {"model": model, "train": rows, "lr": 1e-4, **changes}
        return protocol.run_protocol(settings.pop("model"), None, settings.pop("train"), rows, ["p"], store=store,
                                     **settings)

    first = run()
    again = run()
    assert len(runs) == 1 and again.verdict == "GO" and again.reports["overfit"].by_check("overfit_loss").status == "pass"
    run(lr=2e-4)
    run(train=rows * 2)
    run(model=torch.nn.Linear(3, 3))
    assert len(runs) == 4 and first.to_dict() == again.to_dict()

    from labhelpers.model.hardware import recipe_for

    run(recipe=recipe_for("cpu", "ci", profile_source="argument"))  # papermill passes PROFILE="ci" ...
    run(recipe=recipe_for("cpu", "ci", profile_source="environment"))  # ... nbval reads $LAB_PROFILE: the same run
    run(recipe=recipe_for("cpu", "ci").with_sizes(max_length=256))
    assert len(runs) == 6


def test_stored_measurement_is_reused_on_the_same_machine_only(tmp_path, monkeypatch, cpu_recipe):
    from labhelpers.run import lora

    children = []

    def fake_child(command, **kwargs):
        children.append(command)
        return subprocess.CompletedProcess(command, 0, stdout=json.dumps({"peak_bytes": 1, "step_s": [1.0]}) + "\n")

    monkeypatch.setattr(lora.subprocess, "run", fake_child)
    store = tmp_path / "measured.json"
    first = lora.measure_training_step("m", cpu_recipe, None, steps=2, store=store)
    assert lora.measure_training_step("m", cpu_recipe, None, steps=2, store=store) == first
    assert len(children) == 1
    lora.measure_training_step("m", cpu_recipe, 16, steps=2, store=store)  # LoRA is another measurement
    monkeypatch.setattr(torch, "__version__", "0.0-other")  # another torch (another machine or runtime)
    lora.measure_training_step("m", cpu_recipe, 16, steps=2, store=store)
    assert len(children) == 3
