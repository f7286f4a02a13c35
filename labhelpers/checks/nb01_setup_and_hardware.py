"""TODO checks of notebook 01 (setup and hardware): the batch arithmetic (effective batch size, optimizer steps
per epoch, warmup steps) against what HF Trainer computes.

Each function is run on every case first; a wrong one is then matched against the usual near misses (a factor left
out, a division rounded down, to the nearest or not at all, a ``+ 1``, a warmup of at least one step ...) on all the
cases at once, so a forgotten term is named as such and never blamed on the rounding."""

from __future__ import annotations

import math
import numbers
from typing import Callable

from labhelpers.checks.core import TodoCheckError, call_student, passed, student_code

LAYOUTS = [(p, a, g) for p in (1, 2, 3, 4, 8) for a in (1, 2, 4, 8, 16, 3) for g in (1, 2, 4, 8)]
SIZES = (1, 7, 64, 500, 501, 720, 9999)
WARMUP_CASES = [(t, r) for t in (8, 24, 96, 141, 250, 1000) for r in (0.0, 0.03, 0.1)]

_HINTS = (
    ("NameError", "import what your line uses in the TODO cell itself (math is imported at the top of the notebook, "
                  "numpy is not), or write it with math.ceil"),
    ("ZeroDivisionError", "a ratio of 0.0 means no warmup: multiply total_steps by ratio, never divide by it"),
    ("TypeError", "the arguments are plain ints (and a float ratio): use them as numbers, e.g. math.ceil(a / b)"),
)


def _number_problem(got: object) -> str | None:
    """Why ``got`` is not a usable count (None when it is a number), as a phrase after 'returned ...'.

    >>> _number_problem("16"), _number_problem(16), _number_problem(2.5), _number_problem(None)[:26]
    ('a str, not a number', None, None, 'the function has no return')
    """
    if got is None:
        return "the function has no return (a value computed or printed on the last line is not returned)"
    if isinstance(got, bool) or not isinstance(got, numbers.Real):
        kind = type(got)
        name = kind.__name__ if kind.__module__ == "builtins" else f"{kind.__module__.split('.')[0]}.{kind.__name__}"
        return f"a {name}, not a number"
    return None


def _same(got: object, want: object) -> bool:
    """Equal numbers (floats within 1e-9 relative: a student's fraction may sum in another order)."""
    if _number_problem(got) is not None or _number_problem(want) is not None:
        return False
    return got == want or math.isclose(float(got), float(want), rel_tol=1e-9)


def _ignored(results: dict[tuple, object], reference: dict[tuple, object], names: tuple[str, ...]) -> list[str]:
    """The arguments whose changes never change ``results`` while they change ``reference``."""
    ignored = []
    for k, name in enumerate(names):
        groups: dict[tuple, tuple[set, set]] = {}
        for args, got in results.items():
            rest = args[:k] + args[k + 1:]
            mine, theirs = groups.setdefault(rest, (set(), set()))
            mine.add(repr(got))
            theirs.add(reference[args])
        if all(len(mine) == 1 for mine, _ in groups.values()) and any(len(t) > 1 for _, t in groups.values()):
            ignored.append(name)
    return ignored


def _run_all(fn: Callable, name: str, cases: list[tuple]) -> dict[tuple, object]:
    """``fn`` on every case; an error raised inside it becomes one named failure with its line and a fix."""
    results = {}
    for args in cases:
        results[args] = call_student(fn, *args, name=name, hints=_HINTS)
    return results


def _first_wrong(results: dict[tuple, object], reference: dict[tuple, object]) -> tuple | None:
    """The first case (in the order run) whose result differs from the reference, None when all agree."""
    return next((args for args, got in results.items() if not _same(got, reference[args])), None)


def _matching(results: dict[tuple, object], models: list[tuple[Callable, str, str]]) -> tuple[str, str] | None:
    """(problem, fix) of the first model that gives the student's result on every case."""
    for model, problem, fix in models:
        if all(_same(got, model(*args)) for args, got in results.items()):
            return problem, fix
    return None


# ------------------------------------------------------------------------------------------- effective batch size
_EFFECTIVE_MODELS = [
    (lambda p, a, g: p * a, "n_gpus is missing: each of the n_gpus devices runs its own per_device batch",
     "multiply by n_gpus too: per_device * grad_accum * n_gpus"),
    (lambda p, a, g: p * g, "grad_accum is missing: the gradients of grad_accum batches are summed into one step",
     "multiply by grad_accum too: per_device * grad_accum * n_gpus"),
    (lambda p, a, g: a * g, "per_device is missing: each batch holds per_device sequences",
     "multiply by per_device too: per_device * grad_accum * n_gpus"),
    (lambda p, a, g: p, "grad_accum and n_gpus are missing", "multiply all three: per_device * grad_accum * n_gpus"),
    (lambda p, a, g: p + a + g, "you add the three factors: per_device sequences on each of n_gpus devices, "
     "grad_accum times, is a product", "multiply them: per_device * grad_accum * n_gpus"),
]


