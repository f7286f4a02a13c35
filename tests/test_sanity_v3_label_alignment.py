"""Labels that do not line up with the inputs (sanity v3, "trust nothing about the data" 3): HF causal-LM models shift
labels by one themselves, so a trained label must equal the input id at its own position. Pre-shifted or otherwise
misaligned labels fail ``label_alignment`` (share, likely cause, fix for the step that built them) and ``loss_at_init``
names them instead of unloaded weights; TRL's own collators (plain, packed, padding-free, assistant-only,
completion-only), LoRA and correct custom collators raise nothing."""

from __future__ import annotations

import copy

import pytest
import torch

from labhelpers.sanity import preflight
from labhelpers.sanity.preflight import custom_collator_name, label_alignment_findings
from sanity_setup import build_trainer, chat_rows

X = torch.tensor([[1, 9, 198, 5, 6, 7, 8, 2, 198], [1, 9, 198, 4, 3, 2, 198, 0, 0]])
M = torch.tensor([[0, 0, 0, 1, 1, 1, 1, 1, 0], [0, 0, 0, 1, 1, 1, 0, 0, 0]]).bool()


def _labels(ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return torch.where(mask, ids, torch.full_like(ids, -100))


def _left(ids, mask):  # labels[t] = input_ids[t+1]: the classic pre-shift
    out = torch.full_like(ids, -100)
    out[:, :-1] = torch.where(mask[:, 1:], ids[:, 1:], -100)
    return out


def _right(ids, mask):  # labels[t] = input_ids[t-1]
    out = torch.full_like(ids, -100)
    out[:, 1:] = torch.where(mask[:, :-1], ids[:, :-1], -100)
    return out


# (case id, batch, status, words in the message)
UNIT = [
    ("aligned", {"input_ids": X, "labels": _labels(X, M)}, "pass", ["all 8 trained positions"]),
    ("padding-free with position ids", {"input_ids": X.reshape(1, -1), "labels": _labels(X, M).reshape(1, -1),
                                        "position_ids": torch.arange(9).repeat(2).reshape(1, -1)}, "pass", ["all 8"]),
    ("pre-shifted left", {"input_ids": X, "labels": _left(X, M)}, "fail", ["(100%)", "pre-shifted by one"]),
    ("shifted right", {"input_ids": X, "labels": _right(X, M)}, "fail", ["shifted right by one"]),
    ("another row's labels", {"input_ids": X, "labels": _labels(X, M).flip(0)}, "fail", ["not a one-token shift"]),
    ("remapped ids", {"input_ids": X, "labels": _labels(X + 1, M)}, "fail", ["8 of 8", "not a one-token shift"]),
    ("labels one shorter", {"input_ids": X, "labels": X[:, 1:]}, "fail", ["labels have shape [2, 8] but input_ids [2, 9]"]),
    ("nothing trained", {"input_ids": X, "labels": torch.full_like(X, -100)}, "warn", ["no trained label"]),
]


@pytest.mark.parametrize("case, batch, status, words", UNIT, ids=[c[0] for c in UNIT])
def test_alignment_on_batches(case, batch, status, words):
    finding = label_alignment_findings([batch])[0]
    assert finding.status == status, finding
    for word in words:
        assert word in finding.message, f"{word!r} not in {finding.message!r}"
    if status == "fail":
        assert "dataset's own 'labels' column" in finding.fix and "data_collator" not in finding.fix  # TRL's collator
        custom = label_alignment_findings([batch], "my_collate")[0]
        assert "custom data_collator my_collate" in custom.fix and "'labels' column" not in custom.fix


def test_a_few_odd_labels_warn():
    ids = torch.arange(1, 301).reshape(1, -1)
    labels = ids.clone()
    labels[0, 5] = 7  # 1 of 300
    assert label_alignment_findings([{"input_ids": ids, "labels": labels}])[0].status == "warn"


# ------------------------------------------------------------------------------------- real trainers, real model
def _tokenized(tok, rows, shift: str = ""):
    """Rows pre-tokenized by hand with assistant-only labels, as a preprocessing step would; ``shift`` breaks them."""
    out = []
    for row in rows:
        enc = tok.apply_chat_template(row["messages"], tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
        ids = list(enc["input_ids"])
        labels = [i if m else -100 for i, m in zip(ids, enc["assistant_masks"])]
        if shift == "left":
            labels = labels[1:] + [-100]
        out.append({"input_ids": ids, "labels": labels})
    return out


def _collator(tok, how: str):
    """A hand-written padding collator that builds labels from input_ids, correctly or with a bug."""
    pad = tok.pad_token_id

    def collate(rows):
        n = max(len(r["input_ids"]) for r in rows)
        ids = torch.tensor([r["input_ids"] + [pad] * (n - len(r["input_ids"])) for r in rows])
        mask = torch.tensor([[1] * len(r["input_ids"]) + [0] * (n - len(r["input_ids"])) for r in rows])
        base = torch.tensor([r["labels"] + [-100] * (n - len(r["labels"])) for r in rows])
        if how == "left":  # "shift so position t predicts t+1", done by hand on top of the model's own shift
            labels = torch.full_like(base, -100)
            labels[:, :-1] = base[:, 1:]
        elif how == "right":
            labels = torch.full_like(base, -100)
            labels[:, 1:] = base[:, :-1]
        elif how == "rolled":  # labels paired with the wrong rows
            labels = base.roll(1, dims=0)
        elif how == "cut":
            labels = base[:, 1:]
        else:
            labels = base
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}

    collate.__qualname__ = f"collate_{how or 'ok'}"
    return collate


def _pc_rows():
    return [{"prompt": [r["messages"][0]], "completion": [r["messages"][1]]} for r in chat_rows(4)]


# (case id, trainer builder kwargs from (tok), words in the label_alignment fix)
BROKEN = [
    ("pre-tokenized, labels pre-shifted", lambda tok: dict(rows=_tokenized(tok, chat_rows(4), "left"), eval_rows=None,
                                                          assistant_only_loss=False),
     ["pre-shifted by one"], ["'labels' column"]),
    ("custom collator shifts left", lambda tok: dict(data_collator=_collator(tok, "left")), ["pre-shifted by one"],
     ["custom data_collator collate_left"]),
    ("custom collator shifts right", lambda tok: dict(data_collator=_collator(tok, "right")), ["shifted right by one"],
     ["collate_right"]),
    ("custom collator pairs the wrong rows", lambda tok: dict(data_collator=_collator(tok, "rolled")),
     ["not a one-token shift"], ["collate_rolled"]),
    ("custom collator cuts labels", lambda tok: dict(data_collator=_collator(tok, "cut")), ["labels have shape"],
     ["collate_cut"]),
]


@pytest.mark.slow
@pytest.mark.parametrize("case, kw, words, fix_words", BROKEN, ids=[c[0] for c in BROKEN])
def test_misaligned_labels_fail_with_their_cause(model_and_tokenizer, cpu_recipe, case, kw, words, fix_words):
    model, tok = model_and_tokenizer
    report = preflight(build_trainer(model, tok, cpu_recipe, **kw(tok)))
    finding = report.by_check("label_alignment")
    assert finding.status == "fail", str(report)
    for word in words:
        assert word in finding.message, f"{word!r} not in {finding.message!r}"
    for word in fix_words:
        assert word in finding.fix, f"{word!r} not in {finding.fix!r}"
    if "shape" in finding.message:  # nothing else reads labels it cannot pair with tokens
        assert [f.check for f in report.findings] == ["label_alignment"], str(report)
        return
    loss = report.by_check("loss_at_init")
    assert "weights not loaded" not in loss.fix  # never blames the weights for misaligned labels
    assert "with labels = input_ids" in loss.message, loss.message
    if "one-token" not in finding.message:  # a one-token shift moves every mask: those findings name it
        for check in ("prompt_tokens_trained", "stop_token_trained"):
            f = report.by_check(check)
            assert f.status == "pass" or "misaligned labels" in f.message, f


@pytest.mark.slow
def test_preshifted_labels_loss_at_init_names_the_labels(model_and_tokenizer, cpu_recipe):
    model, tok = model_and_tokenizer
    report = preflight(build_trainer(model, tok, cpu_recipe, rows=_tokenized(tok, chat_rows(4), "left"), eval_rows=None,
                                     assistant_only_loss=False))
    loss = report.by_check("loss_at_init")
    assert loss.status == "fail" and "the labels are misaligned" in loss.message, loss.message
    for check in ("prompt_tokens_trained", "stop_token_trained"):  # symptoms of the shift, blamed on it
        f = report.by_check(check)
        assert f.status == "pass" or "caused by misaligned labels" in f.message, f
        assert "assistant_only_loss" not in f.fix


def _lora(model):
    from peft import LoraConfig, get_peft_model

    return get_peft_model(copy.deepcopy(model), LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, task_type="CAUSAL_LM",
                                                           target_modules=["q_proj", "k_proj", "v_proj", "o_proj",
                                                                           "gate_proj", "up_proj", "down_proj"]))


