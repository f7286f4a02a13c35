"""The sanity findings an adapter run needs: something trains, the LoRA targets hit modules, the learning rate is in
the adapters' band, and new tokens can be learned. Preflight adds them for a peft model; notebook 12 shows them::

    from labhelpers.sanity.lora import lora_findings
    lora_findings(peft_model, 1e-3, tokenizer)   # adapter LR band, trainable modules, new tokens

The LoRA plumbing itself (counts, the memory measurement, QLoRA) is :mod:`labhelpers.run.lora`.
"""

from __future__ import annotations

from typing import Any

from labhelpers.run.lora import (FULL_COPY_MODULES, LORA_TARGETS, MLP_PROJECTIONS, linear_names, target_set,
                                 trainable_parameters)
from labhelpers.sanity.report import Finding

# Learning-rate bands for LoRA adapters (AdamW, alpha/r = 2). Measured on the lab's CPU with r=16 on all seven
# projections, 40 steps of batch 4: lr 2e-4 taught 0% of the house format, 1e-3 taught 100% (full fine-tune: 1e-4).
LORA_LR_LOW = 1e-4  # below: the adapters barely leave zero in a short run
LORA_LR_HIGH = 3e-3  # above: loss spikes and forgetting become likely
LORA_LR_FAIL = 1e-2  # above: expect divergence


def _adapted_layers(model: Any) -> list[str]:
    """Names of the modules carrying a LoRA pair (``lora_A``) with at least one adapter."""
    return [name for name, m in model.named_modules()
            if hasattr(m, "lora_A") and hasattr(m.lora_A, "keys") and len(m.lora_A.keys()) > 0]


def _module_trains(model: Any, kind: str) -> bool:
    """True when the module ``kind`` (``embed_tokens`` or ``lm_head``) or a full copy of it (``modules_to_save``)
    has trainable weights."""
    for name, param in model.named_parameters(remove_duplicate=False):  # a tied lm_head shares embed_tokens' weight
        if kind in name.split(".") and param.requires_grad:
            return True
    return False


