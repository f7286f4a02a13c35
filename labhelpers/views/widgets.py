"""Interactive views for the notebooks (core ipywidgets only), each with a static twin.

    mask_explorer(rows, tokenizer, modes)            # 04: a row's tokens, trained vs masked, under each masking mode
    schedule_explorer(run_lrs)                       # 08: an LR schedule redrawn as you move the controls
    chat_compare(base_model, tuned_model, tokenizer)  # 09: one prompt, both models' replies streamed side by side

Each returns an :class:`Interactive`: a notebook frontend with widgets shows the controls; anything else (papermill,
nbval, nbconvert, GitHub, a reader of the executed notebook) shows the static HTML or PNG of the first selection,
carried in the same output. Nothing depends on widget state: every view is computed by a plain function of this
module (``mask_view``, ``schedule_curve``/``schedule_figure``, ``generation_kwargs``/``stream_reply``/``replies_table``)
that the tests call directly, and the widget callbacks only pass the controls' values to them.
"""

from __future__ import annotations

import base64
import html
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from labhelpers.base.batching import warmup_steps
from labhelpers.views.display import (IGNORE_INDEX, MASKED_STYLE, TRAINED_STYLE, HTMLText, render_masked_tokens,
                                      token_pieces, token_roles)
from labhelpers.views.plots import figure_png
from labhelpers.data.turns import end_of_turn_id, turn_start_token

LABEL_STYLE = {"description_width": "initial"}  # the whole label ("warmup ratio", "temperature"), never cut

ROLES = ("system", "user", "assistant", "template")  # rows of the count table, in this order ("pad", "other" if any)
SCHEDULES = ("cosine", "linear", "constant_with_warmup", "constant", "cosine_with_restarts", "polynomial",
             "inverse_sqrt", "warmup_stable_decay")  # transformers SchedulerType names that need no extra kwargs
DECODING = ("greedy", "sampled")


class Interactive:
    """A widget and its static fallback in one output: frontends with widgets show the widget, the rest the fallback."""

    def __init__(self, widget: Any, fallback: Mapping[str, Any], controls: Mapping[str, Any],
                 update: Callable[[], None]):
        self.widget = widget  # the ipywidgets box to display
        self.fallback = dict(fallback)  # {"text/html": ...} or {"image/png": base64}: the first selection, static
        self.controls = dict(controls)  # name -> control widget; set .value to drive it (what the tests do)
        self.update = update  # recompute the view from the controls (the callback the controls call)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        bundle = widget_bundle(self.widget)  # text/plain + the widget view (skipped without widget state)
        bundle.update(self.fallback)
        return bundle


def ipywidgets_major() -> int:
    """The major version of the installed ipywidgets: 8 from the lock, 7 on Colab (which keeps its own 7.7.1)."""
    import ipywidgets

    return int(ipywidgets.__version__.split(".")[0])


def widget_bundle(widget: Any) -> dict[str, Any]:
    """What a frontend needs to show ``widget``: ``text/plain`` and the widget view (model id), on ipywidgets 7 or 8.

    ipywidgets 8 returns it from ``Widget._repr_mimebundle_``. ipywidgets 7 has no ``_repr_mimebundle_``: its
    ``_ipython_display_`` publishes the same bundle itself (``display(data, raw=True)``), so here it is built the way
    7.7.1 builds it (identical to 8's: widget protocol 2.0). Colab keeps ipywidgets 7.7.1, since its frontend stopped
    rendering the core widgets of ipywidgets 8 (googlecolab/colabtools#3020).
    """
    if ipywidgets_major() >= 8:
        return dict(widget._repr_mimebundle_())
    plaintext = repr(widget)
    data: dict[str, Any] = {"text/plain": plaintext[:110] + "…" if len(plaintext) > 110 else plaintext}
    if widget._view_name is not None:
        data["application/vnd.jupyter.widget-view+json"] = {"version_major": 2, "version_minor": 0,
                                                             "model_id": widget._model_id}
    return data


