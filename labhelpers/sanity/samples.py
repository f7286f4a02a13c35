"""Samples while training: greedy replies to three fixed held-out prompts at evaluations, beside the live curves.

    samples = LiveSamples(data["test"], recipe, RUN, tensorboard=tensorboard_dir(RUN, "sft"))
    trainer = SFTTrainer(..., callbacks=[live, samples])  # after LiveCurves: the table shows under the curves

At an evaluation (``on_evaluate``) the callback answers the same prompts, the first three single-turn rows of the
*test* split (:func:`labhelpers.run.generation.heldout_prompts`; never training rows), greedily, on the model's device,
under the recipe's autocast, with at most the recipe's generation budget. Each reply and whether it follows the house
format goes to

* the notebook: one HTML block updated in place under the live curves (put the callback after ``LiveCurves``);
  headless (papermill, ``MPLBACKEND=Agg``) nothing is drawn per evaluation, the last table is shown once at the end;
* TensorBoard, as text (``SummaryWriter.add_text``, one tag per prompt: ``samples/prompt_1`` ...), when ``tensorboard``
  is a log folder or a writer;
* the run folder: ``<run>/samples.jsonl``, one row per reply (step, prompt, reply, follows_house_format, seconds, ...).

Sampling does not change the run: the model's training mode, the RNG states and the tokenizer's padding side are
restored, and a trained run's losses are the same with and without the callback (``tests/test_samples.py``). A
failure while sampling (a broken model, a device mismatch, out of memory) becomes a warning; training goes on.

Cost and defaults, measured on the idle 2-core CPU (2026-12-06, the ci reference run trained by notebook 09 with the
callback on: its losses identical to the run without it, eval loss 3.58 -> 1.7324): greedy decoding is memory-bound
there, ~0.1 s per new token at any batch up to 12, so three prompts took 4.3-4.7 s on the base model (stopped at 32
tokens, off the format) and 10.6-11.1 s after training (54-81 tokens). Sampling the 1st, 4th and 7th evaluation cost
26.4 s of the ~205 s run (13%, over the 5% goal); one thread or two made no difference idle (10.6 vs 10.1 s). So:

* ``every``: the recipe's ``lesson.samples_every``; ci: 6, the first and the last evaluation (before and after, ~15 s,
  7% of the run: the nearest the CPU gets to the goal without cutting the replies a verdict needs); the GPU profiles
  every third (not yet timed on a GPU); pass ``every=1`` to watch each evaluation;
* ``max_new_tokens=96`` (the recipe's budget): a house-format reply is ~70 tokens (up to 99); 48 would cut them all;
* ``preview_tokens=32``: a reply whose layout is already off the house format stops after 32 tokens (labelled so),
  only on data that teaches the format; the base model's replies cost 5.0 s instead of 14.3 s;
* ``cpu_threads=1``: on a shared machine a second thread stalls behind other processes at every one of a decoding
  step's many small ops (16 tokens: 2.5 s with 1 thread, 15.7 s with 2, load average 2-4; idle: the same).
"""

from __future__ import annotations

import contextlib
import html
import json
import os
import random
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from transformers import TrainerCallback

from labhelpers.model.attention import model_autocast
from labhelpers.measure.behaviour import data_teaches_house_format, follows_house_format, house_format_problems
from labhelpers.views.display import HTMLText, show_in_place
from labhelpers.run.generation import heldout_pairs, heldout_prompts

N_PROMPTS = 3  # held-out prompts answered at each sampled evaluation
SAMPLES_FILE = "samples.jsonl"  # in the run folder
TAG = "samples/prompt_{}"  # TensorBoard text tag of prompt i (1-based)
DEFAULT_EVERY = None  # the recipe's recipe.lesson.samples_every (ci: first and last; GPU profiles: every third)
DEFAULT_MAX_NEW_TOKENS = 96  # at most; the recipe's budget (recipe.lesson.max_new_tokens) caps it
DEFAULT_CPU_THREADS = 1  # torch threads while sampling on a CPU (restored after): see LiveSamples
DEFAULT_PREVIEW_TOKENS = 32  # a reply off the house format stops after this many tokens (data that teaches it only)
CONFIDENCE_LINES = ("Confidence: high", "Confidence: medium", "Confidence: low")


