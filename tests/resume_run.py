"""A tiny real SFT run used by test_resume.py: ``python tests/resume_run.py OUTPUT_DIR RESULT.json [--no-save]``.

Resumes from the newest complete checkpoint in OUTPUT_DIR when there is one (like notebook 06) and
writes the final train loss and a weight fingerprint to RESULT.json.
"""

from __future__ import annotations

import json
import sys

import torch
import transformers
from trl import SFTTrainer

from labhelpers.data.datasets import load_chat_dataset
from labhelpers.model.hardware import detect_recipe
from labhelpers.model.loading import load_model_and_tokenizer
from labhelpers.run.training import keep_rows_that_fit, resume_point

STEPS = 4


def main(output_dir: str, result_path: str, save: bool = True) -> None:
    transformers.set_seed(7)
    recipe = detect_recipe("ci")
    model, tokenizer = load_model_and_tokenizer(recipe=recipe, verbose=False)
    data = load_chat_dataset()
    train = keep_rows_that_fit(data["train"].select(range(60)), tokenizer, 160).select(range(12)).select_columns(["messages"])
    config = recipe.sft_config(output_dir, assistant_only_loss=True, max_steps=STEPS, max_length=160,
                               per_device_train_batch_size=2, save_steps=2, eval_strategy="no", logging_steps=1, seed=7,
                               save_strategy="steps" if save else "no")  # the uninterrupted twin writes no checkpoint
    trainer = SFTTrainer(model=model, args=config, train_dataset=train, processing_class=tokenizer)
    checkpoint = resume_point(config)
    trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    losses = {e["step"]: e["loss"] for e in trainer.state.log_history if "loss" in e}
    weights = torch.cat([p.detach().flatten()[:4096] for p in trainer.model.parameters()])
    json.dump({"losses": losses, "weights": weights.tolist(), "resumed_from": str(checkpoint) if checkpoint else None},
              open(result_path, "w"))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], save="--no-save" not in sys.argv[3:])
