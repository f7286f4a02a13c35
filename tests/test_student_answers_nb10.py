"""Notebook 10's TODO, `good_trainer` (an SFTTrainer the sanity preflight passes), as students write it: near misses
(masking left off or switched on the wrong way, LoRA's learning rate on a full fine-tune, a learning rate lowered only to
silence the finding, evaluation missing or on the training rows, the pre-rendered text column) that the check must
reject with their own mistake named, and right answers written differently from the solution that it must accept.

The trainers are real (SmolLM2-135M, the notebook's `small_config`) on 8 short train rows and 4 eval rows: building one
takes ~0.1 s, the check's preflight ~1 s; each answer is checked once and its outcome shared by the tests below."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest
from datasets import Dataset
from transformers import IntervalStrategy
from trl import SFTTrainer

from labhelpers.checks import TodoCheckError, check_preflight_clean
from sanity_setup import chat_rows

pytestmark = pytest.mark.slow  # loads the real model (still run in CI)


@pytest.fixture(scope="module")
def nb(model_and_tokenizer, cpu_recipe, tmp_path_factory) -> SimpleNamespace:
    """What notebook 10's cells have defined when the student reaches the TODO (rows made smaller)."""
    model, tokenizer = model_and_tokenizer
    recipe, run = cpu_recipe, tmp_path_factory.mktemp("nb10")
    train_rows, eval_rows = Dataset.from_list(chat_rows(8)), Dataset.from_list(chat_rows(4, "test"))
    rendered = Dataset.from_list([{"text": tokenizer.apply_chat_template(row["messages"], tokenize=False)}
                                  for row in train_rows])

    def small_config(name, **overrides):  # as in the notebook
        return recipe.sft_config(run / "sanity" / name, **{"max_length": recipe.sizes.max_length, "max_steps": 4,
                                                           "save_strategy": "no", "eval_strategy": "no", **overrides})

    return SimpleNamespace(model=model, tokenizer=tokenizer, recipe=recipe, small_config=small_config,
                           train_rows=train_rows, eval_rows=eval_rows, rendered=rendered)


@pytest.fixture(scope="module")
def outcome(nb):
    """outcome(answer) -> the check's TodoCheckError, or the report it returned; each answer built and checked once."""
    seen: dict = {}

    def run(answer):
        if answer not in seen:
            trainer = answer(nb)
            try:
                seen[answer] = check_preflight_clean(trainer)
            except TodoCheckError as err:
                seen[answer] = err
        return seen[answer]

    return run


# ------------------------------------------------------------------------------------------------------ wrong
def masking_left_out(nb):
    return SFTTrainer(model=nb.model, args=nb.small_config("good", learning_rate=nb.recipe.sizes.learning_rate,
                                                           eval_strategy="steps", eval_steps=2),
                      train_dataset=nb.train_rows, eval_dataset=nb.eval_rows, processing_class=nb.tokenizer)


def completion_only_loss_instead(nb):
    return SFTTrainer(model=nb.model, args=nb.small_config("good", completion_only_loss=True, eval_strategy="steps",
                                                           eval_steps=2),
                      train_dataset=nb.train_rows, eval_dataset=nb.eval_rows, processing_class=nb.tokenizer)


def loras_learning_rate(nb):
    return SFTTrainer(model=nb.model, args=nb.small_config("good", assistant_only_loss=True, learning_rate=1e-3,
                                                           eval_strategy="steps", eval_steps=2),
                      train_dataset=nb.train_rows, eval_dataset=nb.eval_rows, processing_class=nb.tokenizer)


def hot_learning_rate_copied(nb):  # the cell above the TODO, copied with its learning rate
    return SFTTrainer(model=nb.model, args=nb.small_config("good", learning_rate=nb.recipe.sizes.learning_rate * 10,
                                                           assistant_only_loss=True, eval_strategy="steps"),
                      train_dataset=nb.train_rows, eval_dataset=nb.eval_rows, processing_class=nb.tokenizer)


