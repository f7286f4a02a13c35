"""Preflight on real SFTTrainers (real SmolLM2, a few real chat rows): broken setups are caught, healthy ones pass."""

from __future__ import annotations

import copy
import random

import pytest
import torch

from labhelpers.sanity import preflight, show_example
from labhelpers.sanity.preflight import collated_batches, grad_accum_findings, prompt_swap_findings
from sanity_setup import build_trainer, chat_rows

pytestmark = pytest.mark.slow


def statuses(report):
    return {f.check: f.status for f in report.findings}


def test_healthy_full_preflight_passes_and_leaves_everything_untouched(model_and_tokenizer, cpu_recipe):
    model, tok = model_and_tokenizer
    trainer = build_trainer(model, tok, cpu_recipe, rows=chat_rows(4), eval_rows=chat_rows(2, "test"))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    grads = [p.requires_grad for p in model.parameters()]
    # the session's shared model may carry gradients from a test before this one (on two workers the order varies)
    held = [None if p.grad is None else p.grad.clone() for p in model.parameters()]
    torch_rng, py_rng, training = torch.random.get_rng_state(), random.getstate(), model.training
    optimizer, step, log = trainer.optimizer, trainer.state.global_step, list(trainer.state.log_history)

    report = preflight(trainer, level="full")

    assert report.ok, str(report)
    assert not report.warnings, str(report)  # never cry wolf on the lab's own setup
    for check in ("prompt_tokens_trained", "stop_token_trained", "template_round_trip", "double_bos", "truncation",
                  "loss_at_init", "prompt_swap", "grad_accum_invariance", "packing_isolation"):
        assert report.by_check(check).status == "pass", check
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert [p.requires_grad for p in model.parameters()] == grads and model.training == training
    assert torch.equal(torch.random.get_rng_state(), torch_rng) and random.getstate() == py_rng
    assert trainer.optimizer is optimizer and trainer.state.global_step == step and trainer.state.log_history == log
    assert all((p.grad is None) if g is None else torch.equal(p.grad, g) for p, g in zip(model.parameters(), held))
    assert "<span" in report.extras["example"]._repr_html_()
    text = show_example(trainer, tok, html=False)
    assert "[Answer:" in text and text.rstrip().endswith("]")  # reply + <|im_end|> trained, nothing after


def test_prompt_tokens_trained_without_assistant_only_loss(model_and_tokenizer, cpu_recipe):
    model, tok = model_and_tokenizer
    report = preflight(build_trainer(model, tok, cpu_recipe, assistant_only_loss=False))
    finding = report.by_check("prompt_tokens_trained")
    assert finding.status == "fail" and "assistant_only_loss" in finding.fix
    assert statuses(report)["template_round_trip"] == "pass"


def test_prerendered_text_with_double_bos_and_other_template(model_and_tokenizer, cpu_recipe):
    model, tok = model_and_tokenizer
    # the old tutorial habit: render by hand (here without the default system prompt) and prepend a BOS
    texts = [{"text": tok.bos_token + "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in r["messages"])}
             for r in chat_rows(4)]
    report = preflight(build_trainer(model, tok, cpu_recipe, rows=texts, eval_rows=None, assistant_only_loss=False))
    s = statuses(report)
    assert s["prompt_tokens_trained"] == "fail" and s["double_bos"] == "fail" and s["template_round_trip"] == "fail"
    assert s["eval_split"] == "warn"
    # the text ends in "<|im_end|>\n" and TRL appends its own <|im_end|>: every row closes its last turn twice
    assert s["doubled_end_of_turn"] == "fail" and "strip the trailing" in report.by_check("doubled_end_of_turn").fix


def _pad_is_eos_collator(tok):
    pad = tok.eos_token_id  # the bug: pad == eos, then mask every pad id

    def collate(rows):
        n = max(len(r["input_ids"]) for r in rows)
        ids = torch.tensor([r["input_ids"] + [pad] * (n - len(r["input_ids"])) for r in rows])
        labels = torch.tensor([r["labels"] + [-100] * (n - len(r["labels"])) for r in rows])
        labels[ids == pad] = -100
        mask = torch.tensor([[1] * len(r["input_ids"]) + [0] * (n - len(r["input_ids"])) for r in rows])
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}
    return collate


def test_pad_equal_eos_collator_masks_the_stop_token(model_and_tokenizer, cpu_recipe):
    model, tok = model_and_tokenizer
    report = preflight(build_trainer(model, tok, cpu_recipe, data_collator=_pad_is_eos_collator(tok)))
    finding = report.by_check("stop_token_trained")
    assert finding.status == "fail" and "0 of" in finding.message
    assert statuses(report)["prompt_tokens_trained"] == "pass"