def _check_effective(effective_batch_size: Callable) -> None:
    results = _run_all(effective_batch_size, "effective_batch_size", LAYOUTS)
    reference = {(p, a, g): p * a * g for p, a, g in LAYOUTS}
    wrong = _first_wrong(results, reference)
    if wrong is None:
        return
    p, a, g = wrong
    got = results[wrong]
    call = f"effective_batch_size(per_device={p}, grad_accum={a}, n_gpus={g}) returned {got!r}, expected {p * a * g}"
    kind = _number_problem(got)
    if kind:
        raise TodoCheckError(f"{call}: {kind}. Fix: return the product: return per_device * grad_accum * n_gpus")
    named = _matching(results, _EFFECTIVE_MODELS)
    if named is None:
        ignored = _ignored(results, reference, ("per_device", "grad_accum", "n_gpus"))
        if ignored:
            named = (f"your function ignores {' and '.join(ignored)}: its result never changes when "
                     f"{'they change' if len(ignored) > 1 else 'that argument does'}",
                     "use the arguments (not values from the notebook): per_device * grad_accum * n_gpus")
        else:
            named = ("every optimizer step sees per_device sequences on each of n_gpus devices, grad_accum times",
                     "multiply all three: per_device * grad_accum * n_gpus")
    raise TodoCheckError(f"{call}: {named[0]}. Fix: {named[1]}")


# ------------------------------------------------------------------------------------------ optimizer steps per epoch
def _rounding(kind: str) -> Callable[[float], float]:
    return {"ceil": math.ceil, "floor": math.floor, "round": round, "none": lambda x: x}[kind]


_TERMS = [  # (what is left out, first divisor (batches per device), second divisor (batches per step), problem, fix)
    ("right", lambda p, a, g: p * g, lambda p, a, g: a, "", ""),
    ("n_gpus", lambda p, a, g: p, lambda p, a, g: a,
     "n_gpus is missing: each of the n_gpus devices takes its own per_device examples per batch, so one pass has "
     "ceil(n_examples / (per_device x n_gpus)) batches per device",
     "divide n_examples by per_device * n_gpus"),
    ("grad_accum", lambda p, a, g: p * g, lambda p, a, g: 1,
     "grad_accum is missing: every grad_accum batches make one optimizer step",
     "divide the batches per device by grad_accum (math.ceil(batches / grad_accum))"),
    ("per_device", lambda p, a, g: g, lambda p, a, g: a,
     "per_device is missing: a batch holds per_device examples on each device",
     "divide n_examples by per_device * n_gpus"),
    ("n_gpus and grad_accum", lambda p, a, g: p, lambda p, a, g: 1,
     "n_gpus and grad_accum are missing: the n_gpus devices share the examples, and every grad_accum batches make "
     "one step", "divide n_examples by per_device * n_gpus, then the batches by grad_accum"),
    ("twice", lambda p, a, g: p * g, lambda p, a, g: p * a * g,
     "you divide by per_device (and n_gpus) twice: the batches per device already count them",
     "divide the batches per device by grad_accum alone"),
]

_ROUNDING_PROBLEMS = {  # the slip (_rounding_key) -> (problem, fix)
    "floor": ("you round down: the last, short batch and the last, partial accumulation are dropped, but HF Trainer "
              "still runs them",
              "count the last, partial batch and the last, partial accumulation as full steps: round up (math.ceil), "
              "never down (//)"),
    "floor-first": ("the last, short batch still counts: your first division rounds down",
                    "round the batches per device up: math.ceil(n_examples / (per_device * n_gpus)), not //"),
    "floor-second": ("the last, partial accumulation round still makes an optimizer step: your second division "
                     "rounds down", "round the steps up too: math.ceil(batches / grad_accum), not //"),
    "round": ("round() goes to the nearest whole number, so a last batch or accumulation less than half full is "
              "dropped", "round up with math.ceil: any leftover example makes a batch, any leftover batch a step"),
    "none": ("it is a fraction: a step count is a whole number",
             "round each division up with math.ceil: any leftover example makes a batch, any leftover batch a step"),
    "plus one": ("adding 1 counts one step too many whenever the examples fill the last step exactly",
                 "math.ceil(x) rounds up only when something is left over: use it instead of int(x) + 1"),
}


