"""GPU check (< 5 min): tokens/s, peak memory and MFU of SmolLM2-135M for the fp16-AMP and bf16 recipes.

Needs only torch + transformers on a CUDA machine (no hub: the model is built from its config with random
weights) and this checkout's ``labhelpers.model.memory``. For each recipe it trains a padded batch and the same tokens
packed into one row (``position_ids`` restarting per example, no attention mask), then checks
``estimate_memory`` against ``torch.cuda.max_memory_allocated`` (goal: within 25%).

* fp16-amp (T4 style): fp32 weights, ``torch.autocast(float16)`` + ``GradScaler``.
* bf16 (Ampere style): bf16 weights, ``torch.autocast(bfloat16)``; skipped where bf16 is unsupported.

MFU = 6 x parameters x real tokens/s / peak dense half-precision FLOP/s of the card (table below; set
``GPU_PEAK_TFLOPS`` for other cards). Padding tokens are not counted, so padded batches show the waste.
Run: ``python -m benchmarks.gpu_check [--out DIR]``. Without CUDA it exits with code 2.
"""

from __future__ import annotations

import gc
import os
import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import torch

# SmolLM2-135M-Instruct's config.json (checked against the offline copy in ~/.cache/sft-lab/models)
SMOLLM2_135M = dict(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                    num_attention_heads=9, num_key_value_heads=3, max_position_embeddings=8192, rope_theta=100000,
                    tie_word_embeddings=True, rms_norm_eps=1e-5)
# peak dense fp16/bf16 tensor TFLOP/s; the first name found in torch.cuda.get_device_name() wins
PEAK_TFLOPS = (("H200", 989.0), ("H100 PCIe", 756.0), ("H100", 989.0), ("A100", 312.0), ("L4", 121.0), ("T4", 65.0))
BATCH, MAX_LENGTH = 8, 1024  # padded batch: 8 rows of random lengths in [MAX_LENGTH/4, MAX_LENGTH]
WARMUP_STEPS, TIMED_STEPS = 3, 10
TOLERANCE = 0.25  # estimate vs measured peak
_GIB = 1024**3


def peak_tflops(device_name: str) -> float | None:
    """Peak dense half-precision TFLOP/s of a card: ``$GPU_PEAK_TFLOPS``, else the table, else None.

    >>> peak_tflops("Tesla T4"), peak_tflops("NVIDIA H100 80GB HBM3"), peak_tflops("NVIDIA H100 PCIe")
    (65.0, 989.0, 756.0)
    """
    if os.environ.get("GPU_PEAK_TFLOPS"):
        return float(os.environ["GPU_PEAK_TFLOPS"])
    return next((tf for name, tf in PEAK_TFLOPS if name in device_name), None)