# -- 04: which tokens the loss trains ---------------------------------------------------------------------------------
def token_kinds(tokenizer: Any, input_ids: Sequence[int]) -> list[str]:
    """The turn of each token ('system', 'user', 'assistant'), or 'template' for ChatML headers, ``<|im_end|>`` and the
    newline after it, 'pad' for padding, 'other' outside any turn.

    >>> text = {0: "<pad>", 1: "<|im_start|>", 2: "<|im_end|>", 3: "user", 4: "ass", 5: "istant", 7: "Hi", 9: "\\n"}
    >>> class Toy:
    ...     pad_token_id, eos_token = 0, "<|im_end|>"
    ...     def convert_tokens_to_ids(self, token): return {"<|im_start|>": 1, "<|im_end|>": 2}[token]
    ...     def decode(self, ids, skip_special_tokens=False): return "".join(text[i] for i in ids)
    >>> token_kinds(Toy(), [1, 3, 9, 7, 2, 9, 1, 4, 5, 9, 7, 2, 0])
    ['template', 'template', 'template', 'user', 'template', 'template', 'template', 'template', 'template', 'template', 'assistant', 'template', 'pad']
    """
    ids = [int(i) for i in input_ids]
    start = turn_start_token(tokenizer)
    start_id = tokenizer.convert_tokens_to_ids(start) if start else None
    end_id = end_of_turn_id(tokenizer)
    kinds = ["other" if role == "none" else role for role in token_roles(tokenizer, ids)]
    pieces = token_pieces(tokenizer, ids)
    in_header = False
    for i, token_id in enumerate(ids):
        if kinds[i] == "pad":
            continue
        in_header = in_header or token_id == start_id
        after_end = i > 0 and ids[i - 1] == end_id and pieces[i] == "\n"
        if in_header or token_id == end_id or after_end:
            kinds[i] = "template"
        if in_header and "\n" in pieces[i]:  # "<|im_start|>assistant\n" ends at its newline
            in_header = False
    return kinds


def role_counts(tokenizer: Any, input_ids: Sequence[int], labels: Sequence[int]) -> dict[str, tuple[int, int]]:
    """``{kind: (trained, masked)}`` token counts for each kind of :func:`token_kinds`, in :data:`ROLES` order.

    >>> text = {1: "<|im_start|>", 2: "<|im_end|>", 3: "user", 4: "ass", 5: "istant", 7: "Hi", 9: "\\n"}
    >>> class Toy:
    ...     pad_token_id, eos_token = 0, "<|im_end|>"
    ...     def convert_tokens_to_ids(self, token): return {"<|im_start|>": 1, "<|im_end|>": 2}[token]
    ...     def decode(self, ids, skip_special_tokens=False): return "".join(text[i] for i in ids)
    >>> ids = [1, 3, 9, 7, 2, 9, 1, 4, 5, 9, 7, 2]
    >>> role_counts(Toy(), ids, [-100] * 10 + [7, 2])  # assistant-only: the reply and its <|im_end|>
    {'system': (0, 0), 'user': (0, 1), 'assistant': (1, 0), 'template': (1, 9)}
    """
    if len(input_ids) != len(labels):
        raise ValueError(f"{len(input_ids)} input ids but {len(labels)} labels; pass one label per token")
    counts = {role: [0, 0] for role in ROLES}
    for kind, label in zip(token_kinds(tokenizer, input_ids), labels):
        counts.setdefault(kind, [0, 0])[int(label) == IGNORE_INDEX] += 1
    return {kind: (trained, masked) for kind, (trained, masked) in counts.items()}


def counts_table(counts: Mapping[str, tuple[int, int]]) -> HTMLText:
    """An HTML table of :func:`role_counts`: one row per kind, trained and masked columns.

    >>> print(counts_table({"user": (0, 5), "assistant": (3, 0)}))  # doctest: +ELLIPSIS
    <table ...><tr><th>turn</th><th ...>trained</th><th ...>masked (-100)</th></tr><tr><td>user</td><td>0</td><td>5</td></tr><tr><td>assistant</td><td>3</td><td>0</td></tr></table>
    """
    cell = "<td>{}</td>"
    rows = "".join("<tr>" + cell.format(html.escape(kind)) + cell.format(t) + cell.format(m) + "</tr>"
                   for kind, (t, m) in counts.items())
    return HTMLText("<table style='font-size:12px;margin:4px 0'><tr><th>turn</th>"
                    f"<th style='{TRAINED_STYLE}'>trained</th><th style='{MASKED_STYLE}'>masked (-100)</th></tr>"
                    + rows + "</table>")


