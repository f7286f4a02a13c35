"""Pure parts of the sanity package: reports, precision and hyperparameter rules, monitor detectors."""

from __future__ import annotations

import pytest

from labhelpers.sanity import Finding, SanityReport, hyperparameter_findings, precision_findings
from labhelpers.sanity.monitor import growing_gap, is_spike
from labhelpers.sanity.postflight import is_degenerate


def test_report_table_html_and_lookup():
    report = SanityReport([Finding("warmup", "warn", "no warmup", "set warmup_steps=0.05"),
                           Finding("precision", "pass", "fp32", ""), Finding("learning_rate", "fail", "lr 2e-3", "lower it")])
    assert not report.ok and [f.check for f in report.failed] == ["learning_rate"]
    assert [f.check for f in report.warnings] == ["warmup"]
    text = str(report)
    assert "FAIL" in text and "learning_rate" in text and "lower it" in text and text.splitlines()[0].startswith("status")
    html = report._repr_html_()
    assert "#f8d7da" in html and "<table>" in html
    with pytest.raises(Exception):
        report.findings[0].status = "pass"  # frozen


@pytest.mark.parametrize("args, failed", [
    ((False, True, "float32", "cuda", (7, 5)), True),   # bf16 on a T4
    ((True, False, "float16", "cuda", (7, 5)), True),   # fp16 weights + fp16 AMP
    ((True, False, "float32", "cuda", (7, 5)), False),  # the T4 recipe
    ((False, True, "bfloat16", "cuda", (8, 0)), False),  # the Ampere recipe
    ((False, False, "float32", "cpu", None), False),    # the CPU recipe
])
def test_precision_rules(args, failed):
    findings = precision_findings(*args)
    assert any(f.status == "fail" for f in findings) is failed
    assert {f.check for f in findings} == {"precision"}


def test_precision_cpu_amp_warns():
    assert [f.status for f in precision_findings(False, True, "float32", "cpu")] == ["warn"]
    assert [f.status for f in precision_findings(True, False, "float32", "cpu")] == ["warn"]


def test_hyperparameter_rules_full_vs_lora():
    def status(lr, lora=False, warmup=0.1, rows=500, eff=16, steps=-1, epochs=3):
        return {f.check: f.status for f in hyperparameter_findings(lr, warmup, lora, 135_000_000, rows, eff, steps, epochs)}
    assert status(1e-4)["learning_rate"] == "pass"
    assert status(5e-4)["learning_rate"] == "warn"
    assert status(2e-3)["learning_rate"] == "fail"
    assert status(1e-3, lora=True)["learning_rate"] == "pass"  # LoRA ranges higher
    assert status(2e-4, warmup=0)["warmup"] == "warn"
    assert status(1e-5, warmup=0)["warmup"] == "pass"
    assert status(1e-4, rows=8, eff=16)["steps_per_epoch"] == "fail"
    assert status(1e-4, rows=64, eff=16, steps=200)["epochs"] == "warn"  # 50 epochs


def test_monitor_detectors_and_degenerate_text():
    assert is_spike(10.0, [2.0, 2.2, 1.8, 2.1]) and not is_spike(2.5, [2.0, 2.2, 1.8])
    assert growing_gap([0.0, 0.1, 0.2, 0.4], patience=3) and not growing_gap([0.3, 0.1, 0.2, 0.4], patience=3)
    assert is_degenerate("the the the the the the the the the the") and not is_degenerate("Answer: yes.\n- a\n- b\n- c")


HOUSE = "Answer: Paris.\n- capital of France\n- on the Seine\n- about 2 million people\nConfidence: high"


class _Words:
    """A toy tokenizer: one token per word."""

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": text.split()}


def test_postflight_checks_precomputed_replies_without_generating():
    from labhelpers.sanity import postflight

    replies = ([HOUSE, "yes " * 30], [False, True])
    report = postflight(None, _Words(), ["q1", "q2"], max_new_tokens=30, replies=replies)  # no model: nothing generated
    assert report.extras["outputs"] == list(replies[0]) and report.extras["hit_max"] == [False, True]
    assert report.by_check("hit_max_new_tokens").status == "fail"  # 50% runaway, no base to compare with
    assert report.by_check("degenerate_replies").status == "warn"
    assert "50%" in report.by_check("house_format").message
    with pytest.raises(ValueError, match="1 texts and 1 hit_max flags for 2 prompts"):
        postflight(None, _Words(), ["q1", "q2"], replies=([HOUSE], [False]))


def test_postflight_base_runaway_uses_the_saved_record_rule():
    from labhelpers.measure.compare import generation_record
    from labhelpers.sanity import postflight

    base = ["w " * 29, "w " * 30]  # 29 and 30 re-tokenized tokens: only the second used the whole budget of 30
    assert generation_record(["a", "b"], base, 30, _Words())["hit_limit"] == [False, True]
    report = postflight(None, _Words(), ["a", "b"], base_outputs=base, max_new_tokens=30,
                        replies=([HOUSE, "w " * 30], [False, True]))
    assert "(base 50%)" in report.by_check("hit_max_new_tokens").message
    assert report.by_check("hit_max_new_tokens").status == "warn"  # as often as the base: not made worse