def choose_prompts(test_rows: Any, n: int = N_PROMPTS,
                   choose: Callable[[Any, int], list[str]] = heldout_prompts) -> list[str]:
    """The ``n`` fixed prompts, picked from the test split by ``choose`` (default: the series' first held-out prompts).

    >>> rows = [{"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": "a"}]} for q in "xyz"]
    >>> choose_prompts(rows)
    ['x', 'y', 'z']
    """
    try:
        prompts = list(choose(test_rows, n))
    except (KeyError, TypeError) as error:
        raise ValueError(f"could not read prompts from test_rows ({type(error).__name__}: {error}): pass the test "
                         "split's rows (data['test']), each a {'messages': [...]} conversation") from error
    if len(prompts) < n:
        raise ValueError(f"{getattr(choose, '__name__', 'choose')} found {len(prompts)} prompt(s) in the test split, "
                         f"{n} are needed: pass the test split (data['test']) with >= {n} single-turn rows, "
                         f"or n_prompts={len(prompts)}")
    return prompts


def sampling_autocast(recipe: Any, device: torch.device) -> Any:
    """The recipe's autocast when the model sits on the recipe's device type, else none (a model moved elsewhere).

    >>> from labhelpers.model.hardware import recipe_for
    >>> type(sampling_autocast(recipe_for("t4", "ci"), torch.device("cpu"))).__name__
    'nullcontext'
    """
    return recipe.autocast() if recipe.device.type == device.type else contextlib.nullcontext()


@contextlib.contextmanager
def torch_threads(n: int | None):
    """Run a block with ``n`` torch intra-op threads (None: as they are), then restore the count.

    >>> before = torch.get_num_threads()
    >>> with torch_threads(1): torch.get_num_threads()
    1
    >>> torch.get_num_threads() == before
    True
    """
    before = torch.get_num_threads()
    if n is not None and n != before:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


@contextlib.contextmanager
def untouched_state(model: Any):
    """Run a block and restore what it could change in a training run: RNG states (python, numpy, torch CPU and the
    model's CUDA device) and the model's training mode.

    >>> import torch.nn as nn
    >>> m = nn.Linear(2, 2); before = torch.get_rng_state()
    >>> with untouched_state(m): _ = torch.rand(3); _ = m.eval()
    >>> torch.equal(before, torch.get_rng_state()), m.training
    (True, True)
    """
    import numpy as np

    training = model.training
    py_state, np_state = random.getstate(), np.random.get_state()
    device = next(model.parameters()).device
    cuda = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=cuda):
            yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
        model.train(training)


def _line_can_be(line: str, marker: str, last: bool) -> bool:
    """A complete line must be ``marker`` + words; the line being written must be on its way there."""
    if last:
        return marker.startswith(line) or (line.startswith(marker))
    return line.startswith(marker) and bool(line[len(marker):].strip())


def on_house_format(text: str) -> bool:
    """False once the start of a reply can no longer become a house-format reply (its layout is already off).

    Only the layout is checked (what :func:`follows_house_format` would still accept after more tokens), so a reply
    that ends in the format is never stopped early.

    >>> on_house_format("Answer: Yes.\\n- a\\n- b"), on_house_format("Answ"), on_house_format("")
    (True, True, True)
    >>> on_house_format("Sure! Here"), on_house_format("Answer: Yes.\\nAlso")
    (False, False)
    >>> on_house_format("Answer: Yes.\\n- a\\n- b\\n- c\\nConfidence: low\\nMore")
    False
    """
    lines = text.lstrip().split("\n")
    for i, line in enumerate(lines):
        last = i == len(lines) - 1
        if i == 0 and not _line_can_be(line, "Answer: ", last):
            return False
        if 1 <= i <= 3 and not _line_can_be(line, "- ", last):
            return False
        if i == 4 and not (any(full.startswith(line) or full == line.rstrip() for full in CONFIDENCE_LINES) if last
                           else line.rstrip() in CONFIDENCE_LINES):
            return False
        if i >= 5 and line.strip():
            return False
    return True


class OffFormatStop:
    """A ``stopping_criteria`` for ``model.generate``: a row stops once it has ``preview`` new tokens and is off the
    house format (:func:`on_house_format`); ``stopped`` holds the rows it stopped."""

    def __init__(self, tokenizer: Any, prompt_length: int, preview: int):
        self.tokenizer, self.prompt_length, self.preview = tokenizer, prompt_length, preview
        self.stopped: set[int] = set()

    def __call__(self, input_ids: torch.Tensor, scores: Any, **kwargs: Any) -> torch.Tensor:
        new = input_ids[:, self.prompt_length:]
        done = torch.zeros(len(new), dtype=torch.bool, device=input_ids.device)
        if new.shape[1] < self.preview:
            return done
        for i, text in enumerate(self.tokenizer.batch_decode(new, skip_special_tokens=True)):
            if i not in self.stopped and not on_house_format(text):
                self.stopped.add(i)
            done[i] = i in self.stopped
        return done


