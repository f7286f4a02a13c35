"""The recipe of one hardware class and profile: load kwargs, precision flags, batching, sizes and a reason for
each choice, without looking at this machine (``detect`` does that).

>>> recipe_for("cpu", "ci").model_kwargs()
{'dtype': torch.float32, 'attn_implementation': 'sdpa'}
"""

from __future__ import annotations

import dataclasses
import difflib
import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from labhelpers.base.batching import BatchPlan, effective_batch
from labhelpers.model.hardware.sizes import (HARDWARE, PROFILES, LessonSizes, RunSizes, _check_choice, lesson_sizes,
                                             profile_sizes)


# ----------------------------------------------------------------------------------------------- recipe
_CHOICE_FIELDS = ("hardware", "profile", "torch_dtype", "attn_implementation", "fp16", "bf16", "use_cpu", "packing",
                  "train_sampling_strategy")
# What notebook 06's run adds to the recipe, named once: its check, the reference run (``ensure_tuned_model``)
# and every notebook that needs "the tuned model" read it here, so the notebooks can run in any order.
REFERENCE_RUN_SETTINGS: dict[str, Any] = {
    "assistant_only_loss": True,  # train on the replies (and their <|im_end|>) only: notebook 04
    "eval_on_start": True,  # one evaluation before the first step: the eval curve starts at the base model's loss
    "load_best_model_at_end": True,  # keep the best evaluated checkpoint, not the last: notebook 07
    "metric_for_best_model": "eval_loss",
    "greater_is_better": False,
    "save_total_limit": 2,  # the best and the newest checkpoint
}


def _check_config_keys(overrides: dict[str, Any]) -> None:
    """Raise ValueError naming an unknown SFTConfig key, its likely replacement and the valid keys' source.

    >>> _check_config_keys({"max_seq_length": 512})
    Traceback (most recent call last):
    ...
    ValueError: SFTConfig has no field 'max_seq_length': use max_length=... (TRL 1.x renamed it)
    """
    from trl import SFTConfig

    from labhelpers.base.drift import REMOVED_ARGUMENTS

    valid = {f.name for f in dataclasses.fields(SFTConfig)}
    for key in overrides:
        if key in valid:
            continue
        if key in REMOVED_ARGUMENTS:
            raise ValueError(f"SFTConfig has no field {key!r}: {REMOVED_ARGUMENTS[key]}")
        hint = difflib.get_close_matches(key, sorted(valid), n=1)
        did = f"did you mean {hint[0]!r}?" if hint else "see trl.SFTConfig for the valid fields."
        raise ValueError(f"SFTConfig has no field {key!r}: {did}")


