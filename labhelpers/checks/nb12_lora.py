"""TODO check of notebook 12 (LoRA): the student's ``make_lora_config(rank, alpha)`` and what is wrong with the
``peft.LoraConfig`` it returns (task type, r and lora_alpha from the arguments, the seven projections, dropout, bias),
and the options the TODO does not ask for that change the update's scale or what trains (modules_to_save, use_rslora,
use_dora, layers_to_transform, rank/alpha patterns, init_lora_weights, inference_mode, lora_bias, ...).

The LoRA plumbing the check builds on (projection names, the adapter findings) is :mod:`labhelpers.run.lora`.
"""

from __future__ import annotations

import math
from typing import Any, Callable

from labhelpers.checks.core import call_student, passed, require, student_code
from labhelpers.run.lora import ATTENTION_PROJECTIONS, FULL_COPY_MODULES, MLP_PROJECTIONS, linear_names, target_set
from labhelpers.model.memory import LORA_TARGETS


def _scale_text(alpha: float, r: int) -> str:
    """How a LoRA update is scaled, in words.

    >>> _scale_text(32, 16)
    'lora_alpha/r = 32/16 scales the update B @ A by 2'
    """
    return f"lora_alpha/r = {alpha:g}/{r} scales the update B @ A by {alpha / r:g}"


_COUNT = "the notebook's count of trainable parameters, r x (in + out) per adapted projection, would not match"
# Options a LoraConfig may carry that the TODO does not ask for and that change what trains: not the lesson's LoRA.
_OTHER_METHODS = ("loftq_config", "eva_config", "corda_config", "lora_ga_config", "velora_config", "monteclora_config",
                  "arrow_config", "kasa_config", "megatron_config", "layer_replication", "target_parameters",
                  "alora_invocation_tokens", "use_qalora", "use_bdlora")


def _unasked_option_problems(config: Any, rank: int, alpha: float, model: Any = None) -> list[str]:
    """The options the TODO does not ask for that change the scale of the update or what trains; each with why it
    matters here and how to set it (mostly: leave it out)."""
    problems = []
    saved = list(getattr(config, "modules_to_save", None) or [])
    if saved:
        size = ""
        if model is not None:
            weights = {id(p): p.numel() for name, module in model.named_modules() if name.rsplit(".", 1)[-1] in saved
                       for p in module.parameters()}  # a tied lm_head shares the embedding's weights
            n = sum(weights.values())
            size = f" ({n:,} parameters in this model)" if n else ""
        problems.append(f"modules_to_save={saved!r} trains full copies of those modules{size} next to the adapters: "
                        f"{_COUNT}, and the adapter file grows by their size. They are for new tokens, and this lesson "
                        "adds none: leave modules_to_save out")
    if getattr(config, "use_rslora", False):
        problems.append(f"use_rslora=True scales the update by lora_alpha/sqrt(r) = {config.lora_alpha:g}/sqrt({config.r}) "
                        f"= {config.lora_alpha / math.sqrt(config.r):g}, not by lora_alpha/r = "
                        f"{config.lora_alpha / config.r:g}: the lesson's LoRA learning rate was measured at alpha/r; "
                        "leave use_rslora out (False)")
    if getattr(config, "use_dora", False):
        problems.append(f"use_dora=True trains DoRA (a magnitude vector per projection on top of the LoRA pair): "
                        f"{_COUNT}, and each step costs more; this lesson trains plain LoRA: leave use_dora out (False)")
    if getattr(config, "layers_to_transform", None) is not None:
        problems.append(f"layers_to_transform={config.layers_to_transform!r} adapts only those layers; the lesson adapts "
                        f"the projections of every layer ({_COUNT}): leave layers_to_transform out")
    for name, what in (("rank_pattern", "rank"), ("alpha_pattern", "lora_alpha")):
        pattern = getattr(config, name, None)
        if pattern:
            problems.append(f"{name}={dict(pattern)!r} gives those modules another {what} than the arguments "
                            f"(r={rank}, lora_alpha={alpha:g}): their update has another size or scale; leave {name} "
                            "out")
    init = getattr(config, "init_lora_weights", True)
    if init not in (True, "gaussian"):
        problems.append(f"init_lora_weights={init!r}: " + (
            "B starts random, not at zero, so the adapted model is not the base model at step 0 (the notebook relies "
            "on it)" if init is False else "that initialisation changes the base weights or the start of the "
            "adapters, so the adapted model is not the base model at step 0")
            + "; leave init_lora_weights out (True: A random, B zero)")
    if getattr(config, "inference_mode", False):
        problems.append("inference_mode=True creates the adapters frozen: nothing would train (get_peft_model finds 0 "
                        "trainable parameters); leave inference_mode out (False)")
    if getattr(config, "lora_bias", False):
        problems.append(f"lora_bias=True adds a trainable bias to every lora_B: {_COUNT}, and the adapter changes the "
                        "output even where B @ A is zero; leave lora_bias out (False)")
    if getattr(config, "exclude_modules", None):
        problems.append(f"exclude_modules={config.exclude_modules!r} takes modules out of the targets; the lesson adapts "
                        f"all seven projections of every layer ({_COUNT}): leave exclude_modules out")
    if getattr(config, "trainable_token_indices", None):
        problems.append(f"trainable_token_indices={config.trainable_token_indices!r} also trains those rows of the "
                        f"embedding: {_COUNT}; the lesson adds no token: leave it out")
    for name in _OTHER_METHODS:
        value = getattr(config, name, None)
        if value not in (None, False, {}, [], ()):
            problems.append(f"{name}={value!r} switches on a LoRA variant or initialisation this lesson does not use "
                            f"({_COUNT}, and its learning rate and memory figures were measured without it): leave "
                            f"{name} out")
    return problems


