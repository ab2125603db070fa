"""Training speed: FLOPs per token, then a per-micro-step time model (compute, weight traffic, QLoRA
dequantization, ZeRO communication, offload), giving tokens/s per GPU.

A "token" is one token of one training sequence; for DPO, chosen and rejected tokens both count.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import cache

from ftlaunch.forecast.memory import adapter_bytes, quant_bytes
from ftlaunch.forecast.params import ParamCounts
from ftlaunch.forecast.setup import Setup
from ftlaunch.forecast.specs import ClusterSpec, GpuSpec, ModelSpec


@dataclass(frozen=True)
class Efficiency:
    """Fractions of datasheet peaks a real stack reaches. Fitted, not assumed: see the sources below."""

    mfu: float  # matmul-bound work: achieved / dense bf16 peak
    bandwidth: float  # bandwidth-bound kernels: achieved / peak memory bandwidth
    comm_overlap: float  # share of ZeRO/DDP communication hidden behind compute


# GPUs: mfu = (measured max achievable bf16 matmul rate / datasheet peak) x STACK_MATMUL_EFFICIENCY.
# The first factor is hardware physics, measured per GPU by matmul benchmarks, not fitted to training runs:
# ftlaunch/conf/gpu/*.yaml `matmul_tflops` (MAMF, stas00/ml-engineering compute/accelerator/README.md "Maximum
# Achievable Matmul FLOPS comparison table", commit b9e2972). A GPU nobody measured gets
# UNMEASURED_MATMUL_FRACTION, the median of that table's NVIDIA bf16 rows (A100 SXM 0.869 ... GB200 0.729).
UNMEASURED_MATMUL_FRACTION = 0.80
# The second is what a training stack's real (smaller, odd-shaped, fwd+bwd) matmuls reach of MAMF: ONE value
# shared by every GPU family, fitted to all published runs by benchmarks/forecast_accuracy.py --fit
# (benchmarks/results/forecast_accuracy.json; checked leave-one-source-out there).
STACK_MATMUL_EFFICIENCY = 0.68
# bandwidth 0.7: typical achieved/peak HBM bandwidth of streaming kernels (assumption, not measured here).
# comm_overlap 1.0: ZeRO-3/FSDP prefetch the next layer's gather during this layer's compute and DDP/ZeRO-2
# reduce buckets during backward (DeepSpeed overlap_comm; PyTorch FSDP backward_prefetch), so communication
# costs time only where it outlasts the compute (exposed_comm_s) -- what the 64-GPU MPT-70B run shows.
GPU_EFFICIENCY = Efficiency(
    mfu=UNMEASURED_MATMUL_FRACTION * STACK_MATMUL_EFFICIENCY, bandwidth=0.7, comm_overlap=1.0
)
CPU_EFFICIENCY = Efficiency(mfu=0.5, bandwidth=0.5, comm_overlap=0.0)
# Eager dispatch per decoder layer per pass, and per micro-step outside the layers (embedding, head, loss,
# autograd), measured by benchmarks/cpu_peak.py (benchmarks/results/cpu_peak.json layer_pass_s,
# micro_step_fixed_s). Stored as seconds x the matmul rate measured alongside (FLOP-equivalents): a busy shared
# machine slows both alike, so the ratio holds and ftlaunch/conf/gpu/cpu.yaml's peak turns it back into seconds.
CPU_LAYER_PASS_FLOPS = 4.03e8  # 0.02036 s x 0.0198 TFLOP/s
CPU_MICRO_STEP_FLOPS = 5.40e8  # 0.02726 s x 0.0198 TFLOP/s

# QLoRA: bitsandbytes dequantizes each NF4 weight to bf16 before the matmul (bnb.functional.dequantize_4bit):
# read 4-bit + constants (quant_bytes), write bf16, read bf16 again -> ~0.52 + 2 + 2 bytes per weight per pass.
DEQUANT_WRITE_READ_BYTES = 4.0
# ZeRO-Offload's CPU Adam (Ren et al. 2021, arXiv:2101.06840): parameters updated per second per node.
# Order of magnitude from the paper's CPU-Adam timings (assumption until measured on a real node).
CPU_ADAM_PARAMS_PER_S = 1.0e9
PCIE_GB_S = 20.0  # effective host<->device copy bandwidth, PCIe Gen4 x16 (assumption)


# Fixed cost per decoder layer per pass: kernel launches and Python dispatch of an eager HF layer, ~100 ops
# (norms, RoPE, projections, PEFT's dropout/A/B/scale/add per adapted linear) at ~10 us each (assumption from
# the op count, no longer fitted). Dominates when a micro-step holds few tokens (Qwen-7B at seq 256,
# benchmarks/data/published_cases.csv row 30, which it reproduces within 6% out of sample).
LAYER_PASS_OVERHEAD_S = 1.0e-3


@cache
def efficiency_for(gpu: GpuSpec) -> Efficiency:
    if gpu.name == "cpu":
        return CPU_EFFICIENCY
    if gpu.mfu:  # a measured override (calibration from own runs)
        return replace(GPU_EFFICIENCY, mfu=gpu.mfu)
    frac = gpu.matmul_tflops / gpu.bf16_tflops if gpu.matmul_tflops else UNMEASURED_MATMUL_FRACTION
    return replace(GPU_EFFICIENCY, mfu=frac * STACK_MATMUL_EFFICIENCY)


# Bandwidth-bound kernels between the matmuls (eager PyTorch: one kernel per op, each reading and writing its
# whole tensor). Bytes per token per layer, forward, counted op by op in transformers' modeling_llama.py
# (bf16 = 2 bytes, fp32 = 4): RMSNorm upcasts to fp32 and runs ~6 kernels, 36 bytes per hidden element;
# RoPE on q and k ~20 bytes per element; residual adds 6 each; SDPA reads q, k, v and writes o (2 each);
# SwiGLU act + mul 10 bytes per intermediate element. GPT-style blocks (mlp: standard) use PyTorch's fused
# LayerNorm (4 bytes per element), GELU (4 per intermediate element) and no RoPE.
# Backward reads inputs and output grads and writes input grads: ~2x the forward traffic (assumption).
# This is why a 1.8B model or an H100 (3x A100's FLOPs, 1.6x its bandwidth) reaches a lower MFU.
def elementwise_bytes_per_token_layer(m: ModelSpec) -> float:
    h, f, q, kv = m.hidden_size, m.intermediate_size, m.q_dim, m.kv_dim
    if m.mlp == "standard":
        norm, rope, act = 4.0 * h * m.norms_per_layer, 0.0, 4.0 * f
    else:
        norm, rope, act = 36.0 * h * m.norms_per_layer, 20.0 * (q + kv), 10.0 * f
    return norm + rope + act + 2 * 6.0 * h + 2.0 * (2 * q + 2 * kv)


# ELEMENTWISE_SCALE: the share of that eager op-counted traffic the published stacks actually pay, fitted with
# STACK_MATMUL_EFFICIENCY by benchmarks/forecast_accuracy.py --fit (results/forecast_accuracy.json). It comes
# out small (0.2): Composer, lit-gpt/TinyLlama, torchtune (torch.compile) and Qwen's scripts fuse norms, RoPE,
# activations and the loss. Fully eager HF layers pay ~1x (linkedin/Liger-Kernel README.md: ~20% more
# throughput from fusing exactly these ops), so calibrate from a run of our stack (launch-report --calibrate).
ELEMENTWISE_SCALE = 0.2


# The loss over the vocabulary: bf16 logits written, upcast to fp32, log-softmax, its gradient and the
# bf16 cast back (transformers loss_utils.ForCausalLMLoss: logits.float() then cross_entropy): ~30 bytes
# per vocab entry per token, forward and backward together.
LOSS_BYTES_PER_VOCAB = 30.0


def forward_flops_per_token(m: ModelSpec, p: ParamCounts, seq_len: int) -> tuple[float, float]:
    """(matmul, attention) forward FLOPs per token.

    Matmul: 2 FLOPs per parameter per token (Kaplan et al. 2020, arXiv:2001.08361 §2.1); for MoE only the
    parameters a token runs through: router + top-k experts + shared expert (Fedus et al. 2021, arXiv:2101.03961).
    Attention scores and values: 2 * 2 * s * q_dim per layer per token; causal flash/SDPA kernels skip
    the masked half (Dao 2023, arXiv:2307.08691), so 2 * s * q_dim.
    """
    return 2.0 * p.matmul, 2.0 * m.num_hidden_layers * seq_len * m.q_dim


def attention_flops_factor(attention: str) -> float:
    """Eager attention computes the masked half too: twice the causal kernels' work."""
    return 2.0 if attention == "eager" else 1.0


