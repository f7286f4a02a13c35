"""Which attention kernel a run gets, chosen by what really loads, and flash-attention's contract enforced on a CPU.

Two jobs, one concern:

* :func:`probe_flash_attention`: on a compute-capability >= 8 card the recipe asks for ``flash_attention_2`` only when
  transformers itself says it can serve it (a working ``flash_attn`` package, or ``kernels`` inside the version window
  transformers accepts) *and* the kernel loads; any failure (kernel download, version window, CUDA build) gives sdpa,
  with the error kept for ``recipe.explain()`` and the load line.
* :func:`install_flash_standin`: ``LAB_FORCE_HARDWARE=ampere-cpu`` runs the Ampere recipe (fp32 master weights, bf16
  autocast, ``flash_attention_2``, padding-free packing) on this CPU. The hub kernel ``kernels-community/flash-attn2``
  cannot be downloaded or run here, so the one place transformers fetches it (``integrations.hub_kernels.get_kernel``)
  returns a stand-in with the kernel's two entry points; everything else (transformers' dtype casting in
  ``integrations/flash_attention.py``, unpadding, ``cu_seq_lens`` for packed rows) runs unchanged, as on a GPU. The
  stand-in enforces what the real kernel requires: fp16/bf16 q/k/v (fp32 raises, naming the caller: a forward
  outside ``recipe.autocast()``), and the variable-length function attends only within each sequence.
"""

from __future__ import annotations

import inspect
import math
import types
from typing import Any

import torch

FLASH_KERNEL_REPO = "kernels-community/flash-attn2"  # what transformers loads for flash_attention_2 without flash_attn
HALF = (torch.float16, torch.bfloat16)


# ----------------------------------------------------------------------------------------------- the probe
def probe_flash_attention() -> tuple[str | None, str]:
    """(``"flash_attn"``, ``"kernels"`` or None, why): can flash_attention_2 run here, checked by loading it.

    Call it only where flash-attention could run (a cc >= 8 GPU, or under the CPU emulation): it imports the kernel,
    which in Colab downloads the hub kernel once.
    """
    import importlib.metadata as md

    from transformers.utils import import_utils

    if import_utils.is_flash_attn_2_available():
        try:
            import flash_attn  # noqa: F401

            return "flash_attn", f"the flash_attn package {md.version('flash-attn')} is installed and imports"
        except Exception as error:  # a CUDA build that does not match this torch fails here
            return None, f"flash_attn is installed but does not import ({type(error).__name__}: {error})"
    try:
        kernels_version = md.version("kernels")
    except md.PackageNotFoundError:
        kernels_version = None
    if not import_utils.is_kernels_available():
        window = f"{import_utils.KERNELS_MIN_VERSION} <= kernels < {import_utils.KERNELS_MAX_VERSION}"
        have = f"kernels {kernels_version} is installed" if kernels_version else "kernels is not installed"
        return None, (f"{have}, and transformers {md.version('transformers')} serves flash-attention through "
                      f"kernels only for {window} (install the locked stack: the Colab install cell does)")
    try:
        from transformers.modeling_flash_attention_utils import lazy_import_flash_attention

        lazy_import_flash_attention(FLASH_KERNEL_REPO)
    except Exception as error:
        return None, (f"the hub kernel {FLASH_KERNEL_REPO} did not load through kernels {kernels_version} "
                      f"({type(error).__name__}: {str(error)[:300]})")
    return "kernels", (f"kernels {kernels_version} loaded the prebuilt hub kernel {FLASH_KERNEL_REPO} (no compiling)")


# ----------------------------------------------------------------------------------------------- the stand-in
class FlashContractError(TypeError):
    """A forward handed the flash-attention kernel something the real kernel rejects (fp32 q/k/v, mixed dtypes)."""


def _caller() -> str:
    """The first frame outside torch, transformers, peft, accelerate, trl and this module: who ran the forward."""
    skip = ("/torch/", "/transformers/", "/peft/", "/accelerate/", "/trl/", "/kernels/", "labhelpers/model/attention.py",
            "contextlib")
    for frame in inspect.stack()[2:]:
        if not any(part in frame.filename for part in skip):
            return f"{frame.filename}:{frame.lineno} ({frame.function})"
    return "unknown caller"