def mask_view(tokenizer: Any, input_ids: Sequence[int], labels: Sequence[int], title: str | None = None) -> HTMLText:
    """The count table by turn, then the tokens coloured trained (green) / masked (grey): what the explorer shows."""
    ids, labs = [int(i) for i in input_ids], [int(x) for x in labels]
    return HTMLText(counts_table(role_counts(tokenizer, ids, labs)) + render_masked_tokens(tokenizer, ids, labs, title))


def batch_row(batch: Mapping[str, Any], i: int) -> tuple[list[int], list[int]]:
    """``(input_ids, labels)`` of row ``i`` of a collated batch, padding dropped (where ``attention_mask`` is 0).

    >>> import torch
    >>> batch_row({"input_ids": torch.tensor([[5, 6, 0]]), "labels": torch.tensor([[-100, 6, -100]]),
    ...            "attention_mask": torch.tensor([[1, 1, 0]])}, 0)
    ([5, 6], [-100, 6])
    """
    ids, labels = batch["input_ids"][i].tolist(), batch["labels"][i].tolist()
    if batch.get("attention_mask") is None:
        return ids, labels
    keep = batch["attention_mask"][i].tolist()
    return [t for t, k in zip(ids, keep) if k], [x for x, k in zip(labels, keep) if k]


def mask_explorer(rows: Sequence[Any], tokenizer: Any,
                  modes: Mapping[str, Callable[[Any], tuple[Sequence[int], Sequence[int]]]]) -> Interactive:
    """Pick a row and a masking mode; see its tokens trained vs masked and the counts per turn."""
    import ipywidgets as w

    rows = list(rows)
    if not rows or not modes:
        raise ValueError(f"mask_explorer needs rows and modes; got {len(rows)} rows and modes {list(modes)}")
    cache: dict[tuple[int, str], HTMLText] = {}

    def view(i: int, mode: str) -> HTMLText:
        if (i, mode) not in cache:
            ids, labels = modes[mode](rows[i])
            cache[i, mode] = mask_view(tokenizer, ids, labels, title=f"row {i}, {mode}")
        return cache[i, mode]

    row = w.IntSlider(value=0, min=0, max=len(rows) - 1, description="row", continuous_update=False)
    mode = w.Dropdown(options=list(modes), value=next(iter(modes)), description="masking",
                      layout=w.Layout(width="max-content"))
    out = w.HTML(value=view(0, mode.value))

    def update(*_: Any) -> None:
        out.value = view(row.value, mode.value)

    row.observe(update, names="value")
    mode.observe(update, names="value")
    box = w.VBox([w.HBox([row, mode]), out])
    return Interactive(box, {"text/html": out.value}, {"row": row, "mode": mode, "view": out}, update)


# -- 08: learning-rate schedules ---------------------------------------------------------------------------------------
def schedule_curve(name: str, peak_lr: float, warmup_ratio: float, total_steps: int) -> list[float]:
    """LR of optimizer steps 1..total under ``transformers.get_scheduler(name)``, as Trainer applies (and logs) them.

    Value ``k`` is the LR of step ``k + 1``: Trainer steps the scheduler after each optimizer step, so with warmup the
    first step trains at LR 0.

    >>> schedule_curve("cosine", 1.0, 0.25, 4)  # 1 warmup step
    [0.0, 1.0, 0.75, 0.25]
    >>> schedule_curve("linear", 1.0, 0.0, 4)
    [1.0, 0.75, 0.5, 0.25]
    """
    import torch
    from transformers import get_scheduler

    if total_steps < 1 or peak_lr <= 0 or warmup_ratio < 0:
        raise ValueError(f"need total_steps >= 1, peak_lr > 0, warmup_ratio >= 0; got {total_steps}, {peak_lr}, "
                         f"{warmup_ratio}")
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=peak_lr)  # a dummy: only its LR is used
    scheduler = get_scheduler(name, optimizer, num_warmup_steps=warmup_steps(total_steps, warmup_ratio),
                              num_training_steps=total_steps)
    lrs = []
    for _ in range(total_steps):
        lrs.append(round(float(scheduler.get_last_lr()[0]), 15))  # round: cos(pi/3) prints 0.75, not 0.7500000000000001
        optimizer.step()  # optimizer first, as Trainer does (else PyTorch warns)
        scheduler.step()
    return lrs


