"""Peak memory per GPU for one training configuration, as a breakdown (bytes).

What is modelled is what the recipes do (ftlaunch/recipes/train.py precision policy):
- LoRA: frozen base in bf16, adapters fp32 (PEFT autocast_adapter_dtype) with AdamW.
- QLoRA: base linears NF4 + double quant (bitsandbytes), embeddings/lm_head/norms bf16, adapters bf16
  (TRL casts them); bitsandbytes' MatMul4Bit keeps nothing of its input. Checked by real CPU steps of the recipe's
  QLoRA model (benchmarks/own_stack_qlora.py, `qlora` rows of benchmarks/results/own_stack_memory.json).
- Full, no DeepSpeed: fp32 weights + bf16 autocast, AdamW (torch mixed precision).
- Full, DeepSpeed ZeRO-1/2/3: bf16 params and grads, fp32 master + Adam m, v sharded by stage.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from ftlaunch.forecast.params import ParamCounts, lora_targets, lora_uses_parameter_targets
from ftlaunch.forecast.setup import Setup
from ftlaunch.forecast.specs import ModelSpec

GiB = 2**30

# ZeRO paper (Rajbhandari et al. 2020, arXiv:1910.02054 §3.1): mixed-precision Adam holds K=12 bytes/param
# of optimizer state (fp32 master, momentum, variance) beside 2-byte fp16/bf16 params and grads.
ADAM_STATE_BYTES = 12
# TRL's fused LM head tile: tokens x vocab entries per projection (trl/kernels/chunked_logprob.py
# TOKEN_CHUNK_SIZE, trl/trainer/utils.py _CHUNKED_LOGPROB_CHUNK_SIZE, trl 1.16). See logits_bytes().
LOGIT_TILE_TOKENS = 4096
LOGIT_TILE_VOCAB = 32768
# Fixed per-process overhead: CUDA context, cuBLAS/NCCL workspaces. The bert rows of
# benchmarks/data/published_cases.csv put it at ~1.34 GB on a V100 (nvidia-smi); CUDA 12 lazy loading is lower.
CUDA_CONTEXT_BYTES = 1.0 * GiB
# PyTorch caching allocator: reserved exceeds allocated by fragmentation; 5% is a typical steady state
# (assumption; compare max_memory_reserved/max_memory_allocated in benchmarks/results/ when a GPU run exists).
ALLOCATOR_OVERHEAD = 0.05
# ZeRO-3/FSDP gather and free whole layers every pass, which fragments the caching allocator much more:
# the nvidia-smi figures of the ZeRO-3 rows in benchmarks/data/published_cases.csv (rows 11, 23, 41) sit
# 15-35% above their allocated estimate (benchmarks/results/forecast_accuracy.json).
ALLOCATOR_OVERHEAD_ZERO3 = 0.15
# CPU "device": the training process itself (Python + torch + transformers + peft + trl loaded) before any
# model memory: peak RSS of the tiny-model quickstart, benchmarks/results/cpu_quickstart.json.
CPU_PROCESS_BYTES = 0.6 * GiB
# NCCL communicator buffers once more than one GPU talks (NCCL_BUFFSIZE 4 MiB x channels x peers; assumption).
NCCL_BYTES = 0.5 * GiB


@dataclass(frozen=True)
class MemoryBreakdown:
    """Bytes per GPU. `allocated` is what torch.cuda.max_memory_allocated would show; `total` adds the
    allocator's slack and the CUDA context (what nvidia-smi shows), which is what must fit."""

    weights: float
    gradients: float
    optimizer: float
    activations: float
    logits: float
    reference: float  # DPO reference model copy
    buffers: float  # ZeRO buckets / gathered layers, transient workspaces
    overhead: float  # allocator fragmentation + CUDA context + NCCL
    calibration: float = 0.0  # correction from past runs' actuals (calibrate=true), may be negative
    context: float = 0.0  # the part of overhead that is CUDA context + NCCL (not in max_memory_reserved)

    @property
    def total(self) -> float:
        return (
            self.weights + self.gradients + self.optimizer + self.activations + self.logits + self.reference
            + self.buffers + self.overhead + self.calibration
        )  # fmt: skip

    @property
    def allocated(self) -> float:
        return self.total - self.overhead - self.calibration

    @property
    def reserved(self) -> float:
        return self.total - self.context

    def as_dict(self) -> dict[str, float]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    def gib(self) -> dict[str, float]:
        return {k: round(v / GiB, 2) for k, v in self.as_dict().items()}


