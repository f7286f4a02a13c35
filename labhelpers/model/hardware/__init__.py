"""Hardware recipes: which dtype, attention, precision flags, batching and run sizes to use on this machine, and why.

A ``Recipe`` is plain values (frozen dataclasses) plus a reason for every choice. Build the model and the
``SFTConfig`` from it; the trainer is not wrapped::

    recipe = detect_recipe()                      # profile: argument, else $LAB_PROFILE, else ci (CPU) / colab (GPU)
    print(recipe.explain())
    model = AutoModelForCausalLM.from_pretrained(path, **recipe.model_kwargs()).to(recipe.device)
    args = recipe.sft_config("out", max_steps=8)  # the one way to build an SFTConfig; unknown keys raise

Device rules (numbers measured on the lab's 2-core CPU by ``benchmarks/``; README, "Performance"):

* ``cpu``: fp32 weights, no AMP, ``use_cpu=True``, sdpa, no packing. bf16 on this CPU runs only with
  ``use_cpu=True`` and is ~12x slower; ``fp16=True`` is silently ignored on CPU; TRL's SFTConfig defaults to bf16
  and refuses a CPU unless ``use_cpu=True``.
* ``t4`` (NVIDIA T4, compute capability 7.5) and ``cuda-old`` (any other CUDA card with cc < 8, e.g. V100, P100):
  fp32 weights + ``fp16=True`` AMP (fp16 *weights* with fp16 AMP fail: "Attempting to unscale FP16 gradients"),
  no bf16, sdpa (flash-attention needs cc >= 8), length-grouped batches instead of packing.
* ``ampere`` (cc >= 8: A100, H100, L4, RTX 30xx/40xx): fp32 master weights + ``bf16=True`` autocast;
  ``flash_attention_2`` when ``flash_attn`` or ``kernels`` can serve it (then padding-free packing), else sdpa.
"""

from labhelpers.model.hardware.detect import (EMULATION_NOTE, FORCE_HARDWARE_ENV, FORCIBLE_HARDWARE, NO_CUDA_NEEDED,
                                              SMOKE_LESSON, SMOKE_SIZES, detect_recipe, emulated_ampere_recipe)
from labhelpers.model.hardware.recipe import REFERENCE_RUN_SETTINGS, Recipe, recipe_for
from labhelpers.model.hardware.sizes import (BIG_GPU_GIB, HARDWARE, PROFILES, SCHEDULERS, LessonSizes, RunSizes,
                                             lesson_sizes, profile_sizes)

__all__ = ["BIG_GPU_GIB", "EMULATION_NOTE", "FORCE_HARDWARE_ENV", "FORCIBLE_HARDWARE", "HARDWARE", "NO_CUDA_NEEDED",
           "PROFILES", "REFERENCE_RUN_SETTINGS", "SCHEDULERS", "SMOKE_LESSON", "SMOKE_SIZES", "LessonSizes", "Recipe",
           "RunSizes", "detect_recipe", "emulated_ampere_recipe", "lesson_sizes", "profile_sizes", "recipe_for"]
