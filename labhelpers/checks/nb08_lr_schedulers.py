"""TODO check of notebook 08 (learning-rate schedules): the student's cosine-with-warmup schedule against
``transformers.get_scheduler("cosine")`` at every step, naming the usual mistakes."""

from __future__ import annotations

from labhelpers.checks.core import TodoCheckError, passed, require, student_code


def _reference_cosine_lrs(total_steps: int, warmup_steps: int, peak_lr: float) -> list[float]:
    """LR at steps 0..total_steps from ``transformers.get_scheduler("cosine")`` on a throwaway optimizer.

    >>> [round(x, 3) for x in _reference_cosine_lrs(4, 1, 1.0)]
    [0.0, 1.0, 0.75, 0.25, 0.0]
    """
    import torch
    from transformers import get_scheduler

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=peak_lr)
    sched = get_scheduler("cosine", opt, num_warmup_steps=warmup_steps, num_training_steps=total_steps)
    lrs = []
    for _ in range(total_steps + 1):
        lrs.append(sched.get_last_lr()[0])
        opt.step()
        sched.step()
    return lrs


def _cosine_mistakes(step: int, total: int, warmup: int, peak: float) -> dict[str, float]:
    """LR at ``step`` under common wrong versions of cosine-with-warmup, keyed by the feedback to give."""
    import math

    cos = lambda p: 0.5 * (1 + math.cos(math.pi * p))  # noqa: E731
    decay = (step - warmup) / max(1, total - warmup)
    out = {
        "your warmup is off by one: it reaches peak_lr one step early (you used (step + 1) / warmup_steps); "
        "at step 0 the LR must be 0": peak * min(1.0, (step + 1) / max(1, warmup)) if step < warmup else peak * cos(decay),
        "your decay measures progress as step / total_steps; measure it from the end of warmup: "
        "(step - warmup_steps) / (total_steps - warmup_steps)": peak * cos(step / total) if step >= warmup else peak * step / max(1, warmup),
        "your cosine is missing the 0.5 * (1 + ...) that maps cos from [-1, 1] onto [0, 1]":
            peak * math.cos(math.pi * decay) if step >= warmup else peak * step / max(1, warmup),
        "your cosine runs a full period (cos(2*pi*progress)) and climbs back to peak; use cos(pi * progress) "
        "so it ends at 0": peak * 0.5 * (1 + math.cos(2 * math.pi * decay)) if step >= warmup else peak * step / max(1, warmup),
        "your LR goes up during decay: use 1 + cos(...), not 1 - cos(...)":
            peak * 0.5 * (1 - math.cos(math.pi * decay)) if step >= warmup else peak * step / max(1, warmup),
    }
    return out


def _digits_to_tell_apart(a: float, b: float) -> int:
    """Significant digits that print ``a`` and ``b`` differently (4 to 17), from their relative difference.

    >>> d = _digits_to_tell_apart(1.999e-05, 1.99900004e-05); d, f"{1.999e-05:.{d}g} vs {1.99900004e-05:.{d}g}"
    (10, '1.999e-05 vs 1.99900004e-05')
    >>> _digits_to_tell_apart(0.0, 2e-5), _digits_to_tell_apart(1.0, 1.0)
    (4, 4)
    """
    import math

    scale = max(abs(a), abs(b))
    if a == b or scale == 0 or not math.isfinite(scale):
        return 4
    relative = abs(a - b) / scale
    return min(17, max(4, math.ceil(-math.log10(relative)) + 2))


@student_code("cosine_with_warmup_lr")
def check_cosine_schedule(cosine_with_warmup_lr, cases=((96, 10, 2e-5), (8, 1, 1e-4), (20, 0, 5e-5), (30, 29, 1e-3))) -> None:
    """Compare ``cosine_with_warmup_lr(step, total_steps, warmup_steps, peak_lr)`` with ``get_scheduler("cosine")``
    at every step 0..total_steps of each (total_steps, warmup_steps, peak_lr) case.

    >>> import math
    >>> def good(step, total, warmup, peak):
    ...     if step < warmup:
    ...         return peak * step / warmup
    ...     return peak * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))
    >>> check_cosine_schedule(good)
    ✓ your cosine schedule matches get_scheduler("cosine") at all 158 steps of 4 schedules (warmup 0 to 29 steps)
    >>> check_cosine_schedule(lambda s, t, w, p: p * 0.5 * (1 + math.cos(math.pi * s / t)))
    Traceback (most recent call last):
    ...
    labhelpers.checks.TodoCheckError: at step 0 your LR is 2e-05 but warmup starts at 0 (total_steps=96, warmup_steps=10, peak_lr=2e-05). Fix: during warmup return peak_lr * step / warmup_steps: 0 at step 0, peak_lr at step warmup_steps
    """
    import math

    n_steps = 0
    for total, warmup, peak in cases:
        want_all = _reference_cosine_lrs(total, warmup, peak)
        where = f"(total_steps={total}, warmup_steps={warmup}, peak_lr={peak:g})"
        for step, want in enumerate(want_all):
            try:
                got = cosine_with_warmup_lr(step, total, warmup, peak)
            except ZeroDivisionError as err:
                raise TodoCheckError(f"at step {step} your function divided by zero {where}: {err}. Fix: with "
                                     "warmup_steps=0 there is no warmup phase; guard the division, e.g. "
                                     "max(1, warmup_steps), as transformers does") from err
            require(isinstance(got, (int, float)) and not isinstance(got, bool) and math.isfinite(got),
                    f"at step {step} your function returned {got!r} {where}", "return the LR as a Python float")
            if math.isclose(got, want, rel_tol=1e-6, abs_tol=peak * 1e-9):
                continue
            digits = _digits_to_tell_apart(got, want)
            tell = f"at step {step} your LR is {got:.{digits}g} but "
            if step == 0 and warmup > 0:
                require(False, tell + f"warmup starts at 0 {where}",
                        "during warmup return peak_lr * step / warmup_steps: 0 at step 0, peak_lr at step warmup_steps")
            if step < warmup:
                require(False, tell + f"warmup should be at {want:.{digits}g} = peak_lr * {step}/{warmup} {where}",
                        "ramp linearly: peak_lr * step / warmup_steps while step < warmup_steps")
            for mistake, value in _cosine_mistakes(step, total, warmup, peak).items():
                if math.isclose(got, value, rel_tol=1e-6, abs_tol=peak * 1e-9):
                    require(False, tell + f"get_scheduler('cosine') gives {want:.{digits}g} {where}: {mistake}",
                            "lr = peak_lr * 0.5 * (1 + cos(pi * progress)), progress = (step - warmup_steps) / "
                            "(total_steps - warmup_steps)")
            if step == warmup:
                require(False, tell + f"at the end of warmup the LR is the peak, {want:.{digits}g} {where}",
                        "for step >= warmup_steps use progress = (step - warmup_steps) / (total_steps - warmup_steps); "
                        "progress 0 gives peak_lr")
            require(False, tell + f"get_scheduler('cosine') gives {want:.{digits}g} {where}",
                    "after warmup: lr = peak_lr * 0.5 * (1 + cos(pi * progress)) with progress = (step - warmup_steps) "
                    "/ (total_steps - warmup_steps), which runs from 0 to 1")
        n_steps += len(want_all)
    warmups = [w for _, w, _ in cases]
    passed(f'your cosine schedule matches get_scheduler("cosine") at all {n_steps} steps of {len(cases)} schedules '
           f"(warmup {min(warmups)} to {max(warmups)} steps)")