def _check_dtypes(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
    """Raise FlashContractError unless q, k, v share one half-precision dtype, as the CUDA kernel requires."""
    if q.dtype not in HALF or k.dtype != q.dtype or v.dtype != q.dtype:
        raise FlashContractError(
            f"flash-attention got q/k/v in {q.dtype}/{k.dtype}/{v.dtype}; the kernel accepts only float16 or bfloat16 "
            f"(a GPU raises 'FlashAttention only support fp16 and bf16 data type'). Called from {_caller()}: with fp32 "
            "master weights, transformers casts to half precision only under autocast, so run this forward inside "
            "`with recipe.autocast():`")


def _attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool, scale: float | None) -> torch.Tensor:
    """Attention of one sequence, (seq, heads, dim) in, (seq_q, heads, dim) out, causal aligned bottom-right as
    flash-attention does (the last query sees every key: decoding with a cache), key heads shared across query heads."""
    n_q, n_k = q.shape[0], k.shape[0]
    groups = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)
    scale = scale if scale is not None else 1.0 / math.sqrt(q.shape[-1])
    scores = torch.einsum("qhd,khd->hqk", q.float(), k.float()) * scale
    if causal:
        allowed = torch.ones(n_q, n_k, dtype=torch.bool, device=q.device).tril(diagonal=n_k - n_q)
        scores = scores.masked_fill(~allowed, float("-inf"))
    out = torch.einsum("hqk,khd->qhd", scores.softmax(dim=-1), v.float())
    return out.to(q.dtype)


def _no_extras(dropout_p: float, window_size: Any, softcap: float | None, alibi_slopes: Any) -> None:
    if dropout_p or (window_size not in (None, (-1, -1), [-1, -1])) or softcap or alibi_slopes is not None:
        raise NotImplementedError("the CPU flash-attention stand-in covers the lab's model (no dropout, sliding "
                                  "window, softcap or ALiBi)")


def flash_attn_func(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, dropout_p: float = 0.0,
                    softmax_scale: float | None = None, causal: bool = False, window_size: Any = (-1, -1),
                    softcap: float = 0.0, alibi_slopes: Any = None, deterministic: bool = False,
                    return_attn_probs: bool = False) -> torch.Tensor:
    """Stand-in for flash-attention's batched entry point: (batch, seq, heads, dim) in and out.

    >>> q = torch.randn(1, 3, 2, 4, dtype=torch.bfloat16)
    >>> flash_attn_func(q, q[:, :, :1], q[:, :, :1], causal=True).shape
    torch.Size([1, 3, 2, 4])
    >>> flash_attn_func(q.float(), q.float(), q.float())
    Traceback (most recent call last):
    ...
    labhelpers.model.attention.FlashContractError: flash-attention got q/k/v in torch.float32/torch.float32/torch.float32; ...
    """
    _check_dtypes(q, k, v)
    _no_extras(dropout_p, window_size, softcap, alibi_slopes)
    return torch.stack([_attend(q[b], k[b], v[b], causal, softmax_scale) for b in range(q.shape[0])])


def flash_attn_varlen_func(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, cu_seqlens_q: torch.Tensor,
                           cu_seqlens_k: torch.Tensor, max_seqlen_q: int | None = None, max_seqlen_k: int | None = None,
                           dropout_p: float = 0.0, softmax_scale: float | None = None, causal: bool = False,
                           window_size: Any = (-1, -1), softcap: float = 0.0, alibi_slopes: Any = None,
                           deterministic: bool = False, return_attn_probs: bool = False,
                           block_table: Any = None) -> torch.Tensor:
    """Stand-in for the variable-length entry point: (total tokens, heads, dim), each sequence attends only within
    itself (``cu_seqlens``: cumulative starts), so packed rows stay isolated.

    >>> x = torch.randn(5, 1, 4, dtype=torch.bfloat16); cu = torch.tensor([0, 2, 5])
    >>> both = flash_attn_varlen_func(x, x, x, cu, cu, causal=True)
    >>> torch.equal(both[2:], flash_attn_varlen_func(x[2:], x[2:], x[2:], cu[:2] * 0 + torch.tensor([0, 3]),
    ...                                              torch.tensor([0, 3]), causal=True))
    True
    """
    _check_dtypes(q, k, v)
    _no_extras(dropout_p, window_size, softcap, alibi_slopes)
    starts_q, starts_k = cu_seqlens_q.tolist(), cu_seqlens_k.tolist()
    pieces = [_attend(q[a:b], k[c:d], v[c:d], causal, softmax_scale)
              for a, b, c, d in zip(starts_q[:-1], starts_q[1:], starts_k[:-1], starts_k[1:])]
    return torch.cat(pieces) if pieces else q.new_zeros(q.shape)


