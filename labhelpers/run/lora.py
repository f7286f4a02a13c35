"""LoRA plumbing for notebook 12: parameter counts, a clean peak-memory measurement in a child process, finished
adapters loaded instead of trained again, and QLoRA's load arguments (CUDA only). The sanity findings an adapter run
needs are the assistant's (:mod:`labhelpers.sanity.lora`); the check of the student's ``LoraConfig`` (the TODO's
feedback) is :mod:`labhelpers.checks.nb12_lora`.

The lesson itself (what ``r`` and ``lora_alpha`` do, which modules to target, why the learning rate is ~10x a full
fine-tune's, ``merge_and_unload``) is written out in ``solutions/12_lora.ipynb``; this module holds what is not::

    from labhelpers.run.lora import measure_training_step, qlora_model_kwargs
    measure_training_step(MODEL_ID, recipe, lora_rank=16)    # s/step and peak memory, in a fresh process
    qlora_model_kwargs(recipe)                               # 4-bit load kwargs on CUDA; a clear error on a CPU

LoRA in one line: a frozen weight ``W`` (out x in) gets a trainable update ``(lora_alpha / r) * B @ A`` with
``A`` (r x in, random) and ``B`` (out x r, zeros), so the update starts at exactly zero and stays of rank <= r.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from labhelpers.model.memory import LORA_TARGETS, process_memory_bytes

if TYPE_CHECKING:
    from labhelpers.model.hardware import Recipe

# peft 0.21's get_peft_model reads transformers' renamed ``model.is_gradient_checkpointing`` (transformers 5 calls it
# is_activation_checkpointing and warns on the old name): a FutureWarning about peft's code, printed in red under the
# student's get_peft_model cell, with nothing for the student to fix. Only that message is hidden; every other warning
# still shows (a lab whose point is that warnings matter).
warnings.filterwarnings("ignore", message=r"`is_gradient_checkpointing` is deprecated", category=FutureWarning)

ATTENTION_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj")  # a llama-style decoder layer's attention
MLP_PROJECTIONS = ("gate_proj", "up_proj", "down_proj")  # ... and its MLP (two thirds of a layer's weights)
FULL_COPY_MODULES = ("embed_tokens", "lm_head")  # trained as full copies (modules_to_save), never as LoRA pairs
MEASURE_ENV = {"MALLOC_MMAP_THRESHOLD_": "131072"}  # glibc: return freed mid-size tensors to the OS, so the peak RSS
# measures tensors rather than allocator retention (benchmarks/training_modes.py: LoRA 3768 MiB without, 2395 with)


# ------------------------------------------------------------ target modules (the LoraConfig check uses them too)
def target_set(targets: Any) -> set[str] | str | None:
    """A LoraConfig's ``target_modules`` as a set of names, a string (regex / 'all-linear') or None.

    >>> sorted(target_set(["q_proj", "v_proj"])), target_set("all-linear"), target_set(None)
    (['q_proj', 'v_proj'], 'all-linear', None)
    """
    if targets is None or isinstance(targets, str):
        return targets
    return {str(t) for t in targets}


def linear_names(model: Any) -> list[str]:
    """Distinct last names of the model's ``nn.Linear`` modules, in order of appearance."""
    import torch

    seen: dict[str, None] = {}
    for name, module in model.named_modules():
        parts = name.split(".")
        if not isinstance(module, torch.nn.Linear) or any(p.startswith("lora_") for p in parts):
            continue  # a LoRA pair's own layers are not targets
        if parts[-1] == "base_layer" and len(parts) > 1:  # an adapted projection: name it, not its wrapped layer
            parts = parts[:-1]
        seen.setdefault(parts[-1], None)
    return list(seen)


# --------------------------------------------------------------------------------------------- counting
def trainable_parameters(model: Any) -> tuple[int, int]:
    """``(trainable, total)`` parameter counts, tied weights counted once.

    >>> import torch
    >>> m = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2)); m[0].requires_grad_(False)  # doctest: +ELLIPSIS
    Linear(...)
    >>> trainable_parameters(m)
    (8, 23)
    """
    unique = {p.data_ptr(): p for p in model.parameters()}.values()
    return sum(p.numel() for p in unique if p.requires_grad), sum(p.numel() for p in unique)


def lora_parameter_count(model: Any, rank: int, targets: tuple[str, ...] = LORA_TARGETS) -> int:
    """Adapter parameters LoRA of rank ``rank`` adds: ``r x (in + out)`` for every ``nn.Linear`` named in ``targets``.

    >>> import torch
    >>> block = torch.nn.ModuleDict({"q_proj": torch.nn.Linear(8, 8), "up_proj": torch.nn.Linear(8, 16)})
    >>> lora_parameter_count(block, 2, ("q_proj", "up_proj"))
    80
    """
    import torch

    return sum(rank * (m.in_features + m.out_features) for name, m in model.named_modules()
               if isinstance(m, torch.nn.Linear) and name.rsplit(".", 1)[-1] in targets)


