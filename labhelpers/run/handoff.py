"""Hand a tuned model to someone else (notebook 13): a generation config, a model card built from what the run
measured, one self-contained folder, and proof that plain transformers in a fresh process can answer with it.

    card = model_card({"training": ..., "before_after": ..., "sanity_protocol": ...}, recipe, base_model=MODEL_ID,
                      dataset=DATASET)
    folder = save_for_sharing(model, tokenizer, RUN / "share" / "my-model", card, generation_config)
    print(reload_and_answer(folder, "What is a haiku?"))

The card never invents a number: a measurement the run folder does not hold is written "not measured". The check of
the student's generation config (the TODO's feedback) is :mod:`labhelpers.checks.nb13_share_model`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from labhelpers.model.hardware import Recipe

NOT_MEASURED = "not measured"
END_OF_TURN = "<|im_end|>"  # SmolLM2's end-of-turn text, for messages; the id always comes from labhelpers.data.turns
GENERATION_MARKERS = ("{% generation %}", "{% endgeneration %}")
CARD_FILE = "README.md"  # the hub shows a repository's README.md as its model card


# ------------------------------------------------------------------------------------------ generation config
def generation_config_for(tokenizer: Any, max_new_tokens: int) -> Any:
    """Reference generation config for the shared model: greedy, stops at the end-of-turn token its chat template
    writes (``<|im_end|>`` for SmolLM2, `labhelpers.data.turns`), pads with the pad token.

    >>> class Tok:
    ...     pad_token_id, eos_token = 0, "<|im_end|>"
    ...     def convert_tokens_to_ids(self, token): return {"<|im_end|>": 2}[token]
    >>> g = generation_config_for(Tok(), 96)
    >>> g.eos_token_id, g.pad_token_id, g.max_new_tokens, g.do_sample
    (2, 0, 96, False)
    """
    from transformers import GenerationConfig

    from labhelpers.data.turns import end_of_turn_id

    return GenerationConfig(eos_token_id=end_of_turn_id(tokenizer), pad_token_id=tokenizer.pad_token_id,
                            max_new_tokens=max_new_tokens, do_sample=False)


def plain_chat_template(template: str) -> str:
    """``template`` without the ``{% generation %}`` markers the lab adds for training (rendering is unchanged).

    Other runtimes (llama.cpp, vLLM, TGI) use their own Jinja and may not know the ``generation`` tag.

    >>> plain_chat_template("{{ a }}{% generation %}{{ b }}{% endgeneration %}")
    '{{ a }}{{ b }}'
    """
    for marker in GENERATION_MARKERS:
        template = template.replace(marker, "")
    return template


# ------------------------------------------------------------------------------------------------ model card
def _num(value: Any, digits: int = 3) -> str:
    """A measured number, or "not measured".

    >>> _num(1.23456), _num(None), _num(0.9, 1)
    ('1.235', 'not measured', '0.9')
    """
    return NOT_MEASURED if value is None else f"{value:.{digits}f}"


def _share(value: Any) -> str:
    """A share as a percentage, or "not measured".

    >>> _share(0.85), _share(None)
    ('85%', 'not measured')
    """
    return NOT_MEASURED if value is None else f"{value:.0%}"


def _training_lines(training: dict | None) -> list[str]:
    if not training:
        return [f"- train loss: {NOT_MEASURED}", f"- eval loss: {NOT_MEASURED}",
                "- (no `training` metrics in the run folder: the run that made these weights was not recorded)"]
    curve = training.get("train_curve") or []
    steps = f" over {curve[-1][0]} optimizer steps" if curve else ""
    best = training.get("best_eval_loss")
    best_at = f" (best {_num(best)} at step {training.get('best_eval_step')}: the weights shared here)" if best is not None else ""
    return [f"- train loss: {_num(training.get('first_train_loss'))} → {_num(training.get('last_train_loss'))}{steps}",
            f"- eval loss (held-out rows of the train split): {_num(training.get('first_eval_loss'))} → "
            f"{_num(training.get('last_eval_loss'))}{best_at}"]


def _behaviour_lines(before_after: dict | None) -> list[str]:
    if not before_after:
        return [f"- house-format score on held-out prompts: {NOT_MEASURED} (run notebook 09)"]
    n = before_after.get("n_heldout")
    on = f" on {n} held-out test prompts" if n else " on held-out test prompts"
    return [f"- house-format score{on}, greedy decoding: base {_share(before_after.get('base_score'))} → "
            f"fine-tuned {_share(before_after.get('tuned_score'))}",
            f"- replies cut by max_new_tokens (never stopped): base {_share(before_after.get('base_hit_limit_rate'))} → "
            f"fine-tuned {_share(before_after.get('tuned_hit_limit_rate'))}"]


def _sanity_lines(sanity: dict | None) -> list[str]:
    if not sanity or not sanity.get("verdict"):
        return [f"- sanity protocol verdict: {NOT_MEASURED} (run notebook 10)"]
    reasons = sanity.get("reasons") or []
    lines = [f"- sanity protocol verdict: **{sanity['verdict']}** (overfit test, short run with eval, samples)"]
    return lines + [f"  - {reason}" for reason in reasons[:6]]


def _recipe_lines(recipe: Recipe) -> list[str]:
    from labhelpers.model.hardware import REFERENCE_RUN_SETTINGS

    s, why = recipe.sizes, dict(recipe.reasons)
    precision = "fp32 weights" + (", fp16 autocast" if recipe.fp16 else ", bf16 autocast" if recipe.bf16 else ", no mixed precision")
    length = f"{s.max_steps} optimizer steps" if s.max_steps > 0 else f"{s.num_train_epochs:g} epochs"
    plan = recipe.plan()
    rows = [
        ("hardware", f"{recipe.hardware} ({recipe.device_name}), profile `{recipe.profile}`", why.get("hardware", "")),
        ("precision", precision, why.get("torch_dtype", "")),
        ("learning rate", f"{s.learning_rate:g}, {s.lr_scheduler_type}, warmup {s.warmup_ratio:g} of the steps",
         why.get("learning_rate", "")),
        ("length", length, why.get("max_steps", "") if s.max_steps > 0 else why.get("num_train_epochs", "")),
        ("batch", f"effective {plan.effective_batch_size} sequences per step, max_length {s.max_length} tokens",
         why.get("max_length", "")),
        ("loss", "assistant replies only (and their <|im_end|>)" if REFERENCE_RUN_SETTINGS.get("assistant_only_loss")
         else "every token", "the prompt is given, not learned"),
        ("batching", "padding-free packing" if recipe.packing else f"{recipe.train_sampling_strategy} padded batches",
         why.get("packing", "")),
    ]
    return [f"| {name} | {value} | {reason} |" for name, value, reason in rows]


def model_card(metrics: dict[str, Any], recipe: Recipe, *, base_model: str, dataset: str, name: str = "sft-lab model",
               n_train_rows: int | None = None, n_eval_rows: int | None = None, max_new_tokens: int | None = None) -> str:
    """The model card (``README.md``) of a tuned model, from the run's metrics and its recipe.

    ``metrics``: ``{"training": ..., "before_after": ..., "sanity_protocol": ...}`` as ``load_metrics`` returns them
    (None or missing = that notebook did not run: the card says "not measured"). ``n_train_rows`` / ``n_eval_rows``:
    the rows trained / evaluated on (None = the recipe's sizes, said so).
    """
    s = recipe.sizes
    n_train = f"{n_train_rows}" if n_train_rows is not None else (
        f"{s.n_train_examples} (the recipe's n_train_examples)" if s.n_train_examples else "all (the recipe's n_train_examples=None)")
    n_eval = f"{n_eval_rows}" if n_eval_rows is not None else f"{s.n_eval_examples} (the recipe's n_eval_examples)"
    demo = (" This is the `ci` profile's demonstration run: a few optimizer steps on a CPU, not a usable model."
            if s.max_steps > 0 and s.max_steps < 100 else "")
    budget = max_new_tokens or recipe.lesson.max_new_tokens
    lines = [
        "---",
        f"base_model: {base_model}",
        "library_name: transformers",
        "pipeline_tag: text-generation",
        "tags: [sft, trl, sft-lab, chatml]",
        "---",
        "",
        f"# {name}",
        "",
        f"A supervised fine-tune of [{base_model}](https://huggingface.co/{base_model}) (135M parameters) that answers in "
        "the **house format**: an `Answer:` line, three `- ` bullets and a `Confidence: high|medium|low` line, then stops."
        f"{demo}",
        "",
        "## Data",
        "",
        f"- dataset: {dataset}",
        f"- training rows: {n_train}; eval rows: {n_eval} (carved from the train split; the test split stays held out)",
        "- rows longer than max_length were dropped, not truncated; the loss covers the assistant replies only",
        "",
        "## Training recipe (and why)",
        "",
        "| what | value | why |",
        "|---|---|---|",
        *_recipe_lines(recipe),
        "",
        "## Results",
        "",
        *_training_lines(metrics.get("training")),
        *_behaviour_lines(metrics.get("before_after")),
        *_sanity_lines(metrics.get("sanity_protocol")),
        "",
        "## How to use",
        "",
        "```python",
        "from transformers import AutoModelForCausalLM, AutoTokenizer",
        "",
        'folder = "path/to/this/folder"  # or the hub repository id',
        "tokenizer = AutoTokenizer.from_pretrained(folder)",
        "model = AutoModelForCausalLM.from_pretrained(folder)",
        'messages = [{"role": "user", "content": "What is a haiku?"}]',
        'inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)',
        f"output = model.generate(**inputs)  # generation_config.json: greedy, stops at <|im_end|>, {budget} new tokens",
        'print(tokenizer.decode(output[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True))',
        "```",
        "",
        "Prompts use ChatML (the tokenizer's chat template); without `add_generation_prompt=True` the model continues "
        "the user turn instead of answering.",
        "",
        "## Limitations",
        "",
        "- **Small:** 135M parameters. Facts, arithmetic and code are often wrong; fluent does not mean correct.",
        "- **A house format, not knowledge:** fine-tuning taught the shape of a reply. It added no facts; what the model "
        "knows comes from the base model's pre-training.",
        "- **The `Confidence:` line is not calibrated:** the model learned to write one, not to know when it is wrong.",
        "- **What it does not know:** events after the base model's training data, anything private, languages other "
        "than English (barely seen in the data), multi-turn conversations (trained on single-turn rows).",
        "- **Not safety-tuned beyond the base model;** do not use it for medical, legal or financial advice.",
        f"- **Check the licences** of the base model and of the dataset ({dataset}) before redistributing.",
        "",
    ]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- the folder
def save_for_sharing(model: Any, tokenizer: Any, folder: str | Path, card: str, generation_config: Any = None) -> Path:
    """Write the model (safetensors), its tokenizer (chat template without training markers), the generation config
    and the model card into ``folder``; returns it. The objects passed in are not changed.

    A peft model must be merged first (``model.merge_and_unload()``): a plain folder loads without peft.
    """
    if hasattr(model, "peft_config"):
        raise ValueError("this is a peft model: merge the adapters first (model = model.merge_and_unload()), so the "
                         "folder loads with plain transformers; or save only the adapter with model.save_pretrained")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(folder))
    if generation_config is not None:
        generation_config.save_pretrained(str(folder))  # replaces the one save_pretrained wrote from the model
    template = tokenizer.chat_template
    try:
        if isinstance(template, str):
            tokenizer.chat_template = plain_chat_template(template)
        tokenizer.save_pretrained(str(folder))
    finally:
        tokenizer.chat_template = template
    (folder / CARD_FILE).write_text(card)
    for path in folder.iterdir():  # some writers create files private (0600); a folder to hand over is readable
        if path.is_file():
            path.chmod(path.stat().st_mode | 0o044)
    return folder


_ANSWER_SCRIPT = r"""
import json, sys
from transformers import AutoModelForCausalLM, AutoTokenizer
folder, prompt, budget = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
tokenizer = AutoTokenizer.from_pretrained(folder)
model = AutoModelForCausalLM.from_pretrained(folder)
inputs = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                       return_tensors="pt", return_dict=True)
extra = {} if budget is None else {"max_new_tokens": budget}
output = model.generate(**inputs, **extra)
print(json.dumps(tokenizer.decode(output[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)))
"""


def reload_and_answer(folder: str | Path, prompt: str, max_new_tokens: int | None = None, timeout: float = 600) -> str:
    """Load ``folder`` with plain transformers in a fresh Python process (no labhelpers, hub offline) and return its
    reply to ``prompt`` (the folder's generation config decides decoding; ``max_new_tokens`` overrides its budget).

    A fresh process proves the folder is self-contained: nothing comes from this notebook's memory or the hub.
    """
    folder = Path(folder).resolve()
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}  # anything not in the folder would have to come from the hub: refuse
    done = subprocess.run([sys.executable, "-c", _ANSWER_SCRIPT, str(folder), prompt, json.dumps(max_new_tokens)],
                          capture_output=True, text=True, timeout=timeout, env=env, cwd=str(folder))
    if done.returncode != 0:
        raise RuntimeError(f"loading {folder} in a fresh process failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def hub_state() -> str | None:
    """Why the hub cannot be reached right now (offline mode, or no connection), or None when it can.

    >>> import os; os.environ["LAB_OFFLINE"] = "1"; hub_state()
    'offline mode is on (HF_HUB_OFFLINE or LAB_OFFLINE), so the hub is not contacted'
    >>> del os.environ["LAB_OFFLINE"]
    """
    from labhelpers.base.hub import hub_reachable, offline_forced

    if offline_forced():
        return "offline mode is on (HF_HUB_OFFLINE or LAB_OFFLINE), so the hub is not contacted"
    if not hub_reachable():
        return "the hub (huggingface.co) is unreachable from this machine"
    return None


def hub_push_blocker(push: bool, repo_id: str | None) -> str | None:
    """Why a push to the hub does not happen now (None when it can go ahead): off, no repository id, or offline.

    >>> import os; os.environ["LAB_OFFLINE"] = "1"
    >>> print(hub_push_blocker(False, "me/model"))
    PUSH_TO_HUB = False (off by default): nothing is uploaded. Besides, offline mode is on (HF_HUB_OFFLINE or LAB_OFFLINE), so the hub is not contacted: push from a machine with internet access.
    >>> print(hub_push_blocker(True, None))
    HUB_REPO_ID is None: set it to "your-username/model-name" (a repository under your account).
    >>> del os.environ["LAB_OFFLINE"]
    """
    if push and (not repo_id or "/" not in str(repo_id)):
        return f'HUB_REPO_ID is {repo_id!r}: set it to "your-username/model-name" (a repository under your account).'
    state = hub_state()
    if not push:
        return ("PUSH_TO_HUB = False (off by default): nothing is uploaded. " +
                (f"Besides, {state}: push from a machine with internet access." if state else
                 'The hub is reachable: set PUSH_TO_HUB = True and HUB_REPO_ID = "you/name" (after '
                 "huggingface-cli login) to publish."))
    if state:
        return f"{state}: push from a machine with internet access (the folder is ready: upload it from there)."
    return None
