"""Sanity v3, section 2: what the run will really do, against what the user wrote. The plan's facts in one block,
settings another one overrides (each beside its healthy twin), and the checkpoints' disk against the free space."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace as NS

import pytest

from labhelpers.sanity import preflight
from labhelpers.sanity.config import plan_run
from labhelpers.sanity.run_facts import checkpoint_bytes, disk_finding, overridden_findings, run_fact_findings
from sanity_setup import build_trainer, chat_rows


def _args(**changes):
    values = dict(per_device_train_batch_size=4, gradient_accumulation_steps=1, max_steps=30, num_train_epochs=1.0,
                  eval_strategy="steps", eval_steps=5, eval_on_start=True, save_strategy="steps", save_steps=15,
                  save_total_limit=2, logging_strategy="steps", logging_steps=1, warmup_steps=0.1, learning_rate=2e-4,
                  lr_scheduler_type="cosine", load_best_model_at_end=True, output_dir="/tmp")
    values.update(changes)
    return NS(**values)


# (name, SFTConfig fields changed from the ci run's, words of the warning, or None for its healthy twin)
OVERRIDES = [
    ("max_steps overrides 5 epochs", dict(num_train_epochs=5.0), "max_steps=30 overrides num_train_epochs=5"),
    ("5 epochs without max_steps", dict(num_train_epochs=5.0, max_steps=-1), None),
    ("max_steps, num_train_epochs left at the Trainer's default 3", dict(num_train_epochs=3.0), None),
    ("the ci run: 30 steps, num_train_epochs unused", {}, None),
    ("eval_steps without an eval strategy", dict(eval_strategy="no"), "eval_steps=5 is ignored with eval_strategy='no'"),
    ("save_steps with the epoch strategy", dict(save_strategy="epoch"), "save_steps=15 is ignored with save_strategy='epoch'"),
    ("logging_steps with logging by epoch", dict(logging_strategy="epoch"), "logging_steps=1 is ignored with logging_strategy='epoch'"),
    ("save_steps with saving turned off: a choice", dict(save_strategy="no"), None),
    ("save_strategy epoch, save_steps left at its default", dict(save_strategy="epoch", save_steps=500), None),
]


@pytest.mark.parametrize("name, changes, words", OVERRIDES, ids=[o[0] for o in OVERRIDES])
def test_a_setting_that_does_nothing_is_named_and_its_twin_is_not(name, changes, words):
    args = _args(**changes)
    plan = plan_run(args, batches_per_epoch=40)
    found = overridden_findings(args, plan, has_eval=True)
    if words is None:
        assert found == [], [f.message for f in found]
    else:
        assert len(found) == 1 and words in found[0].message and found[0].status == "warn", found
        assert found[0].fix and "set " in found[0].fix


def test_the_override_fix_is_the_one_that_keeps_what_the_user_meant():
    args = _args(num_train_epochs=5.0)
    finding = overridden_findings(args, plan_run(args, 40), True)[0]
    assert "the run is 30 steps = 0.75 epochs, not 5" in finding.message
    assert "max_steps=-1" in finding.fix and "leave num_train_epochs out" in finding.fix


def test_the_facts_block_states_the_plan():
    args = _args()
    facts = run_fact_findings(args, plan_run(args, 40), 160, True, None)[0]
    assert facts.check == "run_facts" and facts.status == "pass"
    for words in ("30 optimizer steps of 4 rows", "0.75 epoch of 160 rows (max_steps=30 ends it)", "7 evaluations (one before the first step)",
                  "2 checkpoints written, up to 2 kept", "warmup 3 steps to lr 0.0002, then cosine"):
        assert words in facts.message, facts.message


@pytest.mark.parametrize("limit, free_gb, status", [(2, 50, "pass"), (None, 30, "fail"), (2, 5.5, "warn"), (2, 3, "fail")])
def test_checkpoints_against_the_free_space(limit, free_gb, status):
    args = _args(save_total_limit=limit, max_steps=3000, save_steps=100)
    plan = plan_run(args, 40)
    finding = disk_finding(args, plan, int(1.6e9), int(free_gb * 1e9), Path("/content"))
    assert finding.status == status, finding.message
    if status != "pass":
        assert "save_total_limit=" in finding.fix
    peak = 30 if limit is None else 3
    assert finding.message.startswith(f"{peak} checkpoints x 1.6 GB")


def test_a_checkpoint_of_the_135m_model_is_about_1_6_gb(model_and_tokenizer):
    model, _ = model_and_tokenizer
    size = checkpoint_bytes(model, NS(optim="adamw_torch_fused"))
    assert 1.5e9 < size < 1.7e9, size  # fp32 weights (tied head once) + two AdamW moments
    assert checkpoint_bytes(model, NS(optim="adamw_bnb_8bit")) == size - 6 * 134_515_008  # 2 bytes of state, not 8


def test_preflight_reads_the_facts_first_and_the_free_space_of_the_output_folder(model_and_tokenizer, cpu_recipe,
                                                                                   tmp_path, monkeypatch):
    model, tok = model_and_tokenizer
    trainer = build_trainer(model, tok, cpu_recipe, rows=chat_rows(8), out_dir=str(tmp_path / "run" / "sft"),
                            max_steps=12, save_strategy="steps", save_steps=3, num_train_epochs=20)
    real = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda p: real(p)._replace(free=int(3e9)))  # a nearly full disk
    report = preflight(trainer, "quick")
    checks = [f.check for f in report.findings]
    assert checks.index("run_facts") < checks.index("eval_points")
    assert "12 optimizer steps of 2 rows" in report.by_check("run_facts").message
    assert report.by_check("overridden_settings").message.startswith("max_steps=12 overrides num_train_epochs=20")
    disk = report.by_check("checkpoint_disk")
    assert disk.status == "fail" and str(tmp_path) in disk.message  # the nearest existing folder was measured
