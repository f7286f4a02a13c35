"""Builders shared by the sanity tests: a few real chat rows and real SFTTrainers on the shared model."""

from __future__ import annotations

import json
from pathlib import Path

from datasets import Dataset

DATA = Path(__file__).resolve().parent.parent / "labhelpers" / "bundled_data"


def chat_rows(n: int = 6, split: str = "train", short: bool = True, offset: int = 0) -> list[dict]:
    """``n`` real rows of the bundled chat data; ``short``: only the question line, shortest replies first (fit 128)."""
    rows = []
    with open(DATA / f"{split}.jsonl") as f:
        for line in f:
            row = json.loads(line)
            msgs = [dict(role=m["role"], content=m["content"]) for m in row["messages"]]
            if short:
                msgs[0]["content"] = msgs[0]["content"].split("\n")[0][:160]
            rows.append({"messages": msgs})
    if short:
        rows = [r for r in rows if [m["role"] for m in r["messages"]] == ["user", "assistant"]]
        rows.sort(key=lambda r: len(r["messages"][0]["content"]) + len(r["messages"][-1]["content"]))
    return rows[offset : offset + n]


def build_trainer(model, tokenizer, cpu_recipe, rows=None, eval_rows="default", out_dir="/tmp/sanity-tests", **overrides):
    """A real SFTTrainer with the lab recipe, max_length 128, batch 2 and 2 steps; overrides go to SFTConfig."""
    from trl import SFTTrainer

    collator = overrides.pop("data_collator", None)
    kw = dict(max_length=128, max_steps=2, per_device_train_batch_size=2, per_device_eval_batch_size=2,
              gradient_accumulation_steps=1, eval_strategy="steps", eval_steps=2, save_strategy="no",
              logging_steps=1, learning_rate=1e-4, warmup_steps=0.1, assistant_only_loss=True,
              dataloader_num_workers=0)
    kw.update(overrides)
    rows = rows if rows is not None else chat_rows(4)
    if eval_rows == "default":
        eval_rows = chat_rows(2, "test")
    train = Dataset.from_list(rows)
    evald = Dataset.from_list(eval_rows) if eval_rows else None
    if evald is None:
        kw["eval_strategy"] = "no"
    return SFTTrainer(model=model, args=cpu_recipe.sft_config(out_dir, **kw), train_dataset=train, eval_dataset=evald,
                      processing_class=tokenizer, data_collator=collator)