def adapter_bytes(method: str) -> float:
    """Bytes per LoRA parameter (and per gradient element, Adam moment): PEFT keeps LoRA adapters fp32
    (autocast_adapter_dtype); TRL casts QLoRA adapters to bf16 (recipes/actuals.json precision.stored_params).
    """
    return 2.0 if method == "qlora" else 4.0


def quant_bytes(s: Setup) -> float:
    """Bytes per quantized base weight under QLoRA (4.127 bits with double quantization, 4.5 without)."""
    return s.quant_bits / 8


def activation_bytes_per_token_layer(m: ModelSpec, s: Setup) -> float:
    """Mean over decoder layers (MoE models mix dense and MoE layers)."""
    return _activation_bytes(m, s.method, s.lora_dropout, s.lora_targets)[0]


@cache  # the planner asks thousands of times for a handful of distinct answers
def _activation_bytes(m: ModelSpec, method: str, lora_dropout: float, targets: str) -> tuple[float, float]:
    """Bytes one decoder layer saves for backward per token, bf16, SDPA/flash attention (no s^2 term):
    (mean over layers, largest layer).

    Listing what autograd saves, after Korthikanti et al. 2022 (arXiv:2205.05198 §4.1) for GQA + gated MLP +
    HF RMSNorm, checked against our own stack under FakeTensorMode + MemTracker at 2 and 4 layers
    (benchmarks/own_stack_memory.py, benchmarks/results/own_stack_memory.json):
    RMSNorm: HF upcasts the input to fp32 and autograd keeps it -> 4h per norm.
    attention: SDPA keeps q 2q, k/v 2kv each and its output 2q; o_proj's input is a contiguous copy of the
    output (2q more, measured) -> 6q + 4kv.
    gated MLP: silu keeps the gate output, the product keeps silu's output and up's output -> 6I (standard 2I).
    A frozen nn.Linear keeps nothing (its input gradient needs only the weight). A trainable one keeps its input:
    full FT adds the normed inputs (2h each), o_proj's input is already counted, down_proj's input 2I (standard
    fc2's 2I), and each trainable norm weight keeps its bf16 input (2h).
    LoRA: each targeted input is cast to the adapter dtype (fp32 LoRA 4 bytes, bf16 QLoRA 2) and kept by lora_A;
    dropout (p > 0) adds its 1-byte bool mask (CUDA native_dropout).
    MoE layer (transformers' *SparseMoeBlock, grouped_mm experts; LoRA's merged expert copies are in
    merged_experts_bytes): router logits 2E and their
    fp32 softmax 4E; each of the top-k routed copies keeps its gathered input 2h, an expert MLP as above (width
    I_e) and its output 2h for the routing-weight product; a shared expert adds a dense MLP of width I_s.
    """
    h, q, kv, i = m.hidden_size, m.q_dim, m.kv_dim, m.intermediate_size

    def mlp_bytes(width: int) -> int:
        if method == "full":
            return 2 * h + (8 * width if m.mlp == "gated" else 4 * width)
        return 6 * width if m.mlp == "gated" else 2 * width

    attn = 6 * q + 4 * kv + (2 * h if method == "full" else 0)
    mlp = mlp_bytes(i)
    norms = (6 if method == "full" else 4) * h * m.norms_per_layer
    lora = 0.0
    if method in ("lora", "qlora"):
        per_input = adapter_bytes(method) + (1 if lora_dropout > 0 else 0)
        lora = per_input * sum(fin for fin, _ in lora_targets(m, targets).values())
    dense = attn + mlp + norms + lora
    if not m.is_moe:
        return dense, dense
    e, k = m.num_experts, m.experts_per_token
    shared = m.shared_expert_intermediate_size
    moe_mlp = 6 * e + k * (4 * h + mlp_bytes(m.expert_size)) + (mlp_bytes(shared) if shared else 0)
    moe = attn + moe_mlp + norms + lora
    n_moe = m.moe_layers
    mean = (n_moe * moe + (m.num_hidden_layers - n_moe) * dense) / m.num_hidden_layers
    return mean, max(moe, dense if n_moe < m.num_hidden_layers else 0.0)


