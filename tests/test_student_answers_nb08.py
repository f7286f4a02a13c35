"""Notebook 08's TODO, `cosine_with_warmup_lr(step, total_steps, warmup_steps, peak_lr)`, as students write it: near
misses that the check must reject with their own mistake named, and right answers written differently from the solution
that it must accept. The check's schedules expose each mistake (warmup 0, warmup 1, warmup = total_steps - 1, the colab
run's); every failure is one clean line."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from labhelpers.checks import TodoCheckError, check_cosine_schedule


def _cos(p):
    return 0.5 * (1 + math.cos(math.pi * p))


# ------------------------------------------------------------------------------------------- wrong answers
def warmup_off_by_one(step, total_steps, warmup_steps, peak_lr):
    if step < warmup_steps:
        return peak_lr * (step + 1) / warmup_steps
    return peak_lr * _cos((step - warmup_steps) / (total_steps - warmup_steps))


def counts_from_one(step, total_steps, warmup_steps, peak_lr):
    step += 1  # "the first step is step 1"
    if step < warmup_steps:
        return peak_lr * step / warmup_steps
    return peak_lr * _cos((step - warmup_steps) / (total_steps - warmup_steps))


def reaches_peak_early(step, total_steps, warmup_steps, peak_lr):
    if step < warmup_steps:
        return peak_lr * step / max(1, warmup_steps - 1)
    return peak_lr * _cos((step - warmup_steps) / (total_steps - warmup_steps))


def floor_division(step, total_steps, warmup_steps, peak_lr):
    if step < warmup_steps:
        return peak_lr * (step // warmup_steps)
    return peak_lr * _cos((step - warmup_steps) / (total_steps - warmup_steps))


def divides_by_total(step, total_steps, warmup_steps, peak_lr):
    if step < warmup_steps:
        return peak_lr * step / warmup_steps
    return peak_lr * _cos((step - warmup_steps) / total_steps)  # max_steps, not max_steps - warmup


def progress_from_zero(step, total_steps, warmup_steps, peak_lr):
    if step < warmup_steps:
        return peak_lr * step / warmup_steps
    return peak_lr * _cos(step / total_steps)


def one_step_too_many(step, total_steps, warmup_steps, peak_lr):
    if step < warmup_steps:
        return peak_lr * step / warmup_steps
    return peak_lr * _cos((step - warmup_steps) / (total_steps - warmup_steps + 1))  # never reaches 0


def one_step_too_few(step, total_steps, warmup_steps, peak_lr):
    if step < warmup_steps:
        return peak_lr * step / warmup_steps
    return peak_lr * _cos((step - warmup_steps) / max(1, total_steps - warmup_steps - 1))  # past the end: back up


def degrees(step, total_steps, warmup_steps, peak_lr):
    if step < warmup_steps:
        return peak_lr * step / warmup_steps
    progress = (step - warmup_steps) / (total_steps - warmup_steps)
    return peak_lr * 0.5 * (1 + math.cos(180 * progress))


def linear_decay(step, total_steps, warmup_steps, peak_lr):
    if step < warmup_steps:
        return peak_lr * step / warmup_steps
    return peak_lr * (1 - (step - warmup_steps) / (total_steps - warmup_steps))


def negative_cosine(step, total_steps, warmup_steps, peak_lr):
    if step < warmup_steps:
        return peak_lr * step / warmup_steps
    return peak_lr * math.cos(math.pi * (step - warmup_steps) / (total_steps - warmup_steps))


def forgets_the_one(step, total_steps, warmup_steps, peak_lr):
    if step < warmup_steps:
        return peak_lr * step / warmup_steps
    return peak_lr * 0.5 * math.cos(math.pi * (step - warmup_steps) / (total_steps - warmup_steps))


def no_warmup_branch(step, total_steps, warmup_steps, peak_lr):
    progress = (step - warmup_steps) / (total_steps - warmup_steps)
    return peak_lr * 0.5 * (1 + math.cos(math.pi * progress))


def divides_by_zero(step, total_steps, warmup_steps, peak_lr):
    warm = min(1.0, step / warmup_steps)
    progress = max(0.0, (step - warmup_steps) / (total_steps - warmup_steps))
    return peak_lr * warm * 0.5 * (1 + math.cos(math.pi * progress))


def numpy_divides_by_zero(step, total_steps, warmup_steps, peak_lr):
    with np.errstate(divide="ignore", invalid="ignore"):
        warm = np.float64(step) / warmup_steps
    if step <= warmup_steps:
        return float(peak_lr * warm)
    return float(peak_lr * 0.5 * (1 + np.cos(np.pi * (step - warmup_steps) / (total_steps - warmup_steps))))


def no_return_after_warmup(step, total_steps, warmup_steps, peak_lr):
    if step < warmup_steps:
        return peak_lr * step / warmup_steps
    lr = peak_lr * _cos((step - warmup_steps) / (total_steps - warmup_steps))  # noqa: F841  (forgot the return)


def a_tensor(step, total_steps, warmup_steps, peak_lr):
    import torch

    if step < warmup_steps:
        return torch.tensor(peak_lr * step / warmup_steps)
    return peak_lr * 0.5 * (1 + torch.cos(torch.tensor(math.pi * (step - warmup_steps) / (total_steps - warmup_steps))))


def torch_cos_of_a_float(step, total_steps, warmup_steps, peak_lr):
    import torch

    if step < warmup_steps:
        return peak_lr * step / warmup_steps
    return peak_lr * 0.5 * (1 + torch.cos(math.pi * (step - warmup_steps) / (total_steps - warmup_steps)))


# (name, student function, distinctive words of the message it must get)
WRONG = [
    ("warmup (step + 1) / warmup", warmup_off_by_one, "your warmup is off by one"),
    ("steps counted from 1", counts_from_one, "counts steps from 1"),
    ("warmup reaches the peak a step early", reaches_peak_early, "divides by warmup_steps - 1"),
    ("warmup with //", floor_division, "integer division"),
    ("max_steps instead of max_steps - warmup", divides_by_total, "divides by total_steps, not total_steps - warmup_steps"),
    ("progress from step 0", progress_from_zero, "measures progress as step / total_steps"),
    ("decay over one step too many", one_step_too_many, "does not reach 0 at the last step"),
    ("decay over one step too few", one_step_too_few, "goes past the end of the decay"),
    ("degrees, not radians", degrees, "radians"),
    ("linear decay", linear_decay, "linear decay"),
    ("goes negative", negative_cosine, "missing the 0.5 * (1 + ...)"),
    ("0.5 * cos without the 1 +", forgets_the_one, "missing the 1 +"),
    ("no warmup branch", no_warmup_branch, "no warmup branch"),
    ("divides by warmup_steps = 0", divides_by_zero, "divided by zero"),
    ("numpy 0/0 is nan", numpy_divides_by_zero, "warmup_steps=0"),
    ("no return after warmup", no_return_after_warmup, "returned None"),
    ("a tensor", a_tensor, "return the LR as a Python float"),
    ("torch.cos of a float", torch_cos_of_a_float, "at step 10 cosine_with_warmup_lr raised TypeError"),
]


# ------------------------------------------------------------------------------------------- right answers
def with_numpy(step, total_steps, warmup_steps, peak_lr):
    """numpy's cos and pi, a conditional expression, a numpy float returned."""
    if warmup_steps > 0 and step < warmup_steps:
        return np.float64(peak_lr) * step / warmup_steps
    progress = (step - warmup_steps) / (total_steps - warmup_steps) if total_steps > warmup_steps else 1.0
    return peak_lr * (np.cos(np.pi * progress) + 1) / 2


