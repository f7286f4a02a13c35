"""LoRA plumbing of notebook 12: the LoraConfig check's feedback, the adapter sanity findings, QLoRA's refusal on a
CPU, parameter counts, and merge_and_unload keeping the logits (real model, fp32 tolerance)."""

from __future__ import annotations

import sys

import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import LlamaConfig, LlamaForCausalLM

from labhelpers.checks import TodoCheckError
from labhelpers.checks.nb12_lora import check_lora_config
from labhelpers.model.hardware import recipe_for
from labhelpers.run.lora import (LORA_TARGETS, QLoRAUnavailable, logits_tolerance, lora_parameter_count,
                                 measure_training_step, qlora_model_kwargs, trainable_parameters)
from labhelpers.sanity.lora import lora_findings

ALL = list(LORA_TARGETS)


def tiny_llama(vocab: int = 64) -> LlamaForCausalLM:
    """A 2-layer llama with the real module names (q_proj ... down_proj, embed_tokens, tied lm_head)."""
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=vocab, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, tie_word_embeddings=True)
    return LlamaForCausalLM(config)


class Tok:
    """What lora_findings reads from a tokenizer: the original vocabulary size, added tokens, pad id, length."""

    def __init__(self, vocab: int = 64, new: tuple[str, ...] = (), pad_is_new: bool = False):
        self.vocab_size = vocab
        self.added_tokens_decoder = {0: "<|endoftext|>", 2: "<|im_end|>"}
        self.added_tokens_decoder.update({vocab + i: t for i, t in enumerate(new)})
        self.pad_token_id = vocab if pad_is_new else 0

    def __len__(self) -> int:
        return max(self.added_tokens_decoder) + 1 if max(self.added_tokens_decoder) >= self.vocab_size else self.vocab_size


def config(**changes) -> LoraConfig:
    values = dict(r=16, lora_alpha=32, target_modules=ALL, lora_dropout=0.05, task_type="CAUSAL_LM")
    values.update(changes)
    return LoraConfig(**values)