def logits_bytes(m: ModelSpec, p: ParamCounts, s: Setup, tokens: int) -> float:
    """TRL's SFTTrainer/DPOTrainer compute the loss with a fused, chunked LM head (trl/trainer/utils.py
    add_fused_lm_head, trl/kernels/chunked_logprob.py): logits never exist whole, only a bf16 tile of
    TOKEN_CHUNK_SIZE x _CHUNKED_LOGPROB_CHUNK_SIZE (4096 x 32768). Its backward keeps the final hidden states
    (compacted copy, 2h/token), accumulates their gradient in fp32 (4h) and casts it back (2h). Full FT also
    accumulates the LM head's weight gradient in fp32 (4 bytes x vocab x h) while that layer runs."""
    tile = 2.0 * min(tokens, LOGIT_TILE_TOKENS) * min(m.vocab_size, LOGIT_TILE_VOCAB)
    out = tile + 8.0 * m.hidden_size * tokens
    if s.method == "full":
        out += 4.0 * m.vocab_size * m.hidden_size
    return out


def merged_experts_bytes(m: ModelSpec, p: ParamCounts, s: Setup) -> float:
    """LoRA on stacked MoE experts: PEFT's ParamWrapper folds the adapters into a bf16 copy of each targeted
    expert stack every forward (peft/tuners/lora/layer.py _LoraFactorsProxy, baddbmm(W, lhs, rhs)), and grouped_mm
    keeps that copy for backward: 2 bytes x the layer's expert + router parameters, held by every MoE layer
    without checkpointing, by the recomputed layer only with it. Backward adds the copy's gradient for one stack
    (down_proj's, a third). Measured: benchmarks/results/own_stack_memory.json (olmoe, qwen3-moe, mixtral rows;
    the transient came out at 0.24-0.28 of a layer's copy, modelled as 1/3)."""
    if (
        s.method not in ("lora", "qlora")
        or not m.moe_layers
        or not lora_uses_parameter_targets(m, s.lora_targets)
    ):
        return 0.0
    per_layer = 2.0 * p.experts / m.moe_layers
    return (1 if s.grad_ckpt else m.moe_layers) * per_layer + per_layer / 3