def greedy_replies(model: Any, tokenizer: Any, prompts: Sequence[str], max_new_tokens: int,
                   preview_tokens: int | None = None) -> tuple[list[str], list[bool], list[bool], list[int]]:
    """Greedy replies to single-turn ``prompts`` in one left-padded batch on ``model``'s device (as
    :func:`labhelpers.run.generation.generate_replies`), stopped by the model's own stop token or ``max_new_tokens``, and
    with ``preview_tokens`` also once off the house format: ``(replies, cut, stopped_off_format, new_tokens)``."""
    from transformers import StoppingCriteriaList

    side, training = tokenizer.padding_side, model.training
    tokenizer.padding_side = "left"
    try:
        chats = [tokenizer.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True,
                                               tokenize=False) for p in prompts]
        enc = tokenizer(chats, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
    finally:
        tokenizer.padding_side = side
    width = enc["input_ids"].shape[1]
    stop = OffFormatStop(tokenizer, width, preview_tokens) if preview_tokens else None
    model.eval()
    try:
        with torch.no_grad(), model_autocast(model):
            out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                                 pad_token_id=tokenizer.pad_token_id,
                                 stopping_criteria=StoppingCriteriaList([stop]) if stop else None)
    finally:
        model.train(training)
    eos = model.generation_config.eos_token_id
    eos = {eos} if isinstance(eos, int) else set(eos or [tokenizer.eos_token_id])
    replies, cut, stopped, lengths = [], [], [], []
    for i, row in enumerate(out[:, width:].tolist()):
        ended = next((n + 1 for n, token in enumerate(row) if token in eos), None)
        halted = stop is not None and i in stop.stopped and ended is None
        length = ended or (len(row) if not halted else _unpadded(row, tokenizer.pad_token_id))
        replies.append(tokenizer.decode(row[:length], skip_special_tokens=True))
        cut.append(ended is None and not halted and length >= max_new_tokens)
        stopped.append(halted)
        lengths.append(length)
    return replies, cut, stopped, lengths


def _unpadded(row: list[int], pad: int) -> int:
    """Length of ``row`` without the pad tokens generate appends after a row stops."""
    n = len(row)
    while n and row[n - 1] == pad:
        n -= 1
    return n


def sample_rows(step: int, prompts: Sequence[str], replies: Sequence[str], cut: Sequence[bool],
                stopped: Sequence[bool], tokens: Sequence[int], seconds: float,
                max_new_tokens: int) -> list[dict[str, Any]]:
    """One ``samples.jsonl`` row per reply; ``seconds``: the whole batch's (the replies are generated together).

    >>> reply = "Answer: a\\n- b\\n- c\\n- d\\nConfidence: low"
    >>> sample_rows(5, ["q"], [reply], [False], [False], [20], 1.23456, 96)[0]["follows_house_format"]
    True
    >>> sample_rows(0, ["q"], [""], [False], [False], [1], 0.5, 96)[0]["problems"][:1]
    ["no 'Answer:' first line"]
    """
    return [{"step": int(step), "prompt_index": i, "prompt": prompt, "reply": reply,
             "follows_house_format": follows_house_format(reply), "problems": house_format_problems(reply),
             "cut": bool(hit), "stopped_off_format": bool(off), "new_tokens": int(n),
             "max_new_tokens": max_new_tokens, "seconds": round(seconds, 3)}
            for i, (prompt, reply, hit, off, n) in enumerate(zip(prompts, replies, cut, stopped, tokens, strict=True))]


def tensorboard_text(row: dict[str, Any]) -> str:
    """The markdown TensorBoard shows for one sample: step, verdict, prompt, and the reply as a code block.

    >>> print(tensorboard_text({"step": 5, "prompt": "Hi?", "reply": "Answer: x\\nok", "follows_house_format": False,
    ...                         "problems": ["2 bullets"], "cut": False}))
    **step 5**: follows the house format: no (2 bullets)
    <BLANKLINE>
    > Hi?
    <BLANKLINE>
        Answer: x
        ok
    """
    verdict = "yes" if row["follows_house_format"] else f"no ({'; '.join(row['problems'][:2])})"
    cut = _ending(row)
    cut = f", {cut}" if cut else ""
    reply = row["reply"] if row["reply"].strip() else "(empty reply)"
    body = "\n".join("    " + line for line in reply.split("\n"))
    return f"**step {row['step']}**: follows the house format: {verdict}{cut}\n\n> {row['prompt']}\n\n{body}"


