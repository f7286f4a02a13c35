"""Attention chosen by probe (each failure faked), and flash-attention's contract enforced on this CPU (ampere-cpu)."""

from __future__ import annotations

import sys
import types

import pytest
import torch

from labhelpers.model import attention
from labhelpers.model.hardware import detect_recipe, emulated_ampere_recipe

GB = 1024**3


def fake_ampere(monkeypatch):
    """One visible cc 8.0 GPU without a real device."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda i=0: (8, 0))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=0: "NVIDIA A100-SXM4-40GB")
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i=0: types.SimpleNamespace(total_memory=40 * GB))
    monkeypatch.delenv("LAB_FORCE_HARDWARE", raising=False)


def fresh_kernel_cache(monkeypatch):
    """transformers keeps the loaded flash implementation in module globals: start each probe from none."""
    from transformers import modeling_flash_attention_utils as fa

    monkeypatch.setattr(fa, "_loaded_implementation", None)


# ----------------------------------------------------------------------------------------------- the probe
def test_a_kernels_version_outside_transformers_window_gives_sdpa_and_says_why(monkeypatch):
    from transformers.utils import import_utils

    fake_ampere(monkeypatch)
    monkeypatch.setattr(import_utils, "is_kernels_available", lambda *a, **k: False)
    recipe = detect_recipe("colab")
    assert (recipe.attn_implementation, recipe.packing) == ("sdpa", False)
    why = dict(recipe.reasons)["attn_implementation"]
    assert "kernels 0.19.1 is installed" in why and "only for 0.19.1 <= kernels < 0.20" in why, why
    assert "flash-attention is not usable here" in recipe.explain()


def test_a_hub_kernel_that_fails_to_load_gives_sdpa_with_the_error(monkeypatch):
    from transformers.integrations import hub_kernels

    fake_ampere(monkeypatch)
    fresh_kernel_cache(monkeypatch)

    def no_hub(*args, **kwargs):
        raise OSError("We couldn't connect to 'https://huggingface.co' to load the kernel")

    monkeypatch.setattr(hub_kernels, "get_kernel", no_hub)
    recipe = detect_recipe("colab")
    assert (recipe.attn_implementation, recipe.packing, recipe.train_sampling_strategy) == ("sdpa", False,
                                                                                            "group_by_length")
    assert "did not load" in dict(recipe.reasons)["attn_implementation"]
    assert "couldn't connect" in dict(recipe.reasons)["attn_implementation"]


def test_a_flash_attn_package_that_does_not_import_gives_sdpa(monkeypatch):
    from transformers.utils import import_utils

    fake_ampere(monkeypatch)
    monkeypatch.setattr(import_utils, "is_flash_attn_2_available", lambda *a, **k: True)
    monkeypatch.setitem(sys.modules, "flash_attn", None)  # import raises ImportError, like a mismatched CUDA build
    backend, why = attention.probe_flash_attention()
    assert backend is None and "flash_attn is installed but does not import" in why


def test_a_kernel_that_loads_gives_flash_attention_and_padding_free_packing(monkeypatch):
    fake_ampere(monkeypatch)
    fresh_kernel_cache(monkeypatch)
    attention.install_flash_standin()  # what the hub would hand back, without the hub
    recipe = detect_recipe("colab")
    assert (recipe.attn_implementation, recipe.packing, recipe.bf16) == ("flash_attention_2", True, True)
    assert "loaded the prebuilt hub kernel" in dict(recipe.reasons)["attn_implementation"]


# ----------------------------------------------------------------------------------------------- the contract
@pytest.fixture(scope="module")
def emulated_model():
    from labhelpers.model.loading import load_model_and_tokenizer

    recipe = emulated_ampere_recipe()
    model, tokenizer = load_model_and_tokenizer(recipe=recipe, verbose=False)
    return recipe, model.eval(), tokenizer


def test_ampere_cpu_is_the_bf16_flash_recipe_on_the_cpu(monkeypatch, capsys):
    monkeypatch.setenv("LAB_FORCE_HARDWARE", "ampere-cpu")
    recipe = detect_recipe()
    assert recipe.emulated and recipe.bf16 and not recipe.fp16 and recipe.torch_dtype == torch.float32
    assert (recipe.attn_implementation, recipe.packing, str(recipe.device)) == ("flash_attention_2", True, "cpu")
    config = recipe.sft_config("/tmp/ampere-cpu-test")
    assert (config.bf16, config.use_cpu, config.packing, config.max_steps) == (True, True, True, 3)
    assert "smoke size under ampere-cpu" in dict(recipe.reasons)["max_steps"]


@pytest.mark.slow
def test_a_forward_outside_autocast_raises_naming_the_caller(emulated_model):
    recipe, model, tokenizer = emulated_model
    assert "flash" in model.config._attn_implementation
    ids = torch.tensor([tokenizer.encode("Hello there")], device=model.device)
    with pytest.raises(attention.FlashContractError, match=r"test_attention\.py:\d+.*recipe\.autocast\(\)"):
        model(ids)
    with torch.no_grad(), recipe.autocast():
        assert torch.isfinite(model(ids).logits).all()


@pytest.mark.slow
def test_packed_rows_stay_isolated_through_transformers_flash_path(emulated_model):
    """B packed after A (position_ids restarting, no attention mask, as TRL's padding-free collator sends it) gives
    B's logits alone, through transformers' own flash path (cu_seq_lens from position_ids) and the stand-in."""
    recipe, model, tokenizer = emulated_model
    a = tokenizer.encode("The capital of France is Paris, and the capital of Italy is")
    b = tokenizer.encode("Two plus two equals")
    packed = torch.tensor([a + b], device=model.device)
    positions = torch.tensor([list(range(len(a))) + list(range(len(b)))], device=model.device)
    with torch.no_grad(), recipe.autocast():
        together = model(packed, position_ids=positions, use_cache=False).logits[0, len(a):].float()
        alone = model(torch.tensor([b], device=model.device), use_cache=False).logits[0].float()
        contaminated = model(packed, use_cache=False).logits[0, len(a):].float()  # one causal row: B sees A
    assert (together - alone).abs().max().item() < 0.5  # bf16 rounding only (logits of magnitude ~10-30)
    assert (contaminated - alone).abs().max().item() > 2.0


def test_the_standin_matches_plain_attention_within_bf16_rounding():
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 5, 4, 8) for _ in range(3))
    k, v = k[:, :, :2], v[:, :, :2]  # grouped-query attention: 4 query heads share 2 key heads
    out = attention.flash_attn_func(q.bfloat16(), k.bfloat16(), v.bfloat16(), causal=True).float()
    ref = torch.nn.functional.scaled_dot_product_attention(
        q.transpose(1, 2), k.repeat_interleave(2, 2).transpose(1, 2), v.repeat_interleave(2, 2).transpose(1, 2),
        is_causal=True).transpose(1, 2)
    assert (out - ref).abs().max().item() < 0.05


def test_checkpoints_go_to_the_runtime_disk_when_the_run_folder_is_on_drive(monkeypatch, tmp_path):
    """Colab with USE_DRIVE: the run folder (model, metrics) on Drive, checkpoints on the runtime's disk."""
    from pathlib import Path

    from labhelpers.run.folder import checkpoint_dir

    monkeypatch.delenv("LAB_CHECKPOINT_ROOT", raising=False)
    assert checkpoint_dir(Path("/content/drive/MyDrive/sft-lab-runs/colab")) == Path(
        "/content/drive/MyDrive/sft-lab-runs/colab/sft")
    monkeypatch.setenv("LAB_CHECKPOINT_ROOT", str(tmp_path / "ckpt"))
    assert checkpoint_dir(Path("/content/drive/MyDrive/sft-lab-runs/colab")) == tmp_path / "ckpt" / "colab" / "sft"
    assert "LAB_CHECKPOINT_ROOT" in __import__("tools.colab", fromlist=["x"]).install_cell_source()


@pytest.mark.slow
def test_the_clinics_amp_step_and_accumulation_evidence_keep_the_contract(emulated_model, tmp_path):
    """Notebook 14's own forwards (the fp16 AMP step, the same rows batched two ways) run under the flash contract."""
    from trl import SFTTrainer

    from labhelpers.data.datasets import load_chat_dataset
    from labhelpers.sanity.clinic import accumulation_evidence, amp_step, shortest_rows

    recipe, model, tokenizer = emulated_model
    assert amp_step(model, tokenizer, torch.float16).error == "ValueError: Attempting to unscale FP16 gradients."
    assert amp_step(model, tokenizer, torch.float32).ok
    rows = shortest_rows(load_chat_dataset()["train"], tokenizer, 4).select_columns(["messages"])
    trainer = SFTTrainer(model=model, args=recipe.sft_config(tmp_path, max_steps=1, per_device_train_batch_size=1,
                                                            gradient_accumulation_steps=4, assistant_only_loss=True,
                                                            packing=False, eval_strategy="no", save_strategy="no"),
                         train_dataset=rows, processing_class=tokenizer)
    assert "gradients differ by 0.0%" in accumulation_evidence(trainer)


@pytest.mark.slow
def test_the_retention_tables_replay_rows_keep_the_contract(emulated_model):
    """Notebook 12's replay mix generates the base model's own replies outside any Trainer, under the recipe's
    autocast (the Ampere pass runs 12 without its retention runs: their training is the reference run's)."""
    from labhelpers.series.retention import replay_rows

    recipe, model, tokenizer = emulated_model
    rows = replay_rows(model, tokenizer, 2, recipe)
    assert [row["messages"][0]["role"] for row in rows] == ["user"] * len(rows) and rows
    assert all(row["messages"][1]["role"] == "assistant" and row["messages"][1]["content"] for row in rows)