def peak_memory(m: ModelSpec, p: ParamCounts, s: Setup) -> MemoryBreakdown:
    n = s.n_gpus
    z = s.zero
    tokens = s.sequences * s.seq_len

    # --- model states (ZeRO paper §5: stage 1 shards optimizer, 2 adds grads, 3 adds params) -------
    if s.method == "full":
        if z == 0:
            # torch AMP: fp32 weights (4) + fp32 grads (4) + Adam m, v (8). Autocast's bf16 weight copies (2)
            # live from forward into backward, before the gradients exist: see the phases below.
            base, grads, opt = 4.0 * p.total, 4.0 * p.total, 8.0 * p.total
        else:
            base = 2.0 * p.total / (n if z >= 3 else 1)
            grads = 2.0 * p.total / (n if z >= 2 else 1)
            opt = ADAM_STATE_BYTES * p.total / n
        adapters = 0.0
    else:
        if s.method == "qlora":
            base = s.quant_bits / 8 * p.linear + 2.0 * (p.embed + p.lm_head + p.norm + p.experts)
        else:
            base = 2.0 * p.total
        base = base / (n if z >= 3 else 1)
        width = adapter_bytes(s.method)
        # ZeRO-3 partitions every parameter, the trainable adapters included (ZeRO paper §5.3).
        adapters = width * p.lora / (n if z >= 3 else 1)
        grads = width * p.lora / (n if z >= 2 else 1)
        opt = 2 * width * p.lora / (n if z >= 1 else 1)
    if s.offload_optimizer:
        opt = 0.0  # ZeRO-Offload keeps optimizer states (and the update) on the CPU
    if s.offload_params:
        base = 0.0  # ZeRO-Infinity param offload: only gathered layers (buffers below) live on the GPU
    weights = base + adapters

    # --- ZeRO working buffers ------------------------------------------------------------------------
    buffers = 0.0
    if z >= 3:
        # Gathered parameters: the current layer and the prefetched next one (stage3_prefetch_bucket_size,
        # DeepSpeed docs), or the (un-sharded) embedding / lm_head when it is in use, whichever is larger.
        per_layer = p.per_layer * (s.quant_bits / 8 if s.method == "qlora" else 2.0)
        buffers += max(2 * per_layer, 2.0 * max(p.embed, p.lm_head))
    elif z in (1, 2):
        # reduce_bucket_size "auto" = hidden^2 elements in HF's DeepSpeed integration; overlap_comm keeps two.
        buffers += 2 * 2.0 * m.hidden_size**2
    # Backward workspace: a few live gradient temporaries of the widest activation (assumption: 4). The decoder
    # layers' backward starts after the LM head's has freed its tile, so only the larger of the two is live
    # (measured: benchmarks/results/own_stack_memory.json, peak at the head's backward for LoRA).
    workspace = 4 * 2.0 * tokens * max(m.intermediate_size, m.hidden_size)

    # --- activations -------------------------------------------------------------------------------------
    mean_act, max_act = _activation_bytes(m, s.method, s.lora_dropout, s.lora_targets)
    per_layer_act = mean_act * tokens
    if s.attention == "eager":
        # Eager attention keeps the s x s scores and softmax output per head, bf16: 4*a*s^2 bytes per layer
        # and sequence (Korthikanti et al. 2022 §4.1, 5*a*s^2 with dropout; HF training has none).
        per_layer_act += 4.0 * m.num_attention_heads * s.seq_len**2 * s.sequences
    L = m.num_hidden_layers
    if s.grad_ckpt:
        # HF gradient checkpointing saves each layer's input (2h bytes/token) and recomputes one layer at a
        # time in backward (Chen et al. 2016, arXiv:1604.06174).
        activations = L * 2.0 * m.hidden_size * tokens + per_layer_act + (max_act - mean_act) * tokens
    else:
        activations = L * per_layer_act
    activations += merged_experts_bytes(m, p, s)
    logits = logits_bytes(m, p, s, tokens)

    # --- DPO reference --------------------------------------------------------------------------------
    reference = 0.0
    if s.objective == "dpo" and s.dpo_reference == "model":
        reference = 2.0 * p.total / (n if z >= 3 else 1)  # frozen bf16 copy, sharded like params under ZeRO-3
        if s.method == "qlora":
            reference = (s.quant_bits / 8 * p.linear + 2.0 * (p.embed + p.lm_head + p.norm + p.experts)) / (
                n if z >= 3 else 1
            )

    # The optimizer step needs fp32 gradients beside the states: DeepSpeed's fp32 gradient partition
    # (stage_1_and_2.py single_grad_partition). It comes after backward has freed activations and logits, so
    # the peak is the larger phase. torch's fused AdamW (the TrainingArguments default) needs no temporaries.
    step_transient = 0.0
    if s.method == "full" and not s.offload_optimizer and z >= 1:
        step_transient = 4.0 * p.total / n
    workspace = max(0.0, workspace - logits)  # beyond the head's transient (see above)
    phase = activations + logits + workspace
    if s.method == "full" and z == 0:
        # Backward starts with autocast's bf16 weight copies, activations and logits live and no gradients
        # (zero_grad sets them to None); the step holds the gradients and nothing else. Measured:
        # benchmarks/results/own_stack_memory.json (full rows).
        phase += 2.0 * p.total
        if grads >= phase:
            activations = logits = workspace = 0.0
        else:
            buffers += 2.0 * p.total
            grads = 0.0
    elif step_transient > phase:
        buffers += step_transient - phase  # reported under buffers: the step phase sets the peak
    buffers += workspace

    allocated = weights + grads + opt + activations + logits + reference + buffers
    frag = ALLOCATOR_OVERHEAD_ZERO3 if z >= 3 else ALLOCATOR_OVERHEAD
    context = (CUDA_CONTEXT_BYTES + (NCCL_BYTES if n > 1 else 0.0)) if s.device_context else CPU_PROCESS_BYTES
    overhead = frag * allocated + context
    return MemoryBreakdown(
        weights=weights,
        gradients=grads,
        optimizer=opt,
        activations=activations,
        logits=logits,
        reference=reference,
        buffers=buffers,
        overhead=overhead,
        context=context,
    )