def lora_config_problems(config: Any, rank: int, alpha: float, model: Any = None) -> list[str]:
    """Everything wrong with a ``peft.LoraConfig`` for this lesson (rank ``rank``, ``lora_alpha`` ``alpha``, all seven
    projections of a llama-style layer, a causal LM, plain LoRA: no option that rescales the update or trains more than
    the adapters); each item says what is wrong and the fix. Empty when right.

    >>> from peft import LoraConfig
    >>> lora_config_problems(LoraConfig(r=16, lora_alpha=32, target_modules=list(LORA_TARGETS),
    ...                                 task_type="CAUSAL_LM"), 16, 32)
    []
    >>> print(lora_config_problems(LoraConfig(r=16, lora_alpha=32, target_modules=["q_proj", "v_proj"]), 16, 32)[0])
    task_type is None: task_type must be CAUSAL_LM (task_type="CAUSAL_LM" or TaskType.CAUSAL_LM), so peft wraps the model as a causal LM whose forward takes labels and whose generate() works
    """
    from peft import LoraConfig

    if not isinstance(config, LoraConfig):
        return [f"the result is a {type(config).__name__}, not a peft.LoraConfig: return LoraConfig(r=..., "
                "lora_alpha=..., target_modules=[...], lora_dropout=..., task_type=\"CAUSAL_LM\")"]
    problems = []
    task = getattr(config.task_type, "value", config.task_type)
    if task != "CAUSAL_LM":
        problems.append(f"task_type is {task!r}: task_type must be CAUSAL_LM (task_type=\"CAUSAL_LM\" or "
                        "TaskType.CAUSAL_LM), so peft wraps the model as a causal LM whose forward takes labels and "
                        "whose generate() works")
    if config.r != rank:
        problems.append(f"r is {config.r!r}, the rank asked for is {rank}: pass r=rank (the function's argument), "
                        "not a number of your own")
    if config.lora_alpha != alpha:
        problems.append(f"lora_alpha is {config.lora_alpha!r}, asked for {alpha:g}: {_scale_text(config.lora_alpha, config.r)}, "
                        f"this lesson wants {_scale_text(alpha, rank).split(' scales')[0]} = {alpha / rank:g}; pass "
                        "lora_alpha=alpha (too small a scale learns nothing at a sensible LR, too large one diverges)")
    targets = target_set(config.target_modules)
    if targets is None:
        problems.append("target_modules is None: peft then falls back to its per-architecture default (for llama "
                        "only q_proj and v_proj); list the seven projections: " + ", ".join(LORA_TARGETS))
    elif isinstance(targets, str):
        if targets != "all-linear":
            problems.append(f"target_modules is the string {targets!r}, which peft reads as a regular expression over "
                            "full module names; pass a list of the seven projection names: " + ", ".join(LORA_TARGETS))
    else:
        full_copies = sorted(targets & set(FULL_COPY_MODULES))
        if full_copies:
            problems.append(f"target_modules lists {', '.join(full_copies)}: a rank-r update of a 49k-row embedding or "
                            "output layer cannot add a token; train those as full copies with "
                            "modules_to_save=[...] (only needed for new tokens) and keep target_modules to the projections")
        missing_attn = [m for m in ATTENTION_PROJECTIONS if m not in targets]
        missing_mlp = [m for m in MLP_PROJECTIONS if m not in targets]
        if missing_mlp:
            problems.append(f"target_modules misses the MLP projections gate_proj/up_proj/down_proj: {', '.join(missing_mlp)} "
                            "missing. The MLP holds two thirds of each layer's weights and most of what a format "
                            "change needs; add them")
        if missing_attn:
            problems.append(f"target_modules misses the attention projections q_proj/k_proj/v_proj/o_proj: "
                            f"{', '.join(missing_attn)} missing; add them (every linear layer of the block is the "
                            "QLoRA paper's finding: adapting all of them matches a full fine-tune best)")
        if model is not None:
            names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
            unknown = sorted(t for t in targets if t not in names)
            if unknown:
                problems.append(f"target_modules names {', '.join(unknown)}, which no module of this model is called "
                                f"(its linear layers: {', '.join(linear_names(model))}); check the spelling")
    problems += _unasked_option_problems(config, rank, alpha, model)
    dropout = float(config.lora_dropout or 0.0)
    if not 0.0 <= dropout <= 0.2:
        problems.append(f"lora_dropout is {dropout:g}: keep it between 0 and 0.1 (0.05 is usual); it drops the input "
                        "of the adapter, and more than ~0.2 slows learning for nothing on a short run")
    if getattr(config, "bias", "none") != "none":
        problems.append(f"bias is {config.bias!r}: keep bias=\"none\" (the llama projections have no bias; training "
                        "biases changes the base model even with the adapter disabled)")
    return problems