@dataclass(frozen=True)
class Recipe:
    """Everything hardware-dependent for one run: load kwargs, precision flags, run sizes, and a reason for each."""

    hardware: str = field(metadata={"help": "'cpu', 't4' (T4, cc 7.5), 'cuda-old' (other cc < 8) or 'ampere' (cc >= 8)"})
    device_name: str = field(metadata={"help": "what torch reports, e.g. 'Tesla T4', or 'cpu'"})
    profile: str = field(metadata={"help": "one of PROFILES: 'ci' (tiny, CPU/CI), 'colab' (seed lab), 'full' (all rows)"})
    torch_dtype: torch.dtype = field(metadata={"help": "dtype the weights are loaded in (fp32 master weights everywhere)"})
    attn_implementation: str = field(metadata={"help": "'sdpa' or 'flash_attention_2'"})
    fp16: bool = field(metadata={"help": "fp16 autocast + loss scaling (CUDA only; needs fp32 weights)"})
    bf16: bool = field(metadata={"help": "bf16 autocast (cc >= 8 on CUDA)"})
    use_cpu: bool = field(metadata={"help": "force the CPU even if an accelerator is visible"})
    packing: bool = field(metadata={"help": "TRL's padding-free packing (bfd): only with a variable-length attention kernel"})
    train_sampling_strategy: str = field(metadata={"help": "'random' or 'group_by_length' (batches of similar length)"})
    sizes: RunSizes = field(metadata={"help": "how much data, how long, batch layout"})
    lesson: LessonSizes = field(metadata={"help": "demo, generation and mini-run sizes of the notebooks"})
    reasons: tuple[tuple[str, str], ...] = field(metadata={"help": "(field, one-sentence why) for every choice"})

    @property
    def device(self) -> torch.device:
        """Where the model goes at load: ``cpu`` or ``cuda``; every tensor that meets the model follows it.

        >>> recipe_for("cpu", "ci").device
        device(type='cpu')
        """
        return torch.device("cpu" if self.use_cpu else "cuda")

    @property
    def emulated(self) -> bool:
        """True under ``LAB_FORCE_HARDWARE=ampere-cpu``: the Ampere recipe kept on the CPU (see :func:`emulated_ampere_recipe`).

        >>> recipe_for("cpu", "ci").emulated
        False
        """
        return self.hardware == "ampere" and self.use_cpu

    def autocast(self) -> Any:
        """The mixed-precision context of this recipe (also for generation with flash-attention), or a no-op.

        >>> with recipe_for("cpu", "ci").autocast(): pass
        """
        import contextlib

        if not (self.fp16 or self.bf16):
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.float16 if self.fp16 else torch.bfloat16)

    def model_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``AutoModelForCausalLM.from_pretrained``.

        >>> recipe_for("cpu", "ci").model_kwargs()
        {'dtype': torch.float32, 'attn_implementation': 'sdpa'}
        """
        return {"dtype": self.torch_dtype, "attn_implementation": self.attn_implementation}

    def sft_config_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``trl.SFTConfig`` (precision, batching, run sizes, logging); see :meth:`sft_config`.

        >>> kw = recipe_for("cpu", "ci").sft_config_kwargs()
        >>> kw["use_cpu"], kw["bf16"], kw["warmup_steps"], kw["max_steps"], kw["logging_nan_inf_filter"], kw["packing"]
        (True, False, 0.1, 30, False, False)
        """
        s = self.sizes
        return {
            "fp16": self.fp16,
            "bf16": self.bf16,
            "use_cpu": self.use_cpu,
            "packing": self.packing,
            "train_sampling_strategy": self.train_sampling_strategy,
            "max_length": s.max_length,
            "per_device_train_batch_size": s.per_device_train_batch_size,
            "per_device_eval_batch_size": s.per_device_eval_batch_size,
            "gradient_accumulation_steps": s.gradient_accumulation_steps,
            "learning_rate": s.learning_rate,
            "warmup_steps": s.warmup_ratio,  # TRL 1.x: a float < 1 is a ratio of the total steps
            "lr_scheduler_type": s.lr_scheduler_type,
            "num_train_epochs": s.num_train_epochs,
            "max_steps": s.max_steps,
            "eval_strategy": "steps",
            "eval_steps": s.eval_steps,
            "logging_steps": s.logging_steps,
            "save_strategy": "steps",
            "save_steps": s.save_steps,
            # transformers 5 renamed gradient_checkpointing (deprecated, warns) to activation_checkpointing
            "activation_checkpointing": s.gradient_checkpointing,
            "logging_nan_inf_filter": False,  # Trainer's default True hides a NaN loss behind a running average
            "seed": 42,
            "report_to": "none",
        }

    def sft_config(self, output_dir: str | Path, **overrides: Any) -> Any:
        """The one way to build an ``SFTConfig`` from the recipe; ``overrides`` replace fields (unknown keys raise).

        >>> recipe_for("cpu", "ci").sft_config("/tmp/out", max_steps=3).max_steps
        3
        >>> recipe_for("cpu", "ci").sft_config("/tmp/out", evaluation_strategy="no")
        Traceback (most recent call last):
        ...
        ValueError: SFTConfig has no field 'evaluation_strategy': use eval_strategy="steps" or "epoch"
        """
        from trl import SFTConfig

        _check_config_keys(overrides)
        return SFTConfig(output_dir=str(output_dir), **{**self.sft_config_kwargs(), **overrides})

    def reference_config(self, output_dir: str | Path, **overrides: Any) -> Any:
        """The ``SFTConfig`` of notebook 06's run: the recipe plus :data:`REFERENCE_RUN_SETTINGS`.

        >>> recipe_for("cpu", "ci").reference_config("/tmp/out").assistant_only_loss
        True
        """
        return self.sft_config(output_dir, **{**REFERENCE_RUN_SETTINGS, **overrides})

    def with_sizes(self, **overrides: Any) -> Recipe:
        """A copy with some RunSizes fields replaced; unknown keys and bad values raise ValueError.

        >>> r = recipe_for("cpu", "ci").with_sizes(max_steps=5, n_train_examples=16)
        >>> r.sizes.max_steps, dict(r.reasons)["max_steps"]
        (5, 'set by with_sizes(max_steps=5)')
        >>> recipe_for("cpu", "ci").with_sizes(lerning_rate=1e-4)
        Traceback (most recent call last):
        ...
        ValueError: unknown size 'lerning_rate'; did you mean 'learning_rate'? Valid keys: n_train_examples, n_eval_examples, num_train_epochs, max_steps, max_length, per_device_train_batch_size, per_device_eval_batch_size, gradient_accumulation_steps, learning_rate, warmup_ratio, lr_scheduler_type, eval_steps, logging_steps, save_steps, gradient_checkpointing
        """
        valid = [f.name for f in dataclasses.fields(RunSizes)]
        for key in overrides:
            if key not in valid:
                hint = difflib.get_close_matches(key, valid, n=1)
                did = f"; did you mean {hint[0]!r}?" if hint else ";"
                raise ValueError(f"unknown size {key!r}{did} Valid keys: {', '.join(valid)}")
        sizes = dataclasses.replace(self.sizes, **overrides)  # RunSizes.__post_init__ validates each value
        reasons = tuple((k, f"set by with_sizes({k}={overrides[k]!r})") if k in overrides else (k, why)
                        for k, why in self.reasons)
        return dataclasses.replace(self, sizes=sizes, reasons=reasons)

    def plan(self, n_examples: int | None = None, n_gpus: int = 1) -> BatchPlan:
        """The BatchPlan of this recipe; ``n_examples`` defaults to ``sizes.n_train_examples``.

        Under packing, pass the number of packed rows (``len(trainer.train_dataset)``): that is what the
        trainer batches, so that is what the step count follows.

        >>> recipe_for("t4", "colab", total_memory_gib=15.0).plan().total_steps
        96
        """
        s = self.sizes
        n = s.n_train_examples if n_examples is None else n_examples
        return effective_batch(s.per_device_train_batch_size, s.gradient_accumulation_steps, n_gpus, n,
                               s.num_train_epochs, s.warmup_ratio, s.max_length, s.max_steps)

    def explain(self) -> str:
        """A short human explanation: device, each choice with its reason, effective batch and tokens per step.

        >>> print(recipe_for("cpu", "ci").explain().splitlines()[0])
        Recipe 'ci' on cpu (cpu)
        """
        why = dict(self.reasons)
        lines = [f"Recipe {self.profile!r} on {self.hardware} ({self.device_name})"]
        for name in _CHOICE_FIELDS:
            lines.append(f"  {name} = {getattr(self, name)!r}: {why.get(name, '')}")
        for title, values in (("sizes", self.sizes), ("lesson sizes", self.lesson)):
            lines.append(f"  {title}:")
            for f in dataclasses.fields(values):
                lines.append(f"    {f.name} = {getattr(values, f.name)!r}: {why.get(f.name, '')}")
        p = self.plan()
        s = self.sizes
        lines.append(f"  effective batch = {s.per_device_train_batch_size} per device x {s.gradient_accumulation_steps} "
                     f"accum x 1 device = {p.effective_batch_size} sequences per optimizer step")
        lines.append(f"  tokens per optimizer step <= {p.effective_batch_size} x {s.max_length} = {p.tokens_per_step:,} "
                     "(padding and short rows make it less)")
        packed = " before packing (packing merges rows, so the trainer counts fewer)" if self.packing else ""
        if p.total_steps is not None:
            lines.append(f"  optimizer steps = {p.total_steps}{packed if s.max_steps < 0 else ''}, "
                         f"warmup steps = {p.warmup_steps}")
        else:
            lines.append(f"  optimizer steps: {s.num_train_epochs:g} epochs x ceil(rows / {p.effective_batch_size})"
                         f"{packed} (row count known once the dataset is loaded)")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.explain()

    def _repr_html_(self) -> str:
        return f"<pre>{html.escape(self.explain())}</pre>"