# (case id, model change, trainer kwargs from (tok), whole report clean: ok and no warning)
HEALTHY = [
    ("plain", None, lambda tok: {}, True),
    ("packed bfd (padding-free)", None, lambda tok: dict(rows=chat_rows(8), packing=True, max_length=256), True),
    ("packed wrapped", None, lambda tok: dict(rows=chat_rows(8), packing=True, packing_strategy="wrapped",
                                              padding_free=False, max_length=256), False),
    ("padding-free without packing", None, lambda tok: dict(padding_free=True, max_length=None), False),
    ("every token trained", None, lambda tok: dict(assistant_only_loss=False), False),
    ("completion only (prompt/completion rows)", None, lambda tok: dict(rows=_pc_rows(), eval_rows=None,
                                                                       assistant_only_loss=False,
                                                                       completion_only_loss=True), False),
    ("pre-tokenized, labels right", None, lambda tok: dict(rows=_tokenized(tok, chat_rows(4)), eval_rows=None,
                                                          assistant_only_loss=False), False),
    ("correct custom collator", None, lambda tok: dict(data_collator=_collator(tok, "")), True),
    ("LoRA", _lora, lambda tok: dict(learning_rate=1e-3), False),
]


@pytest.mark.slow
@pytest.mark.parametrize("case, change, kw, clean", HEALTHY, ids=[c[0] for c in HEALTHY])
def test_trl_collators_and_lora_raise_nothing(model_and_tokenizer, cpu_recipe, case, change, kw, clean):
    from datasets import Dataset

    model, tok = model_and_tokenizer
    kwargs = kw(tok)
    raw = kwargs.get("rows") if kwargs.get("packing") else None  # packed rows keep no `messages`: give them
    report = preflight(build_trainer(change(model) if change else model, tok, cpu_recipe, **kwargs),
                       dataset=Dataset.from_list(raw) if raw else None)
    assert report.by_check("label_alignment").status == "pass", str(report)
    assert report.by_check("loss_at_init").status == "pass", str(report)
    assert not any("special-token" in f.message or "misaligned" in f.message for f in report.findings), str(report)
    if clean:
        assert report.ok and not report.warnings, str(report)


def test_custom_collator_name():
    from types import SimpleNamespace as NS

    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    assert custom_collator_name(NS(data_collator=DataCollatorForLanguageModeling(pad_token_id=0))) is None

    class MyCollator:
        def __call__(self, rows):
            return rows

    assert custom_collator_name(NS(data_collator=MyCollator())) == "test_custom_collator_name.<locals>.MyCollator"
