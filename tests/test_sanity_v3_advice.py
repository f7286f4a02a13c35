"""Sanity v3, section 4: advice that is never wrong. Every fix depends on what is already set: each finding is fed
the broken setting and the already-fixed one, and the advice must change (never "set X" when X is set)."""

from __future__ import annotations

import pytest

from labhelpers.data.datasets import ConversationFormatError, validate_conversations
from labhelpers.sanity.dataset import format_findings
from labhelpers.sanity.masking import LossSetup, masking_findings
from sanity_setup import build_trainer, chat_rows

HEADER, END = [1, 7], 2  # the header is followed by one newline token (0 here), as ChatML's "assistant\n"
PROMPT_TRAINED = [([9, 5, 1, 7, 4, 4, 2], [9, 5, 1, 7, 4, 4, 2])]  # every token trained, the prompt (9, 5) included
REPLY_MASKED = [([9, 1, 7, 0, 4, 4, 2, 5, 1, 7, 0, 4, 4, 2], [-100] * 11 + [4, 4, 2])]  # 1st reply untrained


def _fix(examples, check, setup, collator=None):
    found = {f.check: f for f in masking_findings(examples, HEADER, END, eos_ids=[END], collator=collator, setup=setup)}
    return found[check].fix


# (setup, words the fix must hold, words it must not)
PROMPT_CASES = [
    (LossSetup("messages", assistant_only_loss=False), "set SFTConfig(assistant_only_loss=True)", "already"),
    (LossSetup("messages", assistant_only_loss=True), "assistant_only_loss=True is already set", "set SFTConfig"),
    (LossSetup("prompt-completion", completion_only_loss=False), "set completion_only_loss=True", "messages"),
    (LossSetup("prompt-completion", completion_only_loss=None), "completion_only_loss is on", "set completion_only"),
    (LossSetup("text"), "pre-rendered `text` column", "assistant_only_loss=True"),
]


@pytest.mark.parametrize("setup, has, lacks", PROMPT_CASES, ids=[f"{s.kind}-{s.assistant_only_loss}-{s.completion_only_loss}"
                                                                for s, _, _ in PROMPT_CASES])
def test_prompt_tokens_trained_gets_the_fix_for_what_is_set(setup, has, lacks):
    fix = _fix(PROMPT_TRAINED, "prompt_tokens_trained", setup)
    assert has in fix and lacks not in fix, fix


def test_a_custom_collator_is_named_before_any_flag():
    fix = _fix(PROMPT_TRAINED, "prompt_tokens_trained", LossSetup("messages", assistant_only_loss=True), "MyCollator")
    assert fix.startswith("the custom data_collator MyCollator must set labels=-100")


@pytest.mark.parametrize("setup, has", [
    (LossSetup("prompt-completion"), "prompt/completion data trains only the last turn"),
    (LossSetup("messages", assistant_only_loss=True), "{% generation %} block misses part of each reply"),
    (LossSetup("messages", assistant_only_loss=False), "keep labels on every assistant turn"),
])
def test_masked_replies_get_the_fix_for_the_data_kind(setup, has):
    fix = _fix(REPLY_MASKED, "response_tokens_masked", setup)
    assert has in fix and ("assistant_only_loss=True to train" not in fix or setup.kind != "messages"), fix


def test_healthy_masks_give_no_advice():
    healthy = [([9, 1, 7, 0, 4, 4, 2], [-100, -100, -100, -100, 4, 4, 2])]  # 0: the newline after the header
    found = masking_findings(healthy, HEADER, END, eos_ids=[END], setup=LossSetup("messages", assistant_only_loss=True))
    assert all(f.fix == "" for f in found), [(f.check, f.fix) for f in found]


# ------------------------------------------------------------------------------------- dropping invalid rows
GOOD = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]}
ASSISTANT_FIRST = {"messages": [{"role": "assistant", "content": "Hello"}, {"role": "user", "content": "Hi"}]}


def test_never_drop_invalid_rows_when_that_would_drop_every_row():
    with pytest.raises(ConversationFormatError) as err:
        validate_conversations([ASSISTANT_FIRST] * 3, drop_invalid=True)
    assert "dropping them would leave no data" in str(err.value) and 'validate="drop"' not in str(err.value)
    finding = format_findings([ASSISTANT_FIRST] * 3)[0]
    assert "dropping them would leave no data" in finding.fix and "drop" not in finding.fix.split("data")[1], finding.fix


def test_dropping_is_still_offered_when_some_rows_survive():
    kept, report = validate_conversations([GOOD, ASSISTANT_FIRST], drop_invalid=True)
    assert len(kept) == 1 and report.n_dropped == 1
    assert "drop_invalid=True" in format_findings([GOOD, ASSISTANT_FIRST])[0].fix


# ------------------------------------------------------------------------------------- on a real trainer
def _prompt_completion(rows):
    return [{"prompt": r["messages"][:-1], "completion": r["messages"][-1:]} for r in rows]


@pytest.mark.parametrize("completion_only_loss, has", [(False, "set completion_only_loss=True"), (None, None)])
def test_preflight_on_prompt_completion_data_advises_completion_only_loss(model_and_tokenizer, cpu_recipe, tmp_path,
                                                                           completion_only_loss, has):
    from labhelpers.sanity import preflight

    model, tok = model_and_tokenizer
    trainer = build_trainer(model, tok, cpu_recipe, rows=_prompt_completion(chat_rows(4)), eval_rows=None,
                            out_dir=str(tmp_path), assistant_only_loss=False, completion_only_loss=completion_only_loss)
    finding = preflight(trainer, "quick").by_check("prompt_tokens_trained")
    if has is None:  # TRL's default masks the prompt: nothing to fix, no advice
        assert finding.status == "pass" and finding.fix == "", finding
    else:
        assert finding.status == "fail" and has in finding.fix and "messages" not in finding.fix, finding


@pytest.mark.parametrize("reply, words", [({"role": "bot", "content": "Hello"}, "role 'bot' is not one of"),
                                          ({"role": "assistant", "content": None}, "content is null")])
def test_a_trainer_trl_refuses_names_the_rows_first(model_and_tokenizer, cpu_recipe, reply, words):
    from labhelpers.sanity.protocol import TrainerBuildError, build_trainer

    model, tok = model_and_tokenizer
    rows = [{"messages": [{"role": "user", "content": "Hi"}, reply]}] * 2
    with pytest.raises(TrainerBuildError) as err:
        build_trainer(model, tok, rows, recipe=cpu_recipe, max_steps=1, max_length=64)
    message = str(err.value)
    assert message.startswith("the training rows are not valid conversations") and words in message
    assert "TRL's error: " in message  # what TRL said stays, after the real cause
