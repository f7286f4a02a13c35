"""TODO check of notebook 08 (learning-rate schedules): the student's cosine-with-warmup schedule against
``transformers.get_scheduler("cosine")`` at every step, naming the usual mistakes."""

from __future__ import annotations

from collections.abc import Callable

from labhelpers.checks.core import TodoCheckError, call_student, passed, require, student_code


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


def _cosine_mistakes() -> list[tuple[str, str, Callable[[int, int, int, float], float]]]:
    """The usual wrong versions of cosine-with-warmup: (what is wrong, its fix, lr(step, total, warmup, peak)).

    >>> [round(lr(0, 4, 1, 1.0), 3) for _, _, lr in _cosine_mistakes()][:2]  # off by one, counted from 1
    [1.0, 1.0]
    """
    import math

    def cos(p: float) -> float:
        return 0.5 * (1 + math.cos(math.pi * p))

    def ramp(s: int, w: int, p: float) -> float:
        return p * s / w

    def progress(s: int, t: int, w: int) -> float:
        return (s - w) / max(1, t - w)

    def right(s: int, t: int, w: int, p: float) -> float:
        return ramp(s, w, p) if s < w else p * cos(progress(s, t, w))

    def warmup(fn):  # a wrong ramp, the right decay
        return lambda s, t, w, p: fn(s, w, p) if s < w else right(s, t, w, p)

    def decay(fn):  # the right ramp, a wrong decay
        return lambda s, t, w, p: ramp(s, w, p) if s < w else fn(s, t, w, p)

    formula = ("lr = peak_lr * 0.5 * (1 + cos(pi * progress)), progress = (step - warmup_steps) / "
               "(total_steps - warmup_steps)")
    ramp_fix = "during warmup return peak_lr * step / warmup_steps: 0 at step 0, peak_lr at step warmup_steps"
    return [
        ("your warmup is off by one: it reaches peak_lr one step early (you used (step + 1) / warmup_steps); "
         "at step 0 the LR must be 0", ramp_fix, warmup(lambda s, w, p: p * (s + 1) / w)),
        ("your function counts steps from 1 (step + 1), so the whole schedule runs one step ahead; step is 0-based: "
         "step 0 is the LR before the first update", "use step as it is given, without adding 1",
         lambda s, t, w, p: right(s + 1, t, w, p)),
        ("your warmup starts one step late (step - 1)", ramp_fix, warmup(lambda s, w, p: p * (s - 1) / w)),
        ("your warmup divides by warmup_steps - 1: it reaches peak_lr at step warmup_steps - 1, one step early",
         ramp_fix, warmup(lambda s, w, p: p * s / max(1, w - 1))),
        ("your warmup divides by warmup_steps + 1: it is still below peak_lr at its last step", ramp_fix,
         warmup(lambda s, w, p: p * s / (w + 1))),
        ("integer division: step // warmup_steps is 0 at every warmup step", "use /, not //: peak_lr * step / "
         "warmup_steps", warmup(lambda s, w, p: p * (s // w))),
        ("your schedule has no warmup: it starts at peak_lr and decays over all total_steps", ramp_fix + "; the "
         "cosine starts at step warmup_steps", lambda s, t, w, p: p * cos(s / t)),
        ("your function has no warmup branch: before warmup_steps its progress is negative and cos gives almost "
         "peak_lr", "add the ramp first: if step < warmup_steps: return peak_lr * step / warmup_steps",
         lambda s, t, w, p: p * cos(progress(s, t, w))),
        ("your decay measures progress as step / total_steps; measure it from the end of warmup: "
         "(step - warmup_steps) / (total_steps - warmup_steps)", formula, decay(lambda s, t, w, p: p * cos(s / t))),
        ("your progress divides by total_steps, not total_steps - warmup_steps: at the last step it is only "
         "(total_steps - warmup_steps) / total_steps, so the LR never gets down to 0", formula,
         decay(lambda s, t, w, p: p * cos((s - w) / t))),
        ("your progress divides by total_steps - warmup_steps + 1, so the LR does not reach 0 at the last step",
         formula, decay(lambda s, t, w, p: p * cos((s - w) / (t - w + 1)))),
        ("your progress divides by total_steps - warmup_steps - 1: it reaches 1 a step early and goes past the end of "
         "the decay, so the LR climbs back up at the last step", formula,
         decay(lambda s, t, w, p: p * cos((s - w) / max(1, t - w - 1)))),
        ("your cosine is missing the 0.5 * (1 + ...) that maps cos from [-1, 1] onto [0, 1] (it goes negative)",
         formula, decay(lambda s, t, w, p: p * math.cos(math.pi * progress(s, t, w)))),
        ("your cosine is missing the 1 +: 0.5 * cos(...) starts at half of peak_lr and goes negative", formula,
         decay(lambda s, t, w, p: p * 0.5 * math.cos(math.pi * progress(s, t, w)))),
        ("your cosine runs a full period (cos(2*pi*progress)) and climbs back to peak; use cos(pi * progress) "
         "so it ends at 0", formula, decay(lambda s, t, w, p: p * cos(2 * progress(s, t, w)))),
        ("your LR goes up during decay: use 1 + cos(...), not 1 - cos(...)", formula,
         decay(lambda s, t, w, p: p * 0.5 * (1 - math.cos(math.pi * progress(s, t, w))))),
        ("math.cos takes radians: half a cosine wave is cos(pi * progress), not cos(180 * progress)", formula,
         decay(lambda s, t, w, p: p * 0.5 * (1 + math.cos(180 * progress(s, t, w))))),
        ("that is a linear decay, peak_lr * (1 - progress) (get_scheduler('linear')), not half a cosine", formula,
         decay(lambda s, t, w, p: p * (1 - progress(s, t, w)))),
    ]


def _matching_mistake(got: dict[int, float], total: int, warmup: int, peak: float, steps: list[int]
                      ) -> tuple[str, str] | None:
    """(what is wrong, fix) of the first mistake of :func:`_cosine_mistakes` whose LR equals the student's ``got`` at
    every step of ``steps``, or None."""
    import math

    for mistake, fix, lr in _cosine_mistakes():
        try:
            if all(math.isclose(got[s], lr(s, total, warmup, peak), rel_tol=1e-6, abs_tol=peak * 1e-9) for s in steps):
                return mistake, fix
        except (ArithmeticError, ValueError):  # the mistake itself is undefined here (warmup_steps=0): not this one
            continue
    return None


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


_NAME = "cosine_with_warmup_lr"


def _student_lr(fn, step: int, total: int, warmup: int, peak: float,
                where: str) -> tuple[float | None, TodoCheckError | None]:
    """(the student's LR at ``step``, None), or (None, the failure to report) when the call raises or returns something
    that is not a finite number. The failure is returned, not raised, so that a wrong LR at an earlier step is named
    first."""
    import math
    import numbers

    from labhelpers.checks.core import _student_line

    try:
        got = fn(step, total, warmup, peak)
    except TodoCheckError:
        raise
    except ZeroDivisionError as err:
        return None, TodoCheckError(
            f"at step {step} your function divided by zero {where}: {err}{_student_line(err)}. Fix: with "
            "warmup_steps=0 there is no warmup phase; guard the division, e.g. max(1, warmup_steps), as transformers does")
    except Exception:  # noqa: BLE001  (named by call_student, which runs the call again)
        try:
            call_student(fn, step, total, warmup, peak, name=_NAME)
        except TodoCheckError as named:
            problem, fix = str(named).split(". Fix: ", 1)
            return None, TodoCheckError(f"at step {step} {problem} {where}. Fix: {fix}")
        return None, TodoCheckError(f"{_NAME}({step}, {total}, {warmup}, {peak:g}) raised an error once and not when "
                                    "called again. Fix: make it depend only on its arguments")
    if got is None:
        return None, TodoCheckError(f"at step {step} your function returned None {where}. Fix: return the LR in every "
                                    "branch (a branch that ends without return gives None)")
    if isinstance(got, bool) or not isinstance(got, numbers.Real):
        return None, TodoCheckError(f"at step {step} your function returned {got!r} {where}. Fix: return the LR as a "
                                    "Python float" + (" (lr.item() for a tensor)" if hasattr(got, "item") else ""))
    if not math.isfinite(got):
        cause = (": with warmup_steps=0, numpy turned a division by zero into nan/inf instead of raising" if warmup == 0
                 else "")
        return None, TodoCheckError(f"at step {step} your function returned {float(got)} {where}{cause}. Fix: "
                                    + ("with warmup_steps=0 there is no warmup phase; guard the division, e.g. "
                                       "max(1, warmup_steps), as transformers does" if warmup == 0
                                       else "return a finite LR: look for a division by zero or a log of 0"))
    return float(got), None


@student_code("cosine_with_warmup_lr")
def check_cosine_schedule(cosine_with_warmup_lr, cases=((96, 10, 2e-5), (8, 1, 1e-4), (20, 0, 5e-5), (30, 29, 1e-3))) -> None:
    """Compare ``cosine_with_warmup_lr(step, total_steps, warmup_steps, peak_lr)`` with ``get_scheduler("cosine")``
    at every step 0..total_steps of each (total_steps, warmup_steps, peak_lr) case: the colab run's, warmup 1,
    warmup 0 and warmup = total_steps - 1. A wrong schedule is named by the usual mistake whose LR it equals at
    every step (:func:`_cosine_mistakes`), with the first step where it differs.

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
    labhelpers.checks.TodoCheckError: at step 0 your LR is 2e-05 but warmup starts at 0 (total_steps=96, warmup_steps=10, peak_lr=2e-05): your schedule has no warmup: it starts at peak_lr and decays over all total_steps. Fix: during warmup return peak_lr * step / warmup_steps: 0 at step 0, peak_lr at step warmup_steps; the cosine starts at step warmup_steps
    """
    import math

    n_steps = 0
    for total, warmup, peak in cases:
        want_all = _reference_cosine_lrs(total, warmup, peak)
        where = f"(total_steps={total}, warmup_steps={warmup}, peak_lr={peak:g})"
        got_all: dict[int, float] = {}
        failure = None
        for step in range(len(want_all)):
            got, failure = _student_lr(cosine_with_warmup_lr, step, total, warmup, peak, where)
            if failure is not None:
                break
            got_all[step] = got
        wrong = [s for s, got in got_all.items()
                 if not math.isclose(got, want_all[s], rel_tol=1e-6, abs_tol=peak * 1e-9)]
        if not wrong:
            if failure is not None:
                raise failure
            n_steps += len(want_all)
            continue
        step, got, want = wrong[0], got_all[wrong[0]], want_all[wrong[0]]
        digits = _digits_to_tell_apart(got, want)
        if step == 0 and warmup > 0:
            expected = "warmup starts at 0"
        elif step < warmup:
            expected = f"warmup should be at {want:.{digits}g} = peak_lr * {step}/{warmup}"
        elif step == warmup:
            expected = f"at the end of warmup the LR is the peak, {want:.{digits}g}"
        else:
            expected = f"get_scheduler('cosine') gives {want:.{digits}g}"
        tell = f"at step {step} your LR is {got:.{digits}g} but {expected} {where}"
        named = (_matching_mistake(got_all, total, warmup, peak, sorted(got_all))
                 or _matching_mistake(got_all, total, warmup, peak, [step]))
        if named:
            raise TodoCheckError(f"{tell}: {named[0]}. Fix: {named[1]}")
        if step < warmup:
            require(False, tell, "during warmup return peak_lr * step / warmup_steps: 0 at step 0, peak_lr at step "
                    "warmup_steps")
        if step == warmup:
            require(False, tell, "for step >= warmup_steps use progress = (step - warmup_steps) / (total_steps - "
                    "warmup_steps); progress 0 gives peak_lr")
        require(False, tell, "after warmup: lr = peak_lr * 0.5 * (1 + cos(pi * progress)) with progress = (step - "
                "warmup_steps) / (total_steps - warmup_steps), which runs from 0 to 1")
    warmups = [w for _, w, _ in cases]
    passed(f'your cosine schedule matches get_scheduler("cosine") at all {n_steps} steps of {len(cases)} schedules '
           f"(warmup {min(warmups)} to {max(warmups)} steps)")