# Measured on the lab's 2-core CPU (benchmarks/packing.py), trained tokens/s vs random padded batches, 256 / 512:
# length-grouped 1.29x / 1.55x, TRL padding-free packing 1.16x / 1.10x (sdpa attends over the whole flattened row).
_NO_VARLEN_PACKING = ("sdpa has no variable-length kernel: TRL's padding-free packing flattens a batch into one row "
                      "and attention then costs the square of the batch's tokens; measured on CPU, packed 21.5 s/step "
                      "for ~880 tokens vs unpacked 12.1 s/step for ~505: the same cost per token, no gain")
_GROUPED = ("rows of similar length share a batch, so almost no padding is computed (1.29x / 1.55x tokens/s at "
            "256 / 512 measured) while each row stays short, where attention is cheap")


def _batching_choice(hardware: str, attn: str) -> tuple[bool, str, str, str]:
    """(packing, sampling, why packing, why sampling) for a hardware class and attention kernel."""
    if attn == "flash_attention_2":
        return (True, "random", "flash-attention's variable-length kernel attends within each packed example only: "
                "padding-free packing removes all padding without cross-contamination",
                "packing already removes the padding; random order keeps batches unbiased")
    if hardware == "cpu":
        return (False, "random", _NO_VARLEN_PACKING,
                "the CPU runs are a few dozen rows: length grouping would order the whole run longest-first "
                "(a curriculum nobody asked for) to save little padding")
    return False, "group_by_length", _NO_VARLEN_PACKING, _GROUPED


