"""LiveSamples (labhelpers/sanity/samples.py): greedy replies to held-out prompts at evaluations, on the real SmolLM2.

Tiny sizes: 2 steps of 2 rows at max_length 128, one eval row, eval after each step, 3 prompts x 4 new tokens.
"""

from __future__ import annotations

import copy
import json

import pytest
import torch

from tests.sanity_setup import DATA, build_trainer, chat_rows

TOKENS = 4  # new tokens per sample: enough to see a reply start, cheap on a CPU


def bundled(split: str) -> list[dict]:
    with open(DATA / f"{split}.jsonl") as f:
        return [json.loads(line) for line in f]


def samples_callback(recipe, **kwargs):
    from labhelpers.sanity.samples import LiveSamples

    kwargs.setdefault("max_new_tokens", TOKENS)
    kwargs.setdefault("every", 1)
    kwargs.setdefault("live", False)
    return LiveSamples(bundled("test"), recipe, **kwargs)


def train(model, tokenizer, recipe, out_dir, callbacks=(), **overrides):
    import transformers

    transformers.set_seed(42)
    kw = dict(max_steps=2, eval_steps=1, disable_tqdm=True)
    kw.update(overrides)
    trainer = build_trainer(copy.deepcopy(model), tokenizer, recipe, rows=chat_rows(4), eval_rows=chat_rows(1, "test"),
                            out_dir=str(out_dir), **kw)
    for callback in callbacks:
        trainer.add_callback(callback)
    trainer.train()
    return trainer


@pytest.fixture(scope="module")
def runs(model_and_tokenizer, cpu_recipe, tmp_path_factory):
    """The same 2-step run without and with LiveSamples (file + TensorBoard text): samples at steps 1 and 2, so the
    second step trains after a sampling."""
    model, tokenizer = model_and_tokenizer
    folder = tmp_path_factory.mktemp("samples")
    plain = train(model, tokenizer, cpu_recipe, folder / "plain")
    samples = samples_callback(cpu_recipe, run=folder / "run", tensorboard=folder / "tb")
    sampled = train(model, tokenizer, cpu_recipe, folder / "sampled", [samples])
    return plain, sampled, samples, folder


@pytest.mark.slow
def test_samples_jsonl_gets_three_rows_at_each_evaluation(runs):
    from labhelpers.sanity.samples import read_samples

    _, _, samples, folder = runs
    rows = read_samples(folder / "run")
    assert [r["step"] for r in rows] == [1, 1, 1, 2, 2, 2]  # three rows at each evaluation
    assert [r["prompt_index"] for r in rows[:3]] == [0, 1, 2]
    assert {r["prompt"] for r in rows} == set(samples.prompts)
    for row in rows:
        assert isinstance(row["reply"], str) and row["follows_house_format"] is False  # 4 tokens: never a whole reply
        assert row["seconds"] > 0 and row["max_new_tokens"] == TOKENS
    assert not samples.failures and samples.seconds > 0
    assert "samples at step 2" in samples.html()


@pytest.mark.slow
def test_tensorboard_text_has_one_tag_per_prompt(runs):
    from tensorboard.backend.event_processing.event_accumulator import TENSORS, EventAccumulator

    _, _, samples, folder = runs
    events = EventAccumulator(str(folder / "tb"), size_guidance={TENSORS: 0})
    events.Reload()
    tags = sorted(tag for tag in events.Tags()["tensors"] if tag.startswith("samples/"))
    assert tags == [f"samples/prompt_{i}/text_summary" for i in (1, 2, 3)]
    texts = events.Tensors(tags[0])
    assert [t.step for t in texts] == [1, 2]
    first = texts[-1].tensor_proto.string_val[0].decode()
    assert first.startswith("**step 2**: follows the house format: no") and samples.prompts[0] in first


@pytest.mark.slow
def test_losses_identical_with_and_without_samples(runs, model_and_tokenizer):
    plain, sampled, _, _ = runs
    def losses(trainer):
        return [(e["step"], e.get("loss"), e.get("eval_loss")) for e in trainer.state.log_history
                if "loss" in e or "eval_loss" in e]
    assert losses(sampled) == losses(plain) and len(losses(plain)) == 4  # 2 train + 2 eval, to the last bit
    assert model_and_tokenizer[1].padding_side == "right"  # the shared tokenizer is left as it was