def logits_tolerance(dtype: Any) -> tuple[float, float]:
    """``(rtol, atol)`` for comparing the logits of a merged model with its adapter twin in ``dtype``.

    Merging changes only the summation order (``W x + s B (A x)`` vs ``(W + s B A) x``), so fp32 agrees to a few
    units in the 6th digit of the largest logits (~20-30): up to 1.2e-4 absolute measured on near-zero logits of
    adapters trained under bf16 autocast, hence atol 5e-4 (a real mismatch moves logits by the adapter's effect,
    ~0.1-10); half precision rounds the merged weight itself.

    >>> import torch
    >>> logits_tolerance(torch.float32), logits_tolerance(torch.bfloat16)
    ((0.0001, 0.0005), (0.02, 0.1))
    """
    import torch

    return {torch.float32: (1e-4, 5e-4), torch.float16: (1e-2, 5e-2)}.get(dtype, (2e-2, 1e-1))


# ----------------------------------------------------------------------------------- a finished adapter run
ADAPTER_WEIGHTS = "adapter_model.safetensors"  # what peft's save_pretrained writes next to adapter_config.json


def adapter_settings(peft_model: Any) -> dict[str, Any]:
    """The default adapter's run-defining settings (what the SFTConfig does not hold), JSON-ready.

    >>> from types import SimpleNamespace as NS
    >>> cfg = NS(r=16, lora_alpha=32, target_modules={"v_proj", "q_proj"}, lora_dropout=0.05, bias="none",
    ...          modules_to_save=None, use_rslora=False)
    >>> adapter_settings(NS(peft_config={"default": cfg}))["target_modules"]
    ['q_proj', 'v_proj']
    """
    cfg = peft_model.peft_config["default"]
    targets = cfg.target_modules
    return {"r": cfg.r, "lora_alpha": cfg.lora_alpha, "lora_dropout": cfg.lora_dropout, "bias": cfg.bias,
            "target_modules": sorted(targets) if not isinstance(targets, str) else targets,
            "modules_to_save": sorted(cfg.modules_to_save or []), "use_rslora": getattr(cfg, "use_rslora", False)}


def finished_adapters_or_train(peft_model: Any, config: Any, train_rows: Any,
                               train: Callable[[], list[dict[str, Any]]]) -> tuple[list[dict[str, Any]], bool]:
    """``(log_history, trained_now)``: train the adapters (``train()``, then save them to ``output_dir/adapter``), or,
    when that folder holds a finished run with the same settings, rows and adapter settings, load its adapters into
    ``peft_model`` instead (see :func:`labhelpers.run.training.finished_run_or_train`; delete the folder to train again).
    """
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    from labhelpers.run.training import FINISHED_RUN_FILE, finished_run_or_train

    adapter_dir = Path(config.output_dir) / "adapter"
    if not (adapter_dir / ADAPTER_WEIGHTS).is_file():  # a finished-run record without its adapters proves nothing
        (Path(config.output_dir) / FINISHED_RUN_FILE).unlink(missing_ok=True)
    trained = []

    def train_and_save() -> list[dict[str, Any]]:
        history = train()
        peft_model.save_pretrained(str(adapter_dir))
        trained.append(True)
        return history

    history = finished_run_or_train(config, train_rows, train_and_save, extra=adapter_settings(peft_model))
    if not trained:
        set_peft_model_state_dict(peft_model, load_file(str(adapter_dir / ADAPTER_WEIGHTS)))
    return history, bool(trained)


# ------------------------------------------------------------------------------------------ measuring
def _measure_here(model_id: str, profile: str, batch: int, max_length: int, lora_rank: int | None, steps: int) -> dict:
    """Train ``steps`` steps on random tokens in this (fresh) process; the peak memory and the step times."""
    import torch
    from transformers import LlamaForCausalLM  # noqa: F401  (model code imported before the baseline)

    from labhelpers.model.hardware import detect_recipe
    from labhelpers.model.memory import estimate_memory
    from labhelpers.model.loading import load_model_and_tokenizer

    recipe = detect_recipe(profile).with_sizes(per_device_train_batch_size=batch, max_length=max_length)
    cuda = recipe.device.type == "cuda"
    torch.manual_seed(0)
    baseline = torch.cuda.memory_allocated() if cuda else process_memory_bytes("VmRSS")
    model, _ = load_model_and_tokenizer(model_id, recipe, verbose=False)
    model.config.use_cache = False
    model.train()
    estimate = estimate_memory(model, recipe, lora_rank=lora_rank, padded=False)
    if lora_rank is not None:
        import peft

        model = peft.get_peft_model(model, peft.LoraConfig(r=lora_rank, lora_alpha=2 * lora_rank, lora_dropout=0.0,
                                                           target_modules=list(LORA_TARGETS), task_type="CAUSAL_LM"))
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-5)  # the step size does not change the memory
    ids = torch.randint(3, model.config.vocab_size, (batch, max_length), generator=torch.Generator().manual_seed(0))
    ids = ids.to(model.device)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        with recipe.autocast():
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated() if cuda else process_memory_bytes("VmHWM")
    return {"mode": "full" if lora_rank is None else f"lora r={lora_rank}", "device": recipe.device.type,
            "how": "torch.cuda.max_memory_allocated" if cuda else "VmHWM - RSS before loading (child process)",
            "batch": batch, "max_length": max_length, "steps": steps, "step_s": times,
            "trainable_params": sum(p.numel() for p in params), "peak_bytes": peak - baseline,
            "estimate": {k: getattr(estimate, k) for k in ("weights", "gradients", "optimizer_states", "activations", "total")}}


