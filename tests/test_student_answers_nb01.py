"""Notebook 01's TODO, the batch arithmetic (`effective_batch_size`, `optimizer_steps_per_epoch`, `warmup_steps`), as
students write it: near misses that the check must reject with their own mistake named (a forgotten term is named as
such, never blamed on the rounding), and right answers written differently from the solution that it must accept."""

from __future__ import annotations

import math
import time
from decimal import Decimal

import pytest

from labhelpers.checks import TodoCheckError, check_batch_math


# ------------------------------------------------------------------------------------- the solution, one per part
def eff(per_device, grad_accum, n_gpus):
    return per_device * grad_accum * n_gpus


def steps(n_examples, per_device, grad_accum, n_gpus):
    batches_per_device = math.ceil(n_examples / (per_device * n_gpus))
    return math.ceil(batches_per_device / grad_accum)


def warmup(total_steps, ratio):
    return math.ceil(total_steps * ratio)


# ------------------------------------------------------------------------------------------------ wrong answers
def eff_without_gpus(per_device, grad_accum, n_gpus):
    return per_device * grad_accum


def eff_without_accumulation(per_device, grad_accum, n_gpus):
    return per_device * n_gpus


def eff_added(per_device, grad_accum, n_gpus):
    return per_device + grad_accum + n_gpus


def eff_no_return(per_device, grad_accum, n_gpus):
    per_device * grad_accum * n_gpus  # noqa: B018  (the forgotten return)


def steps_floor(n_examples, per_device, grad_accum, n_gpus):
    return n_examples // (per_device * grad_accum * n_gpus)


def steps_without_gpus(n_examples, per_device, grad_accum, n_gpus):
    batches = math.ceil(n_examples / per_device)
    return math.ceil(batches / grad_accum)


def steps_without_accumulation(n_examples, per_device, grad_accum, n_gpus):
    return math.ceil(n_examples / (per_device * n_gpus))


def steps_without_gpus_and_floored(n_examples, per_device, grad_accum, n_gpus):
    return n_examples // per_device // grad_accum


def steps_last_accumulation_dropped(n_examples, per_device, grad_accum, n_gpus):
    batches = math.ceil(n_examples / (per_device * n_gpus))
    return batches // grad_accum


def steps_last_batch_dropped(n_examples, per_device, grad_accum, n_gpus):
    batches = n_examples // (per_device * n_gpus)
    return math.ceil(batches / grad_accum)


def steps_round(n_examples, per_device, grad_accum, n_gpus):
    return round(n_examples / (per_device * grad_accum * n_gpus))


def steps_plus_one(n_examples, per_device, grad_accum, n_gpus):
    return int(n_examples / (per_device * grad_accum * n_gpus)) + 1


def steps_fraction(n_examples, per_device, grad_accum, n_gpus):
    return n_examples / (per_device * grad_accum * n_gpus)


def steps_effective_batch_twice(n_examples, per_device, grad_accum, n_gpus):
    batches = math.ceil(n_examples / (per_device * n_gpus))
    return math.ceil(batches / (per_device * grad_accum * n_gpus))


def steps_notebook_batch_size(n_examples, per_device, grad_accum, n_gpus):
    per_device = 4  # the T4 recipe's per_device_train_batch_size, read off the table above the TODO
    return math.ceil(math.ceil(n_examples / (per_device * n_gpus)) / grad_accum)


def steps_numpy_not_imported(n_examples, per_device, grad_accum, n_gpus):
    return int(np.ceil(n_examples / (per_device * grad_accum * n_gpus)))  # noqa: F821  (np never imported)


def warmup_int(total_steps, ratio):
    return int(total_steps * ratio)


def warmup_round(total_steps, ratio):
    return round(total_steps * ratio)


def warmup_fraction(total_steps, ratio):
    return total_steps * ratio


def warmup_at_least_one(total_steps, ratio):
    return max(1, math.ceil(total_steps * ratio))


def warmup_fixed_ratio(total_steps, ratio):
    return math.ceil(total_steps * 0.1)  # the colab profile's 10 %, not the argument


def warmup_divides(total_steps, ratio):
    return math.ceil(total_steps / (1 / ratio))


# (name, the three functions, distinctive words of the message it must get)
WRONG = [
    ("effective batch without n_gpus", (eff_without_gpus, steps, warmup), "n_gpus is missing"),
    ("effective batch without grad_accum", (eff_without_accumulation, steps, warmup), "grad_accum is missing"),
    ("effective batch as a sum", (eff_added, steps, warmup), "you add the three factors"),
    ("effective batch not returned", (eff_no_return, steps, warmup),
     "returned None, expected 1: the function has no return"),
    ("steps with floor division", (eff, steps_floor, warmup), "round up (math.ceil), never down"),
    ("steps without n_gpus", (eff, steps_without_gpus, warmup), "n_gpus is missing"),
    ("steps without grad_accum", (eff, steps_without_accumulation, warmup), "grad_accum is missing"),
    ("steps without n_gpus, floored", (eff, steps_without_gpus_and_floored, warmup),
     "batches per device, and you round down"),
    ("last accumulation round dropped", (eff, steps_last_accumulation_dropped, warmup),
     "the last, partial accumulation round still makes an optimizer step"),
    ("last short batch dropped", (eff, steps_last_batch_dropped, warmup), "the last, short batch still counts"),
    ("steps rounded to the nearest", (eff, steps_round, warmup), "round() goes to the nearest whole number"),
    ("int() + 1", (eff, steps_plus_one, warmup), "adding 1 counts one step too many whenever"),
    ("steps as a fraction", (eff, steps_fraction, warmup), "returned 0.5, HF Trainer runs 1"),
    ("batches divided by the effective batch", (eff, steps_effective_batch_twice, warmup),
     "you divide by per_device (and n_gpus) twice"),
    ("per_device from the notebook", (eff, steps_notebook_batch_size, warmup), "ignores per_device"),
    ("numpy never imported", (eff, steps_numpy_not_imported, warmup),
     "optimizer_steps_per_epoch raised NameError: name 'np' is not defined"),
    ("warmup with int()", (eff, steps, warmup_int), "int() rounds down"),
    ("warmup with round()", (eff, steps, warmup_round), "round() goes to the nearest whole number"),
    ("warmup as a fraction", (eff, steps, warmup_fraction), "it is a fraction: a step count is a whole number"),
    ("at least one warmup step", (eff, steps, warmup_at_least_one), "with ratio=0.0 there is no warmup"),
    ("warmup ratio fixed at 0.1", (eff, steps, warmup_fixed_ratio), "ignores ratio"),
    ("warmup divides by 1 / ratio", (eff, steps, warmup_divides), "warmup_steps raised ZeroDivisionError"),
]