def schedule_figure(name: str, peak_lr: float, warmup_ratio: float, total_steps: int,
                    run_lrs: Sequence[tuple[int, float]] | None = None) -> Any:
    """A figure of :func:`schedule_curve` against the step, with the run's logged ``(step, lr)`` points when given."""
    from matplotlib.figure import Figure

    lrs = schedule_curve(name, peak_lr, warmup_ratio, total_steps)
    warm = warmup_steps(total_steps, warmup_ratio)
    fig = Figure(figsize=(7, 3.2), layout="constrained")
    ax = fig.add_subplot()
    ax.plot(range(1, total_steps + 1), lrs, linewidth=2, label=f"{name}, peak {peak_lr:.3g}, warmup {warm}")
    if run_lrs:
        ax.plot(*zip(*run_lrs), "o", markersize=4, color="#d62728", label="the run's logged LR")
    if warm:
        ax.axvline(warm + 1, color="grey", linestyle=":", linewidth=1)  # step warm + 1 is the first at peak LR
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("learning rate")
    ax.ticklabel_format(axis="y", style="sci", scilimits=(0, 0))
    ax.set_title(f"{name}: {total_steps} steps, {warm} warmup ({warmup_ratio:g} x {total_steps}, rounded up)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def _png_output(png: bytes) -> tuple[dict[str, Any], ...]:
    """An Output widget's ``outputs``: one display_data holding the PNG (set at once: no flicker, no kernel needed)."""
    return ({"output_type": "display_data", "metadata": {},
             "data": {"image/png": base64.b64encode(png).decode("ascii"), "text/plain": "<learning-rate schedule>"}},)


def schedule_explorer(run_lrs: Sequence[tuple[int, float]] | None = None, *, name: str = "cosine",
                      peak_lr: float | None = None,  # None: the run's highest logged LR, else 2e-5
                      warmup_ratio: float = 0.1, total_steps: int | None = None  # None: the run's last step, else 96
                      ) -> Interactive:
    """Scheduler type, peak LR, warmup ratio and total steps as controls; the curve (and the run's LRs) redraws."""
    import ipywidgets as w

    run_lrs = [(int(s), float(lr)) for s, lr in run_lrs] if run_lrs else None
    peak_lr = peak_lr or (max(lr for _, lr in run_lrs) if run_lrs else 2e-5)
    total_steps = total_steps or (max(s for s, _ in run_lrs) if run_lrs else 96)
    names = SCHEDULES if name in SCHEDULES else (name, *SCHEDULES)
    scheduler = w.Dropdown(options=names, value=name, description="scheduler")
    peak = w.FloatLogSlider(value=peak_lr, base=10, min=-6, max=-2, step=0.1, description="peak LR",
                            readout_format=".1e", continuous_update=False, style=LABEL_STYLE)
    warmup = w.FloatSlider(value=warmup_ratio, min=0.0, max=0.5, step=0.01, description="warmup ratio",
                           continuous_update=False, style=LABEL_STYLE)
    # a range around the run (a 30-step run's handle is usable), up to 4x its length
    total = w.IntSlider(value=total_steps, min=1, max=max(50, 4 * total_steps), description="total steps",
                        continuous_update=False, style=LABEL_STYLE)
    out = w.Output()

    def png() -> bytes:
        return figure_png(schedule_figure(scheduler.value, peak.value, warmup.value, total.value, run_lrs), dpi=90)

    def update(*_: Any) -> None:
        out.outputs = _png_output(png())

    first = png()
    out.outputs = _png_output(first)
    for control in (scheduler, peak, warmup, total):
        control.observe(update, names="value")
    box = w.VBox([w.HBox([scheduler, peak]), w.HBox([warmup, total]), out])
    controls = {"scheduler": scheduler, "peak_lr": peak, "warmup_ratio": warmup, "total_steps": total, "view": out}
    return Interactive(box, {"image/png": base64.b64encode(first).decode("ascii")}, controls, update)


# -- 09: base vs fine-tuned, one prompt --------------------------------------------------------------------------------
def generation_kwargs(mode: str, temperature: float = 0.7, top_p: float = 0.9,
                      max_new_tokens: int = 64) -> dict[str, Any]:
    """``model.generate`` keywords: ``do_sample`` is True exactly when sampling, and only then temperature and top_p.

    (Greedy decoding with a temperature is a classic bug: transformers warns and ignores it.)

    >>> generation_kwargs("greedy", temperature=0.7, top_p=0.9, max_new_tokens=8)
    {'max_new_tokens': 8, 'do_sample': False}
    >>> generation_kwargs("sampled", temperature=0.7, top_p=0.9, max_new_tokens=8)
    {'max_new_tokens': 8, 'do_sample': True, 'temperature': 0.7, 'top_p': 0.9}
    """
    if mode not in DECODING:
        raise ValueError(f"decoding mode {mode!r}: choose one of {DECODING}")
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens={max_new_tokens}: generate at least 1 token")
    if mode == "greedy":
        return {"max_new_tokens": int(max_new_tokens), "do_sample": False}
    if temperature <= 0 or not 0 < top_p <= 1:
        raise ValueError(f"temperature={temperature}, top_p={top_p}: sampling needs temperature > 0 and 0 < top_p <= 1 "
                         "(for temperature 0, choose greedy)")
    return {"max_new_tokens": int(max_new_tokens), "do_sample": True, "temperature": float(temperature),
            "top_p": float(top_p)}


def stream_reply(model: Any, tokenizer: Any, prompt: str, gen_kwargs: Mapping[str, Any],
                 on_text: Callable[[str], None] | None = None, autocast: Callable[[], Any] | None = None) -> str:
    """The model's reply to ``prompt`` (a user turn), generated in a thread and streamed: ``on_text(text so far)``.

    ``autocast`` (e.g. ``recipe.autocast``) is entered inside the generation thread: autocast is per thread.
    """
    import contextlib

    import torch
    from transformers import TextIteratorStreamer

    text = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                         tokenize=False)
    inputs = tokenizer(text, return_tensors="pt", add_special_tokens=False).to(model.device)
    streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
    errors: list[BaseException] = []

    def generate() -> None:
        try:
            with torch.no_grad(), (autocast() if autocast else contextlib.nullcontext()):
                model.generate(**inputs, **gen_kwargs, streamer=streamer, pad_token_id=tokenizer.pad_token_id)
        except BaseException as error:  # re-raised below; end the stream so the loop does not wait forever
            errors.append(error)
            streamer.end()

    training = model.training
    model.eval()
    thread = threading.Thread(target=generate, daemon=True)
    thread.start()
    reply = ""
    try:
        for piece in streamer:
            reply += piece
            if on_text:
                on_text(reply)
    finally:
        thread.join()
        model.train(training)
    if errors:
        raise errors[0]
    return reply