def masked_layers(m: ModelSpec, s: Setup) -> int:
    """Decoder layers whose SDPA call gets an explicit attn_mask instead of is_causal, and so computes the
    whole s x s square (a kernel given a mask cannot skip the causal half; PyTorch's flash kernel takes no
    mask at all). transformers 5 masking_utils._ignore_causal_mask_sdpa passes is_causal only without
    padding and, for a sliding-window layer, only while the sequence is shorter than the window; every layer
    is masked when the batch is padded (tests/test_attention_mask.py checks both against transformers)."""
    if s.attention == "eager" or s.padded:
        return m.num_hidden_layers
    if m.sliding_layers and s.seq_len >= m.sliding_window:
        return m.sliding_layers
    return 0


def attention_flops(m: ModelSpec, s: Setup) -> float:
    """Forward attention FLOPs per token, all layers: 2*s*q_dim per causal layer (forward_flops_per_token),
    twice that per layer that computes the full square (eager, or SDPA with a mask: masked_layers)."""
    per_layer = 2.0 * s.seq_len * m.q_dim
    return per_layer * (m.num_hidden_layers + masked_layers(m, s))


def train_flops_per_token(m: ModelSpec, p: ParamCounts, s: Setup) -> float:
    """FLOPs per trained token, including recompute and DPO's reference pass.

    Full FT: backward = 2x forward (6N rule, Kaplan et al. 2020). LoRA/QLoRA: frozen weights need input
    gradients only, so matmul backward = 1x forward; attention has no weights and still costs 2x.
    Gradient checkpointing re-runs the decoder forward (Korthikanti et al. 2022, arXiv:2205.05198 §5).
    DPO adds one forward of the reference model on the same tokens (Rafailov et al. 2023; TRL DPOTrainer);
    precomputed reference log-probs cost that forward once, before training, which is the same FLOPs.
    """
    mm, _ = forward_flops_per_token(m, p, s.seq_len)
    attn = attention_flops(m, s)
    if s.method == "full":
        flops = 3 * (mm + attn)
    else:
        flops = 2 * mm + 3 * attn + 6.0 * p.lora_per_token
    if s.grad_ckpt:
        flops += 2.0 * p.active + attn
    if s.objective == "dpo":
        flops += mm + attn
    return flops


