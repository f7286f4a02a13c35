"""Tests for labhelpers.model.hardware: recipe selection per device (monkeypatched torch.cuda), sizes, batch arithmetic."""

from __future__ import annotations

import dataclasses
import math
import types

import pytest
import torch
import transformers
from trl import SFTConfig

from labhelpers.model import hardware
from labhelpers.base.batching import COMMON_BATCH_CONFIGS, BatchPlan, batch_plan_table, effective_batch
from labhelpers.model.hardware import (
    PROFILES,
    REFERENCE_RUN_SETTINGS,
    LessonSizes,
    Recipe,
    RunSizes,
    detect_recipe,
    recipe_for,
)

GB = 10**9
SFT_FIELDS = {f.name for f in dataclasses.fields(SFTConfig)}


@pytest.fixture(autouse=True)
def _no_env_profile(monkeypatch):
    monkeypatch.delenv("LAB_PROFILE", raising=False)


def fake_gpu(monkeypatch, name: str, cc: tuple[int, int], total_bytes: int, flash: str | None = None) -> None:
    """Make torch.cuda report one GPU (and ``flash``: 'flash_attn', 'kernels' or None serving flash-attention) without a
    real device."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda i=0: cc)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=0: name)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i=0: types.SimpleNamespace(total_memory=total_bytes))
    # what labhelpers.model.attention.probe_flash_attention would find (its failures are faked in tests/test_attention.py)
    found = {"flash_attn": "the flash_attn package 2.8.3 is installed and imports",
             "kernels": "kernels 0.19.1 loaded the prebuilt hub kernel kernels-community/flash-attn2 (no compiling)"}
    reason = found.get(flash, "kernels is not installed, and transformers serves flash-attention through kernels only")
    monkeypatch.setattr(hardware.detect, "_probe_flash", lambda: (flash, reason))


def fake_cpu(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def assert_consistent(r: Recipe) -> None:
    """Invariants every recipe must keep."""
    assert not (r.fp16 and r.torch_dtype == torch.float16), "fp16 weights with fp16 AMP: 'unscale FP16 gradients'"
    assert not (r.fp16 and r.bf16)
    names = [k for k, _ in r.reasons]
    expected = ["hardware", "profile", "torch_dtype", "attn_implementation", "fp16", "bf16", "use_cpu", "packing",
                "train_sampling_strategy"]
    expected += [f.name for f in dataclasses.fields(RunSizes)] + [f.name for f in dataclasses.fields(LessonSizes)]
    assert sorted(names) == sorted(expected) and len(names) == len(set(names))
    assert all(why.strip() for _, why in r.reasons)
    assert set(r.sft_config_kwargs()) <= SFT_FIELDS
    assert "model_init_kwargs" not in r.sft_config_kwargs()
    assert r.torch_dtype == torch.float32, "fp32 master weights in every recipe (AMP autocasts the matmuls)"
    assert r.packing == (r.attn_implementation == "flash_attention_2"), "padding-free packing needs a varlen kernel"


# ----------------------------------------------------------------------------------------------- device rules
def test_cpu_recipe(monkeypatch):
    fake_cpu(monkeypatch)
    r = detect_recipe()
    assert (r.hardware, r.profile, r.device_name) == ("cpu", "ci", "cpu")
    assert r.torch_dtype == torch.float32
    assert (r.fp16, r.bf16, r.use_cpu, r.attn_implementation) == (False, False, True, "sdpa")
    why = dict(r.reasons)
    assert "12x slower" in why["bf16"] and "no-op" in why["fp16"] and "default" in why["profile"]
    assert r.model_kwargs() == {"dtype": torch.float32, "attn_implementation": "sdpa"}
    assert_consistent(r)


def test_t4_recipe(monkeypatch):
    fake_gpu(monkeypatch, "Tesla T4", (7, 5), 15 * GB, flash="flash_attn")  # flash_attn installed is irrelevant at cc 7.5
    r = detect_recipe()
    assert (r.hardware, r.profile, r.device_name) == ("t4", "colab", "Tesla T4")
    assert r.torch_dtype == torch.float32
    assert (r.fp16, r.bf16, r.use_cpu, r.attn_implementation) == (True, False, False, "sdpa")
    s = r.sizes
    assert (s.per_device_train_batch_size, s.gradient_accumulation_steps, s.gradient_checkpointing) == (4, 4, True)
    assert "unscale FP16 gradients" in dict(r.reasons)["torch_dtype"]
    assert "compute capability" in dict(r.reasons)["attn_implementation"]
    assert_consistent(r)


def test_other_old_card_is_cuda_old(monkeypatch):
    fake_gpu(monkeypatch, "Tesla V100-SXM2-16GB", (7, 0), 16 * GB)
    r = detect_recipe()
    assert r.hardware == "cuda-old" and r.fp16 and not r.bf16 and r.torch_dtype == torch.float32
    assert r.attn_implementation == "sdpa"
    assert_consistent(r)


@pytest.mark.parametrize("name,cc,mem", [
    ("NVIDIA A100-SXM4-40GB", (8, 0), 40 * GB),
    ("NVIDIA A100-SXM4-80GB", (8, 0), 80 * GB),
    ("NVIDIA H100 80GB HBM3", (9, 0), 80 * GB),
])
@pytest.mark.parametrize("flash", ["flash_attn", "kernels", None])
def test_ampere_recipes(monkeypatch, name, cc, mem, flash):
    fake_gpu(monkeypatch, name, cc, mem, flash=flash)
    r = detect_recipe()
    assert (r.hardware, r.profile, r.device_name) == ("ampere", "colab", name)
    assert r.torch_dtype == torch.float32 and r.bf16 and not r.fp16 and not r.use_cpu
    why = dict(r.reasons)
    assert "rounds away" in why["torch_dtype"]
    if flash:
        assert r.attn_implementation == "flash_attention_2" and r.packing
        assert flash in why["attn_implementation"]
    else:
        assert r.attn_implementation == "sdpa" and not r.packing
        assert r.train_sampling_strategy == "group_by_length"
        assert "flash-attention is not usable here: kernels is not installed" in why["attn_implementation"]
    s = r.sizes
    assert (s.per_device_train_batch_size, s.gradient_accumulation_steps, s.gradient_checkpointing) == (16, 1, False)
    assert_consistent(r)


def test_small_ampere_card_gets_t4_split(monkeypatch):
    fake_gpu(monkeypatch, "NVIDIA GeForce RTX 3060", (8, 6), 12 * GB)
    r = detect_recipe()
    assert r.hardware == "ampere" and r.bf16
    s = r.sizes
    assert (s.per_device_train_batch_size, s.gradient_accumulation_steps, s.gradient_checkpointing) == (4, 4, True)


@pytest.mark.parametrize("hw,mem", [("cpu", None), ("t4", 15.0), ("cuda-old", 16.0), ("ampere", 12.0), ("ampere", 80.0)])
@pytest.mark.parametrize("profile", PROFILES)
def test_every_recipe_is_consistent_and_effective_batch_is_per_profile(hw, mem, profile):
    r = recipe_for(hw, profile, total_memory_gib=mem)
    assert_consistent(r)
    assert r.plan().effective_batch_size == {"ci": 4, "colab": 16, "full": 32}[profile]


# ----------------------------------------------------------------------------------------------- profiles
def test_profile_values_exact():
    ci = recipe_for("cpu", "ci").sizes
    assert dataclasses.astuple(ci) == (160, 16, 1.0, 30, 160, 4, 8, 1, 2e-4, 0.1, "cosine", 5, 1, 15, False)
    colab = recipe_for("t4", "colab", total_memory_gib=15.0).sizes
    assert dataclasses.astuple(colab) == (500, 50, 3.0, -1, 512, 4, 8, 4, 2e-5, 0.1, "cosine", 0.125, 0.02, 0.125, True)
    colab_a100 = recipe_for("ampere", "colab", total_memory_gib=40.0).sizes
    assert dataclasses.astuple(colab_a100) == (500, 50, 3.0, -1, 512, 16, 32, 1, 2e-5, 0.1, "cosine", 0.125, 0.02, 0.125, False)
    full = recipe_for("ampere", "full", total_memory_gib=80.0).sizes
    assert dataclasses.astuple(full) == (None, 500, 3.0, -1, 1024, 16, 32, 2, 2e-5, 0.1, "cosine", 0.1, 0.01, 0.1, False)


@pytest.mark.parametrize("hw,mem", [("cpu", None), ("t4", 15.0), ("ampere", 80.0)])
@pytest.mark.parametrize("profile", PROFILES)
def test_every_profile_has_at_least_six_eval_points_after_packing(hw, mem, profile):
    """Eval cadence follows the trainer's own step count: a ratio survives packing, a fixed count of steps may not."""
    r = recipe_for(hw, profile, total_memory_gib=mem)
    for total in (r.plan().total_steps or 10_000, 30, 12):  # unpacked count, and packed runs of fewer steps
        if r.sizes.max_steps > 0:
            total = r.sizes.max_steps  # a fixed-step run keeps its length whatever packing does
        every = r.sizes.eval_steps if r.sizes.eval_steps >= 1 else math.ceil(total * r.sizes.eval_steps)
        assert total // every >= 4 if profile == "ci" else total // every >= 6, (profile, total, every)


