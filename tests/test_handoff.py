"""Notebook 13's handoff: the model card says what was measured and "not measured" otherwise, the generation config
stops at <|im_end|>, the shared tokenizer has a plain template, and a saved real model answers in a fresh process."""

from __future__ import annotations

import json

import pytest

from labhelpers.checks import TodoCheckError
from labhelpers.checks.nb13_share_model import check_generation_config
from labhelpers.data.chat import PROBE_CONVERSATIONS
from labhelpers.run.handoff import (NOT_MEASURED, generation_config_for, hub_push_blocker, model_card,
                                    plain_chat_template, reload_and_answer, save_for_sharing)
from labhelpers.model.hardware import recipe_for

MODEL_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
TRAINING = {"first_train_loss": 2.9876, "last_train_loss": 1.2345, "first_eval_loss": 2.5, "last_eval_loss": 1.4567,
            "best_eval_loss": 1.4321, "best_eval_step": 15, "train_curve": [[1, 2.9876], [20, 1.2345]]}
BEFORE_AFTER = {"base_score": 0.0, "tuned_score": 0.85, "base_hit_limit_rate": 0.6, "tuned_hit_limit_rate": 0.05,
                "n_heldout": 20}
SANITY = {"verdict": "GO", "reasons": ["every check passed"]}


@pytest.fixture(scope="module")
def shared_tokenizer():
    from labhelpers.model.loading import load_tokenizer

    return load_tokenizer(MODEL_ID)


def card(metrics):
    return model_card(metrics, recipe_for("cpu", "ci"), base_model=MODEL_ID, dataset="the bundled sft-lab chat dataset")


def line(text: str, start: str) -> str:
    hits = [row for row in text.splitlines() if row.startswith(start)]
    assert hits, f"no line starting with {start!r} in the card"
    return hits[0]


# metrics given -> (line prefix, words the line must hold)
CARD_TABLE = [
    ({"training": TRAINING}, "- train loss:", ["2.988 → 1.234", "over 20 optimizer steps"]),
    ({"training": TRAINING}, "- eval loss", ["2.500 → 1.457", "best 1.432 at step 15"]),
    ({"before_after": BEFORE_AFTER}, "- house-format score", ["on 20 held-out test prompts", "base 0% → fine-tuned 85%"]),
    ({"before_after": BEFORE_AFTER}, "- replies cut by max_new_tokens", ["base 60% → fine-tuned 5%"]),
    ({"sanity_protocol": SANITY}, "- sanity protocol verdict:", ["**GO**"]),
    ({}, "- train loss:", [NOT_MEASURED]),
    ({}, "- eval loss:", [NOT_MEASURED]),
    ({"training": None}, "- train loss:", [NOT_MEASURED]),
    ({}, "- house-format score", [NOT_MEASURED, "notebook 09"]),
    ({"before_after": None}, "- house-format score", [NOT_MEASURED]),
    ({}, "- sanity protocol verdict:", [NOT_MEASURED, "notebook 10"]),
    ({"training": {**TRAINING, "last_eval_loss": None, "first_eval_loss": None, "best_eval_loss": None}},
     "- eval loss", [f"{NOT_MEASURED} → {NOT_MEASURED}"]),
    ({"before_after": {**BEFORE_AFTER, "base_score": None}}, "- house-format score", [f"base {NOT_MEASURED} → fine-tuned 85%"]),
]


@pytest.mark.parametrize("metrics, start, words", CARD_TABLE)
def test_card_fields_follow_the_metrics(metrics, start, words):
    row = line(card(metrics), start)
    for word in words:
        assert word in row, f"{word!r} not in {row!r}"


def test_card_without_metrics_invents_no_number():
    text = card({})
    results = text.split("## Results", 1)[1].split("## How to use", 1)[0]
    assert not any(ch.isdigit() for ch in results.replace("notebook 09", "").replace("notebook 10", "")), results
    assert results.count(NOT_MEASURED) >= 4


def test_card_names_base_model_data_recipe_and_limitations():
    text = card({"training": TRAINING, "before_after": BEFORE_AFTER, "sanity_protocol": SANITY})
    assert text.startswith("---\nbase_model: HuggingFaceTB/SmolLM2-135M-Instruct\n")
    assert "the bundled sft-lab chat dataset" in text
    s = recipe_for("cpu", "ci").sizes
    assert (f"- training rows: {s.n_train_examples} (the recipe's n_train_examples); eval rows: {s.n_eval_examples} "
            "(the recipe's n_eval_examples)") in text
    assert f"| learning rate | {s.learning_rate:g}, {s.lr_scheduler_type}, warmup {s.warmup_ratio:g} of the steps |" in text
    assert f"| length | {s.max_steps} optimizer steps |" in text
    assert f"effective {s.per_device_train_batch_size * s.gradient_accumulation_steps} sequences per step, max_length {s.max_length}" in text
    assert "`ci` profile's demonstration run" in text
    for words in ("135M parameters", "house format", "not calibrated", "What it does not know"):
        assert words in text
    assert f"{recipe_for('cpu', 'ci').lesson.max_new_tokens} new tokens" in text  # the recipe's generation budget


