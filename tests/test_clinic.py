"""Notebook 14's clinic: every case really shows its bug to the sanity assistant, and the diagnosis and fix checks
answer students' answers (spelled their own way, near misses, unfilled, malformed) with the right verdict and a why-not
measured on the case."""

from __future__ import annotations

import json

import pytest
import torch

from labhelpers.checks.core import TodoCheckError
from labhelpers.checks import nb14_diagnose_the_broken_run as nb14
from labhelpers.sanity import clinic
from labhelpers.sanity.report import Finding, SanityReport

RIGHT = dict(nb14.ANSWERS)


# ------------------------------------------------------------------------------------------------ the cases' reports
@pytest.fixture(scope="module")
def case_findings(series_result, tmp_path_factory) -> dict[int, list[dict]]:
    """Every case's findings as the series' notebook 14 measured them (RUN/clinic/reveal.json); when this file runs
    alone, notebook 14 is executed here first (~1 min)."""
    stored = series_result("clinic", "reveal.json")
    if stored is None:
        import papermill

        run = tmp_path_factory.mktemp("clinic-run")
        papermill.execute_notebook("solutions/14_diagnose_the_broken_run.ipynb", str(run / "out.ipynb"),
                                   parameters={"RUN_DIR": str(run), "PROFILE": "ci"}, progress_bar=False)
        stored = run / "clinic" / "reveal.json"
    return {int(n): found for n, found in json.loads(stored.read_text()).items()}


@pytest.fixture
def stored_reveal(case_findings, monkeypatch):
    """check_diagnosis on stand-in case objects whose reports are the measured ones (no model needed)."""
    reports = {n: SanityReport([Finding(**f) for f in found]) for n, found in case_findings.items()}
    cases = {n: f"case {n}" for n in reports}
    monkeypatch.setattr(nb14, "reveal", lambda case: reports[int(case.split()[1])])
    return cases


@pytest.mark.slow
def test_every_case_shows_its_bug_and_only_the_cause_it_is_named_for(case_findings):
    for number, bug in RIGHT.items():
        report = SanityReport([Finding(**f) for f in case_findings[number]])
        assert clinic.bug_status(report, bug)[0] == "fail", (number, bug, report)
        others = [b for b in clinic.BUGS if b != bug and clinic.bug_status(report, b)[0] == "fail"]
        # case 1 (text rendered by hand) also trains the prompt: a consequence, answered as one by why_not
        assert others == (["prompt_trained"] if number == 1 else []), (number, others)


# ------------------------------------------------------------------------------------------------ names and keys
@pytest.mark.parametrize("answer,bug", [
    ("eval_leak", "eval_leak"), ("Eval leak", "eval_leak"), ("EVAL-LEAK", "eval_leak"), ("  eval_leak\n", "eval_leak"),
    ("pad_is_eos", "stop_token_masked"), ("pad = eos", "stop_token_masked"), ("double BOS", "template_twice"),
    ("gradient accumulation", "grad_accum_scale"), ("fp16", "fp16_weights"), ("packing", "packing_leak"),
    ("data leak", "eval_leak"), ("prompt tokens trained", "prompt_trained"),
    # spellings a trial with answers written by someone else found refused (2026-12-06)
    ("mixed precision", "fp16_weights"), ("AMP", "fp16_weights"), ("loss normalization", "grad_accum_scale"),
    ("num_items_in_batch", "grad_accum_scale"), ("eval contamination", "eval_leak"), ("data leakage", "eval_leak"),
    ("pad_token == eos_token", "stop_token_masked"), ("chat template applied twice", "template_twice"),
    ("double eos", "template_twice"), ("packing leakage", "packing_leak"), ("train on inputs", "prompt_trained"),
    ("`TemplateTwice`.", "template_twice"), (clinic.BUGS["fp16_weights"], "fp16_weights"),
    ("overfitting", None),
])
def test_bug_names_students_write(answer, bug):
    if bug is None:
        with pytest.raises(ValueError, match="Choose from: prompt_trained"):
            clinic.choice(answer)
    else:
        assert clinic.choice(answer) == bug


def test_a_near_miss_name_gets_the_closest_one_offered_and_an_ambiguous_one_a_question():
    with pytest.raises(ValueError, match="did you mean 'grad_accum_scale'"):
        clinic.choice("grad_acum_scale")
    with pytest.raises(ValueError, match="as a string"):
        clinic.choice(3)
    with pytest.raises(ValueError, match="'leak' fits two bugs: eval_leak .* or packing_leak"):
        clinic.choice("leak")


