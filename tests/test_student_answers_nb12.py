"""Notebook 12's TODO, `make_lora_config(rank, alpha)`, as students write it: near misses (options that change what
trains or how the update is scaled, wrong arguments) that the check must reject with their own mistake named, and right
answers written differently from the solution that it must accept."""

from __future__ import annotations

import time

import pytest
import torch
from peft import LoraConfig, TaskType, get_peft_model
from transformers import LlamaConfig, LlamaForCausalLM

from labhelpers.checks import TodoCheckError
from labhelpers.checks.nb12_lora import check_lora_config
from labhelpers.run.lora import ATTENTION_PROJECTIONS, MLP_PROJECTIONS, trainable_parameters

SEVEN = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def small_llama() -> LlamaForCausalLM:
    """A 2-layer llama with SmolLM2's module names (q_proj ... down_proj, embed_tokens, tied lm_head)."""
    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                                        num_attention_heads=2, num_key_value_heads=1, tie_word_embeddings=True))


def lesson(rank, alpha, **extra):
    return LoraConfig(r=rank, lora_alpha=alpha, target_modules=SEVEN, lora_dropout=0.05, bias="none",
                      task_type="CAUSAL_LM", **extra)


WRONG = [
    ("modules_to_save", lambda r, a: lesson(r, a, modules_to_save=["embed_tokens", "lm_head"]),
     "modules_to_save=['embed_tokens', 'lm_head'] trains full copies"),
    ("rsLoRA", lambda r, a: lesson(r, a, use_rslora=True), "use_rslora=True scales the update by lora_alpha/sqrt(r)"),
    ("DoRA", lambda r, a: lesson(r, a, use_dora=True), "use_dora=True trains DoRA"),
    ("half the layers", lambda r, a: lesson(r, a, layers_to_transform=[0]), "layers_to_transform=[0] adapts only"),
    ("a rank pattern", lambda r, a: lesson(r, a, rank_pattern={"q_proj": 4}), "rank_pattern={'q_proj': 4}"),
    ("B not zero", lambda r, a: lesson(r, a, init_lora_weights=False), "B starts random, not at zero"),
    ("frozen adapters", lambda r, a: lesson(r, a, inference_mode=True), "inference_mode=True creates the adapters frozen"),
    ("bias on lora_B", lambda r, a: lesson(r, a, lora_bias=True), "lora_bias=True adds a trainable bias"),
    ("alpha = 2 x rank", lambda r, a: lesson(r, 2 * r), "lora_alpha is 16, asked for 8"),
    ("o_proj forgotten", lambda r, a: LoraConfig(r=r, lora_alpha=a, lora_dropout=0.05, task_type=TaskType.CAUSAL_LM,
                                                 target_modules=["q_proj", "k_proj", "v_proj", "gate_proj", "up_proj",
                                                                 "down_proj"]), "o_proj missing"),
    ("task type in lower case", lambda r, a: LoraConfig(r=r, lora_alpha=a, target_modules=SEVEN, task_type="causal_lm"),
     'make_lora_config raised ValueError: Invalid task type'),
    ("PiSSA initialisation", lambda r, a: lesson(r, a, init_lora_weights="pissa"), "init_lora_weights='pissa'"),
    ("exclude a projection", lambda r, a: lesson(r, a, exclude_modules=["down_proj"]), "exclude_modules="),
]


def as_a_dict_of_arguments(rank, alpha):
    arguments = {"task_type": TaskType.CAUSAL_LM, "r": int(rank), "lora_alpha": float(alpha), "lora_dropout": 0.05}
    arguments["target_modules"] = [*ATTENTION_PROJECTIONS, *MLP_PROJECTIONS]
    return LoraConfig(**arguments)


def a_set_and_a_loop(rank, alpha):
    targets = set()
    for part in ("q", "k", "v", "o"):
        targets.add(f"{part}_proj")
    targets |= {"gate_proj", "up_proj", "down_proj"}
    return LoraConfig(target_modules=targets, r=rank, lora_alpha=alpha, lora_dropout=0.1, task_type="CAUSAL_LM",
                      use_rslora=False, inference_mode=False)


def all_linear_gaussian(rank, alpha):
    return LoraConfig(r=rank, lora_alpha=alpha, target_modules="all-linear", lora_dropout=0.05, bias="none",
                      task_type="CAUSAL_LM", init_lora_weights="gaussian", modules_to_save=None)


RIGHT = [
    ("a dict of arguments, TaskType", as_a_dict_of_arguments),
    ("a set built in a loop, dropout 0.1", a_set_and_a_loop),
    ("all-linear, gaussian A", all_linear_gaussian),
]


@pytest.mark.parametrize("name, make, words", WRONG, ids=[w[0] for w in WRONG])
def test_wrong_lora_config_is_named(name, make, words):
    with pytest.raises(TodoCheckError) as err:
        check_lora_config(make, small_llama())
    assert words in str(err.value) and "Fix:" in str(err.value), str(err.value)


@pytest.mark.parametrize("name, make", RIGHT, ids=[r[0] for r in RIGHT])
def test_right_lora_config_is_accepted_and_counts_as_the_notebook_expects(name, make, capsys):
    model = small_llama()
    check_lora_config(make, model)
    assert capsys.readouterr().out.startswith("✓ LoraConfig: r and lora_alpha from the arguments")
    # what notebook 12's next cell asserts: peft's trainable count equals r x (in + out) over the seven projections
    by_hand = sum(4 * (m.in_features + m.out_features) for n, m in model.named_modules()
                  if isinstance(m, torch.nn.Linear) and n.rsplit(".", 1)[-1] in SEVEN)
    assert trainable_parameters(get_peft_model(model, make(4, 8)))[0] == by_hand


def test_every_rejected_option_would_break_the_count_or_the_scale():
    """The options the check now rejects are the ones that made notebook 12's later cells fail or mean another LoRA."""
    model = small_llama()
    by_hand = sum(4 * (m.in_features + m.out_features) for n, m in model.named_modules()
                  if isinstance(m, torch.nn.Linear) and n.rsplit(".", 1)[-1] in SEVEN)
    for extra in (dict(modules_to_save=["embed_tokens", "lm_head"]), dict(use_dora=True), dict(lora_bias=True),
                  dict(layers_to_transform=[0]), dict(inference_mode=True)):
        count = trainable_parameters(get_peft_model(small_llama(), lesson(4, 8, **extra)))[0]
        assert count != by_hand, extra


def test_modules_to_save_names_their_size_in_the_model():
    with pytest.raises(TodoCheckError, match=r"trains full copies of those modules \(1,024 parameters in this model\)"):
        check_lora_config(lambda r, a: lesson(r, a, modules_to_save=["embed_tokens", "lm_head"]), small_llama())


def test_check_cost():
    model = small_llama()
    start = time.perf_counter()
    check_lora_config(as_a_dict_of_arguments, model)
    assert time.perf_counter() - start < 2