# ------------------------------------------------------------------------------------- check_lora_config
WRONG_CONFIGS = {  # name -> (what make_lora_config returns for (rank, alpha), words the message must contain)
    "attention only": (lambda r, a: config(r=r, lora_alpha=a, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"]),
                       ["target_modules misses the MLP projections gate_proj/up_proj/down_proj", "gate_proj, up_proj, down_proj missing"]),
    "original paper q,v": (lambda r, a: config(r=r, lora_alpha=a, target_modules=["q_proj", "v_proj"]),
                           ["misses the MLP projections", "attention projections", "k_proj, o_proj missing"]),
    "MLP only": (lambda r, a: config(r=r, lora_alpha=a, target_modules=["gate_proj", "up_proj", "down_proj"]),
                 ["misses the attention projections q_proj/k_proj/v_proj/o_proj"]),
    "no task type": (lambda r, a: config(r=r, lora_alpha=a, task_type=None), ["task_type must be CAUSAL_LM"]),
    "classification task": (lambda r, a: config(r=r, lora_alpha=a, task_type="SEQ_CLS"),
                            ["task_type is 'SEQ_CLS'", "task_type must be CAUSAL_LM"]),
    "alpha = r": (lambda r, a: config(r=r, lora_alpha=r), ["lora_alpha is 16, asked for 32",
                                                          "lora_alpha/r = 16/16 scales the update B @ A by 1"]),
    "alpha fixed": (lambda r, a: config(r=r, lora_alpha=32), ["make_lora_config(8, 8)", "lora_alpha/r = 32/8 scales the update B @ A by 4"]),
    "rank fixed": (lambda r, a: config(r=16, lora_alpha=a), ["make_lora_config(8, 8)", "r is 16, the rank asked for is 8"]),
    "default targets": (lambda r, a: config(r=r, lora_alpha=a, target_modules=None), ["target_modules is None", "q_proj and v_proj"]),
    "regex string": (lambda r, a: config(r=r, lora_alpha=a, target_modules="q_proj"), ["regular expression"]),
    "LoRA on the LM head": (lambda r, a: config(r=r, lora_alpha=a, target_modules=ALL + ["lm_head"]),
                            ["lm_head", "modules_to_save"]),
    "dropout too high": (lambda r, a: config(r=r, lora_alpha=a, lora_dropout=0.5), ["lora_dropout is 0.5"]),
    "biases trained": (lambda r, a: config(r=r, lora_alpha=a, bias="all"), ['bias="none"']),
    "not a LoraConfig": (lambda r, a: {"r": r, "lora_alpha": a}, ["not a peft.LoraConfig"]),
}


@pytest.mark.parametrize("name", list(WRONG_CONFIGS))
def test_check_lora_config_says_what_is_wrong(name):
    make, words = WRONG_CONFIGS[name]
    with pytest.raises(TodoCheckError) as err:
        check_lora_config(make)
    for word in words:
        assert word in str(err.value), f"{name}: {word!r} not in {err.value}"


def test_check_lora_config_names_targets_missing_from_the_model():
    typo = lambda r, a: config(r=r, lora_alpha=a, target_modules=ALL[:-1] + ["down_prj"])  # noqa: E731
    with pytest.raises(TodoCheckError, match="down_prj, which no module of this model is called"):
        check_lora_config(typo, tiny_llama())


def test_check_lora_config_unfilled_todo():
    def make_lora_config(rank, alpha):
        raise NotImplementedError("TODO: return LoraConfig(r=..., ...)")

    with pytest.raises(TodoCheckError, match="not implemented yet"):
        check_lora_config(make_lora_config)


@pytest.mark.parametrize("targets", [ALL, "all-linear", tuple(reversed(ALL))])
def test_check_lora_config_accepts_right_answers(targets, capsys):
    check_lora_config(lambda r, a: config(r=r, lora_alpha=a, target_modules=targets), tiny_llama())
    check_lora_config(config())  # a ready LoraConfig is checked against the first case (16, 32)
    assert capsys.readouterr().out.count("✓") == 2


# ---------------------------------------------------------------------------------------------- counting
def test_parameter_count_by_hand_equals_peft():
    model = tiny_llama()
    by_hand = lora_parameter_count(model, 4)
    _, total = trainable_parameters(model)
    wrapped = get_peft_model(model, config(r=4, lora_alpha=8))
    trainable, wrapped_total = trainable_parameters(wrapped)
    assert trainable == by_hand == 2 * (4 * (16 + 16) * 2 + 4 * (16 + 8) * 2 + 4 * (16 + 32) * 2 + 4 * (32 + 16))
    assert wrapped_total == total + trainable


# ---------------------------------------------------------------------------------------------- findings
def statuses(findings) -> dict[str, str]:
    return {f.check: f.status for f in findings}


def test_findings_pass_for_a_good_adapter_run():
    model = get_peft_model(tiny_llama(), config())
    assert statuses(lora_findings(model, 1e-3, Tok())) == {
        "trainable_parameters": "pass", "lora_targets": "pass", "lora_learning_rate": "pass", "new_tokens_trainable": "pass"}


@pytest.mark.parametrize("lr, status, words", [
    (2e-5, "warn", "LoRA adapters start at zero and need ~10x a full fine-tune's LR"),
    (5e-5, "warn", "below 0.0001"),
    (1e-4, "pass", "lr 0.0001"),
    (5e-3, "warn", "above 0.003"),
    (2e-2, "fail", "expect divergence"),
])
def test_findings_learning_rate_bands(lr, status, words):
    finding = next(f for f in lora_findings(get_peft_model(tiny_llama(), config()), lr, Tok())
                   if f.check == "lora_learning_rate")
    assert finding.status == status and words in finding.message
    assert "scaled by lora_alpha/r = 2" in finding.message


def test_findings_fail_when_nothing_trains():
    model = tiny_llama().requires_grad_(False)
    finding = lora_findings(model, 1e-3, Tok())[0]
    assert (finding.check, finding.status) == ("trainable_parameters", "fail")
    assert "get_peft_model" in finding.fix


def test_findings_fail_when_targets_hit_nothing():
    typo = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj_", "v_prj"], task_type="CAUSAL_LM")
    finding = statuses_and(lora_findings(tiny_llama(), 1e-3, Tok(), lora_config=typo), "lora_targets")
    assert finding.status == "fail" and "match no module" in finding.message and "q_proj" in finding.fix


def test_findings_name_projections_not_lora_internals():
    typo = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj_"], task_type="CAUSAL_LM")
    wrapped = get_peft_model(tiny_llama(), config())
    finding = statuses_and(lora_findings(wrapped.get_base_model(), 1e-3, Tok(), lora_config=typo), "lora_targets")
    assert finding.status == "fail"
    assert finding.fix.startswith("name the model's linear layers: q_proj, k_proj, v_proj, o_proj, gate_proj")
    assert "base_layer" not in finding.fix and "default" not in finding.fix


def test_findings_warn_on_attention_only_targets():
    model = get_peft_model(tiny_llama(), config(target_modules=["q_proj", "v_proj"]))
    finding = statuses_and(lora_findings(model, 1e-3, Tok()), "lora_targets")
    assert finding.status == "warn" and "gate_proj" in finding.fix


def statuses_and(findings, check):
    return next(f for f in findings if f.check == check)


def test_findings_new_tokens_with_frozen_embeddings_fail():
    model = tiny_llama(vocab=65)  # resized for one new token
    tok = Tok(vocab=64, new=("<|tool|>",))
    finding = statuses_and(lora_findings(get_peft_model(model, config()), 1e-3, tok), "new_tokens_trainable")
    assert finding.status == "fail" and "<|tool|>" in finding.message
    assert 'modules_to_save=["embed_tokens", "lm_head"]' in finding.fix


def test_findings_new_tokens_with_trained_copies_pass():
    model = get_peft_model(tiny_llama(vocab=65), config(modules_to_save=["embed_tokens", "lm_head"]))
    finding = statuses_and(lora_findings(model, 1e-3, Tok(vocab=64, new=("<|tool|>",))), "new_tokens_trainable")
    assert finding.status == "pass"


def test_findings_new_pad_token_alone_needs_no_training():
    model = get_peft_model(tiny_llama(vocab=65), config())
    finding = statuses_and(lora_findings(model, 1e-3, Tok(vocab=64, new=("<|pad|>",), pad_is_new=True)),
                           "new_tokens_trainable")
    assert finding.status == "pass" and "pad token" in finding.message


def test_findings_fail_when_the_embedding_was_not_resized():
    finding = statuses_and(lora_findings(tiny_llama(vocab=64), 1e-3, Tok(vocab=64, new=("<|tool|>",))),
                           "new_tokens_trainable")
    assert finding.status == "fail" and "resize_token_embeddings" in finding.fix


# ------------------------------------------------------------------------------------------------- QLoRA
def test_qlora_refuses_on_cpu():
    with pytest.raises(QLoRAUnavailable) as err:
        qlora_model_kwargs(recipe_for("cpu", "ci"))
    assert "QLoRA needs CUDA: bitsandbytes 4-bit kernels" in str(err.value)
    assert "use LoRA on fp32 weights here" in str(err.value)


def test_qlora_names_the_missing_package_on_a_gpu(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "bitsandbytes" else real(name, *a))
    with pytest.raises(QLoRAUnavailable, match="pip install -q \"bitsandbytes"):
        qlora_model_kwargs(recipe_for("t4", "colab", total_memory_gib=15.0))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_qlora_kwargs_on_a_gpu():
    pytest.importorskip("bitsandbytes")
    from labhelpers.model.hardware import detect_recipe

    kwargs = qlora_model_kwargs(detect_recipe())
    assert kwargs["quantization_config"].load_in_4bit and kwargs["quantization_config"].bnb_4bit_quant_type == "nf4"


# ------------------------------------------------------------------------------------------------ merging
def _merge_diffs(model, tokenizer) -> tuple[float, float, torch.dtype]:
    """(max |merged - adapter|, max |adapter - base|, dtype) of the logits on a few tokens, random nonzero adapters."""
    wrapped = get_peft_model(model, config(r=8, lora_alpha=16, lora_dropout=0.0, init_lora_weights=False))
    ids = tokenizer("Name three colours.", return_tensors="pt")["input_ids"].to(wrapped.device)
    wrapped.eval()
    with torch.no_grad():
        adapter = wrapped(input_ids=ids).logits
        with wrapped.disable_adapter():
            base = wrapped(input_ids=ids).logits
        merged_model = wrapped.merge_and_unload()
        merged = merged_model(input_ids=ids).logits
    rtol, atol = logits_tolerance(merged_model.dtype)
    torch.testing.assert_close(merged, adapter, rtol=rtol, atol=atol)
    return (merged - adapter).abs().max().item(), (adapter - base).abs().max().item(), merged_model.dtype


def test_merge_keeps_logits_on_a_tiny_model():
    class Ids:
        def __call__(self, text, return_tensors):
            return {"input_ids": torch.tensor([[1, 5, 9, 3, 7]])}

    diff, moved, dtype = _merge_diffs(tiny_llama(), Ids())
    assert dtype == torch.float32 and diff < 1e-5 and moved > 1e-3


@pytest.mark.slow
def test_merge_keeps_logits_on_the_real_model(cpu_recipe):
    from labhelpers.model.loading import load_model_and_tokenizer

    model, tokenizer = load_model_and_tokenizer(recipe=cpu_recipe, verbose=False)
    diff, moved, dtype = _merge_diffs(model, tokenizer)
    assert dtype == torch.float32
    assert diff < 1e-3, f"merged logits differ from the adapter's by {diff:.1e}"  # logits ~10: rtol 1e-4 of them
    assert moved > 0.1, "random adapters should change the logits, or the comparison proves nothing"


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="VmHWM is Linux-only")
def test_measure_training_step_in_a_child_process():
    recipe = recipe_for("cpu", "ci").with_sizes(per_device_train_batch_size=1, max_length=16)
    figures = measure_training_step("HuggingFaceTB/SmolLM2-135M-Instruct", recipe, lora_rank=4, steps=2)
    assert figures["mode"] == "lora r=4" and len(figures["step_s"]) == 2 and figures["batch"] == 1
    weights = figures["estimate"]["weights"]
    assert weights * 0.8 < figures["peak_bytes"] < figures["estimate"]["total"] * 3


