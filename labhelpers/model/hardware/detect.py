"""This machine's recipe: the profile (argument, ``$LAB_PROFILE``, else the device's default), the detected card, or
the class forced by ``$LAB_FORCE_HARDWARE`` (``ampere-cpu`` emulates the Ampere recipe on the CPU at smoke sizes).

>>> detect_recipe("ci").profile
'ci'
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from typing import Any

import torch

from labhelpers.model.hardware.recipe import Recipe, recipe_for
from labhelpers.model.hardware.sizes import PROFILES

_GIB = 1024**3


def _resolve_profile(profile: str | None, on_gpu: bool) -> tuple[str, str]:
    """(profile, source): the argument, else $LAB_PROFILE, else 'ci' on CPU / 'colab' on GPU."""
    if profile is not None:
        value, source, where = profile, "argument", "from the profile argument"
    elif os.environ.get("LAB_PROFILE", "").strip():
        value, source, where = os.environ["LAB_PROFILE"], "env", "from the LAB_PROFILE environment variable"
    else:
        return ("colab" if on_gpu else "ci"), "default"
    norm = str(value).strip().lower()
    if norm not in PROFILES:
        hint = difflib.get_close_matches(norm, PROFILES, n=1)
        did = f" Did you mean {hint[0]!r}?" if hint else ""
        fix = "pass one of them" if source == "argument" else "set LAB_PROFILE to one of them or unset it"
        raise ValueError(f"unknown profile {value!r} ({where}): choose one of "
                         f"{', '.join(map(repr, PROFILES))}; {fix}.{did}")
    return norm, source


FORCE_HARDWARE_ENV = "LAB_FORCE_HARDWARE"
FORCIBLE_HARDWARE = ("t4", "ampere", "cpu", "ampere-cpu")
NO_CUDA_NEEDED = ("cpu", "ampere-cpu")


def _forced_hardware(on_gpu: bool) -> str | None:
    """``$LAB_FORCE_HARDWARE`` checked: None when unset, else one of FORCIBLE_HARDWARE (t4/ampere need CUDA)."""
    value = os.environ.get(FORCE_HARDWARE_ENV, "").strip().lower()
    if not value:
        return None
    if value not in FORCIBLE_HARDWARE:
        raise ValueError(f"{FORCE_HARDWARE_ENV}={value!r}: choose one of {', '.join(map(repr, FORCIBLE_HARDWARE))}, "
                         "or unset it to detect the hardware")
    if value not in NO_CUDA_NEEDED and not on_gpu:
        raise ValueError(f"{FORCE_HARDWARE_ENV}={value!r} needs a CUDA GPU, and torch.cuda.is_available() is False "
                         f"here: unset {FORCE_HARDWARE_ENV} (or set it to 'cpu', or 'ampere-cpu' to emulate the "
                         "Ampere recipe on this CPU) on this machine")
    return value


def detect_recipe(profile: str | None = None) -> Recipe:
    """The recipe for this machine: profile from the argument, else $LAB_PROFILE, else 'ci' (CPU) / 'colab' (GPU).

    ``$LAB_FORCE_HARDWARE`` (``t4``, ``ampere``, ``cpu`` or ``ampere-cpu``) replaces the detected hardware class, so
    one GPU can rehearse another card's recipe (``tools/gpu_rehearsal/`` runs the series with ``t4``, the fp16-AMP
    recipe, and ``ampere``, the bf16 one, on the same card). ``t4`` and ``ampere`` need CUDA (ValueError without
    it); ``cpu`` works everywhere, and ``ampere-cpu`` runs the Ampere recipe on the CPU under flash-attention's
    contract at smoke sizes (:func:`emulated_ampere_recipe`). The hardware reason then says it was forced.

    >>> detect_recipe("nope")
    Traceback (most recent call last):
    ...
    ValueError: unknown profile 'nope' (from the profile argument): choose one of 'ci', 'colab', 'full'; pass one of them.
    """
    on_gpu = bool(torch.cuda.is_available())
    forced = _forced_hardware(on_gpu)
    name, source = _resolve_profile(profile, on_gpu)
    if forced is not None:
        return _forced_recipe(forced, name, source)
    if not on_gpu:
        return recipe_for("cpu", name, profile_source=source)
    major, minor = torch.cuda.get_device_capability(0)
    device_name = torch.cuda.get_device_name(0)
    mem_gib = torch.cuda.get_device_properties(0).total_memory / _GIB
    if major >= 8:
        hardware = "ampere"
    elif "T4" in device_name:
        hardware = "t4"
    else:
        hardware = "cuda-old"
    flash, flash_reason = _probe_flash() if hardware == "ampere" else (None, None)
    return recipe_for(hardware, name, device_name, (major, minor), mem_gib, flash, source, flash_reason)


def _probe_flash() -> tuple[str | None, str]:
    from labhelpers.model.attention import probe_flash_attention

    return probe_flash_attention()


def _forced_recipe(hardware: str, profile: str, profile_source: str) -> Recipe:
    """The recipe of ``hardware`` (from ``$LAB_FORCE_HARDWARE``) on this machine, its hardware reason saying so."""
    if hardware == "cpu":
        recipe, card = recipe_for("cpu", profile, profile_source=profile_source), "this machine"
    elif hardware == "ampere-cpu":
        return emulated_ampere_recipe(profile, profile_source)
    else:
        major, minor = torch.cuda.get_device_capability(0)
        card = f"{torch.cuda.get_device_name(0)} (compute capability {major}.{minor})"
        mem_gib = torch.cuda.get_device_properties(0).total_memory / _GIB
        if hardware == "t4":  # the T4's recipe and sizes; this card's capability and memory would only mislead
            recipe = recipe_for("t4", profile, torch.cuda.get_device_name(0), profile_source=profile_source)
        else:
            flash, flash_reason = _probe_flash()
            recipe = recipe_for("ampere", profile, torch.cuda.get_device_name(0), (major, minor), mem_gib, flash,
                                profile_source, flash_reason)
    note = f"forced by {FORCE_HARDWARE_ENV}={hardware} on {card}: "
    reasons = tuple((k, note + why if k == "hardware" else why) for k, why in recipe.reasons)
    return dataclasses.replace(recipe, reasons=reasons)


# Under LAB_FORCE_HARDWARE=ampere-cpu: bf16 autocast on this CPU is ~12x slower than fp32, so every size shrinks to a
# smoke size: enough to run each code path (training steps, evaluation, checkpoints, generation, the protocol), not
# to learn anything. Notebooks run unchanged; their numbers mean nothing at these sizes, and the load line says so.
SMOKE_SIZES: dict[str, Any] = dict(n_train_examples=16, n_eval_examples=4, max_steps=3, max_length=128,
                                   per_device_train_batch_size=4, per_device_eval_batch_size=4,
                                   gradient_accumulation_steps=1, eval_steps=3, save_steps=3, logging_steps=1)
SMOKE_LESSON: dict[str, int] = dict(n_heldout_prompts=4, max_new_tokens=16, n_retention_prompts=2,
                                    generation_batch_size=4, overfit_steps=2, compare_steps=2, compare_batch_size=2,
                                    compare_max_length=64, protocol_overfit_steps=2, protocol_short_steps=2,
                                    loop_micro_batches=2, loop_micro_batch_size=2, loop_grad_accum=1,
                                    samples_every=1)
EMULATION_NOTE = ("LAB_FORCE_HARDWARE=ampere-cpu: the Ampere recipe (fp32 master weights, bf16 autocast, "
                  "flash_attention_2, padding-free packing) on this CPU, flash-attention's kernel replaced by a "
                  "stand-in that enforces its contract (fp16/bf16 inputs only, packed rows isolated); smoke sizes, "
                  "so the numbers mean nothing")


def emulated_ampere_recipe(profile: str = "ci", profile_source: str = "argument") -> Recipe:
    """The Ampere recipe on this CPU under flash-attention's contract, at smoke sizes (``LAB_FORCE_HARDWARE=ampere-cpu``).

    Installs the kernel stand-in (``labhelpers.model.attention``), probes flash-attention through transformers' own loader
    as on a GPU, and keeps the model on the CPU (``use_cpu=True``) with bf16 autocast.

    >>> r = emulated_ampere_recipe()
    >>> r.hardware, r.bf16, r.use_cpu, r.attn_implementation, r.packing, r.sizes.max_steps, str(r.device)
    ('ampere', True, True, 'flash_attention_2', True, 3, 'cpu')
    """
    from labhelpers.model.attention import install_flash_standin, probe_flash_attention

    install_flash_standin()
    flash, flash_reason = probe_flash_attention()
    recipe = recipe_for("ampere", profile, "cpu (emulating a cc 8.0 GPU)", (8, 0), None, flash, profile_source,
                        flash_reason)
    recipe = recipe.with_sizes(**SMOKE_SIZES)
    lesson = dataclasses.replace(recipe.lesson, **SMOKE_LESSON)
    reasons = tuple((k, f"smoke size under ampere-cpu (bf16 on this CPU is ~12x slower); {why}"
                     if k in SMOKE_SIZES or k in SMOKE_LESSON else
                     f"forced by {FORCE_HARDWARE_ENV}=ampere-cpu: {EMULATION_NOTE}; {why}" if k == "hardware" else
                     "train on this CPU (the emulation keeps the model here)" if k == "use_cpu" else why)
                    for k, why in recipe.reasons)
    return dataclasses.replace(recipe, use_cpu=True, lesson=lesson, reasons=reasons)