def learning_rate_lowered_to_silence_it(nb):
    return SFTTrainer(model=nb.model, args=nb.small_config("good", assistant_only_loss=True, learning_rate=1e-7,
                                                           eval_strategy="steps", eval_steps=2),
                      train_dataset=nb.train_rows, eval_dataset=nb.eval_rows, processing_class=nb.tokenizer)


def no_eval_dataset(nb):  # with eval_strategy="steps" and no eval_dataset, SFTTrainer(...) itself raises
    return SFTTrainer(model=nb.model, args=nb.small_config("good", assistant_only_loss=True),
                      train_dataset=nb.train_rows, processing_class=nb.tokenizer)


def evaluation_left_off(nb):
    return SFTTrainer(model=nb.model, args=nb.small_config("good", assistant_only_loss=True),
                      train_dataset=nb.train_rows, eval_dataset=nb.eval_rows, processing_class=nb.tokenizer)


def evaluates_on_the_training_rows(nb):
    return SFTTrainer(model=nb.model, args=nb.small_config("good", assistant_only_loss=True, eval_strategy="steps",
                                                           eval_steps=2),
                      train_dataset=nb.train_rows, eval_dataset=nb.train_rows, processing_class=nb.tokenizer)


def pre_rendered_text(nb):
    return SFTTrainer(model=nb.model, args=nb.small_config("good", eval_strategy="steps", eval_steps=2),
                      train_dataset=nb.rendered, eval_dataset=nb.eval_rows, processing_class=nb.tokenizer)


def the_config_not_a_trainer(nb):
    return nb.small_config("good", assistant_only_loss=True, eval_strategy="steps", eval_steps=2)


# (name, the student's answer, distinctive words of the message)
WRONG = [
    ("masking left out", masking_left_out, "assistant_only_loss is off, so the loss trains the prompt too"),
    ("completion_only_loss instead", completion_only_loss_instead,
     "completion_only_loss=True masks the prompt of prompt/completion rows only"),
    ("LoRA's learning rate", loras_learning_rate, "learning_rate 0.001 is a LoRA learning rate"),
    ("the hot learning rate copied", hot_learning_rate_copied, "learning_rate 0.002 is a LoRA learning rate"),
    ("learning rate lowered to silence it", learning_rate_lowered_to_silence_it,
     "learning_rate 1e-07 is below a full fine-tune's 1e-05..0.0003: lowering it silences"),
    ("no eval_dataset", no_eval_dataset, "the trainer has no eval split"),
    ("evaluation left off", evaluation_left_off, "evaluation is switched off (eval_strategy='no', small_config's default)"),
    ("eval on the training rows", evaluates_on_the_training_rows, "your eval rows are training rows"),
    ("the pre-rendered text column", pre_rendered_text, "train_dataset is the pre-rendered `text` column"),
    ("the config, not a trainer", the_config_not_a_trainer, "good_trainer is a SFTConfig"),
]


# ------------------------------------------------------------------------------------------------------ right
def recipe_learning_rate_left_to_small_config(nb):
    """learning_rate left out (small_config already has the recipe's); eval every recipe.sizes.eval_steps (and at the
    end of the run)."""
    return SFTTrainer(model=nb.model, train_dataset=nb.train_rows, eval_dataset=nb.eval_rows,
                      args=nb.small_config("good", eval_strategy="steps", assistant_only_loss=True),
                      processing_class=nb.tokenizer)


def epoch_evaluation_and_the_lab_rate(nb):
    """The enum, evaluation once per epoch, the lab's measured full-fine-tune rate 1e-4 as a literal."""
    args = nb.small_config("good", eval_strategy=IntervalStrategy.EPOCH, learning_rate=1e-4, assistant_only_loss=True)
    return SFTTrainer(nb.model, args, train_dataset=nb.train_rows, eval_dataset=nb.eval_rows,
                      processing_class=nb.tokenizer)


def a_dict_of_changes(nb):
    """The changes gathered in a dict first; eval_steps as a share of the run; the rate as a float literal."""
    changes = {"assistant_only_loss": True, "learning_rate": 2e-4, "eval_strategy": "steps", "eval_steps": 0.5}
    trainer = SFTTrainer(model=nb.model, args=nb.small_config("good", **changes), processing_class=nb.tokenizer,
                         train_dataset=nb.train_rows, eval_dataset=nb.eval_rows)
    return trainer