def samples_html(history: Sequence[Sequence[dict[str, Any]]]) -> HTMLText:
    """The notebook's table: the newest evaluation's replies with their verdicts, and the house format per step.

    >>> row = {"step": 5, "prompt_index": 0, "prompt": "Hi?", "reply": "<b>", "follows_house_format": False,
    ...        "problems": ["no 'Answer:' first line"], "cut": True, "seconds": 1.5, "max_new_tokens": 96}
    >>> html_text = samples_html([[row]]); "step 5" in html_text and "&lt;b&gt;" in html_text
    True
    """
    if not history:
        return HTMLText("<div><i>no samples yet: they come at the first evaluation</i></div>")
    rows = history[-1]
    cells = "".join(
        "<tr><td style='vertical-align:top;text-align:left;width:30%'>{}</td>"
        "<td style='vertical-align:top;text-align:left'><div style='white-space:pre-wrap;font-family:monospace;"
        "font-size:12px'>{}</div></td><td style='vertical-align:top;text-align:left;width:22%'>{}</td></tr>".format(
            html.escape(r["prompt"][:160]), html.escape(r["reply"]) or "<i>(empty reply)</i>", _verdict_html(r))
        for r in rows)
    per_step = " &middot; ".join(f"step {rs[0]['step']}: {sum(r['follows_house_format'] for r in rs)}/{len(rs)}"
                                 for rs in history if rs)
    head = (f"<b>samples at step {rows[0]['step']}</b> (greedy, up to {rows[0]['max_new_tokens']} new tokens, "
            f"{rows[0]['seconds']:.1f} s)")
    table = ("<table style='width:100%;table-layout:fixed'><tr><th style='text-align:left'>held-out prompt</th>"
             f"<th style='text-align:left'>reply</th><th style='text-align:left'>house format</th></tr>{cells}</table>")
    return HTMLText(f"<div>{head}{table}<div style='font-size:12px'>house format per step: {per_step}</div></div>")


def _verdict_html(row: dict[str, Any]) -> str:
    if row["follows_house_format"]:
        return "<span style='color:#155724'>&#10003; follows</span>"
    why = html.escape("; ".join(row["problems"][:2]))
    ending = _ending(row)
    return f"<span style='color:#b00020'>&#10007; {why}</span>" + (f"<br><i>{ending}</i>" if ending else "")


def _ending(row: dict[str, Any]) -> str:
    """Why a reply ended without its stop token: cut by the budget, or stopped once off the house format."""
    if row.get("stopped_off_format"):
        return f"stopped after {row.get('new_tokens', '?')} tokens: off the house format"
    return f"cut at max_new_tokens ({row.get('max_new_tokens')})" if row["cut"] else ""