@dataclass(frozen=True)
class StepTime:
    """Seconds per micro-step on one GPU, by cause."""

    compute: float
    dequant: float
    comm: float  # exposed (not overlapped) communication
    offload: float
    optimizer: float  # optimizer update, amortized over gradient accumulation
    elementwise: float = 0.0  # bandwidth-bound kernels between the matmuls (norms, RoPE, activations, loss)

    @property
    def total(self) -> float:
        return self.compute + self.dequant + self.comm + self.offload + self.optimizer + self.elementwise


# Collective latency per ring step (alpha of the alpha-beta model, Thakur et al. 2005 "Optimization of
# collective communication operations in MPICH"): ~5 us over NVLink/PCIe inside a node, ~20 us across an
# InfiniBand/RoCE fabric (assumption: the order of NCCL's small-message all-reduce times in nccl-tests).
INTRA_NODE_LATENCY_S = 5e-6
INTER_NODE_LATENCY_S = 20e-6
# torch DDP buckets gradients into 25 MB all-reduces (DistributedDataParallel bucket_cap_mb=25); DeepSpeed
# ZeRO-1/2 into reduce_bucket_size "auto" = hidden^2 elements (bf16) in HF's integration.
DDP_BUCKET_BYTES = 25e6

# A cluster that does not say its inter-node bandwidth (cluster.inter_node_gb_s unset or 0) is costed as
# 100 Gb/s Ethernet, 12.5 GB/s per GPU ring hop: the slowest fabric commonly found under multi-node training
# (assumption, deliberately pessimistic: NVLink speed across nodes would be 10-70x too fast).
DEFAULT_INTER_NODE_GB_S = 12.5


def _link_gb_s(gpu: GpuSpec, cluster: ClusterSpec, nodes: int) -> float:
    # A ring all-reduce runs at its slowest hop: NVLink/PCIe inside a node, the fabric across nodes.
    if nodes <= 1:
        return gpu.intra_node_gb_s
    fabric = cluster.inter_node_gb_s if cluster.inter_node_gb_s > 0 else DEFAULT_INTER_NODE_GB_S
    return min(gpu.intra_node_gb_s, fabric)


def exposed_comm_s(comm_s: float, compute_s: float, overlap: float) -> float:
    """Communication left on the critical path: `overlap` is the share of the communication time that
    runs concurrently with compute, and no more than the compute time can hide it."""
    return max((1.0 - overlap) * comm_s, comm_s - compute_s, 0.0)