def the_colab_rate(nb):
    """The colab / full recipes' rate (2e-5): inside the full-fine-tune band too."""
    return SFTTrainer(model=nb.model, args=nb.small_config("good", assistant_only_loss=True, learning_rate=2e-5,
                                                           eval_strategy="steps", eval_steps=1),
                      train_dataset=nb.train_rows, eval_dataset=nb.eval_rows, processing_class=nb.tokenizer)


def the_solution(nb):
    return SFTTrainer(model=nb.model,
                      args=nb.small_config("good", assistant_only_loss=True, learning_rate=nb.recipe.sizes.learning_rate,
                                           eval_strategy="steps", eval_steps=2),
                      train_dataset=nb.train_rows, eval_dataset=nb.eval_rows, processing_class=nb.tokenizer)


RIGHT = [
    ("the solution", the_solution),
    ("learning rate left to small_config", recipe_learning_rate_left_to_small_config),
    ("epoch evaluation, lr 1e-4", epoch_evaluation_and_the_lab_rate),
    ("a dict of changes, eval_steps a share", a_dict_of_changes),
    ("the colab recipe's rate", the_colab_rate),
]


@pytest.mark.parametrize("name, answer, words", WRONG, ids=[w[0] for w in WRONG])
def test_wrong_trainer_is_named(outcome, name, answer, words):
    err = outcome(answer)
    assert isinstance(err, TodoCheckError), f"{name} was accepted"
    assert words in str(err) and "Fix:" in str(err), str(err)


@pytest.mark.parametrize("name, answer, words", WRONG, ids=[w[0] for w in WRONG])
def test_every_failure_is_one_clean_line(outcome, name, answer, words):
    """No crash from inside the check or the preflight: a TodoCheckError, shown in Jupyter as one line."""
    err = outcome(answer)
    assert isinstance(err, TodoCheckError), f"{name} was accepted"
    assert "\n" not in str(err) and err._render_traceback_() == [f"TodoCheckError: {err}"], str(err)


@pytest.mark.parametrize("name, answer", RIGHT, ids=[r[0] for r in RIGHT])
def test_right_trainer_is_accepted(outcome, name, answer):
    report = outcome(answer)
    assert not isinstance(report, TodoCheckError), str(report)
    assert report.ok


def test_several_mistakes_are_named_at_once(nb):
    trainer = SFTTrainer(model=nb.model, args=nb.small_config("good", learning_rate=1e-3),
                         train_dataset=nb.train_rows, eval_dataset=nb.eval_rows, processing_class=nb.tokenizer)
    with pytest.raises(TodoCheckError) as err:
        check_preflight_clean(trainer)
    message = str(err.value)
    assert message.startswith("3 problems: (1) evaluation is switched off"), message
    for words in ("(2) learning_rate 0.001 is a LoRA learning rate", "(3) assistant_only_loss is off"):
        assert words in message, message


def test_the_band_is_the_preflights():
    """The check's full-fine-tune band ends where the preflight's learning-rate finding stops passing."""
    from labhelpers.checks.nb10_sanity_protocol import full_fine_tune_lr_band
    from labhelpers.sanity.preflight import hyperparameter_findings

    for n_params in (135_000_000, 7_000_000_000):
        low, high = full_fine_tune_lr_band(n_params)

        def status(lr):
            return hyperparameter_findings(lr, 0.1, False, n_params, 100, 4, 10, 1)[0].status

        assert (status(high), status(high * 1.01), status(low)) == ("pass", "warn", "pass")


def test_check_cost(nb, capsys):
    trainer = the_solution(nb)
    start = time.perf_counter()
    check_preflight_clean(trainer)
    seconds = time.perf_counter() - start
    print(f"check_preflight_clean: {seconds:.1f} s")
    assert seconds < 60  # ~1 s on an idle 2-core CPU (the preflight's forward pass); room for a loaded machine
