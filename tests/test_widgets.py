"""The notebook widgets: each static fallback shows the first selection, and the controls (driven by setting ``.value``
or calling the callback, as a frontend would) recompute the view with the module's plain functions."""

from __future__ import annotations

import base64
import math

import pytest

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

ROWS = [
    [{"role": "user", "content": "What is 2 + 2?"},
     {"role": "assistant", "content": "Answer: 4.\n- two\n- plus two\n- is four\nConfidence: high"}],
    [{"role": "system", "content": "Be brief."},
     {"role": "user", "content": "Name a colour."},
     {"role": "assistant", "content": "Answer: Blue.\n- sky\n- sea\n- ink\nConfidence: medium"}],
]


@pytest.fixture(scope="module")
def tok():
    """The lab's SFT-ready SmolLM2 tokenizer (no model weights: fast)."""
    from labhelpers.model.loading import load_tokenizer

    return load_tokenizer()


@pytest.fixture(scope="module")
def modes(tok):
    """The masking modes of notebook 04, per row of messages: everything trained vs assistant replies only."""

    def default_messages(messages):
        ids = tok.apply_chat_template(messages)["input_ids"]
        return ids, list(ids)

    def assistant_only(messages):
        enc = tok.apply_chat_template(messages, return_dict=True, return_assistant_tokens_mask=True)
        return enc["input_ids"], [t if keep else -100 for t, keep in zip(enc["input_ids"], enc["assistant_masks"])]

    return {"default messages": default_messages, "assistant-only": assistant_only}


def count_row(role, trained, masked):
    return f"<tr><td>{role}</td><td>{trained}</td><td>{masked}</td></tr>"


# -- mask explorer -----------------------------------------------------------------------------------------------------
def test_role_counts_of_the_real_template(tok, modes):
    from labhelpers.views.widgets import role_counts

    ids, labels = modes["assistant-only"](ROWS[1])
    counts = role_counts(tok, ids, labels)
    assert counts["system"][0] == counts["user"][0] == 0  # prompt turns: never trained
    assert counts["assistant"][1] == 0 and counts["assistant"][0] > 10  # every reply token trained
    assert counts["template"][0] == 1  # ... and the reply's <|im_end|>, the stop token
    assert sum(t + m for t, m in counts.values()) == len(ids)
    everything = role_counts(tok, *modes["default messages"](ROWS[1]))
    assert all(masked == 0 for _, masked in everything.values())


def test_mask_explorer_fallback_and_controls(tok, modes):
    from labhelpers.views.widgets import mask_explorer, role_counts

    explorer = mask_explorer(ROWS, tok, modes)
    bundle = explorer._repr_mimebundle_()
    assert WIDGET_VIEW in bundle  # a frontend with widgets shows the controls ...
    first = bundle["text/html"]  # ... everything else the first selection: row 0, first mode
    assert first == explorer.controls["view"].value
    ids, _ = modes["default messages"](ROWS[0])
    assert f"{len(ids)} of {len(ids)} tokens trained" in first and "row 0, default messages" in first
    assert " high" in first and "What" in first

    explorer.controls["mode"].value = "assistant-only"
    html = explorer.controls["view"].value
    ids, labels = modes["assistant-only"](ROWS[0])
    trained = sum(label != -100 for label in labels)
    assert f"{trained} of {len(ids)} tokens trained" in html and "row 0, assistant-only" in html
    assert count_row("user", 0, role_counts(tok, ids, labels)["user"][1]) in html

    explorer.controls["row"].value = 1
    html = explorer.controls["view"].value
    counts = role_counts(tok, *modes["assistant-only"](ROWS[1]))
    assert "row 1, assistant-only" in html and count_row("system", 0, counts["system"][1]) in html
    assert ">Be<" in html and "> brief<" in html  # the system turn's tokens
    assert bundle["text/html"] == first  # the static fallback stays the first selection