def example_lengths(n: int = BATCH, max_length: int = MAX_LENGTH, seed: int = 0) -> list[int]:
    """Reproducible random example lengths in [max_length // 4, max_length].

    >>> example_lengths(3, 8)
    [6, 5, 2]
    """
    g = torch.Generator().manual_seed(seed)
    return torch.randint(max_length // 4, max_length + 1, (n,), generator=g).tolist()


def padded_batch(lengths: list[int], vocab: int, max_length: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Right-padded batch: ``attention_mask`` 0 and labels -100 on padding.

    >>> b = padded_batch([3, 1], vocab=10, max_length=3)
    >>> b["attention_mask"].tolist(), b["labels"][1].tolist()
    ([[1, 1, 1], [1, 0, 0]], [5, -100, -100])
    """
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, vocab, (len(lengths), max_length), generator=g)
    mask = (torch.arange(max_length)[None, :] < torch.tensor(lengths)[:, None]).long()
    return {"input_ids": ids, "attention_mask": mask, "labels": ids.masked_fill(mask == 0, -100)}


def packed_batch(padded: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The real tokens of a padded batch in one row; ``position_ids`` restart per example; no attention mask.

    >>> p = packed_batch(padded_batch([3, 1], vocab=10, max_length=3))
    >>> p["position_ids"].tolist(), sorted(p)
    ([[0, 1, 2, 0]], ['input_ids', 'labels', 'position_ids'])
    """
    keep = padded["attention_mask"].bool()
    lengths = keep.sum(1).tolist()
    positions = torch.cat([torch.arange(n) for n in lengths])[None, :]
    labels = padded["input_ids"][keep].clone()
    starts = torch.tensor([0] + lengths[:-1]).cumsum(0)
    labels[starts[1:]] = -100  # the first token of each example is not predicted from the previous example
    return {"input_ids": padded["input_ids"][keep][None, :], "position_ids": positions, "labels": labels[None, :]}


def run_case(recipe_name: str, layout: str, batch: dict[str, torch.Tensor]) -> dict:
    """Train WARMUP + TIMED steps of a fresh random-weight model; tokens/s, peak memory, estimate."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from labhelpers.model.memory import estimate_memory  # the only labhelpers module this script needs

    gc.collect()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    half = torch.float16 if recipe_name == "fp16-amp" else torch.bfloat16
    weights = torch.float32 if recipe_name == "fp16-amp" else torch.bfloat16
    torch.manual_seed(0)
    config = LlamaConfig(**SMOLLM2_135M, use_cache=False)
    model = LlamaForCausalLM._from_config(config, attn_implementation="sdpa", dtype=weights).cuda().train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=True)  # Trainer's default on torch >= 2.8
    scaler = torch.amp.GradScaler("cuda", enabled=recipe_name == "fp16-amp")
    batch = {k: v.cuda() for k, v in batch.items()}
    rows, length = batch["input_ids"].shape
    real_tokens = int(batch["attention_mask"].sum()) if "attention_mask" in batch else rows * length
    times = []
    for step in range(WARMUP_STEPS + TIMED_STEPS):
        torch.cuda.synchronize()
        start = time.perf_counter()
        with torch.autocast("cuda", dtype=half):
            loss = model(**batch).loss
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        if step >= WARMUP_STEPS:
            times.append(time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated() - base
    # the fields estimate_memory reads from a labhelpers Recipe (t4 / ampere recipes at this batch shape)
    sizes = SimpleNamespace(per_device_train_batch_size=rows, max_length=length, gradient_checkpointing=False)
    recipe = SimpleNamespace(torch_dtype=weights, fp16=recipe_name == "fp16-amp", bf16=recipe_name == "bf16", sizes=sizes)
    estimate = estimate_memory(model, recipe, padded=True)  # both layouts give sdpa a mask (packed: block-diagonal)
    n_params = sum(p.numel() for p in model.parameters())
    step_s = statistics.median(times)
    del model, optimizer, batch
    return {"recipe": recipe_name, "layout": layout, "shape": [rows, length], "real_tokens": real_tokens,
            "step_s": step_s, "tokens_per_s": real_tokens / step_s, "peak_bytes": peak,
            "estimate_bytes": estimate.total, "estimate_error": estimate.total / peak - 1, "params": n_params,
            "loss": loss.item()}


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else argv
    if not torch.cuda.is_available():
        print("gpu_check needs a CUDA GPU: torch.cuda.is_available() is False on this machine "
              f"(torch {torch.__version__}). Run it on a GPU box: python -m benchmarks.gpu_check", file=sys.stderr)
        raise SystemExit(2)
    from benchmarks.report import format_table, save_json

    out = Path(argv[argv.index("--out") + 1]) if "--out" in argv else Path("benchmarks/results")
    name = torch.cuda.get_device_name(0)
    tflops = peak_tflops(name)
    recipes = ["fp16-amp"] + (["bf16"] if torch.cuda.is_bf16_supported() else [])
    padded = padded_batch(example_lengths(), SMOLLM2_135M["vocab_size"], MAX_LENGTH)
    results = [run_case(r, layout, b) for r in recipes
               for layout, b in (("padded", padded), ("packed", packed_batch(padded)))]
    rows = []
    for r in results:
        mfu = None if tflops is None else 6 * r["params"] * r["tokens_per_s"] / (tflops * 1e12)
        r["mfu"] = mfu
        rows.append([r["recipe"], r["layout"], "x".join(map(str, r["shape"])), round(r["step_s"] * 1000, 1),
                     round(r["tokens_per_s"]), "?" if mfu is None else f"{mfu:.1%}", round(r["peak_bytes"] / _GIB, 2),
                     round(r["estimate_bytes"] / _GIB, 2), f"{r['estimate_error']:+.0%}"])
    print(f"{name}, peak {tflops or '?'} TFLOP/s (set GPU_PEAK_TFLOPS to override), torch {torch.__version__}")
    print(format_table(["recipe", "layout", "shape", "ms/step", "real tok/s", "MFU", "peak GiB", "estimate GiB",
                        "est. error"], rows))
    bad = [r for r in results if abs(r["estimate_error"]) > TOLERANCE]
    verdict = "all within" if not bad else f"{len(bad)} outside"
    print(f"memory estimate vs torch.cuda.max_memory_allocated: {verdict} {TOLERANCE:.0%}")
    figures = {"device": name, "peak_tflops": tflops, "torch": torch.__version__, "results": results,
               "tolerance": TOLERANCE, "estimates_ok": not bad}
    print(f"wrote {save_json('gpu_check', figures, out)}")
    if bad:
        raise SystemExit(1)
    return figures


if __name__ == "__main__":
    main()
