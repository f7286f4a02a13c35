"""TODO checks of notebook 01 (setup and hardware): the batch arithmetic (effective batch size, optimizer steps
per epoch, warmup steps) against what HF Trainer computes."""

from __future__ import annotations

from labhelpers.checks.core import passed, require, student_code


@student_code("effective_batch_size", "optimizer_steps_per_epoch", "warmup_steps")
def check_batch_math(effective_batch_size, optimizer_steps_per_epoch, warmup_steps) -> None:
    """Compare the student's batch arithmetic with :func:`labhelpers.batching.effective_batch` on many cases.

    >>> import math
    >>> eff = lambda p, a, g: p * a * g
    >>> steps = lambda n, p, a, g: math.ceil(math.ceil(n / (p * g)) / a)
    >>> check_batch_math(eff, steps, lambda total, ratio: math.ceil(total * ratio))
    ✓ batch arithmetic matches HF Trainer on 840 layouts and 18 warmup cases
    >>> check_batch_math(eff, lambda n, p, a, g: n // (p * a * g), lambda t, r: math.ceil(t * r))
    Traceback (most recent call last):
    ...
    labhelpers.checks.TodoCheckError: optimizer_steps_per_epoch(n_examples=1, per_device=1, grad_accum=1, n_gpus=2) returned 0, HF Trainer runs 1 (each device gets ceil(1 / (1 x 2)) = 1 batches, then ceil(1 / 1) accumulation rounds). Fix: count the last, partial batch and the last, partial accumulation as full steps: round up (math.ceil), never down (//)
    """
    from labhelpers.batching import effective_batch

    layouts = [(p, a, g) for p in (1, 2, 3, 4, 8) for a in (1, 2, 4, 8, 16, 3) for g in (1, 2, 4, 8)]
    sizes = (1, 7, 64, 500, 501, 720, 9999)
    for p, a, g in layouts:
        want = p * a * g
        got = effective_batch_size(p, a, g)
        require(got == want, f"effective_batch_size(per_device={p}, grad_accum={a}, n_gpus={g}) returned {got!r}, "
                f"expected {want}", "every optimizer step sees per_device sequences on each of n_gpus devices, "
                "grad_accum times: multiply all three")
    for p, a, g in layouts:
        for n in sizes:
            want = effective_batch(p, a, g, n_examples=n).optimizer_steps_per_epoch
            got = optimizer_steps_per_epoch(n, p, a, g)
            batches = -(-n // (p * g))
            require(got == want, f"optimizer_steps_per_epoch(n_examples={n}, per_device={p}, grad_accum={a}, n_gpus={g}) "
                    f"returned {got!r}, HF Trainer runs {want} (each device gets ceil({n} / ({p} x {g})) = {batches} "
                    f"batches, then ceil({batches} / {a}) accumulation rounds)",
                    "count the last, partial batch and the last, partial accumulation as full steps: "
                    "round up (math.ceil), never down (//)")
    cases = [(t, r) for t in (8, 24, 96, 141, 250, 1000) for r in (0.0, 0.03, 0.1)]
    for total, ratio in cases:
        want = effective_batch(1, 1, 1, n_examples=total, warmup_ratio=ratio).warmup_steps
        got = warmup_steps(total, ratio)
        require(got == want, f"warmup_steps(total_steps={total}, ratio={ratio}) returned {got!r}, HF computes "
                f"math.ceil({total} * {ratio}) = {want}",
                "TrainingArguments.get_warmup_steps rounds the product up with math.ceil (int() and round() round down)")
    passed(f"batch arithmetic matches HF Trainer on {len(layouts) * len(sizes)} layouts and {len(cases)} warmup cases")
