"""Device guard: notebooks and helpers feed the model tensors on ``model.device`` (students train on CUDA).

On this CPU-only machine every tensor is on the CPU, so a missing ``.to(model.device)`` cannot fail here, while on a
GPU it crashes (or, for generation, silently runs on the CPU). Two guards:

* helpers run against the real SmolLM2 architecture on a second device, ``meta``, with a forward pre-hook and a
  stand-in ``generate`` that raise :class:`DeviceMismatch` for any tensor not on ``model.device``. Meta tensors hold
  no data, so a helper may still stop later (when it reads a value); the test asserts that the model was reached and
  that the error, if any, is never a device mismatch;
* every solution cell that calls a model builds its tensors on the model's device (an AST check).
"""

from __future__ import annotations

import ast
from pathlib import Path

import nbformat
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
MODEL_CALLS = ("model(", ".generate(", "compute_loss(")
TENSOR_FACTORIES = {"tensor", "zeros", "ones", "full", "arange", "randn", "rand", "empty"}


class DeviceMismatch(RuntimeError):
    """A tensor reached the model from another device."""


def _check_devices(model, values) -> None:
    for name, value in values:
        if isinstance(value, torch.Tensor) and value.device != model.device:
            raise DeviceMismatch(f"{name} is on {value.device}, the model on {model.device}")


@pytest.fixture(scope="module")
def meta_model():
    """SmolLM2's architecture on the meta device, counting the calls that reached it."""
    from transformers import AutoConfig, AutoModelForCausalLM

    from labhelpers.model.loading import load_tokenizer, resolve_model

    config = AutoConfig.from_pretrained(resolve_model("HuggingFaceTB/SmolLM2-135M-Instruct")[0])
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    tokenizer = load_tokenizer()
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.reached = 0

    def pre_hook(module, args, kwargs):
        model.reached += 1
        _check_devices(model, list(kwargs.items()) + list(enumerate(args)))

    def generate(*args, max_new_tokens=1, **kwargs):  # meta cannot decode: check the inputs, return CPU ids
        model.reached += 1
        _check_devices(model, list(kwargs.items()) + list(enumerate(args)))
        ids = kwargs.get("input_ids", args[0] if args else None)
        return torch.cat([torch.zeros(ids.shape, dtype=torch.long),
                          torch.full((ids.shape[0], max_new_tokens), tokenizer.eos_token_id)], dim=1)

    model.register_forward_pre_hook(pre_hook, with_kwargs=True)
    model.generate = generate
    return model, tokenizer


def _run_guarded(model, call) -> None:
    before = model.reached
    try:
        call()
    except DeviceMismatch:
        raise
    except RuntimeError as error:  # a later read of a meta value is fine; a device error is not
        assert "device" not in str(error) or "meta tensor" in str(error), error
    assert model.reached > before, "the helper never reached the model: the guard proved nothing"


def _cpu_batch(tokenizer) -> dict[str, torch.Tensor]:
    messages = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello there."}]
    ids = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True)["input_ids"]
    return {"input_ids": torch.tensor([ids]), "labels": torch.tensor([ids]), "attention_mask": torch.ones(1, len(ids))}


def test_generation_helper_moves_prompts_to_the_model(meta_model):
    from labhelpers.run.generation import generate_replies

    model, tokenizer = meta_model
    _run_guarded(model, lambda: generate_replies(model, tokenizer, ["Hi", "What is 2 + 2?"], max_new_tokens=2))


def test_preflight_numerical_checks_move_batches_to_the_model(meta_model):
    import importlib

    preflight = importlib.import_module("labhelpers.sanity.preflight")  # the package exports a function of that name
    numerics = importlib.import_module("labhelpers.sanity.numerics")  # the numerical checks, split out of preflight

    model, tokenizer = meta_model
    batch = _cpu_batch(tokenizer)
    ids = batch["input_ids"][0].tolist()
    _run_guarded(model, lambda: preflight.loss_at_init_findings(model, tokenizer, batch))
    _run_guarded(model, lambda: numerics._reply_loss(model, ids[:5], ids[5:]))


def test_the_guard_catches_a_cpu_tensor(meta_model):
    model, tokenizer = meta_model
    with pytest.raises(DeviceMismatch, match="on cpu"):
        _run_guarded(model, lambda: model(**{k: v for k, v in _cpu_batch(tokenizer).items() if k != "labels"}))


# ------------------------------------------------------------------------------------------- notebook cells
def _device_problems(source: str) -> list[str]:
    """Tensors built without the model's device in a cell that calls a model."""
    if not any(call in source for call in MODEL_CALLS):
        return []
    from tools.nbtools import parse_cell

    tree = parse_cell(source)
    problems = []
    for node in ast.walk(tree) if tree else []:
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        keywords = {k.arg for k in node.keywords}
        is_factory = (isinstance(func, ast.Attribute) and getattr(func.value, "id", "") == "torch"
                      and name in TENSOR_FACTORIES)
        if is_factory and "device" not in keywords:
            problems.append(f"torch.{name}(...) without device= (line {node.lineno})")
        if name == "data_collator" or "return_tensors" in keywords:
            problems.append(f"{ast.unparse(node)[:60]} (line {node.lineno})")
    moved = {p for p in problems if "without device" not in p}
    # a collated / tokenized batch is fine when the same cell moves it: .to(model.device) or .to(...device)
    if moved and ".to(" in source and "device" in source:
        problems = [p for p in problems if p not in moved]
    return problems


@pytest.mark.parametrize("path", sorted((ROOT / "solutions").glob("[0-9][0-9]_*.ipynb")), ids=lambda p: p.stem)
def test_solution_cells_build_tensors_on_the_model_device(path):
    cells = [c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
    problems = [f"cell {i}: {p}" for i, source in enumerate(cells) for p in _device_problems(source)]
    assert problems == [], "move them to model.device:\n" + "\n".join(problems)


def test_the_cell_check_flags_a_cpu_batch():
    assert _device_problems("ids = torch.tensor([[1, 2]])\nmodel(ids)") == ["torch.tensor(...) without device= (line 1)"]
    assert _device_problems("ids = torch.tensor([[1, 2]], device=model.device)\nmodel(ids)") == []