def vectorised(step, total_steps, warmup_steps, peak_lr):
    """The whole schedule at once with np.where, then the step's value."""
    steps = np.arange(total_steps + 1, dtype=np.float64)
    ramp = peak_lr * steps / max(warmup_steps, 1)
    decay = peak_lr * 0.5 * (1 + np.cos(np.pi * (steps - warmup_steps) / max(total_steps - warmup_steps, 1)))
    return float(np.where(steps < warmup_steps, ramp, decay)[step])


def in_degrees_on_purpose(step, total_steps, warmup_steps, peak_lr):
    """Half a turn as 180 degrees, converted with math.radians; the ramp as a min()."""
    if step >= warmup_steps:
        fraction = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return peak_lr * (1 + math.cos(math.radians(180 * fraction))) / 2
    return peak_lr * min(1.0, step / warmup_steps)


def squared_cosine(step, total_steps, warmup_steps, peak_lr):
    """0.5 * (1 + cos x) = cos(x / 2) ** 2."""
    if step < warmup_steps:
        return step / warmup_steps * peak_lr
    x = math.pi * (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return peak_lr * math.cos(x / 2) ** 2


def transformers_lambda(step, total_steps, warmup_steps, peak_lr, num_cycles=0.5):
    """The lr_lambda of transformers' get_cosine_schedule_with_warmup, times the peak."""
    if step < warmup_steps:
        return peak_lr * float(step) / float(max(1, warmup_steps))
    progress = float(step - warmup_steps) / float(max(1, total_steps - warmup_steps))
    return peak_lr * max(0.0, 0.5 * (1.0 + math.cos(math.pi * float(num_cycles) * 2.0 * progress)))


def numpy_float32(step, total_steps, warmup_steps, peak_lr):
    """Single precision: a float32 result is within the check's tolerance."""
    if step < warmup_steps:
        return np.float32(peak_lr * step / warmup_steps)
    return np.float32(peak_lr * _cos((step - warmup_steps) / (total_steps - warmup_steps)))


RIGHT = [
    ("numpy, conditional expression", with_numpy),
    ("vectorised np.where", vectorised),
    ("degrees through math.radians", in_degrees_on_purpose),
    ("cos squared of the half angle", squared_cosine),
    ("transformers' lr_lambda", transformers_lambda),
    ("numpy float32", numpy_float32),
]


@pytest.mark.parametrize("name, student, words", WRONG, ids=[w[0] for w in WRONG])
def test_wrong_schedule_is_named(name, student, words):
    with pytest.raises(TodoCheckError) as err:
        check_cosine_schedule(student)
    assert words in str(err.value) and "Fix:" in str(err.value), str(err.value)


@pytest.mark.parametrize("name, student", RIGHT, ids=[r[0] for r in RIGHT])
def test_right_schedule_is_accepted(name, student, capsys):
    check_cosine_schedule(student)
    assert capsys.readouterr().out.startswith('✓ your cosine schedule matches get_scheduler("cosine")'), name


@pytest.mark.parametrize("name, student, words", WRONG, ids=[w[0] for w in WRONG])
def test_every_failure_is_one_clean_line(name, student, words):
    """A TodoCheckError, never another exception from inside the student's code or the check; one line in Jupyter."""
    try:
        check_cosine_schedule(student)
    except TodoCheckError as err:
        shown = err._render_traceback_()
        assert type(err) is TodoCheckError and len(shown) == 1 and "\n" not in shown[0], shown
        assert "Traceback" not in shown[0]
    else:
        pytest.fail(f"{name} was accepted")


def test_the_values_shown_differ():
    """The LR the message shows for the student and the one it expects never print the same."""
    import re

    for name, student, _ in WRONG:
        with pytest.raises(TodoCheckError) as err:
            check_cosine_schedule(student)
        shown = re.search(r"your LR is (\S+) but .*?(?:gives|peak,|be at) (\S+?) ", str(err.value))
        if shown:
            assert shown.group(1) != shown.group(2), (name, str(err.value))


def test_the_default_schedules_include_the_edge_cases_and_the_colab_run():
    import inspect

    from labhelpers.model.hardware import detect_recipe

    cases = inspect.signature(check_cosine_schedule).parameters["cases"].default
    warmups = {(total, warmup) for total, warmup, _ in cases}
    assert any(w == 0 for _, w in warmups) and any(w == 1 for _, w in warmups)
    assert any(w == t - 1 for t, w in warmups)
    plan = detect_recipe("colab").plan()
    assert (plan.total_steps, plan.warmup_steps) in warmups


def test_the_check_cost_is_small():
    start = time.perf_counter()
    check_cosine_schedule(squared_cosine)
    assert time.perf_counter() - start < 3


def test_the_solution_notebooks_answer_passes(capsys):
    """The TODO cell of solutions/08_lr_schedulers.ipynb, as it is, passes the check."""
    import json
    from pathlib import Path

    cells = json.loads((Path(__file__).parents[1] / "solutions" / "08_lr_schedulers.ipynb").read_text())["cells"]
    source = next("".join(c["source"]) for c in cells if "def cosine_with_warmup_lr" in "".join(c["source"]))
    namespace: dict = {"math": math}
    exec(source, namespace)
    check_cosine_schedule(namespace["cosine_with_warmup_lr"])
    assert capsys.readouterr().out.startswith('✓ your cosine schedule matches get_scheduler("cosine")')