def test_finished_adapter_run_is_loaded_not_retrained(tmp_path):
    """Notebook 12 re-run (or CI's second pass): the same settings, rows and adapter load the saved adapters."""
    from types import SimpleNamespace

    from labhelpers.run.lora import finished_adapters_or_train

    config = SimpleNamespace(output_dir=str(tmp_path / "lora"), learning_rate=1e-3, max_steps=2)
    rows = [{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}]

    def adapted(rank: int = 4):
        return get_peft_model(tiny_llama(), LoraConfig(r=rank, lora_alpha=2 * rank, target_modules=ALL))

    trained = adapted()

    def train():  # stands in for trainer.train(): moves the adapters, returns a log history
        with torch.no_grad():
            for name, param in trained.named_parameters():
                if "lora_B" in name:
                    param.fill_(0.01)
        return [{"loss": 1.0, "step": 1}, {"train_runtime": 1.5, "step": 2}]

    history, now = finished_adapters_or_train(trained, config, rows, train)
    assert now and (tmp_path / "lora" / "adapter" / "adapter_model.safetensors").is_file()

    fresh = adapted()  # lora_B starts at zero again
    again, now = finished_adapters_or_train(fresh, config, rows, lambda: pytest.fail("trained a finished run again"))
    assert not now and again == history
    for (name, a), (_, b) in zip(trained.named_parameters(), fresh.named_parameters()):
        if "lora_" in name:
            assert torch.equal(a, b), name

    other_rank = adapted(rank=2)  # other adapter settings: a new run
    _, now = finished_adapters_or_train(other_rank, config, rows, lambda: [{"loss": 1.0}, {"train_runtime": 1.0}])
    assert now