def recipe_for(hardware: str, profile: str, device_name: str | None = None, capability: tuple[int, int] | None = None,
               total_memory_gib: float | None = None, flash_backend: str | None = None,
               profile_source: str = "argument", flash_reason: str | None = None) -> Recipe:
    """The recipe for a hardware class and profile, without looking at this machine (see ``detect_recipe``).

    ``flash_backend``: what can serve flash-attention on an Ampere+ card: ``"flash_attn"`` (the compiled package),
    ``"kernels"`` (transformers loads the hub kernel ``kernels-community/flash-attn2``) or None; ``flash_reason``: what
    the probe (``labhelpers.model.attention.probe_flash_attention``) found, said in the attention reason.

    >>> r = recipe_for("t4", "colab", total_memory_gib=15.0)
    >>> r.torch_dtype, r.fp16, r.bf16, r.attn_implementation, r.packing, r.train_sampling_strategy
    (torch.float32, True, False, 'sdpa', False, 'group_by_length')
    >>> r = recipe_for("ampere", "colab", "NVIDIA A100-SXM4-80GB", (8, 0), 80.0, flash_backend="kernels")
    >>> r.torch_dtype, r.bf16, r.attn_implementation, r.packing, r.sizes.per_device_train_batch_size
    (torch.float32, True, 'flash_attention_2', True, 16)
    """
    _check_choice("hardware", hardware, HARDWARE)
    _check_choice("profile", profile, PROFILES)
    if flash_backend not in (None, "flash_attn", "kernels"):
        raise ValueError(f"unknown flash_backend {flash_backend!r}: choose 'flash_attn', 'kernels' or None")
    cc = "" if capability is None else f"compute capability {capability[0]}.{capability[1]}"
    mem = "" if total_memory_gib is None else f"{total_memory_gib:.1f} GiB"
    facts = ", ".join(x for x in (cc, mem) if x)
    facts = f" ({facts})" if facts else ""
    default_name = {"cpu": "cpu", "t4": "Tesla T4", "cuda-old": "CUDA GPU", "ampere": "CUDA GPU"}[hardware]
    name = device_name or default_name
    why: dict[str, str] = {"profile": {
        "argument": f"profile {profile!r} passed as an argument",
        "env": f"profile {profile!r} from the LAB_PROFILE environment variable",
        "default": f"no argument and no LAB_PROFILE: {profile!r} is the default on {'a CPU' if hardware == 'cpu' else 'a GPU'}",
    }.get(profile_source, profile_source)}
    dtype = torch.float32
    if hardware == "cpu":
        fp16, bf16, use_cpu, attn = False, False, True, "sdpa"
        why["hardware"] = "no CUDA device visible (torch.cuda.is_available() is False), so training runs on the CPU"
        why["torch_dtype"] = "bf16 on this CPU runs only with use_cpu=True and is ~12x slower; fp16 is no faster"
        why["fp16"] = "fp16 AMP is a no-op on CPU (Trainer silently ignores fp16=True there)"
        why["bf16"] = "bf16 on this CPU is ~12x slower than fp32; set explicitly because TRL's SFTConfig defaults to bf16"
        why["use_cpu"] = "TRL's SFTConfig refuses a CPU without it, and it keeps Apple MPS out of the way"
        why["attn_implementation"] = "PyTorch's built-in attention, always available; flash-attn is CUDA-only"
    elif hardware in ("t4", "cuda-old"):
        fp16, bf16, use_cpu, attn = True, False, False, "sdpa"
        card = "NVIDIA T4" if hardware == "t4" else name
        why["hardware"] = (f"{card}{facts}: compute capability < 8, so fp16 tensor cores but no bf16 and no flash-attention")
        why["torch_dtype"] = ("fp32 master weights for AMP: fp16 weights with fp16=True fail with "
                              "'Attempting to unscale FP16 gradients'")
        why["fp16"] = "fp16 autocast with loss scaling uses the tensor cores of a cc < 8 card"
        why["bf16"] = "bf16 needs compute capability >= 8"
        why["use_cpu"] = "train on the GPU"
        why["attn_implementation"] = "flash-attention needs compute capability >= 8; sdpa uses its memory-efficient kernel here"
    else:  # ampere
        fp16, bf16, use_cpu = False, True, False
        why["hardware"] = f"{name}{facts}: compute capability >= 8, so bf16 and flash-attention are supported"
        why["torch_dtype"] = ("fp32 master weights with bf16 autocast: bf16 weights keep 8 mantissa bits, so an AdamW "
                              "update below half a bf16 step rounds away (at lr 2e-5, every weight with |w| >~ 0.005); "
                              "the 135M model with fp32 AdamW state needs ~2 GB, which fits any card")
        why["fp16"] = "bf16 has fp32's range, so no loss scaling is needed"
        why["bf16"] = "bf16 autocast on a cc >= 8 card: matmuls and attention run in bf16 on the tensor cores"
        why["use_cpu"] = "train on the GPU"
        if flash_backend is not None:
            attn = "flash_attention_2"
            source = flash_reason or ("the flash_attn package is installed" if flash_backend == "flash_attn" else
                                      "the kernels package serves it (transformers downloads the prebuilt hub kernel "
                                      "kernels-community/flash-attn2; no compiling)")
            why["attn_implementation"] = (f"{source}; cc >= 8; exact, and its variable-length kernel makes packing "
                                          "padding-free without cross-contamination (every forward outside the "
                                          "Trainer runs under recipe.autocast(): the kernel takes only fp16/bf16)")
        else:
            attn = "sdpa"
            why["attn_implementation"] = (f"flash-attention is not usable here: {flash_reason}; sdpa is built in, and "
                                          "packing stays off" if flash_reason else
                                          "neither flash_attn nor kernels is installed (the Colab install cell installs "
                                          "the locked kernels); sdpa is built in")
    packing, sampling, why["packing"], why["train_sampling_strategy"] = _batching_choice(hardware, attn)
    sizes, size_reasons = profile_sizes(profile, hardware, total_memory_gib)
    lesson, lesson_reasons = lesson_sizes(profile, sizes)
    reasons = tuple((k, why[k]) for k in _CHOICE_FIELDS) + size_reasons + lesson_reasons
    return Recipe(hardware=hardware, device_name=name, profile=profile, torch_dtype=dtype, attn_implementation=attn,
                  fp16=fp16, bf16=bf16, use_cpu=use_cpu, packing=packing, train_sampling_strategy=sampling,
                  sizes=sizes, lesson=lesson, reasons=reasons)