def test_batch_row_drops_padding():
    import torch

    from labhelpers.views.widgets import batch_row

    batch = {"input_ids": torch.tensor([[5, 6, 7], [8, 0, 0]]), "labels": torch.tensor([[-100, 6, 7], [8, -100, -100]]),
             "attention_mask": torch.tensor([[1, 1, 1], [1, 0, 0]])}
    assert batch_row(batch, 0) == ([5, 6, 7], [-100, 6, 7])
    assert batch_row(batch, 1) == ([8], [8])


# -- schedule explorer -------------------------------------------------------------------------------------------------
def png_of(explorer) -> bytes:
    (output,) = explorer.controls["view"].outputs
    return base64.b64decode(output["data"]["image/png"])


def test_schedule_curve_matches_the_formulas():
    from labhelpers.views.widgets import schedule_curve, warmup_steps

    total, peak, ratio = 20, 1e-4, 0.1
    warm = warmup_steps(total, ratio)
    assert warm == 2  # ceil(0.1 * 20), as TrainingArguments.get_warmup_steps
    lrs = schedule_curve("cosine", peak, ratio, total)
    assert len(lrs) == total and lrs[0] == 0.0 and lrs[warm] == pytest.approx(peak)
    for k, lr in enumerate(lrs):  # value k is the LR of step k + 1: after k scheduler steps
        expected = peak * k / warm if k < warm else peak * 0.5 * (1 + math.cos(math.pi * (k - warm) / (total - warm)))
        assert lr == pytest.approx(expected)
    assert schedule_curve("constant_with_warmup", peak, ratio, total)[warm:] == pytest.approx([peak] * (total - warm))
    with pytest.raises(ValueError, match="total_steps >= 1"):
        schedule_curve("cosine", peak, ratio, 0)


def test_schedule_explorer_fallback_and_controls(tmp_path):
    from labhelpers.views.widgets import schedule_explorer

    run_lrs = [(1, 0.0), (2, 1e-4), (3, 7.5e-5), (4, 2.5e-5)]
    explorer = schedule_explorer(run_lrs, warmup_ratio=0.25)
    bundle = explorer._repr_mimebundle_()
    assert WIDGET_VIEW in bundle
    fallback = base64.b64decode(bundle["image/png"])
    path = tmp_path / "schedule.png"
    path.write_bytes(fallback)
    assert path.stat().st_size > 1000 and fallback.startswith(PNG_SIGNATURE)
    assert png_of(explorer) == fallback  # the widget starts on the fallback's settings
    assert explorer.controls["total_steps"].value == 4 and explorer.controls["peak_lr"].value == pytest.approx(1e-4)

    before = png_of(explorer)
    explorer.controls["scheduler"].value = "linear"
    after_type = png_of(explorer)
    assert after_type != before
    explorer.controls["total_steps"].value = 40
    assert png_of(explorer) not in (before, after_type)
    assert base64.b64decode(explorer._repr_mimebundle_()["image/png"]) == fallback


def test_schedule_figure_draws_the_run_beside_the_curve():
    from labhelpers.views.widgets import schedule_curve, schedule_figure

    run_lrs = [(1, 0.0), (2, 1.0), (3, 0.75), (4, 0.25)]
    ax = schedule_figure("cosine", 1.0, 0.25, 4, run_lrs).axes[0]
    curve, run = ax.lines[0], ax.lines[1]
    assert curve.get_xydata().tolist() == [[k + 1, lr] for k, lr in enumerate(schedule_curve("cosine", 1.0, 0.25, 4))]
    assert run.get_xydata().tolist() == [list(p) for p in run_lrs]
    assert run.get_ydata().tolist() == curve.get_ydata().tolist()  # the run followed the schedule it was given


# -- chat compare ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode, expected", [
    ("greedy", {"max_new_tokens": 4, "do_sample": False}),
    ("sampled", {"max_new_tokens": 4, "do_sample": True, "temperature": 0.5, "top_p": 0.8}),
])
def test_generation_kwargs_table(mode, expected):
    from labhelpers.views.widgets import generation_kwargs

    assert generation_kwargs(mode, temperature=0.5, top_p=0.8, max_new_tokens=4) == expected