@pytest.mark.parametrize("lr", [1e-5, 5e-5, 7e-5, 1e-4, 2e-4, 1e-3, 3e-3, 5e-3, 1e-2, 2e-2])
def test_preflight_and_lora_findings_judge_a_lora_learning_rate_alike(lr):
    """One LR table for adapters: the preflight's verdict is lora_findings' (they disagreed at 5e-5..1e-4)."""
    import peft

    from labhelpers.sanity.preflight import hyperparameter_findings

    tiny = torch.nn.Sequential()
    tiny.add_module("q_proj", torch.nn.Linear(4, 4))
    tiny = peft.get_peft_model(tiny, peft.LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj"]))

    class Tok:
        vocab_size, pad_token_id, added_tokens_decoder = 10, 0, {}

        def __len__(self):
            return 10

    by_lora = next(f.status for f in lora_findings(tiny, lr, Tok()) if f.check == "lora_learning_rate")
    by_preflight = hyperparameter_findings(lr, 0.1, True, 135_000_000, 500, 16, -1, 1)[0].status
    assert by_preflight == by_lora, (lr, by_preflight, by_lora)


PEFT_WARNING_PROBE = """
import warnings
import labhelpers.run.lora  # noqa: F401  (notebook 12 imports it before get_peft_model)
from peft import LoraConfig, get_peft_model
from transformers import LlamaConfig, LlamaForCausalLM
config = LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                     num_key_value_heads=1)
get_peft_model(LlamaForCausalLM(config), LoraConfig(r=2, target_modules=["q_proj"]))
warnings.warn("another FutureWarning still shows", FutureWarning)
"""


def test_peft_deprecation_warning_is_hidden_and_others_still_show():
    """peft's use of transformers' renamed is_gradient_checkpointing printed a red FutureWarning under notebook 12's
    get_peft_model cell; labhelpers.run.lora hides exactly that message (a fresh process: warnings show once each)."""
    import inspect
    import subprocess

    import peft.peft_model

    assert "is_gradient_checkpointing" in inspect.getsource(peft.peft_model)  # peft still reads it: the filter is needed
    stderr = subprocess.run([sys.executable, "-c", PEFT_WARNING_PROBE], capture_output=True, text=True, check=True).stderr
    assert "is_gradient_checkpointing" not in stderr
    assert "another FutureWarning still shows" in stderr