def verdict(text: str, score: Callable[[str], Any] | None) -> str:
    """The line under a reply: ``score``'s name and result (yes/no for a bool); empty without ``score``.

    >>> verdict("Answer: x", lambda t: t.startswith("Answer:"))
    '&lt;lambda&gt;: yes'
    >>> from labhelpers.measure.behaviour import follows_house_format
    >>> verdict("Sure!", follows_house_format)
    'follows_house_format: no'
    """
    if score is None:
        return ""
    result = score(text)
    shown = ("yes" if result else "no") if isinstance(result, bool) else str(result)
    return html.escape(f"{getattr(score, '__name__', 'score')}: {shown}")


def reply_html(text: str, line: str = "") -> str:
    """A reply as pre-wrapped HTML, with its verdict line under it. Blank lines are left out of the view (a base
    model's double-spaced reply made its column twice as long as its text); the reply itself is not changed.

    >>> reply_html("a<b", "ok")
    "<div style='white-space:pre-wrap;font-family:monospace;font-size:12px'>a&lt;b</div><div style='color:#555;font-size:12px'><i>ok</i></div>"
    >>> reply_html("one\\n\\ntwo\\n \\n\\nthree")
    "<div style='white-space:pre-wrap;font-family:monospace;font-size:12px'>one\\ntwo\\nthree</div>"
    """
    shown = re.sub(r"\n[ \t]*(?:\n[ \t]*)+", "\n", text)
    body = f"<div style='white-space:pre-wrap;font-family:monospace;font-size:12px'>{html.escape(shown)}</div>"
    return body + (f"<div style='color:#555;font-size:12px'><i>{line}</i></div>" if line else "")


