"""Full fine-tune vs gradient checkpointing vs LoRA (peft, r=16) on this CPU: seconds per step and peak memory.

The real SmolLM2-135M, batch 4 x 256 tokens, a plain loop (forward, backward, fused AdamW, zero_grad) with
1 warm-up and 3 timed steps per mode. Each mode runs in its own subprocess, so its peak RSS is its own; the peak
is measured as the process's ``VmHWM`` (high-water RSS of its own address space) minus the RSS after imports
(weights, gradients, AdamW states and activations all count) and printed next to
``labhelpers.model.memory.estimate_memory``'s figure. Not ``ru_maxrss``: Linux carries
it over from the parent through fork and exec, so a worker started by a parent that holds a model reports the
parent's peak.
glibc's dynamic mmap threshold keeps freed mid-size tensors in the heap, which can inflate peak RSS well past the
live tensors (LoRA at 4 x 256: 3768 MiB by default, 2395 MiB with ``MALLOC_MMAP_THRESHOLD_=131072``; estimate
2515 MiB); set that variable to measure tensors rather than allocator retention.
Run: ``python -m benchmarks.training_modes``; one mode alone: ``python -m benchmarks.training_modes --worker lora``.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time

from benchmarks.report import format_table, save_json
from labhelpers.model.memory import process_memory_bytes

MODES = ("full", "checkpointing", "lora")
BATCH, MAX_LENGTH = 4, 256  # the ci profile's per-device batch and max_length
WARMUP_STEPS, TIMED_STEPS = 1, 3  # the warm-up step also allocates the AdamW states
LORA_RANK = 16
_MIB = 1024**2


def measure(mode: str, batch: int = BATCH, max_length: int = MAX_LENGTH, warmup: int = WARMUP_STEPS,
            steps: int = TIMED_STEPS) -> dict:
    """Train ``warmup + steps`` steps in this process; return step times, peak RSS increase and the estimate.

    Call it in a fresh process: ``VmHWM`` is the high-water mark of the whole process.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from transformers import LlamaForCausalLM  # noqa: F401  (import the model code before the baseline)

    from labhelpers.model.hardware import recipe_for
    from labhelpers.model.memory import LORA_TARGETS, estimate_memory
    from labhelpers.model.loading import load_model_and_tokenizer

    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}: choose one of {', '.join(MODES)}")
    if mode == "lora":
        import peft
    torch.manual_seed(0)
    baseline = process_memory_bytes("VmRSS")
    recipe = recipe_for("cpu", "ci").with_sizes(per_device_train_batch_size=batch, max_length=max_length)
    model, _ = load_model_and_tokenizer(recipe=recipe, verbose=False)
    model.config.use_cache = False
    model.train()
    estimate = estimate_memory(model, recipe, lora_rank=LORA_RANK if mode == "lora" else None,
                               gradient_checkpointing=mode == "checkpointing", padded=False)
    if mode == "checkpointing":
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if mode == "lora":
        config = peft.LoraConfig(r=LORA_RANK, lora_alpha=2 * LORA_RANK, lora_dropout=0.0,
                                 target_modules=list(LORA_TARGETS), task_type="CAUSAL_LM")
        model = peft.get_peft_model(model, config)
    trainable = [p for p in model.parameters() if p.requires_grad]
    # fused AdamW: what HF Trainer picks by default on torch >= 2.8 ("adamw_torch_fused")
    optimizer = torch.optim.AdamW(trainable, lr=1e-5, fused=True)
    ids = torch.randint(3, model.config.vocab_size, (batch, max_length), generator=torch.Generator().manual_seed(0))
    times = []
    for step in range(warmup + steps):
        start = time.perf_counter()
        loss = model(input_ids=ids, labels=ids).loss  # the output (and its logits) is dropped before backward, as in Trainer
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if step >= warmup:
            times.append(time.perf_counter() - start)
    peak = process_memory_bytes("VmHWM")
    return {
        "mode": mode, "batch": batch, "max_length": max_length, "torch_threads": torch.get_num_threads(),
        "trainable_params": sum(p.numel() for p in trainable), "step_s": times,
        "median_step_s": statistics.median(times) if times else None, "loss": loss.item(),
        "baseline_rss_bytes": baseline, "peak_rss_increase_bytes": peak - baseline,
        "estimate_total_bytes": estimate.total,
    }


def run_worker(mode: str, batch: int = BATCH, max_length: int = MAX_LENGTH, warmup: int = WARMUP_STEPS,
               steps: int = TIMED_STEPS, timeout: float = 1800) -> dict:
    """``measure`` in a fresh Python subprocess (clean peak memory); returns its figures."""
    cmd = [sys.executable, "-m", "benchmarks.training_modes", "--worker", mode, str(batch), str(max_length),
           str(warmup), str(steps)]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=root)
    if done.returncode != 0:
        raise RuntimeError(f"worker {mode} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> dict:
    results = {}
    for mode in MODES:
        print(f"{mode}: {WARMUP_STEPS} warm-up + {TIMED_STEPS} timed steps at {BATCH} x {MAX_LENGTH} ...", flush=True)
        results[mode] = run_worker(mode)
    full = results["full"]
    rows = []
    for mode, r in results.items():
        rows.append([mode, f"{r['trainable_params']:,}", round(r["median_step_s"], 2),
                     round(r["median_step_s"] / full["median_step_s"], 2),
                     round(r["peak_rss_increase_bytes"] / _MIB), round(r["peak_rss_increase_bytes"] / full["peak_rss_increase_bytes"], 2),
                     round(r["estimate_total_bytes"] / _MIB)])
    print(format_table(["mode", "trainable", "s/step", "x full", "peak MiB", "x full", "estimate MiB"], rows))
    print(f"load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores "
          "(step times are only comparable within one run)")
    figures = {"batch": BATCH, "max_length": MAX_LENGTH, "warmup_steps": WARMUP_STEPS, "timed_steps": TIMED_STEPS,
               "lora_rank": LORA_RANK, "load_average": os.getloadavg()[0], "modes": results}
    save_json("training_modes", figures)
    return figures


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--worker":
        args = [int(a) for a in sys.argv[3:]]
        print(json.dumps(measure(sys.argv[2], *args)))
    else:
        main()