_LORA_ERROR_FIXES = (
    ("Invalid task type", 'task_type="CAUSAL_LM" (capitals) or TaskType.CAUSAL_LM from peft'),
    ("unexpected keyword argument", "check the argument's name against peft.LoraConfig: r, lora_alpha, target_modules, "
                                    "lora_dropout, bias, task_type"),
)


@student_code("make_lora_config")
def check_lora_config(make_lora_config: Callable[[int, float], Any] | Any, model: Any = None,
                      cases: tuple[tuple[int, float], ...] = ((16, 32), (8, 8))) -> None:
    """Call the student's ``make_lora_config(rank, alpha)`` for each ``(rank, alpha)`` of ``cases`` and say what is
    wrong with the ``LoraConfig`` it returns (a ready ``LoraConfig`` is accepted too, checked against the first case).
    ``model``: also check that every target module exists in it.

    >>> from peft import LoraConfig
    >>> check_lora_config(lambda r, a: LoraConfig(r=r, lora_alpha=a, target_modules=list(LORA_TARGETS),
    ...                                           lora_dropout=0.05, task_type="CAUSAL_LM"))
    ✓ LoraConfig: r and lora_alpha from the arguments (lora_alpha/r = 32/16 scales the update B @ A by 2), all 7 projections (q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj), dropout 0.05, CAUSAL_LM
    >>> check_lora_config(lambda r, a: LoraConfig(r=r, lora_alpha=a, target_modules=["q_proj", "v_proj"],
    ...                                           task_type="CAUSAL_LM"))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    labhelpers.checks.TodoCheckError: make_lora_config(16, 32) returned a LoraConfig that does not fit this lesson:
      - target_modules misses the MLP projections gate_proj/up_proj/down_proj: ...
    """
    def make(rank, alpha):
        return call_student(make_lora_config, rank, alpha, name="make_lora_config", hints=_LORA_ERROR_FIXES)

    for rank, alpha in cases:
        config = make(rank, alpha) if callable(make_lora_config) else make_lora_config
        problems = lora_config_problems(config, rank, alpha, model)
        call = f"make_lora_config({rank}, {alpha:g})" if callable(make_lora_config) else "your LoraConfig"
        require(not problems, f"{call} returned a LoraConfig that does not fit this lesson:\n  - " + "\n  - ".join(problems),
                "change those arguments and re-run the cell")
        if not callable(make_lora_config):
            break
    first = make(*cases[0]) if callable(make_lora_config) else make_lora_config
    targets = target_set(first.target_modules)
    which = "all linear layers ('all-linear')" if isinstance(targets, str) else \
        f"all {len(targets)} projections ({', '.join(t for t in LORA_TARGETS if t in targets)})"
    passed(f"LoraConfig: r and lora_alpha from the arguments ({_scale_text(first.lora_alpha, first.r)}), {which}, "
           f"dropout {float(first.lora_dropout or 0):g}, CAUSAL_LM")