def test_generation_kwargs_rejects_bad_values():
    from labhelpers.views.widgets import generation_kwargs

    with pytest.raises(ValueError, match="choose one of"):
        generation_kwargs("beam")
    with pytest.raises(ValueError, match="choose greedy"):
        generation_kwargs("sampled", temperature=0.0)
    assert "temperature" not in generation_kwargs("greedy", temperature=0.0)  # greedy ignores the sliders


@pytest.fixture(scope="module")
def model_spy():
    """The real offline SmolLM2 whose ``generate`` records the keywords and input device of each call."""
    from labhelpers.model.loading import load_model_and_tokenizer

    model, tokenizer = load_model_and_tokenizer(verbose=False)
    calls = []
    original = model.generate

    def generate(**kwargs):
        calls.append({k: v for k, v in kwargs.items() if k != "streamer"} | {"device": kwargs["input_ids"].device})
        return original(**kwargs)

    model.generate = generate
    return model, tokenizer, calls


@pytest.mark.slow
def test_stream_reply_streams_the_greedy_reply(model_spy):
    from labhelpers.run.generation import generate_replies
    from labhelpers.views.widgets import generation_kwargs, stream_reply

    model, tokenizer, calls = model_spy
    seen = []
    reply = stream_reply(model, tokenizer, "Name a colour.", generation_kwargs("greedy", max_new_tokens=4), seen.append)
    assert seen and seen[-1] == reply and all(reply.startswith(part) for part in seen)
    assert calls[-1]["device"] == model.device and calls[-1]["do_sample"] is False
    assert reply == generate_replies(model, tokenizer, ["Name a colour."], max_new_tokens=4)[0][0]


@pytest.mark.slow
def test_chat_compare_shows_replies_already_generated_without_generating_them_again(model_spy):
    from labhelpers.measure.behaviour import follows_house_format
    from labhelpers.views.widgets import chat_compare

    model, tokenizer, calls = model_spy
    calls.clear()
    compare = chat_compare(model, model, tokenizer, follows_house_format, prompt="Name a colour.", max_new_tokens=4,
                           first_replies=("Blue is a colour.", "Answer: red"))
    html = compare._repr_mimebundle_()["text/html"]
    assert calls == [] and "Blue is a colour." in html and "Answer: red" in html
    compare.controls["generate"].click()  # the button still generates with both models
    assert len(calls) == 2


@pytest.mark.slow
def test_chat_compare_fallback_and_controls(model_spy):
    from labhelpers.measure.behaviour import follows_house_format
    from labhelpers.views.widgets import chat_compare

    model, tokenizer, calls = model_spy
    calls.clear()
    compare = chat_compare(model, model, tokenizer, follows_house_format, prompt="Name a colour.", max_new_tokens=4)
    html = compare._repr_mimebundle_()["text/html"]
    assert "prompt: Name a colour." in html and "<th>base</th><th>fine-tuned</th>" in html
    assert html.count("follows_house_format: no") == 2  # 4 tokens: not the house format
    assert [c["do_sample"] for c in calls] == [False, False] and all("temperature" not in c for c in calls)
    assert all(c["device"] == model.device for c in calls)

    c = compare.controls
    assert c["temperature"].disabled and c["top_p"].disabled
    c["mode"].value = "sampled"
    assert not c["temperature"].disabled
    c["temperature"].value, c["top_p"].value, c["prompt"].value = 0.5, 0.8, "Say hi."
    c["generate"].click()  # what the button does in a frontend
    sampled = calls[-2:]
    assert all(s["do_sample"] is True and s["temperature"] == 0.5 and s["top_p"] == 0.8 for s in sampled)
    assert all(s["max_new_tokens"] == 4 for s in sampled)
    assert "follows_house_format:" in c["reply base"].value and not c["generate"].disabled
    c["mode"].value = "greedy"
    c["generate"].click()
    assert calls[-1]["do_sample"] is False and "temperature" not in calls[-1] and "top_p" not in calls[-1]
