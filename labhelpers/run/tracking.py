"""TensorBoard logs of a run: where they go, the callback that writes them, and reading them back.

transformers 5 removed ``TrainingArguments.logging_dir``. Its ``TensorBoardCallback`` (what ``report_to="tensorboard"``
adds) writes to ``$TENSORBOARD_LOGGING_DIR``, else to ``<output_dir>/runs/<date>_<host>``; a ``tb_writer`` passed to
it is closed at the end of ``train()`` and a later ``trainer.evaluate()`` opens a new one in that default folder. So the
simplest correct way to choose the folder, per trainer and without a process-wide environment variable, is one
callback whose folder is set::

    trainer = SFTTrainer(..., args=recipe.sft_config(out),            # the recipe keeps report_to="none"
                         callbacks=[tensorboard_callback(tensorboard_dir(RUN, "sft"))])

Every log (loss, learning_rate, grad_norm, eval_loss, ...) lands there as a scalar named ``train/loss``,
``train/learning_rate``, ``eval/loss``, ...; :func:`read_scalars` reads them back. In Colab or Jupyter, show them
with the two lines of :func:`tensorboard_magic`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def tensorboard_dir(run: str | os.PathLike, name: str) -> Path:
    """The TensorBoard folder of one training run of the series: ``<run>/tensorboard/<name>``.

    >>> tensorboard_dir("runs/ci", "sft").as_posix()
    'runs/ci/tensorboard/sft'
    """
    return Path(run) / "tensorboard" / name


def tensorboard_callback(logdir: str | os.PathLike) -> Any:
    """transformers' ``TensorBoardCallback`` writing to ``logdir``: pass it in ``callbacks=[...]`` with ``report_to="none"``.

    >>> tensorboard_callback("runs/ci/tensorboard/sft").logging_dir
    'runs/ci/tensorboard/sft'
    """
    from transformers.integrations import TensorBoardCallback

    callback = TensorBoardCallback()  # reads $TENSORBOARD_LOGGING_DIR; the folder set below replaces it
    callback.logging_dir = str(logdir)  # on_train_begin keeps a folder that is set; every new writer opens here
    return callback


def read_scalars(logdir: str | os.PathLike) -> dict[str, list[tuple[int, float]]]:
    """Every scalar in the event files of ``logdir``: ``{tag: [(step, value), ...]}`` in step order.

    >>> import tempfile
    >>> from torch.utils.tensorboard import SummaryWriter
    >>> folder = tempfile.mkdtemp()
    >>> with SummaryWriter(folder) as writer:
    ...     for step, loss in [(1, 2.5), (2, 2.0)]:
    ...         writer.add_scalar("train/loss", loss, step)
    >>> read_scalars(folder)
    {'train/loss': [(1, 2.5), (2, 2.0)]}
    """
    from tensorboard.backend.event_processing.event_accumulator import SCALARS, EventAccumulator

    if not Path(logdir).is_dir():
        raise FileNotFoundError(f"no TensorBoard folder {str(logdir)!r}; pass the logdir given to tensorboard_callback")
    events = EventAccumulator(str(logdir), size_guidance={SCALARS: 0})  # 0 = keep every point, not a sample
    events.Reload()
    return {tag: [(int(e.step), float(e.value)) for e in events.Scalars(tag)] for tag in sorted(events.Tags()["scalars"])}


def tensorboard_magic(run: str | os.PathLike) -> str:
    """The two notebook lines that show a run's TensorBoard logs inline (Colab, JupyterLab with tensorboard installed).

    >>> print(tensorboard_magic("runs/colab"))
    %load_ext tensorboard
    %tensorboard --logdir runs/colab/tensorboard
    """
    return f"%load_ext tensorboard\n%tensorboard --logdir {Path(run) / 'tensorboard'}"