def test_reference_config_is_the_recipe_plus_the_named_settings(tmp_path):
    r = recipe_for("cpu", "ci")
    cfg = r.reference_config(tmp_path)
    for key, value in {**r.sft_config_kwargs(), **REFERENCE_RUN_SETTINGS}.items():
        if key == "report_to":  # "none" is stored as []
            continue
        got = getattr(cfg, key)
        assert (got.value if hasattr(got, "value") else got) == value, key
    assert r.sft_config(tmp_path, max_steps=3).max_steps == 3
    with pytest.raises(ValueError, match="did you mean 'learning_rate'"):
        r.sft_config(tmp_path, learning_rat=1e-4)
    with pytest.raises(ValueError, match="max_length"):
        r.sft_config(tmp_path, max_seq_length=512)


def test_lesson_sizes_are_owned_by_the_recipe():
    ci, colab = recipe_for("cpu", "ci").lesson, recipe_for("t4", "colab", total_memory_gib=15.0).lesson
    assert ci.n_heldout_prompts >= 20 and colab.n_heldout_prompts >= 20
    assert colab.loop_micro_batch_size == 4 and colab.compare_max_length == 512
    for f in dataclasses.fields(LessonSizes):
        assert len(f.metadata.get("help", "")) > 20, f.name


def test_every_runsizes_field_has_help():
    for f in dataclasses.fields(RunSizes):
        assert len(f.metadata.get("help", "")) > 20, f.name