def _standin_kernel() -> types.ModuleType:
    kernel = types.ModuleType("flash_attn_cpu_standin")
    kernel.flash_attn_func = flash_attn_func
    kernel.flash_attn_varlen_func = flash_attn_varlen_func
    kernel.__doc__ = "CPU stand-in for kernels-community/flash-attn2 (labhelpers.model.attention): enforces its contract"
    return kernel


def install_flash_standin() -> None:
    """Make transformers' hub-kernel loader return the CPU stand-in for :data:`FLASH_KERNEL_REPO` (idempotent).

    Only ``LAB_FORCE_HARDWARE=ampere-cpu`` calls this; any other repository still goes to the real loader.
    """
    from transformers.integrations import hub_kernels

    real = hub_kernels.get_kernel
    if getattr(real, "_lab_standin", False):
        return

    def get_kernel(repo_id: str, *args: Any, **kwargs: Any) -> Any:
        if repo_id == FLASH_KERNEL_REPO:
            return _standin_kernel()
        return real(repo_id, *args, **kwargs)

    get_kernel._lab_standin = True  # type: ignore[attr-defined]
    hub_kernels.get_kernel = get_kernel


# ----------------------------------------------------------------------------------------------- forwards
def model_autocast(model: Any) -> Any:
    """The autocast a forward of ``model`` needs outside the Trainer: bf16 when its attention is a flash kernel and
    its weights are fp32 (the kernel takes only half precision) and no autocast is on yet, else a no-op.

    Library code that runs the model itself (generation, scoring, checks, the sanity assistant) enters this, so it
    works under every recipe without being handed one; notebook cells write ``with recipe.autocast():``.

    >>> import torch.nn as nn
    >>> m = nn.Linear(2, 2); m.config = types.SimpleNamespace(_attn_implementation="sdpa")
    >>> type(model_autocast(m)).__name__
    'nullcontext'
    """
    import contextlib

    implementation = str(getattr(getattr(model, "config", None), "_attn_implementation", "") or "")
    device = next(model.parameters()).device
    if ("flash" not in implementation or torch.is_autocast_enabled(device.type)
            or next(model.parameters()).dtype in HALF):
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


def forward_dtype(model: Any) -> torch.dtype:
    """The precision a forward of ``model`` computes in here: the autocast dtype when autocast is on (or
    :func:`model_autocast` turns it on), else the weights' dtype. Tolerances on logits follow it.

    >>> import torch.nn as nn
    >>> m = nn.Linear(2, 2); m.config = types.SimpleNamespace(_attn_implementation="sdpa")
    >>> forward_dtype(m)
    torch.float32
    """
    device = next(model.parameters()).device
    if torch.is_autocast_enabled(device.type):
        return torch.get_autocast_dtype(device.type)
    context = model_autocast(model)
    return context.fast_dtype if isinstance(context, torch.autocast) else next(model.parameters()).dtype


def fp32_logits(model: Any, input_ids: torch.Tensor) -> torch.Tensor:
    """Logits of one forward in full fp32 with sdpa attention, whatever the recipe: for comparisons that must be exact
    (a merged LoRA model against its adapter twin), where half-precision rounding (~0.1-1 logit under bf16 autocast)
    would hide a real mismatch. The attention implementation is restored afterwards; the Trainer's autocast wrapper
    on ``model.forward`` (accelerate's, under fp16/bf16) is removed for good, as ``trainer.save_model`` does.

    >>> import torch.nn as nn
    >>> class Tiny(nn.Module):
    ...     config = types.SimpleNamespace(_attn_implementation="sdpa")
    ...     def __init__(self): super().__init__(); self.emb = nn.Embedding(5, 3)
    ...     def forward(self, input_ids): return types.SimpleNamespace(logits=self.emb(input_ids))
    >>> fp32_logits(Tiny(), torch.tensor([[1, 2]])).dtype
    torch.float32
    """
    from accelerate.utils import extract_model_from_parallel

    model = extract_model_from_parallel(model, keep_fp32_wrapper=False)
    core = model.get_base_model() if hasattr(model, "get_base_model") else model
    before = str(getattr(core.config, "_attn_implementation", "sdpa") or "sdpa")
    switch = hasattr(core, "set_attn_implementation") and before != "sdpa"
    if switch:
        core.set_attn_implementation("sdpa")
    try:
        with torch.no_grad(), torch.autocast(input_ids.device.type, enabled=False):
            return model(input_ids=input_ids).logits.float()
    finally:
        if switch:
            core.set_attn_implementation(before)