def step_time(
    m: ModelSpec,
    p: ParamCounts,
    s: Setup,
    gpu: GpuSpec,
    cluster: ClusterSpec,
    grad_accum: int,
    eff: Efficiency | None = None,
) -> StepTime:
    eff = eff or efficiency_for(gpu)
    tokens = s.sequences * s.seq_len
    peak = gpu.bf16_tflops * 1e12
    bw = gpu.mem_bandwidth_gb_s * 1e9 * eff.bandwidth

    # Roofline per micro-step: matmuls are compute-bound unless the batch is too small to amortize reading
    # the weights once per pass (Williams et al. 2009, "Roofline").
    passes = 2 + int(s.grad_ckpt) + int(s.objective == "dpo")
    weight_bytes = 2.0 * p.total
    compute = max(train_flops_per_token(m, p, s) * tokens / (peak * eff.mfu), passes * weight_bytes / bw)
    elementwise = 0.0
    if gpu.name != "cpu":
        compute += passes * m.num_hidden_layers * LAYER_PASS_OVERHEAD_S
        # forward 1x, backward 2x, recompute and DPO's reference pass 1x each
        layer_bytes = (passes + 1) * m.num_hidden_layers * elementwise_bytes_per_token_layer(m)
        elementwise = ELEMENTWISE_SCALE * tokens * (layer_bytes + LOSS_BYTES_PER_VOCAB * m.vocab_size) / bw
    else:
        compute += (passes * m.num_hidden_layers * CPU_LAYER_PASS_FLOPS + CPU_MICRO_STEP_FLOPS) / peak
    dequant = (
        passes * (quant_bytes(s) + DEQUANT_WRITE_READ_BYTES) * p.linear / bw if s.method == "qlora" else 0.0
    )

    # Communication per micro-step, bytes through each GPU's link (ZeRO paper §7: DP moves 2x the
    # gradients per step; ZeRO-3 adds an all-gather of parameters in forward and in backward).
    n = s.n_gpus
    comm_bytes = 0.0
    calls = 0.0  # collective launches per micro-step, each paying the ring's latency (alpha-beta model)
    if n > 1:
        trainable = p.total if s.method == "full" else p.lora
        if s.method == "full":
            grad_bytes = (4.0 if s.zero == 0 else 2.0) * trainable
        else:  # adapter gradients travel in the adapters' own dtype (fp32 LoRA, bf16 QLoRA), as memory holds them
            grad_bytes = adapter_bytes(s.method) * trainable
        if s.method == "qlora":
            param_bytes = quant_bytes(s) * p.linear + 2.0 * (p.embed + p.lm_head + p.norm + p.experts)
        else:
            param_bytes = 2.0 * p.total
        ring = (n - 1) / n
        bucket = DDP_BUCKET_BYTES if s.zero == 0 else 2.0 * m.hidden_size**2
        buckets = max(1.0, math.ceil(grad_bytes / bucket))
        if s.zero in (0, 1):  # DDP / ZeRO-1: all-reduce once per optimizer step (no_sync while accumulating)
            comm_bytes = 2 * ring * grad_bytes / grad_accum
            calls = 2 * buckets / grad_accum  # a ring all-reduce is a reduce-scatter + an all-gather
        elif s.zero == 2:  # reduce-scatter every micro-step, all-gather updated params once per step
            comm_bytes = ring * grad_bytes + ring * 2.0 * trainable / grad_accum
            calls = buckets + buckets / grad_accum
        else:  # ZeRO-3: gather params for every pass, reduce-scatter grads every micro-step
            comm_bytes = passes * ring * param_bytes + ring * grad_bytes
            calls = (
                passes * m.num_hidden_layers + m.num_hidden_layers
            )  # per layer: gathers, one reduce-scatter
    nodes = -(-n // cluster.gpus_per_node)
    comm_raw = comm_bytes / (_link_gb_s(gpu, cluster, nodes) * 1e9) if comm_bytes else 0.0
    # Latency: a ring collective over n ranks takes n - 1 steps, each paying one hop's latency.
    comm_raw += calls * (n - 1) * (INTER_NODE_LATENCY_S if nodes > 1 else INTRA_NODE_LATENCY_S)
    comm = exposed_comm_s(comm_raw, compute + elementwise, eff.comm_overlap)

    # Offload: CPU Adam on this rank's shard + grads down / params up over PCIe, once per optimizer step;
    # parameter offload streams each pass's shard up from host memory every micro-step.
    offload = 0.0
    trainable = p.total if s.method == "full" else p.lora
    if s.offload_optimizer:
        per_rank = trainable / n
        cpu_rate = CPU_ADAM_PARAMS_PER_S / min(n, cluster.gpus_per_node)
        offload += (per_rank / cpu_rate + 4.0 * per_rank / (PCIE_GB_S * 1e9)) / grad_accum
    if s.offload_params:
        offload += passes * 2.0 * p.total / n / (PCIE_GB_S * 1e9)

    # On-GPU optimizer step streams master weights, m, v, grads and params: ~2x16 bytes/param (read+write).
    optimizer = 0.0
    if not s.offload_optimizer:
        optimizer = 32.0 * trainable / (n if s.zero >= 1 else 1) / bw / grad_accum

    return StepTime(compute=compute, dequant=dequant, comm=comm, offload=offload, optimizer=optimizer,
                    elementwise=elementwise)  # fmt: skip


def tokens_per_s_per_gpu(st: StepTime, s: Setup) -> float:
    return s.sequences * s.seq_len / st.total
