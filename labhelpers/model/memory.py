"""Training-memory estimate for a llama-style model: weights, gradients, AdamW states, activations, peak.

Use it before a run to see whether a recipe fits a card, and what to change when it does not::

    from labhelpers.model.hardware import recipe_for
    from labhelpers.model.memory import estimate_memory
    est = estimate_memory(model.config, recipe_for("t4", "colab", total_memory_gib=15.0))
    print(est)                      # table in GiB
    est.fits(15.0), est.advice(15.0)

Where the bytes go (``P`` parameters, ``T`` trainable parameters, ``N = batch x max_length`` tokens):

* **weights** ``P x`` weight bytes (4 fp32, 2 bf16). With AMP on fp32 weights (``fp16=True`` or ``bf16=True`` on
  an fp32 model) autocast also keeps a 2-byte copy of every matrix for the forward and backward: ``+ 2 B`` each.
* **gradients** ``T x`` weight bytes: ``.grad`` has the parameter's dtype. Frozen weights (LoRA) have none.
* **optimizer_states** AdamW keeps ``exp_avg`` and ``exp_avg_sq`` with the parameter's dtype (``zeros_like``):
  ``2 x 4 B`` per fp32 parameter, ``2 x 2 B`` per bf16 one. HF Trainer with bf16 weights keeps no fp32 master copy;
  fp16 AMP trains the fp32 weights themselves, so there is no separate master copy there either.
* **activations** what autograd saves in the forward, per decoder layer and token (``h`` hidden, ``I`` MLP width,
  ``kv`` = key/value heads x head dim), counted tensor by tensor for transformers' ``LlamaDecoderLayer`` with sdpa:

  - each RMSNorm saves its input and the normalised tensor in fp32 and its output: ``3h`` (fp32 run);
  - attention saves q and k after RoPE, v and the sdpa output (``2h + 2kv``) plus a log-sum-exp per head; sdpa's
    flash/memory-efficient kernels (CUDA, and PyTorch's CPU flash kernel used here for unpadded batches) store no
    ``L x L`` scores. With a padding mask transformers repeats k and v to all heads first (``2h`` instead of ``2kv``);
    ``attn_implementation="eager"`` would also store ``L x L`` probabilities per head, which this estimate omits;
  - the MLP saves gate, silu(gate), up and their product: ``4I``.

  So an fp32 layer saves ``(8h + 2kv + 4I) x 4 B`` per token (44.6 kB for SmolLM2-135M; checked tensor by tensor
  with ``torch.autograd.graph.saved_tensors_hooks``). Gradient checkpointing keeps only each layer's input
  (``h`` per token per layer) and recomputes one layer at a time. On top comes one layer's worth of backward
  workspace, and the **logits**: ``N x vocab`` fp32 log-softmax saved by the cross-entropy plus, at the start of the
  backward, its gradient and the logits' gradient: ``3 x N x vocab x 4 B`` (+2 B for half-precision logits). For a
  49k vocabulary this is the biggest single activation: 0.56 GiB at 4 x 256 tokens, more than 10 layers.
* **total** is the peak, not the sum: activations are freed as the backward produces gradients, so
  ``total = weights + optimizer_states + max(gradients, activations + gradient of the output layer)``.
  (The first step has no optimizer states until ``optimizer.step()``; the peak is a later step.)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from labhelpers.model.hardware import Recipe

GIB = 1024**3
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
USABLE_FRACTION = 0.9  # share of a card's memory a run can count on: CUDA context + allocator fragmentation take the rest


@dataclass(frozen=True)
class Arch:
    """The sizes of a llama-style decoder that memory depends on (counts, not bytes)."""

    vocab_size: int  # tokens in the vocabulary (rows of the embedding and of the logits)
    hidden_size: int  # h, width of the residual stream
    intermediate_size: int  # I, width of the MLP
    num_layers: int  # decoder layers
    num_heads: int  # query heads
    num_kv_heads: int  # key/value heads (GQA: fewer than num_heads)
    head_dim: int  # per-head width
    tied_embeddings: bool  # lm_head shares the embedding matrix
    n_params: int  # all parameters (unique tensors)
    n_trainable: int  # parameters with requires_grad (before any LoRA asked for by the estimate)

    @property
    def n_matrix_params(self) -> int:
        """Parameters in matrices (embedding, projections, lm_head): what autocast copies to half precision."""
        return self.n_params - self.hidden_size * (2 * self.num_layers + 1)

    @property
    def output_layer_params(self) -> int:
        """Parameters of lm_head (the embedding when tied): its gradient is made first in the backward."""
        return self.vocab_size * self.hidden_size

    def lora_params(self, rank: int) -> int:
        """Adapter parameters of LoRA rank ``rank`` on q, k, v, o, gate, up and down in every layer.

        >>> Arch(100, 8, 16, 2, 2, 1, 4, True, 0, 0).lora_params(2)
        512
        """
        h, i, q, kv = self.hidden_size, self.intermediate_size, self.num_heads * self.head_dim, self.num_kv_heads * self.head_dim
        per_layer = (h + q) + 2 * (h + kv) + (q + h) + 2 * (h + i) + (i + h)  # r x (in + out) per projection
        return rank * per_layer * self.num_layers


@dataclass(frozen=True)
class Setup:
    """How one training pass runs: tokens, precision, checkpointing, LoRA."""

    batch: int  # sequences per forward pass (per device)
    max_length: int  # tokens per sequence
    weight_bytes: int  # 4 (fp32) or 2 (bf16/fp16 weights)
    amp: bool  # autocast to half precision on fp32 weights
    gradient_checkpointing: bool  # recompute activations in the backward
    lora_rank: int | None  # None = full fine-tune
    padded: bool  # batches carry a padding mask (transformers then repeats k/v to all heads for sdpa)


@dataclass(frozen=True)
class MemoryBreakdown:
    """Estimated training memory in bytes; ``total`` is the peak (see the module docstring for every term)."""

    weights: int = field(metadata={"help": "bytes of parameters (+ autocast half copies under AMP)"})
    gradients: int = field(metadata={"help": "bytes of .grad for trainable parameters"})
    optimizer_states: int = field(metadata={"help": "bytes of AdamW exp_avg + exp_avg_sq"})
    activations: int = field(metadata={"help": "bytes saved for the backward at its peak, logits included"})
    total: int = field(metadata={"help": "peak bytes: weights + optimizer + max(gradients, activations + output-layer grad)"})
    arch: Arch = field(repr=False, metadata={"help": "model sizes the estimate used"})
    setup: Setup = field(repr=False, metadata={"help": "run settings the estimate used"})

    def fits(self, gpu_gib: float, usable_fraction: float = USABLE_FRACTION) -> bool:
        """True when the peak fits in ``usable_fraction`` of a ``gpu_gib`` card (context and fragmentation take the rest)."""
        return self.total <= gpu_gib * GIB * usable_fraction

    def with_changes(self, **changes: Any) -> MemoryBreakdown:
        """The estimate for the same model with some ``Setup`` fields changed (batch, max_length, lora_rank, ...)."""
        return _breakdown(self.arch, dataclasses.replace(self.setup, **changes))

    def advice(self, gpu_gib: float) -> list[str]:
        """Concrete changes that bring the peak under a ``gpu_gib`` card, each with its new estimate; [] if it fits."""
        if self.fits(gpu_gib):
            return []
        s, tips = self.setup, []

        def tip(text: str, est: MemoryBreakdown) -> None:
            tips.append(f"{text}: {est.total / GIB:.2f} GiB")

        batch = s.batch
        while batch > 1:
            batch //= 2
            est = self.with_changes(batch=batch)
            if est.fits(gpu_gib):
                accum = s.batch // batch
                tip(f"per_device_train_batch_size {s.batch} -> {batch} and gradient_accumulation_steps x{accum} "
                    "(same effective batch)", est)
                break
        if not s.gradient_checkpointing and (est := self.with_changes(gradient_checkpointing=True)).fits(gpu_gib):
            tip("gradient_checkpointing=True (~20% slower steps)", est)
        length = s.max_length
        while length > 128:
            length //= 2
            est = self.with_changes(max_length=length)
            if est.fits(gpu_gib):
                tip(f"max_length {s.max_length} -> {length} (longer rows are truncated)", est)
                break
        if s.lora_rank is None and (est := self.with_changes(lora_rank=16)).fits(gpu_gib):
            tip("LoRA r=16 on q,k,v,o,gate,up,down (frozen base: no gradients or AdamW states for it)", est)
        if not tips:
            est = self.with_changes(batch=1, gradient_checkpointing=True, lora_rank=s.lora_rank or 16)
            verdict = "fits" if est.fits(gpu_gib) else f"still does not fit {gpu_gib:g} GiB; use a bigger card"
            tip(f"no single change is enough; batch 1 + gradient checkpointing + LoRA r={s.lora_rank or 16} "
                f"({verdict})", est)
        return tips

    def __str__(self) -> str:
        s = self.setup
        mode = "full fine-tune" if s.lora_rank is None else f"LoRA r={s.lora_rank}"
        prec = {4: "fp32", 2: "half"}[s.weight_bytes] + (" weights + AMP" if s.amp else " weights")
        ckpt = "gradient checkpointing" if s.gradient_checkpointing else "no checkpointing"
        rows = [("weights", self.weights), ("gradients", self.gradients), ("optimizer_states", self.optimizer_states),
                ("activations", self.activations), ("total (peak)", self.total)]
        lines = [f"memory estimate: batch {s.batch} x {s.max_length} tokens, {mode}, {prec}, {ckpt}"]
        lines += [f"  {name:<17}{value / GIB:8.2f} GiB" for name, value in rows]
        return "\n".join(lines)


def _layer_bytes_per_token(a: Arch, s: Setup) -> int:
    """Bytes one decoder layer saves for the backward per token (see the module docstring)."""
    h, i, q = a.hidden_size, a.intermediate_size, a.num_heads * a.head_dim
    kv = q if s.padded else a.num_kv_heads * a.head_dim  # padding mask -> repeat_kv before sdpa
    small = 2 * 4 + a.num_heads * 4  # two rsqrt scalars and the attention log-sum-exp, fp32
    lora = 0 if s.lora_rank is None else len(LORA_TARGETS) * s.lora_rank * 4  # lora_A outputs (fp32 adapters)
    if s.weight_bytes == 4 and not s.amp:  # fp32 everywhere
        return 4 * (3 * h + 3 * h) + 4 * (2 * q + 2 * kv) + 4 * (4 * i) + small + lora
    if s.amp:  # fp32 residual + norms, half copies of each projection input, half matmul outputs
        norms = (4 * h + 4 * h + 3 * 2 * h) + (4 * h + 4 * h + 2 * 2 * h)
        return norms + 2 * (2 * q + 2 * kv) + 2 * (4 * i) + small + lora
    # half weights: each norm saves an fp32 copy of its input, the half normalised tensor and its half output
    return 2 * (4 * h + 2 * h + 2 * h) + 2 * (2 * q + 2 * kv) + 2 * (4 * i) + small + lora


def _breakdown(a: Arch, s: Setup) -> MemoryBreakdown:
    """The estimate for one architecture and setup."""
    if s.lora_rank is None:
        trainable, adapter = a.n_trainable, 0
        weights = a.n_params * s.weight_bytes
        grads = optim = trainable * s.weight_bytes
        optim *= 2
        out_grad = a.output_layer_params * s.weight_bytes
    else:
        adapter = a.lora_params(s.lora_rank)
        weights = a.n_params * s.weight_bytes + adapter * 4  # peft keeps adapters in fp32
        grads, optim, out_grad = adapter * 4, adapter * 8, 0
    if s.amp:
        weights += a.n_matrix_params * 2  # autocast's half copies of the matrices
    n = s.batch * s.max_length
    layer = _layer_bytes_per_token(a, s)
    residual = 2 if (s.weight_bytes == 2 and not s.amp) else 4
    if s.gradient_checkpointing:
        saved = a.num_layers * a.hidden_size * residual + layer  # layer inputs + the layer being recomputed
    else:
        saved = a.num_layers * layer
    final_norm = 3 * a.hidden_size * 4
    logits = a.vocab_size * (3 * 4 + (0 if residual == 4 and not s.amp else 2))
    activations = n * (saved + layer + final_norm + logits)  # + one layer of backward workspace
    total = weights + optim + max(grads, activations + out_grad)
    return MemoryBreakdown(weights, grads, optim, activations, total, a, s)


def _arch(model_or_config: Any) -> tuple[Arch, int | None]:
    """(Arch, weight bytes of the model or None for a config) from a model or a ``PretrainedConfig``."""
    config = getattr(model_or_config, "config", model_or_config)
    get = lambda *names, default=None: next((getattr(config, n) for n in names if getattr(config, n, None) is not None), default)  # noqa: E731
    h, heads = get("hidden_size"), get("num_attention_heads")
    missing = [n for n, v in (("hidden_size", h), ("num_attention_heads", heads), ("vocab_size", get("vocab_size")),
                             ("intermediate_size", get("intermediate_size")), ("num_hidden_layers", get("num_hidden_layers"))) if v is None]
    if missing:
        raise ValueError(f"estimate_memory: config {type(config).__name__} has no {', '.join(missing)}; "
                         "pass a llama-style model or PretrainedConfig (e.g. model.config)")
    head_dim = get("head_dim", default=h // heads)
    kv_heads = get("num_key_value_heads", default=heads)
    v, i, layers = config.vocab_size, config.intermediate_size, config.num_hidden_layers
    tied = bool(getattr(config, "tie_word_embeddings", True))
    if hasattr(model_or_config, "parameters"):
        params = {p.data_ptr(): p for p in model_or_config.parameters()}.values()  # tied weights counted once
        n_params = sum(p.numel() for p in params)
        n_trainable = sum(p.numel() for p in params if p.requires_grad)
        dtypes = [p.dtype for p in params if p.is_floating_point()]
        weight_bytes = max(set(dtypes), key=dtypes.count).itemsize if dtypes else None
    else:
        q, kv = heads * head_dim, kv_heads * head_dim
        bias = (q + 2 * kv + h if getattr(config, "attention_bias", False) else 0) + (2 * i + h if getattr(config, "mlp_bias", False) else 0)
        per_layer = h * q + 2 * h * kv + q * h + 3 * h * i + 2 * h + bias
        n_params = v * h * (1 if tied else 2) + layers * per_layer + h
        n_trainable, weight_bytes = n_params, None
    return Arch(v, h, i, layers, heads, kv_heads, head_dim, tied, n_params, n_trainable), weight_bytes


def estimate_memory(model_or_config: Any, recipe: Recipe, *, lora_rank: int | None = None,
                    gradient_checkpointing: bool | None = None, padded: bool = True) -> MemoryBreakdown:
    """Estimated training memory of a llama-style model under a ``Recipe`` (batch and length from ``recipe.sizes``).

    ``lora_rank``: None = full fine-tune (unless the model already has frozen weights); an int = LoRA of that rank
    on every projection. ``gradient_checkpointing``: None = the recipe's choice. ``padded``: batches carry a padding
    mask (padding-free packing does not). A model's own dtype wins over the recipe's.

    >>> from transformers import LlamaConfig
    >>> from labhelpers.model.hardware import recipe_for
    >>> tiny = LlamaConfig(vocab_size=100, hidden_size=8, intermediate_size=16, num_hidden_layers=2,
    ...                    num_attention_heads=2, num_key_value_heads=1, tie_word_embeddings=True)
    >>> r = recipe_for("cpu", "ci").with_sizes(per_device_train_batch_size=2, max_length=4)
    >>> e = estimate_memory(tiny, r, padded=False)
    >>> e.weights, e.gradients, e.optimizer_states, e.activations, e.total
    (7968, 7968, 15936, 23808, 50912)
    >>> estimate_memory(tiny, r, lora_rank=2, padded=False).total < e.total
    True
    """
    arch, model_bytes = _arch(model_or_config)
    weight_bytes = model_bytes or recipe.torch_dtype.itemsize
    amp = weight_bytes == 4 and bool(recipe.fp16 or recipe.bf16)
    ckpt = recipe.sizes.gradient_checkpointing if gradient_checkpointing is None else gradient_checkpointing
    if lora_rank is not None and not (isinstance(lora_rank, int) and lora_rank > 0):
        raise ValueError(f"lora_rank = {lora_rank!r}: must be a positive int or None; pass e.g. 16")
    setup = Setup(recipe.sizes.per_device_train_batch_size, recipe.sizes.max_length, weight_bytes, amp, ckpt,
                  lora_rank, padded)
    return _breakdown(arch, setup)


def process_memory_bytes(field: str = "VmRSS") -> int:
    """A memory field of this process from Linux /proc: ``VmRSS`` (resident now) or ``VmHWM`` (resident peak), bytes.

    >>> process_memory_bytes("VmHWM") >= process_memory_bytes("VmRSS") > 0
    True
    """
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status (Linux only)")