# ------------------------------------------------------------------------------------------------ the diagnosis check
def _diagnosis(**changes):
    out = dict(RIGHT)
    out.update({int(k[1:]): v for k, v in changes.items()})
    return out


@pytest.mark.slow
def test_the_right_diagnosis_in_other_spellings_and_keys_passes(stored_reveal, capsys):
    spelled = {"case 1": "Template twice", "2": "data leak", 3: "pad_is_eos", "Case_4:": "mixed precision",
               5.0: "packing", 6: "loss normalisation", 7: "prompt tokens trained"}
    nb14.check_diagnosis(spelled, stored_reveal)
    assert "all 7 cases diagnosed" in capsys.readouterr().out


@pytest.mark.slow
@pytest.mark.parametrize("changes,says", [
    # two cases swapped: each answered with its own why-not, measured on the case
    (dict(c3="prompt_trained", c7="stop_token_masked"),
     ["5 of 7 cases diagnosed right", "case 3 is not prompt_trained: the assistant's check for it passes here (0.0% of",
      "case 7 is not stop_token_masked: the assistant's check for it passes here"]),
    # a symptom case 1 really has, but not its cause
    (dict(c1="prompt_trained"), ["case 1 does show prompt_trained's symptom", "apply_chat_template"]),
    # a bug case 4 has no part for (one AMP step: no data, no collator)
    (dict(c4="eval_leak"), ["case 4 has no part that eval_leak could break", "the error the step ends with"]),
    (dict(c2="packing_leak"), ["case 2 is not packing_leak", "no packing: each row is one example"]),
    (dict(c5="grad_accum_scale"), ["case 5 has no part that grad_accum_scale could break", "not applicable"]),
    (dict(c6="fp16_weights"), ["case 6 is not fp16_weights"]),
])
def test_wrong_diagnoses_are_answered_with_why_not(stored_reveal, changes, says):
    with pytest.raises(TodoCheckError) as err:
        nb14.check_diagnosis(_diagnosis(**changes), stored_reveal)
    for text in says:
        assert text in str(err.value), (text, str(err.value))


@pytest.mark.slow
@pytest.mark.parametrize("diagnosis,says", [
    ({n: ... for n in RIGHT}, "case 1 has no diagnosis yet (Ellipsis)"),
    ({**RIGHT, 4: None}, "case 4 has no diagnosis yet"),
    ({n: b for n, b in RIGHT.items() if n != 6}, "no diagnosis for case 6"),
    ({**RIGHT, 8: "eval_leak"}, "8 does not name a case"),
    ({**RIGHT, 2: "leaky evals"}, "case 2: 'leaky evals' is not one of the bug names; did you mean 'eval_leak'?"),
    ({**RIGHT, "3": "prompt_trained"}, "case 3 is diagnosed twice: 3: 'stop_token_masked' and '3': 'prompt_trained'"),
    (list(RIGHT.values()), "diagnosis is a list, not a dict"),
    ({**RIGHT, 5: "<bug name>"}, "case 5 has no diagnosis yet ('<bug name>')"),
    ({**RIGHT, 2: "leaky evals", 6: "overfitting"}, "case 6: 'overfitting' is not one of the bug names"),
])
def test_unfilled_and_malformed_diagnoses_name_the_fix(stored_reveal, diagnosis, says):
    with pytest.raises(TodoCheckError, match="") as err:
        nb14.check_diagnosis(diagnosis, stored_reveal)
    assert says in str(err.value)


# ------------------------------------------------------------------------------------------------ the fix checks
@pytest.fixture(scope="module")
def clinic_setup(model_and_tokenizer, cpu_recipe, tmp_path_factory):
    """The notebook's rows and tiny_config on the shared model."""
    from labhelpers.data.datasets import load_chat_dataset

    model, tokenizer = model_and_tokenizer
    data = load_chat_dataset()
    train = clinic.shortest_rows(data["train"], tokenizer, 16).select_columns(["messages"])
    out = tmp_path_factory.mktemp("clinic")

    def config(name, **overrides):
        return cpu_recipe.sft_config(out / name, **{"max_length": 256, "max_steps": 4, "per_device_train_batch_size": 2,
                                                    "gradient_accumulation_steps": 1, "save_strategy": "no",
                                                    "eval_strategy": "no", "logging_steps": 1, **overrides})
    return model, tokenizer, train, config