def test_lab_profile_env_overrides_default(monkeypatch):
    fake_cpu(monkeypatch)
    monkeypatch.setenv("LAB_PROFILE", "colab")
    r = detect_recipe()
    assert r.profile == "colab" and "LAB_PROFILE" in dict(r.reasons)["profile"]
    assert detect_recipe("full").profile == "full"  # the argument wins over the environment


def test_bad_profile_from_argument(monkeypatch):
    fake_cpu(monkeypatch)
    with pytest.raises(ValueError) as e:
        detect_recipe("colabb")
    msg = str(e.value)
    assert "'colabb'" in msg and "profile argument" in msg and "'ci', 'colab', 'full'" in msg
    assert "Did you mean 'colab'?" in msg


def test_bad_profile_from_env(monkeypatch):
    fake_gpu(monkeypatch, "Tesla T4", (7, 5), 15 * GB)
    monkeypatch.setenv("LAB_PROFILE", "tiny")
    with pytest.raises(ValueError) as e:
        detect_recipe()
    msg = str(e.value)
    assert "'tiny'" in msg and "LAB_PROFILE environment variable" in msg and "'ci', 'colab', 'full'" in msg


# ----------------------------------------------------------------------------------------------- with_sizes
def test_with_sizes_overrides_and_records_reason():
    r = recipe_for("cpu", "ci").with_sizes(max_steps=5, learning_rate=5e-5)
    assert (r.sizes.max_steps, r.sizes.learning_rate) == (5, 5e-5)
    assert dict(r.reasons)["learning_rate"] == "set by with_sizes(learning_rate=5e-05)"
    assert r.sft_config_kwargs()["max_steps"] == 5
    assert recipe_for("cpu", "ci").sizes.max_steps == 30  # frozen original untouched