def measure_training_step(model_id: str, recipe: Recipe, lora_rank: int | None = None, steps: int = 3,
                          timeout: float = 900, store: Path | None = None) -> dict:
    """Seconds per step and peak training memory of a full fine-tune (``lora_rank=None``) or LoRA, measured in a
    fresh Python process (``sys.executable``) at the recipe's batch x max_length on random tokens.

    A child process, because the peak of this one holds whatever the notebook loaded before. On a CPU the peak is
    Linux's ``VmHWM`` (high-water resident memory) minus the resident memory before the model was loaded, with
    glibc told to return freed tensors (:data:`MEASURE_ENV`); on CUDA ``torch.cuda.max_memory_allocated``. The first
    step allocates the AdamW states, so ``steps >= 2`` reaches the real peak; the step times include it (use the last).
    ``store``: a JSON file keeping the measurement with its settings and this machine's device and torch version; a
    re-run on the same machine reads it back instead of starting the child process again.
    """
    if steps < 2:
        raise ValueError(f"steps={steps}: the peak comes on the second step (after AdamW allocates its states); pass >= 2")
    settings = {"model_id": model_id, "profile": recipe.profile, "batch": recipe.sizes.per_device_train_batch_size,
                "max_length": recipe.sizes.max_length, "lora_rank": lora_rank, "steps": steps}
    if store is not None:
        import platform

        import torch

        from labhelpers.run.folder import reuse_or_compute

        machine = (torch.cuda.get_device_name(0) if torch.cuda.is_available()
                   else f"cpu {platform.machine()} x {os.cpu_count()} cores")
        key = {**settings, "device": recipe.device, "machine": machine, "torch": torch.__version__}
        return reuse_or_compute(Path(store), key, lambda: measure_training_step(model_id, recipe, lora_rank, steps, timeout),
                                what=f"the {'LoRA' if lora_rank else 'full fine-tune'} measurement")
    args = json.dumps(settings)
    env = {**os.environ, **MEASURE_ENV}
    done = subprocess.run([sys.executable, "-m", "labhelpers.run.lora", "measure", args], capture_output=True, text=True,
                          timeout=timeout, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"the measuring process failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------------------------ QLoRA
class QLoRAUnavailable(RuntimeError):
    """QLoRA cannot run here; the message says why and what to use instead."""


def qlora_model_kwargs(recipe: Recipe) -> dict[str, Any]:
    """``from_pretrained`` keyword arguments that load the base model in 4-bit NF4 for QLoRA (CUDA only).

    The base weights are stored in 4 bits (double-quantised NF4), the matmuls run in the recipe's half precision
    (bf16 on cc >= 8, else fp16), and the LoRA adapters train in fp32 on top. Raises :class:`QLoRAUnavailable` on a
    CPU or when ``bitsandbytes`` is missing.

    >>> from labhelpers.model.hardware import recipe_for
    >>> qlora_model_kwargs(recipe_for("cpu", "ci"))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    labhelpers.run.lora.QLoRAUnavailable: QLoRA needs CUDA: bitsandbytes 4-bit kernels ...
    """
    import importlib.util

    import torch

    if recipe.device.type != "cuda":
        raise QLoRAUnavailable(
            f"QLoRA needs CUDA: bitsandbytes 4-bit kernels (NF4 storage, dequantised on the fly into fp16/bf16 "
            f"matmuls) run on NVIDIA GPUs, and this recipe trains on {recipe.device.type} ({recipe.device_name}); "
            "use LoRA on fp32 weights here (a 135M model needs ~0.5 GB for its weights, so 4-bit storage would save "
            "little anyway)")
    if importlib.util.find_spec("bitsandbytes") is None:
        raise QLoRAUnavailable("QLoRA needs the bitsandbytes package, which is not installed: in Colab run "
                               "!pip install -q \"bitsandbytes>=0.46.1,<1\" (transformers 5 needs >= 0.46.1) and restart the runtime")
    from transformers import BitsAndBytesConfig

    compute = torch.bfloat16 if recipe.bf16 else torch.float16
    quantization = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                      bnb_4bit_compute_dtype=compute)
    return {"quantization_config": quantization, "dtype": compute, "attn_implementation": recipe.attn_implementation,
            "device_map": {"": torch.cuda.current_device()}}


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "measure":
        print(json.dumps(_measure_here(**json.loads(sys.argv[2]))))
    else:
        raise SystemExit("usage: python -m labhelpers.run.lora measure '{\"model_id\": ..., ...}'")