@pytest.mark.slow
def test_fix_checks_on_real_trainers_near_misses_and_other_right_fixes(clinic_setup, capsys):
    from trl import SFTTrainer

    model, tokenizer, train, config = clinic_setup

    def trainer(name, rows=train, **overrides):
        eval_rows = overrides.pop("eval_dataset", None)
        return SFTTrainer(model=model, args=config(name, **overrides), train_dataset=rows, eval_dataset=eval_rows,
                          processing_class=tokenizer)

    case7 = trainer("case7")
    with pytest.raises(TodoCheckError, match="fixed7 is case7 itself"):
        nb14.check_fix_prompt_trained(case7, case7)
    with pytest.raises(TodoCheckError, match="bug is still there: 3[0-9.]+% of .* trained tokens are prompt"):
        nb14.check_fix_prompt_trained(case7, trainer("still7", learning_rate=1e-4))
    with pytest.raises(TodoCheckError, match="is a dict, not an SFTTrainer"):
        nb14.check_fix_prompt_trained(case7, {"assistant_only_loss": True})
    table = nb14.check_fix_prompt_trained(case7, trainer("fixed7", assistant_only_loss=True))
    assert "0.0% of" in capsys.readouterr().out and "prompt_tokens_trained" in table

    # case 2: evaluating on *other* training rows still leaks; the held-out split fixes it
    leak = trainer("case2", assistant_only_loss=True, eval_dataset=train.select(range(8)))
    with pytest.raises(TodoCheckError, match="case 2's bug is still there: 8 of 8 eval"):
        nb14.check_fix_eval_leak(leak, trainer("still2", assistant_only_loss=True, eval_dataset=train.select(range(8, 16))))

    # case 6: a compute_loss that passes num_items_in_batch on is a right fix too (not only dropping the subclass)
    class MeanLossTrainer(SFTTrainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            outputs = model(**inputs)
            return (outputs.loss, outputs) if return_outputs else outputs.loss

    class CountedLossTrainer(SFTTrainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            outputs = model(**inputs, num_items_in_batch=num_items_in_batch)
            return (outputs.loss, outputs) if return_outputs else outputs.loss

    accumulate = dict(assistant_only_loss=True, per_device_train_batch_size=1, gradient_accumulation_steps=4)
    case6 = MeanLossTrainer(model=model, args=config("case6", **accumulate), train_dataset=train, processing_class=tokenizer)
    fixed6 = CountedLossTrainer(model=model, args=config("fixed6", **accumulate), train_dataset=train,
                                processing_class=tokenizer)
    nb14.check_fix_grad_accum_scale(case6, fixed6)
    assert "case 6 fixed" in capsys.readouterr().out
    # "fixing" case 6 by turning accumulation off (batch 4, the same subclass): nothing is averaged across
    # micro-batches any more, so the loss no longer depends on batching; the check accepts it and says why
    no_accum = MeanLossTrainer(model=model, args=config("noacc6", assistant_only_loss=True, per_device_train_batch_size=4),
                               train_dataset=train, processing_class=tokenizer)
    nb14.check_fix_grad_accum_scale(case6, no_accum)
    assert "not applicable" in capsys.readouterr().out


@pytest.mark.slow
def test_fp16_case_is_the_real_grad_scaler_error_and_fp32_master_weights_fix_it(clinic_setup, capsys):
    model, tokenizer, _, _ = clinic_setup
    before = {k: v.clone() for k, v in list(model.state_dict().items())[-4:]}
    broken = clinic.amp_step(model, tokenizer, torch.float16)
    assert broken.error == "ValueError: Attempting to unscale FP16 gradients." and not broken.ok
    with pytest.raises(TodoCheckError, match="still there: ValueError: Attempting to unscale FP16"):
        nb14.check_fix_fp16_weights(broken, clinic.amp_step(model, tokenizer, torch.float16))
    with pytest.raises(TodoCheckError, match="not the result of amp_step"):
        nb14.check_fix_fp16_weights(broken, torch.float32)
    fixed = clinic.amp_step(model, tokenizer, torch.float32)
    assert fixed.ok and fixed.weights_dtype == "float32"
    nb14.check_fix_fp16_weights(broken, fixed)
    assert "case 4 fixed" in capsys.readouterr().out
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # the steps ran on copies of the last layer


def test_curves_from_a_trainer_log_with_two_eval_splits():
    log = [{"loss": 3.0, "step": 1}, {"eval_leaked_loss": 2.0, "step": 2}, {"eval_held_out_loss": 2.9, "step": 2},
           {"train_runtime": 9.0, "step": 2}]
    assert clinic.curves_from_log(log) == {"train": [(1, 3.0)], "eval leaked": [(2, 2.0)], "eval held_out": [(2, 2.9)]}