def test_failing_generation_is_a_warning_and_training_goes_on(model_and_tokenizer, cpu_recipe, tmp_path, monkeypatch):
    import labhelpers.sanity.samples as samples_module

    def broken(*args, **kwargs):
        raise RuntimeError("Expected all tensors to be on the same device")

    monkeypatch.setattr(samples_module, "greedy_replies", broken)
    tokenizer = model_and_tokenizer[1]
    model = tiny_model(tokenizer)  # what fails is the callback's: a 1-layer model trains the step in milliseconds
    samples = samples_callback(cpu_recipe, run=tmp_path / "run")
    with pytest.warns(RuntimeWarning, match=r"sampling at step 1 failed \(RuntimeError: Expected all tensors"):
        trainer = train(model, tokenizer, cpu_recipe, tmp_path / "out", [samples], max_steps=1)  # one eval, at the end
    assert trainer.state.global_step == 1 and any("loss" in e for e in trainer.state.log_history)
    assert samples.failures == [(1, "RuntimeError: Expected all tensors to be on the same device")]
    assert not (tmp_path / "run").exists()


def tiny_model(tokenizer, silent: bool = False):
    """A 1-layer random-weights Llama on the real vocabulary; ``silent``: its logits are all 0, so greedy decoding
    picks token 0, a special token: the decoded reply is empty."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                                         num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2))
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    if silent:
        torch.nn.init.zeros_(model.lm_head.weight)
    return model.train()


def test_sample_keeps_mode_and_rng_and_survives_odd_models(tokenizer, cpu_recipe, monkeypatch):
    """A random-weights model, empty replies, a CUDA recipe with the model on the CPU: rows, no exception."""
    from labhelpers.model.hardware import recipe_for
    from labhelpers.sanity.samples import samples_html, tensorboard_text

    model = tiny_model(tokenizer)
    rng = torch.get_rng_state()
    rows = samples_callback(recipe_for("t4", "ci")).sample(model, tokenizer, step=3)  # recipe on cuda, model on cpu
    assert model.training and torch.equal(rng, torch.get_rng_state())
    assert [r["step"] for r in rows] == [3, 3, 3] and not any(r["follows_house_format"] for r in rows)
    empty = samples_callback(cpu_recipe).sample(tiny_model(tokenizer, silent=True), tokenizer, step=0)
    assert [r["reply"] for r in empty] == ["", "", ""] and all(r["cut"] for r in empty)
    assert "(empty reply)" in tensorboard_text(empty[0]) and "(empty reply)" in samples_html([empty])
    monkeypatch.setattr("IPython.get_ipython", lambda: None)  # a script (another test may have started a shell)
    live = samples_callback(cpu_recipe, live=True)
    live.record(empty)  # a script, not a notebook: nothing to show the table in, and no error
    assert live._handle is None and live.history == [empty]


@pytest.mark.slow
def test_greedy_replies_match_generate_replies_and_stop_off_format_replies(model_and_tokenizer):
    from labhelpers.run.generation import generate_replies
    from labhelpers.sanity.samples import choose_prompts, greedy_replies

    from labhelpers.sanity.samples import torch_threads

    model, tokenizer = model_and_tokenizer
    prompts, training = choose_prompts(bundled("test")), model.training
    with torch_threads(1):  # as LiveSamples samples on a CPU
        replies, cut, stopped, tokens = greedy_replies(model, tokenizer, prompts, 6)
        assert (replies, cut) == tuple(generate_replies(model, tokenizer, prompts, 6, batch_size=3))
        assert stopped == [False] * 3 and tokens == [6] * 3
        replies, cut, stopped, tokens = greedy_replies(model, tokenizer, prompts, 6, preview_tokens=2)
    assert stopped == [True] * 3 and tokens == [2] * 3 and cut == [False] * 3  # the base model: never "Answer:"
    assert model.training == training and tokenizer.padding_side == "right"  # as they were


def test_no_bundled_reply_is_stopped_early(tokenizer):
    """Every prefix (token by token) of every reference reply is still on the house format."""
    from labhelpers.sanity.samples import on_house_format

    for row in bundled("train")[:200] + bundled("test"):
        ids = tokenizer(row["messages"][-1]["content"], add_special_tokens=False)["input_ids"]
        prefixes = [tokenizer.decode(ids[:n]) for n in range(1, len(ids) + 1)]
        assert all(on_house_format(p) for p in prefixes), row["messages"][-1]["content"]


def test_prompts_are_held_out_never_training_rows():
    from labhelpers.run.generation import heldout_prompts
    from labhelpers.sanity.samples import choose_prompts
    from labhelpers.sanity.dataset import heldout_overlap

    prompts = choose_prompts(bundled("test"))
    assert prompts == heldout_prompts(bundled("test"), 3)
    overlap = heldout_overlap(prompts, bundled("train"))
    assert (overlap.prompts_exact, overlap.prompts_near) == (0, 0)


def test_training_rows_as_prompts_are_refused(cpu_recipe):
    from labhelpers.sanity.samples import LiveSamples

    train = bundled("train")
    with pytest.raises(ValueError, match=r"pass the test split \(data\['test'\]\) as test_rows"):
        LiveSamples(train[:10], cpu_recipe, train_rows=train[:50], live=False)
    with pytest.raises(ValueError, match="single-turn rows"):
        LiveSamples([], cpu_recipe, live=False)
    with pytest.raises(ValueError, match=r"pass the test split's rows \(data\['test'\]\)"):
        LiveSamples({"train": train, "test": []}, cpu_recipe, live=False)  # the DatasetDict, not its test split


def test_budget_and_cadence_defaults(cpu_recipe):
    from labhelpers.sanity.samples import LiveSamples

    samples = LiveSamples(bundled("test"), cpu_recipe, live=False, train_rows=bundled("train"))
    assert samples.max_new_tokens <= cpu_recipe.lesson.max_new_tokens
    assert LiveSamples(bundled("test"), cpu_recipe, max_new_tokens=10_000, live=False).max_new_tokens == \
        cpu_recipe.lesson.max_new_tokens
    sampled = [i for i in range(7) if samples.due(i, 5 * i, 30)]  # the ci run: 7 evaluations, steps 0, 5, ..., 30
    assert samples.every == cpu_recipe.lesson.samples_every == 6 and sampled == [0, 6]  # before and after (CPU cost)
    every_third = LiveSamples(bundled("test"), cpu_recipe, every=3, live=False)
    assert [i for i in range(7) if every_third.due(i, 5 * i, 30)] == [0, 3, 6]
    with pytest.raises(ValueError, match="every other one"):
        LiveSamples(bundled("test"), cpu_recipe, every=0, live=False)


def test_a_loaded_run_shows_the_samples_it_wrote_while_training(cpu_recipe, tmp_path):
    """Notebook 06 re-run (or opened after 09 trained the reference run): no evaluation happens, the table comes from
    samples.jsonl; a step sampled twice (a resumed run) shows its newest rows, a later run's steps are left out."""
    from labhelpers.sanity.samples import LiveSamples, sample_rows

    samples = LiveSamples(bundled("test"), cpu_recipe, tmp_path, live=False)
    n = len(samples.prompts)

    def rows(step, reply):
        return sample_rows(step, samples.prompts, [reply] * n, [False] * n, [False] * n, [3] * n, 0.1, 96)

    written = rows(0, "old") + rows(15, "first try") + rows(15, "resumed") + rows(30, "Answer: done") + rows(45, "later")
    (tmp_path / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in written))
    samples.show_log([{"step": 0, "eval_loss": 3.0}, {"step": 30, "loss": 1.0}])
    assert [[r["step"] for r in rows] for rows in samples.history] == [[0] * n, [15] * n, [30] * n]
    assert [r["reply"] for r in samples.history[1]] == ["resumed"] * n
    assert "Answer: done" in str(samples.html())
    LiveSamples(bundled("test"), cpu_recipe, tmp_path / "none", live=False).show_log([{"step": 3}])  # no file: quiet