def _rounding_key(first: str, second: str) -> str:
    """Which rounding slip two divisions make ('' for none): a fraction comes out only when the last division is
    not rounded, and ceil or floor of a fraction divided by a whole number equals that of the rounded fraction.

    >>> [_rounding_key(*pair) for pair in (("ceil", "ceil"), ("none", "ceil"), ("none", "round"), ("floor", "ceil"))]
    ['', '', 'round', 'floor-first']
    """
    if second == "none":
        return "none"
    if first == "none":
        first = second
    if "round" in (first, second):
        return "round"
    return {("ceil", "ceil"): "", ("floor", "floor"): "floor", ("floor", "ceil"): "floor-first",
            ("ceil", "floor"): "floor-second"}[(first, second)]


def _steps_models() -> list[tuple[Callable, str, str]]:
    """Every near miss of optimizer_steps_per_epoch as (model, problem, fix): a left-out factor, a wrong rounding,
    or both."""
    models = []
    roundings = [(r1, r2) for r1 in ("ceil", "floor", "round", "none") for r2 in ("ceil", "floor", "round", "none")]
    for _, first, second, term_problem, term_fix in _TERMS:
        forms: list[tuple[Callable, str]] = []
        for r1, r2 in roundings:
            def model(n, p, a, g, first=first, second=second, r1=_rounding(r1), r2=_rounding(r2)):
                return r2(r1(n / first(p, a, g)) / second(p, a, g))
            forms.append((model, _rounding_key(r1, r2)))
        for one in ("round", "none"):  # one division by the product
            forms.append((lambda n, p, a, g, first=first, second=second, r=_rounding(one):
                          r(n / (first(p, a, g) * second(p, a, g))), one))
        forms.append((lambda n, p, a, g, first=first, second=second:
                      int(n / (first(p, a, g) * second(p, a, g))) + 1, "plus one"))
        for model, key in forms:
            if not term_problem and not key:
                continue  # the right answer
            problems = [x for x in (term_problem, _ROUNDING_PROBLEMS[key][0] if key else "") if x]
            fixes = [x for x in (term_fix, _ROUNDING_PROBLEMS[key][1] if key else "") if x]
            models.append((model, ", and ".join(problems), "; ".join(fixes)))
    return models


