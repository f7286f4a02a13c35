"""Where the rehearsal's files live and its budget: constants every part of the rehearsal reads.
"""

from __future__ import annotations

from pathlib import Path


ROOT = Path(__file__).resolve().parents[2]
WHEELS_DIR = ROOT / ".wheels-gpu"  # ignored (.gitignore); the device tool's `carry` takes it along
WHEELS_LIMIT_MIB = 60.0  # the wheels' share of the 64 MiB the device tool carries (working tree included)
TREE_LIMIT_MIB = 64.0  # everything that travels: tracked + untracked-not-ignored files + carried paths
MODEL_DIR = ROOT / "tools" / "gpu_rehearsal_model"  # config and tokenizer of SmolLM2-135M-Instruct, no weights
MODEL_FILES = ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
               "chat_template.jinja")  # transformers 5 writes the chat template here and no special_tokens_map.json
MODEL_FILES_LIMIT_MIB = 8.0  # tokenizer.json is 3.4 MB; anything near this means weights crept in
BUDGET_S = 480  # the whole rehearsal on an H200 (8 minutes); jobs that would start too late are skipped, said so
PROFILE = "colab"  # the GPU profile: its recipes, with the steps capped
RECIPES = {"t4": "fp16 AMP on fp32 weights, sdpa, length-grouped batches (the T4 recipe, forced)",
           "ampere": "bf16 autocast on fp32 weights, flash-attention if installed else sdpa (the cc >= 8 recipe)"}
