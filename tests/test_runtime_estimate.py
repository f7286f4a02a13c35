"""The T4 speed model behind the first cells' Colab times: each notebook's work follows the recipe it runs."""

from __future__ import annotations

import pytest

from labhelpers.model.hardware import recipe_for
from tools.runtime_estimate import Work, notebook_work, seconds

T4 = recipe_for("t4", "colab", total_memory_gib=15.0)
ROWS = 200.0  # tokens per row


def test_every_notebook_has_its_work():
    assert sorted(notebook_work(T4, ROWS)) == [f"{n:02d}" for n in range(1, 15)]


def test_the_reference_run_costs_its_steps_times_its_batch_with_checkpointing():
    work = notebook_work(T4, ROWS)["06"]
    assert T4.sizes.gradient_checkpointing and work.trained_tokens == 0
    assert work.checkpointed_tokens == T4.plan(500).total_steps * 16 * ROWS
    assert work.checkpoints == 8 and work.runs == 1


def test_twice_the_epochs_cost_twice_the_training():
    longer = T4.with_sizes(num_train_epochs=6.0)
    once, twice = notebook_work(T4, ROWS)["06"], notebook_work(longer, ROWS)["06"]
    assert twice.checkpointed_tokens == pytest.approx(2 * once.checkpointed_tokens)
    assert seconds(twice)[0] > seconds(once)[0]


def test_without_gradient_checkpointing_the_forward_runs_once():
    plain = T4.with_sizes(gradient_checkpointing=False)
    assert notebook_work(plain, ROWS)["06"].trained_tokens == notebook_work(T4, ROWS)["06"].checkpointed_tokens
    assert seconds(notebook_work(plain, ROWS)["06"])[0] < seconds(notebook_work(T4, ROWS)["06"])[0]


def test_lora_trains_at_two_thirds_of_the_full_cost_per_token():
    full, lora = seconds(Work(trained_tokens=1e8)), seconds(Work(adapter_tokens=1e8))
    fixed = seconds(Work())
    assert (lora[0] - fixed[0]) / (full[0] - fixed[0]) == pytest.approx(4 / 6)


def test_a_notebook_that_trains_nothing_costs_only_install_and_load():
    assert seconds(notebook_work(T4, ROWS)["03"]) == seconds(Work())
    assert seconds(notebook_work(T4, ROWS)["06"])[0] > seconds(Work())[0]