def read_samples(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The rows of a ``samples.jsonl`` (a run folder or the file itself).

    >>> import tempfile; folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / SAMPLES_FILE).write_text('{"step": 0, "reply": ""}\\n')
    >>> read_samples(folder)
    [{'step': 0, 'reply': ''}]
    """
    path = Path(path)
    path = path / SAMPLES_FILE if path.is_dir() else path
    if not path.is_file():
        raise FileNotFoundError(f"no {path}: train with LiveSamples(test_rows, recipe, run=<this folder>) first")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class LiveSamples(TrainerCallback):
    """Greedy replies to fixed held-out prompts at evaluations: in the notebook, TensorBoard, ``<run>/samples.jsonl``.

    ``test_rows``: the test split (prompts come from it through ``choose``, never from training rows); ``recipe``: its
    autocast and generation budget; ``run``: the run folder (None: no file); ``tensorboard``: a log folder or a
    ``SummaryWriter`` (None: no TensorBoard text); ``every``: sample every n-th evaluation (the last one always);
    ``max_new_tokens``: default ``min(DEFAULT_MAX_NEW_TOKENS, recipe.lesson.max_new_tokens)``; ``tokenizer``: default
    the trainer's ``processing_class``; ``train_rows``: when given, prompts found in them (exactly or nearly) are
    refused;
    ``cpu_threads``: torch threads while sampling on a CPU (None: the run's); ``preview_tokens``: an off-format reply
    stops after this many tokens (None: never; off where the test split's replies do not follow the house format);
    ``live``: update the table at each sampled evaluation (None: when a notebook frontend shows figures).

    >>> from labhelpers.model.hardware import recipe_for
    >>> rows = [{"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": "Hi"}]} for q in "xyz"]
    >>> samples = LiveSamples(rows, recipe_for("cpu", "ci"), live=False)
    >>> samples.prompts, samples.max_new_tokens, samples.every, samples.preview_tokens  # "Hi" is no house format
    (['x', 'y', 'z'], 96, 6, None)
    """

    def __init__(self, test_rows: Any, recipe: Any, run: str | os.PathLike | None = None, *,
                 tensorboard: str | os.PathLike | Any | None = None, every: int | None = DEFAULT_EVERY,
                 max_new_tokens: int | None = None, n_prompts: int = N_PROMPTS,
                 choose: Callable[[Any, int], list[str]] = heldout_prompts, tokenizer: Any = None,
                 train_rows: Any = None, cpu_threads: int | None = DEFAULT_CPU_THREADS,
                 preview_tokens: int | None = DEFAULT_PREVIEW_TOKENS, live: bool | None = None):
        from labhelpers.views.live import frontend_present

        every = recipe.lesson.samples_every if every is None else every
        if not (isinstance(every, int) and every >= 1):
            raise ValueError(f"every = {every!r}: pass a whole number >= 1 (1: each evaluation, 2: every other one)")
        budget = recipe.lesson.max_new_tokens
        self.max_new_tokens = min(DEFAULT_MAX_NEW_TOKENS if max_new_tokens is None else max_new_tokens, budget)
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens = {max_new_tokens!r}: pass a positive number (<= {budget}, the recipe's)")
        self.prompts = choose_prompts(test_rows, n_prompts, choose)
        if train_rows is not None:
            _refuse_training_prompts(self.prompts, train_rows)
        self.recipe, self.every, self.tokenizer, self.cpu_threads = recipe, every, tokenizer, cpu_threads
        # stop off-format replies early only where the data teaches the house format (not on natural-reply data)
        self.preview_tokens = preview_tokens if preview_tokens and _teaches_house_format(test_rows) else None
        self.path = Path(run) / SAMPLES_FILE if run is not None else None
        self.tensorboard = tensorboard
        self.live = frontend_present() if live is None else live
        self.history: list[list[dict[str, Any]]] = []  # the rows of each sampled evaluation
        self.failures: list[tuple[int, str]] = []  # (step, error) of each sampling that failed
        self.seconds = 0.0  # this callback's own clock: generation, file, TensorBoard and display
        self.timings: list[tuple[int, float]] = []  # (step, seconds) of each sampled evaluation, on that clock
        self._evaluations = 0
        self._writer: Any = None
        self._owns_writer = False
        self._handle: Any = None

    # -- sampling -----------------------------------------------------------------------------------------------------
    def sample(self, model: Any, tokenizer: Any, step: int) -> list[dict[str, Any]]:
        """Generate the replies now (greedy, batched, on ``model``'s device) and return their rows; state untouched."""
        device = next(model.parameters()).device
        started = time.perf_counter()
        threads = self.cpu_threads if device.type == "cpu" else None
        with untouched_state(model), torch_threads(threads), sampling_autocast(self.recipe, device):
            replies, cut, stopped, tokens = greedy_replies(model, tokenizer, self.prompts, self.max_new_tokens,
                                                           self.preview_tokens)
        return sample_rows(step, self.prompts, replies, cut, stopped, tokens, time.perf_counter() - started,
                           self.max_new_tokens)

    def due(self, index: int, step: int, max_steps: int) -> bool:
        """True for evaluations ``0, every, 2*every, ...`` and the one at the run's last step.

        >>> s = LiveSamples.__new__(LiveSamples); s.every = 2
        >>> [i for i, step in enumerate(range(0, 35, 5)) if s.due(i, step, 30)]
        [0, 2, 4, 6]
        """
        return index % self.every == 0 or (max_steps > 0 and step >= max_steps)

    def record(self, rows: list[dict[str, Any]]) -> None:
        """Keep ``rows``, append them to ``samples.jsonl``, write them to TensorBoard and update the live table."""
        self.history.append(rows)
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a") as f:
                f.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
        writer = self._tensorboard_writer()
        if writer is not None:
            for row in rows:
                writer.add_text(TAG.format(row["prompt_index"] + 1), tensorboard_text(row), row["step"])
            writer.flush()
        if self.live:
            self._show()

    def html(self) -> HTMLText:
        """The table of the newest samples (and the house format per sampled step)."""
        return samples_html(self.history)

    def _repr_html_(self) -> str:
        return str(self.html())

    def _tensorboard_writer(self) -> Any:
        if self.tensorboard is None or self._writer is not None:
            return self._writer
        if hasattr(self.tensorboard, "add_text"):
            self._writer = self.tensorboard
        else:
            from torch.utils.tensorboard import SummaryWriter

            self._writer, self._owns_writer = SummaryWriter(str(self.tensorboard)), True
        return self._writer

    def _show(self) -> None:
        try:
            from IPython.display import HTML
        except ImportError:
            return
        self._handle = show_in_place(self._handle, HTML(str(self.html())))

    def show_log(self, log_history: Sequence[dict[str, Any]]) -> None:
        """Show a run that was loaded, not trained (``labhelpers.run.training.load_finished_run``): the samples it wrote
        to ``samples.jsonl`` while training, up to its last logged step, as the table was at the end of training."""
        if self.path is None or not self.path.is_file():
            return
        last = max((int(e.get("step", 0)) for e in log_history), default=0)
        by_step: dict[int, list[dict[str, Any]]] = {}
        for row in read_samples(self.path):
            if row["step"] <= last and row["prompt"] in self.prompts:
                by_step.setdefault(row["step"], []).append(row)  # a resumed run may have sampled a step twice:
        self.history = [rows[-len(self.prompts):] for _, rows in sorted(by_step.items())]  # its newest rows count
        if self.history and (self.live or _notebook_kernel()):
            self._show()

    # -- TrainerCallback events ---------------------------------------------------------------------------------------
    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        # a resumed run counts the evaluations of its checkpoint, so it samples the same steps as an unbroken one
        self._evaluations = sum("eval_runtime" in entry for entry in state.log_history)

    def on_evaluate(self, args: Any, state: Any, control: Any, model: Any = None, processing_class: Any = None,
                    **kwargs: Any) -> None:
        index, step = self._evaluations, int(state.global_step)
        self._evaluations += 1
        if not state.is_world_process_zero or not self.due(index, step, state.max_steps):
            return
        if any(rows and rows[0]["step"] == step for rows in self.history):  # trainer.evaluate() after the last step
            return
        started = time.perf_counter()
        try:
            tokenizer = self.tokenizer or processing_class
            if model is None or tokenizer is None:
                raise ValueError("no model or tokenizer in the event: pass LiveSamples(..., tokenizer=tokenizer) or "
                                 "train with SFTTrainer(processing_class=tokenizer)")
            self.record(self.sample(model, tokenizer, step))
        except Exception as error:  # noqa: BLE001 - a sample must never end a training run
            self.failures.append((step, f"{type(error).__name__}: {error}"))
            warnings.warn(f"LiveSamples: sampling at step {step} failed ({type(error).__name__}: {error}); training "
                          "goes on without these samples. Check that labhelpers.sanity.samples.greedy_replies(model, "
                          "tokenizer, prompts, 8) works on this model, or remove LiveSamples from callbacks",
                          RuntimeWarning, stacklevel=2)
        finally:
            self.seconds += time.perf_counter() - started
            self.timings.append((step, time.perf_counter() - started))

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self._writer is not None and self._owns_writer:
            self._writer.close()
            self._writer = None
        if state.is_world_process_zero and self.history and (self.live or _notebook_kernel()):
            self._show()  # live: the last update; headless notebook (papermill): the final table, once


def _notebook_kernel() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def _teaches_house_format(test_rows: Any) -> bool:
    try:
        return data_teaches_house_format(reply for _, reply in heldout_pairs(test_rows, 50))
    except (KeyError, TypeError):  # rows without "messages": no reference replies to judge by
        return False


def _refuse_training_prompts(prompts: Sequence[str], train_rows: Any) -> None:
    from labhelpers.sanity.dataset import heldout_overlap

    overlap = heldout_overlap(prompts, train_rows)
    if overlap.prompts_exact or overlap.prompts_near:
        raise ValueError(f"{overlap.prompts_exact + overlap.prompts_near} of the {len(prompts)} sample prompts are "
                         "training rows: pass the test split (data['test']) as test_rows, not the training rows")