def test_with_sizes_rejects_unknown_key_with_suggestion():
    with pytest.raises(ValueError, match=r"unknown size 'max_seq_length'; did you mean 'max_length'\? Valid keys: n_train"):
        recipe_for("cpu", "ci").with_sizes(max_seq_length=512)


@pytest.mark.parametrize("key,value,needle", [
    ("max_steps", 0, "-1 or a positive int"),
    ("max_steps", -2, "-1 or a positive int"),
    ("per_device_train_batch_size", 0, "positive int"),
    ("per_device_train_batch_size", 4.0, "positive int"),
    ("gradient_accumulation_steps", -1, "positive int"),
    ("max_length", 0, "positive int"),
    ("num_train_epochs", 0, "must be > 0"),
    ("learning_rate", 0.0, "must be > 0"),
    ("learning_rate", -1e-5, "must be > 0"),
    ("warmup_ratio", 1.0, "0 <= ratio < 1"),
    ("warmup_ratio", -0.1, "0 <= ratio < 1"),
    ("lr_scheduler_type", "cosin", "did you mean 'cosine'"),
    ("eval_steps", 0, "positive int"),
    ("n_train_examples", 0, "positive int or None"),
    ("gradient_checkpointing", "yes", "True or False"),
])
def test_with_sizes_rejects_bad_values(key, value, needle):
    with pytest.raises(ValueError) as e:
        recipe_for("cpu", "ci").with_sizes(**{key: value})
    msg = str(e.value)
    assert f"RunSizes.{key} = {value!r}" in msg and needle in msg


# ----------------------------------------------------------------------------------------------- batch arithmetic
@pytest.mark.parametrize("config,expected", [
    ((2, 16, 1), (32, 16, 48, 5, 16384)),
    ((4, 8, 1), (32, 16, 48, 5, 16384)),
    ((4, 4, 4), (64, 8, 24, 3, 32768)),
    ((8, 2, 8), (128, 4, 12, 2, 65536)),
])
def test_effective_batch_common_configs(config, expected):
    p = effective_batch(*config, n_examples=500, epochs=3, warmup_ratio=0.1, max_length=512)
    assert isinstance(p, BatchPlan)
    assert (p.effective_batch_size, p.optimizer_steps_per_epoch, p.total_steps, p.warmup_steps, p.tokens_per_step) == expected


def test_effective_batch_partial_accumulation_matches_trainer():
    # 50 rows, batch 4 -> 13 batches; accum 4 -> Trainer runs ceil(13/4) = 4 optimizer steps per epoch
    p = effective_batch(4, 4, n_examples=50, epochs=1.5)
    assert (p.optimizer_steps_per_epoch, p.total_steps, p.tokens_per_step) == (4, 6, None)
    assert effective_batch(4, 1, n_examples=64, max_steps=8).total_steps == 8
    assert effective_batch(4, 2).total_steps is None


@pytest.mark.parametrize("kwargs,needle", [
    (dict(per_device=0, grad_accum=1), "per_device = 0"),
    (dict(per_device=4, grad_accum=1.5), "grad_accum = 1.5"),
    (dict(per_device=4, grad_accum=1, n_gpus=0), "n_gpus = 0"),
    (dict(per_device=4, grad_accum=1, n_examples=-3), "n_examples = -3"),
    (dict(per_device=4, grad_accum=1, epochs=0), "epochs = 0"),
    (dict(per_device=4, grad_accum=1, warmup_ratio=1.5), "warmup_ratio = 1.5"),
])
def test_effective_batch_validates(kwargs, needle):
    with pytest.raises(ValueError, match=needle):
        effective_batch(**kwargs)


