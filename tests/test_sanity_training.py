"""SanityMonitor on real short runs, postflight, the protocol and the CLI (real model, tiny sizes)."""

from __future__ import annotations

import copy
import json
import subprocess
import sys

import pytest
import torch
from transformers import TrainerCallback

from labhelpers.sanity import SanityMonitor, lr_range_test, postflight, run_protocol
from sanity_setup import build_trainer, chat_rows

pytestmark = pytest.mark.slow


class PoisonWeights(TrainerCallback):
    """Set the final norm's weights to NaN after step 1, as a blown-up update would."""

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if state.global_step == 1:
            with torch.no_grad():
                model.model.norm.weight.fill_(float("nan"))


def test_monitor_stops_a_nan_run_and_stays_quiet_on_a_healthy_one(model_and_tokenizer, cpu_recipe):
    model, tok = model_and_tokenizer
    work = copy.deepcopy(model)
    monitor = SanityMonitor(verbose=False)
    trainer = build_trainer(work, tok, cpu_recipe, eval_rows=None, max_steps=4)
    trainer.add_callback(monitor)
    trainer.add_callback(PoisonWeights())
    trainer.train()
    report = monitor.report()
    assert not report.ok and {f.check for f in report.failed} & {"nan_loss", "nan_grad_norm"}
    assert trainer.state.global_step == 2  # stopped right after the first NaN step, not at max_steps=4

    healthy = SanityMonitor(verbose=False)
    trainer = build_trainer(copy.deepcopy(model), tok, cpu_recipe, max_steps=2)
    trainer.add_callback(healthy)
    trainer.train()
    assert healthy.report().ok and trainer.state.global_step == 2


def test_postflight_reports_runaway_and_format(model_and_tokenizer):
    model, tok = model_and_tokenizer
    prompts = [r["messages"][0]["content"] for r in chat_rows(2, "test")]
    report = postflight(model, tok, prompts, max_new_tokens=8)
    hit = report.by_check("hit_max_new_tokens")
    assert hit.status == "fail" and "100%" in hit.message  # 8 tokens are never enough for the base model
    assert {"empty_replies", "degenerate_replies", "house_format"} <= {f.check for f in report.findings}
    assert len(report.extras["outputs"]) == 2


def test_the_protocol_reports_every_step(series_result, model_and_tokenizer, cpu_recipe):
    """Notebook 10's own result when the series ran in this session (ci size, its stored ``sanity/protocol.json``),
    else a run at tiny size here."""
    from labhelpers.sanity.protocol import ProtocolResult

    stored = series_result("sanity", "protocol.json")
    if stored is not None:
        result = ProtocolResult.from_dict(json.loads(stored.read_text())["value"])
    else:
        model, tok = model_and_tokenizer
        result = run_protocol(model, tok, chat_rows(4), chat_rows(2, "test"), [chat_rows(1, "test")[0]["messages"][0]["content"]],
                              overfit_examples=4, overfit_steps=3, overfit_lr=5e-4, overfit_min_drop=0.2, short_steps=2,
                              max_length=128, batch_size=4, max_new_tokens=8, recipe=cpu_recipe)
    assert result.verdict in ("GO", "NO-GO") and result.reasons
    assert set(result.reports) == {"preflight", "overfit", "short_run", "postflight"}
    assert result.reports["overfit"].by_check("overfit").status == "pass", str(result.reports["overfit"])
    assert result.reports["short_run"].by_check("short_run_eval") is not None
    assert result.reports["postflight"].by_check("heldout_overlap").status == "pass"  # a test prompt, not in train
    assert "VERDICT" in str(result)


def test_protocol_and_lr_range_train_copies_only(model_and_tokenizer, cpu_recipe):
    """At the smallest sizes that run every step: the student's model is never trained by the protocol."""
    model, tok = model_and_tokenizer
    before = {k: v.clone() for k, v in list(model.state_dict().items())[:3]}
    result = run_protocol(model, tok, chat_rows(2), chat_rows(1, "test"), [chat_rows(1, "test")[0]["messages"][0]["content"]],
                          overfit_examples=2, overfit_steps=2, overfit_lr=5e-4, short_steps=2, max_length=128,
                          batch_size=2, max_new_tokens=2, recipe=cpu_recipe)
    assert set(result.reports) == {"preflight", "overfit", "short_run", "postflight"}
    lr = lr_range_test(model, tok, chat_rows(2), steps=2, max_length=128, batch_size=2, recipe=cpu_recipe)
    assert len(lr.lrs) <= 2 and lr.suggested_lr > 0
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())  # only copies were trained


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "labhelpers.sanity", *args], capture_output=True, text=True, timeout=300)


def test_cli_bad_input_exits_2(tmp_path):
    missing = _cli("--data", str(tmp_path / "nope.jsonl"))
    assert missing.returncode == 2 and "no such file" in missing.stderr and len(missing.stderr.strip().splitlines()) == 1
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": []}\n{oops\n')
    result = _cli("--data", str(bad))
    assert result.returncode == 2 and "line 2" in result.stderr


def test_cli_real_run_fails_on_a_high_lr(tmp_path):
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in chat_rows(4)))
    result = _cli("--data", str(data), "--max-length", "128", "--lr", "5e-3")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "learning_rate" in result.stdout and "FAIL" in result.stdout and "[Answer:" in result.stdout