# ------------------------------------------------------------------------------------------------ right answers
def eff_math_prod(per_device, grad_accum, n_gpus):
    return math.prod((per_device, grad_accum, n_gpus))


def steps_one_ceil(n_examples, per_device, grad_accum, n_gpus):
    """One division by the effective batch: ceil(ceil(x) / a) == ceil(x / a) for a whole a."""
    return -(-n_examples // (per_device * grad_accum * n_gpus))


def steps_divmod(n_examples, per_device, grad_accum, n_gpus):
    batches, left = divmod(n_examples, per_device * n_gpus)
    batches += left > 0
    rounds, rest = divmod(batches, grad_accum)
    return rounds + (1 if rest else 0)


def steps_in_a_loop(n_examples, per_device, grad_accum, n_gpus):
    """Simulates the dataloader: a batch per device until the data runs out, a step every grad_accum batches."""
    seen, batches = 0, 0
    while seen < n_examples:
        seen += per_device * n_gpus
        batches += 1
    return (batches + grad_accum - 1) // grad_accum


def steps_float_ceil(n_examples, per_device, grad_accum, n_gpus):
    return float(math.ceil(n_examples / eff(per_device, grad_accum, n_gpus)))  # 32.0 == 32


def warmup_reversed_product(total_steps, ratio):
    return int(math.ceil(ratio * total_steps))


def warmup_int_plus_remainder(total_steps, ratio):
    product = total_steps * ratio
    return int(product) + (product % 1 > 0)


def warmup_decimal(total_steps, ratio):
    """Decimal arithmetic on the ratio as written: the same ceil as HF's float product on every case of the check."""
    return math.ceil(Decimal(total_steps) * Decimal(str(ratio)))


RIGHT = [
    ("the solution", (eff, steps, warmup)),
    ("math.prod, one ceil by negated floor division, ratio * total", (eff_math_prod, steps_one_ceil,
                                                                       warmup_reversed_product)),
    ("divmod, int + remainder", (eff, steps_divmod, warmup_int_plus_remainder)),
    ("a dataloader loop, Decimal", (eff_math_prod, steps_in_a_loop, warmup_decimal)),
    ("a float step count", (eff, steps_float_ceil, warmup)),
]


@pytest.mark.parametrize("name, functions, words", WRONG, ids=[w[0] for w in WRONG])
def test_wrong_answer_is_named(name, functions, words):
    with pytest.raises(TodoCheckError) as err:
        check_batch_math(*functions)
    assert words in str(err.value) and "Fix:" in str(err.value), str(err.value)


@pytest.mark.parametrize("name, functions", RIGHT, ids=[r[0] for r in RIGHT])
def test_right_answer_is_accepted(name, functions, capsys):
    check_batch_math(*functions)
    assert capsys.readouterr().out.startswith("✓ batch arithmetic matches HF Trainer"), name


@pytest.mark.parametrize("name, functions, words", WRONG, ids=[w[0] for w in WRONG])
def test_every_failure_is_one_clean_line(name, functions, words):
    """No crash from inside the student's code or the check: one TodoCheckError, one line, mistake and fix."""
    try:
        check_batch_math(*functions)
    except Exception as err:  # noqa: BLE001  (the test is that nothing else escapes)
        assert type(err) is TodoCheckError, f"{type(err).__name__}: {err}"
        message = str(err)
        assert "\n" not in message and message.count("Fix:") == 1 and len(message) < 900, message
    else:
        pytest.fail(f"{name} passed the check")


def test_a_forgotten_term_is_not_blamed_on_the_rounding():
    for functions in [(eff, steps_without_gpus, warmup), (eff, steps_without_accumulation, warmup)]:
        with pytest.raises(TodoCheckError) as err:
            check_batch_math(*functions)
        assert "round" not in str(err.value), str(err.value)


def test_check_cost_is_small():
    start = time.perf_counter()
    check_batch_math(eff, steps_in_a_loop, warmup)
    for functions in [(eff, steps_without_gpus_and_floored, warmup), (eff, steps, warmup_fixed_ratio)]:
        with pytest.raises(TodoCheckError):
            check_batch_math(*functions)
    assert time.perf_counter() - start < 2