def test_card_row_counts_given():
    text = model_card({}, recipe_for("cpu", "ci"), base_model=MODEL_ID, dataset="d", n_train_rows=77, n_eval_rows=16)
    assert "- training rows: 77; eval rows: 16" in text


# ---------------------------------------------------------------------------------------- generation config
def test_generation_config_stops_at_end_of_turn(shared_tokenizer):
    config = generation_config_for(shared_tokenizer, 96)
    assert config.eos_token_id == shared_tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert config.pad_token_id == shared_tokenizer.pad_token_id != config.eos_token_id
    assert (config.max_new_tokens, config.do_sample) == (96, False)


def _gen(**changes):
    from transformers import GenerationConfig

    def make(tokenizer, max_new_tokens):
        values = dict(eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"), pad_token_id=tokenizer.pad_token_id,
                      max_new_tokens=max_new_tokens, do_sample=False)
        values.update({k: (v(tokenizer, max_new_tokens) if callable(v) else v) for k, v in changes.items()})
        return GenerationConfig(**{k: v for k, v in values.items() if v is not ...})

    return make


WRONG_GENERATION = {
    "stops at <|endoftext|>": (_gen(eos_token_id=lambda t, n: t.convert_tokens_to_ids("<|endoftext|>")),
                               ["not <|im_end|>", "run on past the answer"]),
    "no eos": (_gen(eos_token_id=...), ["eos_token_id is None"]),
    "pads with eos": (_gen(pad_token_id=lambda t, n: t.convert_tokens_to_ids("<|im_end|>")), ["pad_token_id is 2"]),
    "fixed budget": (_gen(max_new_tokens=lambda t, n: 96), ["max_new_tokens is 96, asked for 17"]),
    "max_length": (_gen(max_new_tokens=..., max_length=lambda t, n: n), ["max_new_tokens is", "max_length"]),
    "sampling": (_gen(do_sample=True), ["do_sample is True"]),
    "a dict": (lambda tokenizer, n: {"eos_token_id": 2}, ["not a GenerationConfig"]),
}


@pytest.mark.parametrize("name", list(WRONG_GENERATION))
def test_check_generation_config_says_what_is_wrong(name, shared_tokenizer):
    make, words = WRONG_GENERATION[name]
    with pytest.raises(TodoCheckError) as err:
        check_generation_config(make, shared_tokenizer)
    for word in words:
        assert word in str(err.value), f"{name}: {word!r} not in {err.value}"


def test_check_generation_config_unfilled_and_right(shared_tokenizer, capsys):
    def make_generation_config(tokenizer, max_new_tokens):
        raise NotImplementedError("TODO: return transformers.GenerationConfig(...)")

    with pytest.raises(TodoCheckError, match="not implemented yet"):
        check_generation_config(make_generation_config, shared_tokenizer)
    check_generation_config(generation_config_for, shared_tokenizer)
    assert "✓ generation config: stops at <|im_end|> (id 2)" in capsys.readouterr().out


def test_plain_template_renders_like_the_training_template(shared_tokenizer):
    plain = plain_chat_template(shared_tokenizer.chat_template)
    assert "{% generation %}" not in plain
    for conversation in PROBE_CONVERSATIONS:
        for prompt in (False, True):
            messages = list(conversation[:-1]) if prompt else list(conversation)
            assert (shared_tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=prompt) ==
                    shared_tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=prompt,
                                                         chat_template=plain))


def test_save_for_sharing_refuses_an_unmerged_adapter(tmp_path):
    class Adapter:
        peft_config = {"default": None}

    with pytest.raises(ValueError, match="merge_and_unload"):
        save_for_sharing(Adapter(), None, tmp_path, "card")


def test_push_is_off_by_default_and_says_why_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert "off by default" in hub_push_blocker(False, None)
    assert "offline mode is on" in hub_push_blocker(False, "me/model")
    assert "HUB_REPO_ID is None" in hub_push_blocker(True, None)
    assert "offline mode is on" in hub_push_blocker(True, "me/model")


# --------------------------------------------------------------------------------------------- real model
@pytest.mark.slow
def test_saved_model_answers_in_a_fresh_process(tmp_path, cpu_recipe):
    from labhelpers.model.loading import load_model_and_tokenizer

    model, tokenizer = load_model_and_tokenizer(recipe=cpu_recipe, verbose=False)
    template = tokenizer.chat_template
    folder = save_for_sharing(model, tokenizer, tmp_path / "share", card({}), generation_config_for(tokenizer, 8))
    assert tokenizer.chat_template == template  # the caller's tokenizer is unchanged
    saved = json.loads((folder / "generation_config.json").read_text())
    assert saved["eos_token_id"] == tokenizer.convert_tokens_to_ids("<|im_end|>") and saved["max_new_tokens"] == 8
    assert (folder / "README.md").read_text().startswith("---\nbase_model:")
    assert (folder / "model.safetensors").is_file()
    shared_template = "".join(p.read_text() for p in folder.glob("*") if p.name in ("tokenizer_config.json",
                                                                                    "chat_template.jinja"))
    assert "<|im_start|>" in shared_template and "{% generation %}" not in shared_template
    reply = reload_and_answer(folder, "Say hi.")
    assert isinstance(reply, str) and reply.strip()
    assert "<|im_end|>" not in reply and "Say hi." not in reply
