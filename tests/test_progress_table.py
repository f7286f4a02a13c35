"""The notebook's training table ends on the epoch the run reached: transformers' own rounds it down, so notebook 06's
30-step run over 0.75 of an epoch ended on "Epoch 0/1" (issue 26, what a student sees)."""

from __future__ import annotations

from types import SimpleNamespace as NS

from transformers import TrainerControl
from transformers.utils.notebook import NotebookProgressCallback

from labhelpers.model.hardware import recipe_for
from labhelpers.run.training import show_exact_epochs, training_guards


class _Trainer:
    def __init__(self, callbacks):
        self.callback_handler = NS(callbacks=list(callbacks))
        self.args = NS(eval_on_start=True)
        self.model = None


def _last_comment(callback, epoch: float, planned: float) -> str:
    comments = []
    args, state = NS(eval_strategy="steps"), NS(max_steps=30, global_step=30, epoch=epoch, num_train_epochs=planned)
    callback.on_train_begin(args, state, TrainerControl())
    callback.training_tracker.update = lambda value, comment=None, force_update=False: comments.append(comment)
    callback.on_train_end(args, state, TrainerControl())
    return comments[-1]


def test_transformers_table_rounds_the_epoch_down_and_ours_does_not():
    assert _last_comment(NotebookProgressCallback(), 0.75, 1) == "Epoch 0/1"  # the quirk this fixes
    other = object()
    trainer = _Trainer([other, NotebookProgressCallback()])
    with training_guards(trainer, recipe_for("cpu", "ci")):
        pass
    swapped = trainer.callback_handler.callbacks
    assert swapped[0] is other and isinstance(swapped[1], NotebookProgressCallback)
    assert type(swapped[1]) is not NotebookProgressCallback
    assert _last_comment(swapped[1], 0.75, 1) == "Epoch 0.75/1"
    assert _last_comment(swapped[1], 3.0, 3) == "Epoch 3/3"


def test_a_trainer_without_the_notebook_table_is_left_alone():
    trainer = _Trainer([object()])
    before = list(trainer.callback_handler.callbacks)
    show_exact_epochs(trainer)
    assert trainer.callback_handler.callbacks == before
    show_exact_epochs(NS())  # a stand-in trainer without callbacks (tests/test_oom.py) passes through