def replies_table(prompt: str, replies: Mapping[str, str], score: Callable[[str], Any] | None = None) -> HTMLText:
    """An HTML table: the prompt, then one column per model with its reply and verdict.

    >>> print(replies_table("Hi?", {"base": "Hello", "fine-tuned": "Answer: Hi"}))  # doctest: +ELLIPSIS
    <table ...><tr><th ...>prompt: Hi?</th></tr><tr><th>base</th><th>fine-tuned</th></tr><tr><td ...>...Hello</div></td><td ...>...Answer: Hi</div></td></tr></table>
    """
    td = "<td style='vertical-align:top;text-align:left;width:50%'>{}</td>"
    head = "".join(f"<th>{html.escape(name)}</th>" for name in replies)
    cells = "".join(td.format(reply_html(text, verdict(text, score))) for text in replies.values())
    title = f"<th colspan='{len(replies)}' style='text-align:left'>prompt: {html.escape(prompt)}</th>"
    return HTMLText(f"<table style='width:100%;table-layout:fixed'><tr>{title}</tr><tr>{head}</tr><tr>{cells}</tr></table>")


def chat_compare(base_model: Any, tuned_model: Any, tokenizer: Any, score: Callable[[str], Any] | None = None, *,
                 prompt: str = "Explain what a neural network is in simple terms.",
                 max_new_tokens: int = 64, autocast: Callable[[], Any] | None = None,
                 names: tuple[str, str] = ("base", "fine-tuned"),
                 first_replies: tuple[str, str] | None = None) -> Interactive:
    """Type a prompt, get both models' replies side by side, streamed; greedy or sampled; a verdict under each.

    ``first_replies``: both models' greedy replies to ``prompt`` when the notebook has already generated them (e.g.
    with ``generate_replies``): they are shown first instead of being generated a second time.
    """
    import ipywidgets as w

    models = dict(zip(names, (base_model, tuned_model)))
    if first_replies is not None:
        first = dict(zip(names, first_replies))
    else:
        first = {name: stream_reply(model, tokenizer, prompt, generation_kwargs("greedy", max_new_tokens=max_new_tokens),
                                    autocast=autocast) for name, model in models.items()}

    text = w.Textarea(value=prompt, description="prompt", layout=w.Layout(width="95%", height="4em"))
    mode = w.ToggleButtons(options=DECODING, value="greedy", description="decoding")
    temperature = w.FloatSlider(value=0.7, min=0.05, max=1.5, step=0.05, description="temperature", disabled=True,
                                style=LABEL_STYLE)
    top_p = w.FloatSlider(value=0.9, min=0.05, max=1.0, step=0.05, description="top_p", disabled=True,
                          style=LABEL_STYLE)
    budget = w.IntSlider(value=max_new_tokens, min=1, max=512, description="new tokens", style=LABEL_STYLE)
    button = w.Button(description="Generate", button_style="primary", icon="play")
    views = {name: w.HTML(value=reply_html(first[name], verdict(first[name], score))) for name in models}
    columns = [w.VBox([w.HTML(f"<b>{html.escape(name)}</b>"), views[name]], layout=w.Layout(width="50%"))
               for name in models]

    def on_mode(*_: Any) -> None:
        temperature.disabled = top_p.disabled = mode.value != "sampled"

    def update(*_: Any) -> None:
        kwargs = generation_kwargs(mode.value, temperature.value, top_p.value, budget.value)
        button.disabled = True
        for view in views.values():  # no reply of the previous prompt stays beside the new one
            view.value = reply_html("…")
        try:
            for name, model in models.items():
                def show(so_far: str, view: Any = views[name]) -> None:
                    view.value = reply_html(so_far)  # each streamed piece: the reply so far

                reply = stream_reply(model, tokenizer, text.value, kwargs, on_text=show, autocast=autocast)
                views[name].value = reply_html(reply, verdict(reply, score))
        finally:
            button.disabled = False

    mode.observe(on_mode, names="value")
    button.on_click(update)
    box = w.VBox([text, w.HBox([mode, button]), w.HBox([temperature, top_p, budget]), w.HBox(columns)])
    controls = {"prompt": text, "mode": mode, "temperature": temperature, "top_p": top_p, "max_new_tokens": budget,
                "generate": button, **{f"reply {name}": view for name, view in views.items()}}
    return Interactive(box, {"text/html": replies_table(prompt, first, score)}, controls, update)