@pytest.mark.parametrize("total", [1, 7, 8, 12, 24, 48, 96, 1000, 1563])
@pytest.mark.parametrize("ratio", [0.0, 0.03, 0.05, 0.1, 0.25])
def test_warmup_matches_transformers(tmp_path, total, ratio):
    args = transformers.TrainingArguments(output_dir=str(tmp_path), warmup_steps=ratio, use_cpu=True, report_to="none")
    assert hasattr(args, "get_warmup_steps")
    ours = effective_batch(1, 1, max_steps=total, warmup_ratio=ratio).warmup_steps
    assert ours == args.get_warmup_steps(total)


def test_batch_plan_table_has_all_configs():
    table = batch_plan_table(COMMON_BATCH_CONFIGS, n_examples=500, epochs=3, warmup_ratio=0.1, max_length=512)
    lines = table.splitlines()
    assert len(lines) == 1 + len(COMMON_BATCH_CONFIGS)
    assert lines[0].split() == ["per_device", "accum", "gpus", "effective", "steps/epoch", "total", "warmup", "tokens/step"]
    assert lines[4].split() == ["8", "2", "8", "128", "4", "12", "2", "65,536"]


def test_recipe_plan_and_explain():
    r = recipe_for("t4", "colab", "Tesla T4", (7, 5), 15.0)
    p = r.plan()
    assert (p.effective_batch_size, p.optimizer_steps_per_epoch, p.total_steps, p.warmup_steps) == (16, 32, 96, 10)
    assert r.plan(1000).total_steps == 189  # ceil(250 / 4) = 63 per epoch
    text = r.explain()
    assert "effective batch = 4 per device x 4 accum x 1 device = 16" in text
    assert "tokens per optimizer step <= 16 x 512 = 8,192" in text
    assert "optimizer steps = 96, warmup steps = 10" in text
    for name, why in r.reasons:
        assert why in text, name
    assert str(r) == text and r._repr_html_().startswith("<pre>")
    assert "row count known once" in recipe_for("ampere", "full", total_memory_gib=80.0).explain()


# ----------------------------------------------------------------------------------------------- SFTConfig
@pytest.mark.filterwarnings("error:`gradient_checkpointing` is deprecated:FutureWarning")  # current name only
@pytest.mark.parametrize("profile", PROFILES)
def test_sft_config_accepts_cpu_recipes(tmp_path, profile):
    r = recipe_for("cpu", profile)
    cfg = SFTConfig(output_dir=str(tmp_path), **r.sft_config_kwargs())
    s = r.sizes
    assert (cfg.bf16, cfg.fp16, cfg.use_cpu) == (False, False, True)
    assert cfg.max_length == s.max_length and cfg.max_steps == s.max_steps
    assert cfg.per_device_train_batch_size == s.per_device_train_batch_size
    assert cfg.gradient_accumulation_steps == s.gradient_accumulation_steps
    assert cfg.activation_checkpointing == s.gradient_checkpointing  # TRL's default is True: we always set it
    assert cfg.get_warmup_steps(96) == effective_batch(1, 1, max_steps=96, warmup_ratio=s.warmup_ratio).warmup_steps
    assert cfg.logging_nan_inf_filter is False and cfg.seed == 42
    assert cfg.lr_scheduler_type == s.lr_scheduler_type or cfg.lr_scheduler_type.value == s.lr_scheduler_type


@pytest.mark.parametrize("hw,mem", [("t4", 15.0), ("cuda-old", 16.0), ("ampere", 40.0), ("ampere", 80.0)])
@pytest.mark.parametrize("profile", PROFILES)
def test_gpu_recipe_kwargs_are_sft_fields(hw, mem, profile):
    kw = recipe_for(hw, profile, total_memory_gib=mem).sft_config_kwargs()
    assert set(kw) <= SFT_FIELDS, set(kw) - SFT_FIELDS
    assert kw["use_cpu"] is False and kw["fp16"] != kw["bf16"]


def test_scheduler_names_are_the_installed_transformers_ones():
    """SCHEDULERS is spelled out (no transformers.trainer_utils import at load): it must follow the installed version."""
    from transformers.trainer_utils import SchedulerType

    assert hardware.SCHEDULERS == tuple(s.value for s in SchedulerType)

