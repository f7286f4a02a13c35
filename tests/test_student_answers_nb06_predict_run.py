"""Notebook 06's optional TODO, `predict_run(config, batches_per_epoch)`, as students write it: near misses that the
check must reject with their own mistake named (one clean line, with the fix), and right answers written differently
from the solution that it must accept. The check's configs expose each mistake: gradient accumulation that does not
divide the batches, max_steps below and above what the epochs make, a run that is not a multiple of eval_steps, shares
of the run (float eval_steps/save_steps/warmup_steps below 1), warmup as a step count (3, and exactly 1)."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from labhelpers.checks import TodoCheckError, check_predict_run, predict_run_cases

KEYS = ("steps", "evaluations", "checkpoints", "warmup_steps")


# ------------------------------------------------------------------------------------------- wrong answers
def floor_accumulation(config, batches_per_epoch):
    per_epoch = batches_per_epoch // config.gradient_accumulation_steps  # the last, partial group is lost
    steps = config.max_steps if config.max_steps > 0 else math.ceil(config.num_train_epochs * per_epoch)
    every = lambda v: math.ceil(steps * v) if v < 1 else int(v)  # noqa: E731
    return {"steps": steps, "evaluations": math.ceil(steps / every(config.eval_steps)) + config.eval_on_start,
            "checkpoints": math.ceil(steps / every(config.save_steps)),
            "warmup_steps": math.ceil(steps * config.warmup_steps) if config.warmup_steps < 1 else config.warmup_steps}


def no_accumulation(config, batches_per_epoch):
    steps = config.max_steps if config.max_steps > 0 else math.ceil(config.num_train_epochs * batches_per_epoch)
    every = lambda v: math.ceil(steps * v) if v < 1 else int(v)  # noqa: E731
    return {"steps": steps, "evaluations": math.ceil(steps / every(config.eval_steps)) + config.eval_on_start,
            "checkpoints": math.ceil(steps / every(config.save_steps)),
            "warmup_steps": math.ceil(steps * config.warmup_steps) if config.warmup_steps < 1 else config.warmup_steps}


def _rest(config, steps):
    """The right evaluations, checkpoints and warmup for ``steps`` (the part the steps mistakes below get right)."""
    every = lambda v: math.ceil(steps * v) if v < 1 else int(v)  # noqa: E731
    return {"steps": steps, "evaluations": math.ceil(steps / every(config.eval_steps)) + config.eval_on_start,
            "checkpoints": math.ceil(steps / every(config.save_steps)),
            "warmup_steps": math.ceil(steps * config.warmup_steps) if config.warmup_steps < 1 else config.warmup_steps}


def max_steps_ignored(config, batches_per_epoch):
    per_epoch = math.ceil(batches_per_epoch / config.gradient_accumulation_steps)
    return _rest(config, math.ceil(config.num_train_epochs * per_epoch))


def epochs_first(config, batches_per_epoch):
    per_epoch = math.ceil(batches_per_epoch / config.gradient_accumulation_steps)
    steps = math.ceil(config.num_train_epochs * per_epoch) if config.num_train_epochs else config.max_steps
    return _rest(config, steps)


def max_steps_per_epoch(config, batches_per_epoch):
    per_epoch = math.ceil(batches_per_epoch / config.gradient_accumulation_steps)
    if config.max_steps > 0:
        return _rest(config, math.ceil(config.num_train_epochs * config.max_steps))  # "max steps of each epoch"
    return _rest(config, math.ceil(config.num_train_epochs * per_epoch))


def max_steps_capped_by_epochs(config, batches_per_epoch):
    per_epoch = math.ceil(batches_per_epoch / config.gradient_accumulation_steps)
    epoch_steps = math.ceil(config.num_train_epochs * per_epoch)
    return _rest(config, min(config.max_steps, epoch_steps) if config.max_steps > 0 else epoch_steps)


def max_steps_truthy(config, batches_per_epoch):
    per_epoch = math.ceil(batches_per_epoch / config.gradient_accumulation_steps)
    steps = config.max_steps if config.max_steps else math.ceil(config.num_train_epochs * per_epoch)  # -1 is truthy
    every = lambda v: max(1, math.ceil(steps * v)) if v < 1 else int(v)  # noqa: E731
    return {"steps": steps, "evaluations": math.ceil(steps / every(config.eval_steps)) + config.eval_on_start,
            "checkpoints": math.ceil(steps / every(config.save_steps)),
            "warmup_steps": _warmup(config, max(0, steps))}


def epochs_forgotten(config, batches_per_epoch):
    per_epoch = math.ceil(batches_per_epoch / config.gradient_accumulation_steps)
    return _rest(config, config.max_steps if config.max_steps > 0 else per_epoch)


def steps_not_rounded(config, batches_per_epoch):
    per_epoch = batches_per_epoch / config.gradient_accumulation_steps
    steps = config.max_steps if config.max_steps > 0 else config.num_train_epochs * per_epoch
    return {**_rest(config, math.ceil(steps)), "steps": steps}


def _points(steps, value, final=True, always=False):
    every = math.ceil(steps * value) if value < 1 else int(value)
    return steps // every + (1 if always else (final and steps % every != 0))


def _steps(config, batches_per_epoch):
    per_epoch = math.ceil(batches_per_epoch / config.gradient_accumulation_steps)
    return config.max_steps if config.max_steps > 0 else math.ceil(config.num_train_epochs * per_epoch)


def _warmup(config, steps):
    return math.ceil(steps * config.warmup_steps) if config.warmup_steps < 1 else int(config.warmup_steps)


def start_not_counted(config, batches_per_epoch):
    steps = _steps(config, batches_per_epoch)
    return {"steps": steps, "evaluations": _points(steps, config.eval_steps),
            "checkpoints": _points(steps, config.save_steps), "warmup_steps": _warmup(config, steps)}


def start_always_counted(config, batches_per_epoch):
    steps = _steps(config, batches_per_epoch)
    return {"steps": steps, "evaluations": 1 + _points(steps, config.eval_steps),  # "the baseline evaluation"
            "checkpoints": _points(steps, config.save_steps), "warmup_steps": _warmup(config, steps)}


def final_not_counted(config, batches_per_epoch):
    steps = _steps(config, batches_per_epoch)
    return {"steps": steps, "evaluations": _points(steps, config.eval_steps, final=False) + config.eval_on_start,
            "checkpoints": _points(steps, config.save_steps, final=False), "warmup_steps": _warmup(config, steps)}


def final_always_counted(config, batches_per_epoch):
    steps = _steps(config, batches_per_epoch)
    return {"steps": steps, "evaluations": _points(steps, config.eval_steps, always=True) + config.eval_on_start,
            "checkpoints": _points(steps, config.save_steps, always=True), "warmup_steps": _warmup(config, steps)}


def checkpoint_final_not_counted(config, batches_per_epoch):
    steps = _steps(config, batches_per_epoch)
    return {"steps": steps, "evaluations": _points(steps, config.eval_steps) + config.eval_on_start,
            "checkpoints": (steps // int(config.save_steps) if config.save_steps >= 1  # the last step left out
                            else _points(steps, config.save_steps)),
            "warmup_steps": _warmup(config, steps)}


def share_as_int(config, batches_per_epoch):
    steps = _steps(config, batches_per_epoch)
    every_eval, every_save = int(config.eval_steps), int(config.save_steps)  # 0.125 -> 0
    return {"steps": steps, "evaluations": -(-steps // every_eval) + config.eval_on_start,
            "checkpoints": -(-steps // every_save), "warmup_steps": _warmup(config, steps)}


def share_as_step_count(config, batches_per_epoch):
    steps = _steps(config, batches_per_epoch)
    every_eval, every_save = max(1, int(config.eval_steps)), max(1, int(config.save_steps))
    return {"steps": steps, "evaluations": -(-steps // every_eval) + config.eval_on_start,
            "checkpoints": -(-steps // every_save), "warmup_steps": _warmup(config, steps)}


def share_in_range(config, batches_per_epoch):
    steps = _steps(config, batches_per_epoch)
    points = {}
    for name in ("eval", "save"):
        every = int(getattr(config, f"{name}_steps"))  # 0.125 -> 0, and range(0, ..., 0) raises ValueError
        points[name] = len(range(every, steps + 1, every)) + (steps % every != 0)
    return {"steps": steps, "evaluations": points["eval"] + config.eval_on_start, "checkpoints": points["save"],
            "warmup_steps": _warmup(config, steps)}


def share_rounded_down(config, batches_per_epoch):
    steps = _steps(config, batches_per_epoch)
    every = lambda v: max(1, int(steps * v)) if v < 1 else int(v)  # noqa: E731
    return {"steps": steps, "evaluations": math.ceil(steps / every(config.eval_steps)) + config.eval_on_start,
            "checkpoints": math.ceil(steps / every(config.save_steps)), "warmup_steps": _warmup(config, steps)}


def warmup_floored(config, batches_per_epoch):
    steps = _steps(config, batches_per_epoch)
    warmup = int(steps * config.warmup_steps) if config.warmup_steps < 1 else int(config.warmup_steps)
    return {"steps": steps, "evaluations": _points(steps, config.eval_steps) + config.eval_on_start,
            "checkpoints": _points(steps, config.save_steps), "warmup_steps": warmup}


def warmup_always_a_ratio(config, batches_per_epoch):
    steps = _steps(config, batches_per_epoch)
    return {"steps": steps, "evaluations": _points(steps, config.eval_steps) + config.eval_on_start,
            "checkpoints": _points(steps, config.save_steps), "warmup_steps": math.ceil(steps * config.warmup_steps)}


def warmup_one_is_a_ratio(config, batches_per_epoch):
    steps = _steps(config, batches_per_epoch)
    warmup = int(config.warmup_steps) if config.warmup_steps > 1 else math.ceil(steps * config.warmup_steps)
    return {"steps": steps, "evaluations": _points(steps, config.eval_steps) + config.eval_on_start,
            "checkpoints": _points(steps, config.save_steps), "warmup_steps": warmup}


def warmup_not_rounded(config, batches_per_epoch):
    steps = _steps(config, batches_per_epoch)
    warmup = steps * config.warmup_steps if config.warmup_steps < 1 else config.warmup_steps
    return {"steps": steps, "evaluations": _points(steps, config.eval_steps) + config.eval_on_start,
            "checkpoints": _points(steps, config.save_steps), "warmup_steps": warmup}


def warmup_ratio_field(config, batches_per_epoch):
    steps = _steps(config, batches_per_epoch)
    return {"steps": steps, "evaluations": _points(steps, config.eval_steps) + config.eval_on_start,
            "checkpoints": _points(steps, config.save_steps), "warmup_steps": math.ceil(steps * config.warmup_ratio)}


def key_misspelled(config, batches_per_epoch):
    steps = _steps(config, batches_per_epoch)
    return {"steps": steps, "evaluations": _points(steps, config.eval_steps) + config.eval_on_start,
            "checkpoints": _points(steps, config.save_steps), "warmup": _warmup(config, steps)}


def key_missing(config, batches_per_epoch):
    steps = _steps(config, batches_per_epoch)
    return {"steps": steps, "evaluations": _points(steps, config.eval_steps) + config.eval_on_start,
            "warmup_steps": _warmup(config, steps)}


def a_tuple(config, batches_per_epoch):
    steps = _steps(config, batches_per_epoch)
    return (steps, _points(steps, config.eval_steps) + config.eval_on_start, _points(steps, config.save_steps),
            _warmup(config, steps))


def no_return(config, batches_per_epoch):
    steps = _steps(config, batches_per_epoch)
    result = {"steps": steps, "evaluations": _points(steps, config.eval_steps) + config.eval_on_start,  # noqa: F841
              "checkpoints": _points(steps, config.save_steps), "warmup_steps": _warmup(config, steps)}


def config_as_a_dict(config, batches_per_epoch):
    per_epoch = math.ceil(batches_per_epoch / config["gradient_accumulation_steps"])
    return {"steps": per_epoch}


def a_value_as_text(config, batches_per_epoch):
    steps = _steps(config, batches_per_epoch)
    return {"steps": steps, "evaluations": _points(steps, config.eval_steps) + config.eval_on_start,
            "checkpoints": _points(steps, config.save_steps), "warmup_steps": f"{_warmup(config, steps)} steps"}


# (name, student function, distinctive words of the message it must get)
WRONG = [
    ("accumulation floors the partial group", floor_accumulation, "the last, partial group still steps"),
    ("gradient accumulation ignored", no_accumulation, "one optimizer step consumes gradient_accumulation_steps=4"),
    ("max_steps ignored", max_steps_ignored, "it overrides num_train_epochs"),
    ("epochs used when max_steps is set", epochs_first, "it overrides num_train_epochs"),
    ("max_steps read per epoch", max_steps_per_epoch, "the whole run's optimizer steps, not steps per epoch"),
    ("max_steps capped at the epochs", max_steps_capped_by_epochs, "runs extra epochs"),
    ("max_steps=-1 taken as set", max_steps_truthy, "max_steps=-1 means not set"),
    ("num_train_epochs forgotten", epochs_forgotten, "num_train_epochs=3.0 repeats"),
    ("steps not rounded", steps_not_rounded, "steps is 93.75, not a whole number"),
    ("eval_on_start not counted", start_not_counted, "eval_on_start=True adds one"),
    ("eval_on_start always counted", start_always_counted, "eval_on_start is False in this config"),
    ("no evaluation at the last step", final_not_counted, "plus one at the last step"),
    ("the last step counted twice", final_always_counted, "already a multiple of 5"),
    ("no checkpoint at the last step", checkpoint_final_not_counted,
     "every 14 steps in 30 gives 2, plus one at the last step"),
    ("a share through int() divides by 0", share_as_int, "is a share of the run"),
    ("a share read as a step count", share_as_step_count, "is below 1: a share of the run"),
    ("a share through range()", share_in_range, "is a share of the run"),
    ("a share rounded down", share_rounded_down, "rounds the share up"),
    ("warmup rounded down", warmup_floored, "rounds it up"),
    ("warmup >= 1 read as a ratio", warmup_always_a_ratio, "warmup_steps=3 is a step count"),
    ("warmup 1 read as a ratio", warmup_one_is_a_ratio, "warmup_steps=1 is a step count"),
    ("warmup share not rounded", warmup_not_rounded, "warmup_steps is 9.6, not a whole number"),
    ("the old warmup_ratio field", warmup_ratio_field, "no warmup_ratio"),
    ("a key misspelled", key_misspelled, "no key 'warmup_steps' (you wrote 'warmup'"),
    ("a key missing", key_missing, "no key 'checkpoints'"),
    ("a tuple", a_tuple, "returned a tuple"),
    ("no return", no_return, "returned None"),
    ("config read as a dict", config_as_a_dict, "config.gradient_accumulation_steps"),
    ("a value as text", a_value_as_text, "warmup_steps is '4 steps'"),
]


# ------------------------------------------------------------------------------------------- right answers
def ceil_idiom(config, batches_per_epoch):
    """Integer ceil division -(-a // b) everywhere, no math import."""
    per_epoch = -(-batches_per_epoch // config.gradient_accumulation_steps)
    steps = config.max_steps if config.max_steps > 0 else int(-(-config.num_train_epochs * per_epoch // 1))
    interval = {k: (-(-steps * v // 1) if v < 1 else v) for k, v in (("eval", config.eval_steps),
                                                                    ("save", config.save_steps))}
    w = config.warmup_steps
    return {"steps": steps, "evaluations": -(-steps // interval["eval"]) + (1 if config.eval_on_start else 0),
            "checkpoints": -(-steps // interval["save"]), "warmup_steps": w if w >= 1 else -(-steps * w // 1)}


def simulated_loop(config, batches_per_epoch):
    """Count the steps as the training loop takes them: batch by batch, a step every accumulation group or at the
    end of an epoch, until max_steps or the last epoch; evaluate and save on the interval and at the last step."""
    accum = config.gradient_accumulation_steps
    limit = config.max_steps if config.max_steps > 0 else None
    epochs = config.num_train_epochs
    step, epoch = 0, 0
    while (limit is None and epoch < epochs) or (limit is not None and step < limit):
        for batch in range(1, batches_per_epoch + 1):
            if batch % accum == 0 or batch == batches_per_epoch:
                step += 1
                if limit is not None and step == limit:
                    break
        epoch += 1
    if limit is None and epochs != int(epochs):  # never the case in the check's configs, kept for completeness
        step = math.ceil(epochs * math.ceil(batches_per_epoch / accum))

    def when(value):
        every = math.ceil(step * value) if 0 < value < 1 else int(value)
        return {s for s in range(1, step + 1) if s % every == 0 or s == step}

    evals = len(when(config.eval_steps)) + (1 if config.eval_on_start else 0)
    warmup = config.warmup_steps
    return {"steps": step, "evaluations": evals, "checkpoints": len(when(config.save_steps)),
            "warmup_steps": int(warmup) if warmup >= 1 else math.ceil(warmup * step)}


def math_ceil_everywhere(config, batches_per_epoch):
    """math.ceil for every division, the final point as ceil(steps / interval); extra keys returned too."""
    import math as m

    per_epoch = m.ceil(batches_per_epoch / config.gradient_accumulation_steps)
    steps = m.ceil(config.num_train_epochs * per_epoch) if config.max_steps <= 0 else config.max_steps
    eval_every = config.eval_steps if config.eval_steps >= 1 else m.ceil(config.eval_steps * steps)
    save_every = config.save_steps if config.save_steps >= 1 else m.ceil(config.save_steps * steps)
    warmup = config.warmup_steps if config.warmup_steps >= 1 else m.ceil(config.warmup_steps * steps)
    return {"steps": steps, "per_epoch": per_epoch, "eval_every": eval_every,
            "evaluations": m.ceil(steps / eval_every) + int(bool(config.eval_on_start)),
            "checkpoints": m.ceil(steps / save_every), "warmup_steps": warmup}


def with_numpy(config, batches_per_epoch):
    """numpy: np.ceil floats, np.arange for the evaluation points, numpy scalars returned."""
    per_epoch = np.ceil(batches_per_epoch / config.gradient_accumulation_steps)
    steps = np.int64(config.max_steps) if config.max_steps > 0 else np.ceil(config.num_train_epochs * per_epoch)

    def n_points(value):
        every = np.ceil(steps * value) if value < 1 else value
        at = np.arange(every, steps + 1, every)
        return len(np.union1d(at, [steps]))

    warmup = np.where(config.warmup_steps < 1, np.ceil(steps * config.warmup_steps), config.warmup_steps)
    return {"steps": steps, "evaluations": n_points(config.eval_steps) + np.int64(config.eval_on_start),
            "checkpoints": n_points(config.save_steps), "warmup_steps": warmup[()]}


def with_batching_helpers(config, batches_per_epoch):
    """The lab's own helpers from notebook 01 (labhelpers.base.batching)."""
    from labhelpers.base.batching import steps_from_batches, total_steps, warmup_steps

    steps = total_steps(config.max_steps, config.num_train_epochs,
                        steps_from_batches(batches_per_epoch, config.gradient_accumulation_steps))
    points = {}
    for name in ("eval", "save"):
        value = getattr(config, f"{name}_steps")
        every = math.ceil(steps * value) if value < 1 else int(value)
        points[name] = len(set(range(every, steps + 1, every)) | {steps})
    return dict(steps=steps, evaluations=points["eval"] + bool(config.eval_on_start), checkpoints=points["save"],
                warmup_steps=warmup_steps(steps, config.warmup_steps))


RIGHT = [
    ("-(-a // b) ceil idiom", ceil_idiom),
    ("a loop counting the steps", simulated_loop),
    ("math.ceil everywhere, extra keys", math_ceil_everywhere),
    ("numpy", with_numpy),
    ("labhelpers.base.batching", with_batching_helpers),
]


@pytest.mark.parametrize("name, student, words", WRONG, ids=[w[0] for w in WRONG])
def test_wrong_prediction_is_named(name, student, words):
    with pytest.raises(TodoCheckError) as err:
        check_predict_run(student)
    assert words in str(err.value) and "Fix:" in str(err.value), str(err.value)


@pytest.mark.parametrize("name, student, words", WRONG, ids=[w[0] for w in WRONG])
def test_every_failure_is_one_clean_line(name, student, words):
    """A TodoCheckError, never another exception from inside the student's code or the check; one line in Jupyter."""
    try:
        check_predict_run(student)
    except TodoCheckError as err:
        shown = err._render_traceback_()
        assert type(err) is TodoCheckError and len(shown) == 1 and "\n" not in shown[0], shown
        assert "Traceback" not in shown[0] and shown[0].count("Fix:") == 1, shown
    else:
        pytest.fail(f"{name} was accepted")


@pytest.mark.parametrize("name, student", RIGHT, ids=[r[0] for r in RIGHT])
def test_right_prediction_is_accepted(name, student, capsys):
    check_predict_run(student)
    assert capsys.readouterr().out.startswith("✓ your predictions match the Trainer's own arithmetic"), name


def test_the_solution_notebooks_answer_passes(capsys):
    """The TODO cell of solutions/06_sft_trainer.ipynb, as it is, passes the check."""
    import json
    from pathlib import Path

    cells = json.loads((Path(__file__).parents[1] / "solutions" / "06_sft_trainer.ipynb").read_text())["cells"]
    source = next("".join(c["source"]) for c in cells if "def predict_run" in "".join(c["source"]))
    namespace: dict = {"math": math}
    exec(source, namespace)
    check_predict_run(namespace["predict_run"])
    assert capsys.readouterr().out.startswith("✓ your predictions match the Trainer's own arithmetic")


def test_the_cases_can_expose_each_mistake():
    """Accumulation that does not divide the batches, max_steps below and above the epochs' steps with several epochs,
    a run that is not a multiple of eval_steps, shares below 1, warmup as a step count (and exactly 1), eval_on_start
    both ways; every case agrees with plan_run, the Trainer's arithmetic."""
    from types import SimpleNamespace

    from labhelpers.sanity.config import plan_run

    cases = predict_run_cases()
    epochs_steps = [math.ceil(f["num_train_epochs"] * math.ceil(b / f["gradient_accumulation_steps"]))
                    for f, b in cases]
    assert any(b % f["gradient_accumulation_steps"] for f, b in cases)
    assert any(0 < f["max_steps"] < s and f["num_train_epochs"] > 1 for (f, _), s in zip(cases, epochs_steps))
    assert any(f["max_steps"] > s for (f, _), s in zip(cases, epochs_steps))
    plans = [plan_run(SimpleNamespace(**f), b) for f, b in cases]
    assert any(p.total_steps % f["eval_steps"] for (f, _), p in zip(cases, plans) if f["eval_steps"] >= 1)
    assert any(0 < f["eval_steps"] < 1 for f, _ in cases) and any(0 < f["save_steps"] < 1 for f, _ in cases)
    assert {1, 3} <= {f["warmup_steps"] for f, _ in cases}
    assert {True, False} == {f["eval_on_start"] for f, _ in cases}


def test_the_check_cost_is_small():
    start = time.perf_counter()
    check_predict_run(simulated_loop)
    assert time.perf_counter() - start < 1