def test_truncation_cuts_whole_replies(model_and_tokenizer, cpu_recipe):
    model, tok = model_and_tokenizer
    rows = chat_rows(2) + chat_rows(2, short=False)  # two long passages: max_length 128 cuts their whole reply
    trainer = build_trainer(model, tok, cpu_recipe, rows=rows)
    from datasets import Dataset

    report = preflight(trainer, dataset=Dataset.from_list(rows))
    finding = report.by_check("truncation")
    assert finding.status == "fail" and "whole reply cut in 0" not in finding.message
    assert "rows dropped by preprocessing" in finding.message  # TRL drops all-masked rows silently


def test_random_weights_loss_at_init(tokenizer, cpu_recipe):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=49152, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=4, tie_word_embeddings=True)
    report = preflight(build_trainer(LlamaForCausalLM(config), tokenizer, cpu_recipe))
    finding = report.by_check("loss_at_init")
    assert finding.status == "fail" and "random" in finding.message


def test_packing_bfd_isolated_and_wrapped_contaminated(model_and_tokenizer, cpu_recipe):
    model, tok = model_and_tokenizer
    rows = chat_rows(8)
    bfd = preflight(build_trainer(model, tok, cpu_recipe, rows=rows, packing=True, max_length=256))
    assert bfd.ok, str(bfd)
    assert bfd.by_check("packing_isolation").status == "pass" and "isolated" in bfd.by_check("packing_isolation").message
    wrapped = preflight(build_trainer(model, tok, cpu_recipe, rows=rows, packing=True, packing_strategy="wrapped",
                                      padding_free=False, max_length=256))
    assert wrapped.by_check("packing_isolation").status == "fail"
    assert wrapped.by_check("prompt_tokens_trained").status == "pass"  # wrapped rows are split at conversation starts


def test_eval_overlap_and_hyperparameters(model_and_tokenizer, cpu_recipe):
    model, tok = model_and_tokenizer
    rows = chat_rows(4)
    report = preflight(build_trainer(model, tok, cpu_recipe, rows=rows, eval_rows=rows, learning_rate=2e-3,
                                     warmup_steps=0, per_device_train_batch_size=8))
    s = statuses(report)
    assert s["eval_overlap"] == "fail" and s["learning_rate"] == "fail" and s["steps_per_epoch"] == "fail"
    assert s["warmup"] == "warn"


def test_grad_accum_invariance_catches_per_microbatch_mean(model_and_tokenizer, cpu_recipe):
    model, tok = model_and_tokenizer

    def mean_loss(outputs, labels, num_items_in_batch=None):  # ignores num_items_in_batch: the pre-#34191 bug
        logits = outputs.logits[:, :-1].float()
        return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1))

    rows = [chat_rows(8)[0], chat_rows(8)[-1]]
    rows[1] = {"messages": [rows[1]["messages"][0], {"role": "assistant", "content": "Answer: Yes.\n- a\n- b\n- c\nConfidence: low"}]}
    trainer = build_trainer(model, tok, cpu_recipe, rows=rows)
    trainer.compute_loss_func = mean_loss
    batch = collated_batches(trainer, 1)[0]
    assert grad_accum_findings(trainer, batch)[0].status == "fail"
    trainer.compute_loss_func = None
    assert grad_accum_findings(trainer, batch)[0].status == "pass"


def test_prompt_swap_warns_when_replies_do_not_belong_to_their_prompts(model_and_tokenizer, cpu_recipe):
    model, tok = model_and_tokenizer
    rows = chat_rows(8)
    shuffled = [{"messages": rows[i]["messages"][:-1] + [rows[(i + 3) % 8]["messages"][-1]]} for i in range(8)]

    def finding(data):
        trainer = build_trainer(model, tok, cpu_recipe, rows=data, per_device_train_batch_size=4, eval_rows=None)
        return prompt_swap_findings(model, tok, collated_batches(trainer, None))[0]

    aligned, misaligned = finding(rows), finding(shuffled)
    assert aligned.status == "pass" and "8 rows" in aligned.message, aligned.message
    assert misaligned.status == "warn" and "prompt/reply alignment" in misaligned.fix, misaligned.message


def test_prompt_swap_needs_two_replies(tokenizer):
    ids = tokenizer.apply_chat_template([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}],
                                        tokenize=True, return_dict=True)["input_ids"]
    finding = prompt_swap_findings(None, tokenizer, [{"input_ids": torch.tensor([ids]), "labels": torch.tensor([ids])}])[0]
    assert finding.status == "warn" and "only 1 row(s) with a reply" in finding.message