def lora_findings(model: Any, learning_rate: float, tokenizer: Any, lora_config: Any = None) -> list[Finding]:
    """Sanity findings for an adapter run (also for a plain model: then only what applies to any run).

    * ``trainable_parameters``: fail when nothing has ``requires_grad``;
    * ``lora_targets``: fail when the LoRA targets hit no module (``lora_config`` not yet applied, or a peft model
      without adapters), warn when the MLP is left out;
    * ``lora_learning_rate``: the adapter bands (warn < 1e-4: adapters start at zero and need ~10x a full
      fine-tune's LR; warn > 3e-3; fail > 1e-2);
    * ``new_tokens_trainable``: fail when the tokenizer has tokens beyond the model's original vocabulary (besides
      the pad token) while the embeddings or the LM head are frozen: those rows would never be learned.

    >>> import torch
    >>> class Tok:
    ...     vocab_size, pad_token_id, added_tokens_decoder = 10, 0, {}
    ...     def __len__(self): return 10
    >>> frozen = torch.nn.Linear(2, 2).requires_grad_(False)
    >>> [(f.check, f.status) for f in lora_findings(frozen, 1e-3, Tok())]
    [('trainable_parameters', 'fail'), ('new_tokens_trainable', 'pass')]
    """
    findings: list[Finding] = []
    trainable, total = trainable_parameters(model)
    if trainable == 0:
        findings.append(Finding("trainable_parameters", "fail", f"0 of {total:,} parameters are trainable: "
                                "training would change nothing (a frozen base model without adapters?)",
                                "wrap the model with peft.get_peft_model(model, lora_config) before building the "
                                "trainer, or unfreeze it (model.requires_grad_(True)) for a full fine-tune"))
    else:
        findings.append(Finding("trainable_parameters", "pass",
                                f"{trainable:,} of {total:,} parameters trainable ({trainable / total:.2%})", ""))
    is_peft = hasattr(model, "peft_config")
    if lora_config is not None or is_peft:
        config = lora_config if lora_config is not None else next(iter(model.peft_config.values()), None)
        if lora_config is not None:  # not applied yet (or another one): match its targets against the module names
            from peft.tuners.tuners_utils import check_target_module_exists

            hits = [name for name, _ in model.named_modules()
                    if name and "lora_" not in name and check_target_module_exists(lora_config, name)]
        else:
            hits = _adapted_layers(model)
        targets = target_set(getattr(config, "target_modules", None))
        shown = targets if isinstance(targets, str) or targets is None else sorted(targets)
        if not hits:
            findings.append(Finding("lora_targets", "fail", f"the LoRA target_modules {shown!r} match no module of "
                                    "this model: no adapter would be trained",
                                    "name the model's linear layers: " + ", ".join(linear_names(model))))
        else:
            kinds = {h.rsplit(".", 1)[-1] for h in hits}
            if isinstance(targets, set) and not (kinds & set(MLP_PROJECTIONS)):
                findings.append(Finding("lora_targets", "warn", f"LoRA adapts {len(hits)} modules, attention only "
                                        f"({', '.join(sorted(kinds))}): the MLP holds 2/3 of each layer",
                                        "add gate_proj, up_proj, down_proj to target_modules"))
            else:
                findings.append(Finding("lora_targets", "pass", f"LoRA adapts {len(hits)} modules "
                                        f"({', '.join(t for t in LORA_TARGETS if t in kinds) or ', '.join(sorted(kinds))})", ""))
        scale = (config.lora_alpha / config.r) if config is not None and getattr(config, "r", 0) else None
        at = f" (update scaled by lora_alpha/r = {scale:g})" if scale is not None else ""
        if learning_rate > LORA_LR_FAIL:
            findings.append(Finding("lora_learning_rate", "fail", f"lr {learning_rate:g} for LoRA adapters{at}: "
                                    f"above {LORA_LR_FAIL:g}, expect divergence", f"use 2e-4..{LORA_LR_HIGH:g} (lab: 1e-3)"))
        elif learning_rate > LORA_LR_HIGH:
            findings.append(Finding("lora_learning_rate", "warn", f"lr {learning_rate:g} for LoRA adapters{at} is "
                                    f"above {LORA_LR_HIGH:g}: loss spikes and forgetting become likely", "try 1e-3"))
        elif learning_rate < LORA_LR_LOW:
            findings.append(Finding("lora_learning_rate", "warn", f"lr {learning_rate:g} for LoRA adapters{at} is "
                                    f"below {LORA_LR_LOW:g}: LoRA adapters start at zero and need ~10x a full "
                                    "fine-tune's LR", "use ~10x the full fine-tune's LR, e.g. 1e-3 "
                                    "(lab, 40 steps at r=16: 2e-4 taught 0% of the format, 1e-3 taught 100%)"))
        else:
            findings.append(Finding("lora_learning_rate", "pass", f"lr {learning_rate:g} for LoRA adapters{at}", ""))
    findings.append(_new_token_finding(model, tokenizer))
    return findings


def _new_token_finding(model: Any, tokenizer: Any) -> Finding:
    """The ``new_tokens_trainable`` finding (see :func:`lora_findings`)."""
    original = int(getattr(tokenizer, "vocab_size", len(tokenizer)))
    decoder = getattr(tokenizer, "added_tokens_decoder", {}) or {}
    new = {i: str(getattr(t, "content", t)) for i, t in decoder.items() if i >= original}
    pad = getattr(tokenizer, "pad_token_id", None)
    learned = {i: t for i, t in new.items() if i != pad}  # the pad token is never a label: it needs no training
    rows = model.get_input_embeddings().num_embeddings if hasattr(model, "get_input_embeddings") else None
    if rows is not None and len(tokenizer) > rows:
        return Finding("new_tokens_trainable", "fail", f"the tokenizer has {len(tokenizer)} tokens but the embedding "
                       f"only {rows} rows: ids >= {rows} crash the forward", "model.resize_token_embeddings(len(tokenizer)) "
                       "before wrapping the model")
    if not learned:
        return Finding("new_tokens_trainable", "pass", f"no tokens beyond the original {original:,}-token vocabulary"
                       + (" other than the pad token" if new else ""), "")
    frozen = [k for k in FULL_COPY_MODULES if rows is not None and not _module_trains(model, k)]
    names = ", ".join(list(learned.values())[:4]) + (" ..." if len(learned) > 4 else "")
    if frozen:
        return Finding("new_tokens_trainable", "fail", f"{len(learned)} new token(s) ({names}) beyond the original "
                       f"{original:,}-token vocabulary, but {' and '.join(frozen)} is frozen: their rows keep their "
                       "random initialisation and the model can never learn to read or emit them",
                       'add modules_to_save=["embed_tokens", "lm_head"] to the LoraConfig (full trainable copies), '
                       "or use the model's existing special tokens instead of new ones")
    return Finding("new_tokens_trainable", "pass", f"{len(learned)} new token(s) ({names}); embeddings and LM head train", "")