def _check_steps(optimizer_steps_per_epoch: Callable) -> None:
    from labhelpers.base.batching import effective_batch

    cases = [(n, p, a, g) for p, a, g in LAYOUTS for n in SIZES]
    results = _run_all(optimizer_steps_per_epoch, "optimizer_steps_per_epoch", cases)
    reference = {(n, p, a, g): effective_batch(p, a, g, n_examples=n).optimizer_steps_per_epoch for n, p, a, g in cases}
    wrong = _first_wrong(results, reference)
    if wrong is None:
        return
    n, p, a, g = wrong
    got, want, batches = results[wrong], reference[wrong], -(-n // (p * g))
    call = (f"optimizer_steps_per_epoch(n_examples={n}, per_device={p}, grad_accum={a}, n_gpus={g}) returned {got!r}, "
            f"HF Trainer runs {want} (each device gets ceil({n} / ({p} x {g})) = {batches} batches, {a} per optimizer "
            f"step: ceil({batches} / {a}) = {want})")
    kind = _number_problem(got)
    if kind:
        raise TodoCheckError(f"{call}: {kind}. Fix: return the count: batches_per_device = math.ceil(n_examples / "
                             "(per_device * n_gpus)), then return math.ceil(batches_per_device / grad_accum)")
    named = _matching(results, _steps_models())
    if named is None:
        ignored = _ignored(results, reference, ("n_examples", "per_device", "grad_accum", "n_gpus"))
        if ignored:
            named = (f"your function ignores {' and '.join(ignored)}: its result never changes when "
                     f"{'they change' if len(ignored) > 1 else 'that argument does'}",
                     "use the arguments (not values from the notebook): batches_per_device = math.ceil(n_examples / "
                     "(per_device * n_gpus)), then math.ceil(batches_per_device / grad_accum)")
        else:
            named = ("this is none of the usual slips (a factor left out, a division that is not rounded up)",
                     "compute batches_per_device = math.ceil(n_examples / (per_device * n_gpus)), then "
                     "math.ceil(batches_per_device / grad_accum)")
    raise TodoCheckError(f"{call}: {named[0]}. Fix: {named[1]}")


# ------------------------------------------------------------------------------------------------------ warmup steps
_WARMUP_FIX = "TrainingArguments.get_warmup_steps rounds the product up: return math.ceil(total_steps * ratio)"
_WARMUP_MODELS = [
    (lambda t, r: int(t * r), "int() rounds down (so do // and math.floor): HF rounds up", _WARMUP_FIX),
    (lambda t, r: round(t * r), "round() goes to the nearest whole number (and .5 to the even one): HF rounds up",
     _WARMUP_FIX),
    (lambda t, r: t * r, "it is a fraction: a step count is a whole number", _WARMUP_FIX),
    (lambda t, r: max(1, math.ceil(t * r)), "with ratio=0.0 there is no warmup: HF gives 0 steps, your max(1, ...) "
     "gives 1", "return math.ceil(total_steps * ratio) as it is (0 when the ratio is 0)"),
    (lambda t, r: int(t * r) + 1, "adding 1 counts one warmup step too many when the product is whole (with ratio "
     "0.0 too)", "math.ceil(x) rounds up only when something is left over: use it instead of int(x) + 1"),
    (lambda t, r: math.ceil(t * r / 100), "you treat the ratio as a percentage: 0.1 is already 10 %",
     "multiply by the ratio as it is: math.ceil(total_steps * ratio)"),
]


def _check_warmup(warmup_steps: Callable) -> None:
    from labhelpers.base.batching import effective_batch

    results = _run_all(warmup_steps, "warmup_steps", WARMUP_CASES)
    reference = {(t, r): effective_batch(1, 1, 1, n_examples=t, warmup_ratio=r).warmup_steps for t, r in WARMUP_CASES}
    wrong = _first_wrong(results, reference)
    if wrong is None:
        return
    total, ratio = wrong
    got, want = results[wrong], reference[wrong]
    call = (f"warmup_steps(total_steps={total}, ratio={ratio}) returned {got!r}, HF computes "
            f"math.ceil({total} * {ratio}) = {want}")
    kind = _number_problem(got)
    if kind:
        raise TodoCheckError(f"{call}: {kind}. Fix: return math.ceil(total_steps * ratio)")
    named = _matching(results, _WARMUP_MODELS)
    if named is None:
        ignored = _ignored(results, reference, ("total_steps", "ratio"))
        if ignored:
            named = (f"your function ignores {' and '.join(ignored)}: its result never changes when "
                     f"{'they change' if len(ignored) > 1 else 'that argument does'}",
                     "use the arguments (not a ratio from the notebook): math.ceil(total_steps * ratio)")
        else:
            named = ("the warmup is the product of total_steps and ratio, rounded up", _WARMUP_FIX)
    raise TodoCheckError(f"{call}: {named[0]}. Fix: {named[1]}")


@student_code("effective_batch_size", "optimizer_steps_per_epoch", "warmup_steps")
def check_batch_math(effective_batch_size, optimizer_steps_per_epoch, warmup_steps) -> None:
    """Compare the student's batch arithmetic with :func:`labhelpers.base.batching.effective_batch` on many cases, naming
    the near miss (a factor left out, the wrong rounding) from all the cases at once.

    >>> eff = lambda p, a, g: p * a * g
    >>> steps = lambda n, p, a, g: math.ceil(math.ceil(n / (p * g)) / a)
    >>> check_batch_math(eff, steps, lambda total, ratio: math.ceil(total * ratio))
    ✓ batch arithmetic matches HF Trainer on 840 layouts and 18 warmup cases
    >>> check_batch_math(eff, lambda n, p, a, g: n // (p * a * g), lambda t, r: math.ceil(t * r))
    Traceback (most recent call last):
    ...
    labhelpers.checks.TodoCheckError: optimizer_steps_per_epoch(n_examples=1, per_device=1, grad_accum=1, n_gpus=2) returned 0, HF Trainer runs 1 (each device gets ceil(1 / (1 x 2)) = 1 batches, 1 per optimizer step: ceil(1 / 1) = 1): you round down: the last, short batch and the last, partial accumulation are dropped, but HF Trainer still runs them. Fix: count the last, partial batch and the last, partial accumulation as full steps: round up (math.ceil), never down (//)
    >>> check_batch_math(eff, lambda n, p, a, g: math.ceil(math.ceil(n / p) / a), lambda t, r: math.ceil(t * r))
    Traceback (most recent call last):
    ...
    labhelpers.checks.TodoCheckError: optimizer_steps_per_epoch(n_examples=7, per_device=1, grad_accum=1, n_gpus=2) returned 7, HF Trainer runs 4 (each device gets ceil(7 / (1 x 2)) = 4 batches, 1 per optimizer step: ceil(4 / 1) = 4): n_gpus is missing: each of the n_gpus devices takes its own per_device examples per batch, so one pass has ceil(n_examples / (per_device x n_gpus)) batches per device. Fix: divide n_examples by per_device * n_gpus
    """
    _check_effective(effective_batch_size)
    _check_steps(optimizer_steps_per_epoch)
    _check_warmup(warmup_steps)
    passed(f"batch arithmetic matches HF Trainer on {len(LAYOUTS) * len(SIZES)} layouts and {len(WARMUP_CASES)} "
           "warmup cases")
